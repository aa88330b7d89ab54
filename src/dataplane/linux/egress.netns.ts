/**
 * Kernel tests (root) of truss.egress.via with REAL TRAFFIC: a simulated Docker host (dockerd's
 * FORWARD DROP, br_netfilter, truss's firewall) with one truss network and three candidate next
 * hops. Every candidate, and the normal uplink, owns the same "outside" address X and answers a
 * TCP connection to it with its own name, so the answer says which way the packet went.
 *
 *   c1 .2, c2 .3, gC .9 ── trb(N) 198.18.40.0/24 ── host ─┬─ evA 198.19.251.1/30 ── gwA .2   (X, "A")
 *                                                          ├─ evB 198.19.253.1/30 ── gwB .2   (X, "B")
 *                                                          └─ evU 198.19.250.1/30 ── out .2   (X, "out"; the default route)
 *   gC (a container of the network, X, "C"): the gateway-container case
 *
 * Run: node --test --test-concurrency=1 src/dataplane/linux/egress.netns.ts
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { before, describe, it } from 'node:test';
import { computeDesired } from '../../core/desired.ts';
import { computeEgress, EGRESS_RULE_PRIORITY, egressTable, isEgressTable } from '../../core/egress.ts';
import type { NetworkSpec } from '../../core/model.ts';
import type { LinuxDataplane } from './linux-dataplane.ts';
import {
  BUSYBOX,
  type Ctr,
  commandRecorder,
  createScratch,
  testEndpoint as endpoint,
  listTestNamespaces,
  testNetwork as network,
  randomId,
  serveHi,
  simulatedHost,
  type TestNs,
  tcpHi,
} from './netns-testutil.ts';

const X = '198.18.99.1';
const PORT = 8080;

describe('truss.egress.via (kernel)', () => {
  const scratch = createScratch();
  const rec = commandRecorder();
  let host: TestNs;
  let dp: LinuxDataplane;
  let c1: Ctr;
  let c2: Ctr;
  let gC: Ctr;
  const N = randomId();
  const base = network(N, 40, { v6: true });
  const T = egressTable(N);
  const withVia = (...via: string[]): NetworkSpec => ({ ...base, egressVia: via });

  /** Answers every connection to :PORT with `name` (busybox nc), on every address of `s`. */
  const serveName = (s: TestNs, name: string): void => {
    scratch.proc(
      spawn('nsenter', [`--net=${s.path}`, '--', BUSYBOX, 'nc', '-ll', '-p', `${PORT}`, '-e', BUSYBOX, 'echo', name], {
        stdio: 'ignore',
      }),
    );
  };

  /** Which next hop answered a connection from `from` to X ('' = none within 1 s). */
  const whoAnswers = async (from: TestNs, to = X): Promise<string> =>
    (await from.run([BUSYBOX, 'nc', '-w', '1', to, `${PORT}`])).stdout.trim();

  /** A namespace behind host link `hostIf` (198.19.<n>.1/30 on the host, .2 in it) that owns X. */
  async function nextHop(role: string, hostIf: string, n: number, name: string): Promise<TestNs> {
    const s = await scratch.ns(role);
    await host.must(
      ['ip', '-batch', '-'],
      `link add ${hostIf} type veth peer name eth0 netns ${s.name}\naddr add 198.19.${n}.1/30 dev ${hostIf}\nlink set ${hostIf} up\n`,
    );
    await s.must(
      ['ip', '-batch', '-'],
      `addr add 198.19.${n}.2/30 dev eth0\nlink set eth0 up\naddr add ${X}/32 dev lo\n`,
    );
    serveName(s, name);
    return s;
  }

  const rules = async (family: '-4' | '-6'): Promise<Record<string, unknown>[]> =>
    (await host.ipJson<Record<string, unknown>[]>([family, 'rule', 'show'])).filter((r) => r.protocol === '116');
  const tableRoutes = async (family: '-4' | '-6'): Promise<Record<string, unknown>[]> =>
    host.ipJson<Record<string, unknown>[]>([family, 'route', 'show', 'table', String(T)]);
  const reservedRoutes = async (): Promise<unknown[]> => {
    const all = [
      ...(await host.ipJson<{ table?: string }[]>(['-4', 'route', 'show', 'table', 'all', 'proto', '116'])),
      ...(await host.ipJson<{ table?: string }[]>(['-6', 'route', 'show', 'table', 'all', 'proto', '116'])),
    ];
    return all.filter((r) => isEgressTable(Number(r.table)));
  };

  before(async () => {
    const eps = [endpoint(N), endpoint(N), endpoint(N)] as const;
    const h = await simulatedHost(scratch, {
      networks: [base],
      endpoints: [...eps],
      dockerd: 'nf-on',
      onCommand: rec.onCommand,
    });
    ({ ns: host, dp } = h);
    c1 = await h.join('c1', eps[0], '198.18.40.2/24', '198.18.40.1');
    c2 = await h.join('c2', eps[1], '198.18.40.3/24', '198.18.40.1');
    gC = await h.join('gC', eps[2], '198.18.40.9/24', '198.18.40.1', ['fd00:40::9/64', 'fd00:40::1']);
    await gC.ns.must(['ip', 'addr', 'add', `${X}/32`, 'dev', 'lo']);
    serveName(gC.ns, 'C');
    scratch.proc(serveHi(c2.ns, 8081));
    await nextHop('gwA', 'evA', 251, 'A');
    await nextHop('gwB', 'evB', 253, 'B');
    const out = await nextHop('out', 'evU', 250, 'out');
    await host.must(['ip', 'route', 'add', 'default', 'via', '198.19.250.2']);
    // strict reverse-path filtering: replies from the next hop must pass it too
    await host.must(['sysctl', '-q', '-w', 'net.ipv4.conf.all.rp_filter=1']);
    await h.ensureFirewall();
    assert.ok(out);
  });

  it('without the option, the network leaves through the host default route', async () => {
    assert.equal(await whoAnswers(c1.ns), 'out');
    assert.deepEqual(await dp.checkEgress(computeEgress([base])), []);
  });

  it('via A (a host on another link): table and rule appear, traffic leaves through A only', async (t) => {
    const want = computeEgress([withVia('198.19.251.2')]);
    const t0 = performance.now();
    await dp.ensureEgress(want);
    t.diagnostic(`ensureEgress (1 network, from nothing) ${(performance.now() - t0).toFixed(1)} ms`);
    assert.deepEqual(
      (await rules('-4')).map((r) => [r.priority, r.src, r.srclen, r.table]),
      [[EGRESS_RULE_PRIORITY, '198.18.40.0', 24, String(T)]],
    );
    const routes = await tableRoutes('-4');
    assert.ok(routes.some((r) => r.dst === 'default' && r.gateway === '198.19.251.2' && r.dev === 'evA'));
    assert.ok(routes.some((r) => r.dst === 'default' && r.type === 'unreachable'));
    assert.ok(routes.some((r) => r.dst === '198.18.40.0/24' && r.dev === base.bridge));
    for (let i = 0; i < 3; i++) assert.equal(await whoAnswers(c1.ns), 'A');
    assert.equal(await whoAnswers(c2.ns), 'A');
  });

  it('traffic inside the network and to the host is untouched; the host itself still uses its default route', async () => {
    assert.ok(await tcpHi(c1, c2.ip, 8081), 'c1 -> c2 (same network)');
    assert.equal((await c1.ns.run([BUSYBOX, 'ping', '-c1', '-W1', '198.18.40.1'])).code, 0, 'c1 -> gateway');
    assert.equal(await whoAnswers(host), 'out', "the host's own traffic");
  });

  it('is idempotent: a second ensure writes nothing, check finds nothing', async (t) => {
    const want = computeEgress([withVia('198.19.251.2')]);
    rec.reset();
    await dp.ensureEgress(want);
    assert.deepEqual(rec.writes(), []);
    const t0 = performance.now();
    assert.deepEqual(await dp.checkEgress(want), []);
    t.diagnostic(`checkEgress (the full-pass cost: 4 listings) ${(performance.now() - t0).toFixed(1)} ms`);
  });

  it('switching to B replaces only the next hop; traffic flips to B', async () => {
    const want = computeEgress([withVia('198.19.253.2')]);
    rec.reset();
    await dp.ensureEgress(want);
    const batches = rec.argvs.filter((a) => a.includes('-batch'));
    assert.equal(batches.length, 1);
    assert.equal(await whoAnswers(c1.ns), 'B');
    assert.deepEqual(await dp.checkEgress(want), []);
  });

  it('drift (a rule and the next-hop route deleted behind its back) is seen and repaired', async () => {
    const want = computeEgress([withVia('198.19.253.2')]);
    await host.must(['ip', 'rule', 'del', 'priority', String(EGRESS_RULE_PRIORITY), 'proto', '116']);
    assert.equal(await whoAnswers(c1.ns), 'out', 'without the rule the normal route is back');
    await host.must(['ip', 'route', 'del', 'default', 'via', '198.19.253.2', 'table', String(T)]);
    const problems = await dp.checkEgress(want);
    assert.equal(problems.length, 1, problems.join('\n'));
    await dp.ensureEgress(want);
    assert.deepEqual(await dp.checkEgress(want), []);
    assert.equal(await whoAnswers(c1.ns), 'B');
  });

  it('fails closed: when the next hop link goes, traffic leaving is refused, not sent the normal way', async () => {
    const want = computeEgress([withVia('198.19.253.2')]);
    await host.must(['ip', 'link', 'set', 'evB', 'down']);
    try {
      assert.equal(await whoAnswers(c1.ns), '', 'nothing answers (unreachable), and "out" must not');
      await assert.rejects(dp.ensureEgress(want), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'TRUSS_ERR_ADDRESS_INVALID', e.message);
        assert.match(e.message, /next hop 198\.19\.253\.2 \(truss\.egress\.via\) is not reachable/);
        return true;
      });
    } finally {
      await host.must(['ip', 'link', 'set', 'evB', 'up']);
    }
    await dp.ensureEgress(want);
    assert.equal(await whoAnswers(c1.ns), 'B');
  });

  it("a gateway container on the bridge (and IPv6): via on the bridge, the gateway's own traffic exempt", async (t) => {
    const want = computeEgress([withVia('198.18.40.9', 'fd00:40::9')]);
    await dp.ensureEgress(want);
    assert.deepEqual(await dp.checkEgress(want), []);
    assert.equal(await whoAnswers(c1.ns), 'C');
    // the host sent ICMP redirects (in and out on the bridge); c1 keeps its gateway (secure_redirects)
    const seen = await c1.ns.ipJson<{ gateway?: string }[]>(['route', 'get', X]);
    assert.equal(seen[0]?.gateway, '198.18.40.1', `c1 took no redirect: ${JSON.stringify(seen)}`);
    const snmp = (await host.must(['cat', '/proc/net/snmp'])).split('\n').filter((l) => l.startsWith('Icmp:'));
    const [names, values] = snmp.map((l) => l.split(/\s+/));
    t.diagnostic(`host ICMP redirects sent so far: ${values?.[names?.indexOf('OutRedirects') ?? -1]}`);
    // gC's own traffic (what a NATing gateway sends on) leaves the normal way instead of looping to itself
    assert.equal(await whoAnswers(gC.ns, '198.19.250.2'), 'out');
    const r6 = await rules('-6');
    assert.deepEqual(
      r6.map((r) => [r.src, r.table]),
      [
        ['fd00:40::9', 'main'],
        ['fd00:40::', String(T)],
      ],
    );
    const t6 = await tableRoutes('-6');
    assert.ok(t6.some((r) => r.dst === 'default' && r.gateway === 'fd00:40::9' && r.dev === base.bridge));
    // IPv6 traffic: only gC holds X6, so an echo reply proves the IPv6 next hop carried it
    const X6 = 'fd00:99::1';
    await gC.ns.must(['ip', '-6', 'addr', 'add', `${X6}/128`, 'dev', 'lo']);
    await c1.ns.must(['ip', '-batch', '-'], 'addr add fd00:40::2/64 dev eth0 nodad\nroute add ::/0 via fd00:40::1\n');
    await host.must(['sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
    assert.equal((await c1.ns.run([BUSYBOX, 'ping', '-6', '-c1', '-W2', X6])).code, 0, 'c1 -> X6 through gC');
  });

  it("a next hop behind a foreign bridge (a gateway on Docker's bridge): only the firewall's nexthop rule lets it out", async () => {
    const gD = await scratch.ns('gD');
    await host.must(
      ['ip', '-batch', '-'],
      `link add dk0 type bridge\naddr add 198.18.9.1/24 dev dk0\nlink set dk0 up\nlink add dkv type veth peer name eth0 netns ${gD.name}\nlink set dkv master dk0 up\n`,
    );
    await gD.must(
      ['ip', '-batch', '-'],
      `addr add 198.18.9.2/24 dev eth0\nlink set eth0 up\naddr add ${X}/32 dev lo\n`,
    );
    serveName(gD, 'D');
    const spec = withVia('198.18.9.2', 'fd00:40::9');
    await dp.ensureEgress(computeEgress([spec]));
    assert.equal(await whoAnswers(c1.ns), '', "without the rule truss's firewall drops it (to a foreign bridge)");
    const fw = computeDesired([spec], []).firewall;
    await dp.ensureFirewall(fw);
    assert.deepEqual(await dp.checkFirewall(fw), [], 'the rt nexthop rules read back as rendered');
    assert.equal(await whoAnswers(c1.ns), 'D');
    await dp.ensureFirewall(computeDesired([base], []).firewall);
    await host.must(['ip', 'link', 'del', 'dk0']);
  });

  it('leaves foreign rules and routes alone, and removes everything of its own', async () => {
    await host.must(['ip', 'rule', 'add', 'from', '198.18.40.0/24', 'lookup', '100', 'priority', '20000']);
    await host.must(['ip', 'route', 'add', X, 'via', '198.19.251.2', 'table', '100', 'proto', 'static']);
    await host.must(['ip', 'rule', 'add', 'from', '198.18.40.0/24', 'lookup', String(T), 'priority', '20001']);
    try {
      await dp.ensureEgress(computeEgress([withVia('198.19.251.2')]));
      await dp.ensureEgress({ networks: [] });
      assert.deepEqual(await rules('-4'), []);
      assert.deepEqual(await rules('-6'), []);
      assert.deepEqual(await reservedRoutes(), []);
      assert.deepEqual(await dp.checkEgress({ networks: [] }), []);
      const left = (await host.ipJson<{ priority: number }[]>(['-4', 'rule', 'show'])).map((r) => r.priority);
      assert.ok(left.includes(20000) && left.includes(20001), 'foreign rules stay');
      assert.equal((await host.ipJson<unknown[]>(['route', 'show', 'table', '100'])).length, 1, 'foreign route stays');
    } finally {
      await host.run(['ip', 'rule', 'del', 'priority', '20000']);
      await host.run(['ip', 'rule', 'del', 'priority', '20001']);
      await host.run(['ip', 'route', 'flush', 'table', '100']);
    }
    assert.equal(await whoAnswers(c1.ns), 'out', 'without the option: the normal route again');
  });
});

describe('truss.egress.via (kernel) cleanup', () => {
  it('leaves no test namespace behind', async () => assert.deepEqual(await listTestNamespaces(), []));
});
