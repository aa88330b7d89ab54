/**
 * Kernel tests (root) for port policy with REAL TRAFFIC: a simulated Docker host (FORWARD
 * policy DROP, br_netfilter switches off until truss raises them, the truss firewall on),
 * three "containers" on one truss network, B with an ingress policy. B counts in its own
 * namespace (table inet probe) what reaches it, so "blocked" means "B never saw a SYN".
 *
 *   A 198.18.40.2 fd00:40::2 ─┐
 *   B 198.18.40.3 fd00:40::3 ─┼─ trb… 198.18.40.1 fd00:40::1 (host)
 *   C 198.18.40.4            ─┘
 *
 * Run: node --test --test-concurrency=1 'src/**\/*.netns.ts' (npm run test:kernel).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PolicyObject } from '../../core/desired.ts';
import type { EndpointSpec } from '../../core/model.ts';
import { policyChainName } from '../../core/naming.ts';
import type { IngressRule } from '../../core/policy/model.ts';
import { createLinuxDataplane, type LinuxDataplane } from './linux-dataplane.ts';
import {
  BUSYBOX,
  type Ctr,
  createScratch,
  listTestNamespaces,
  pingOk,
  randomId,
  serveHi,
  simulatedHost,
  type TestNs,
  tcpHi,
  testEndpoint,
  testNetwork,
} from './netns-testutil.ts';

const tcp = (port: number, source?: string): IngressRule => ({
  proto: 'tcp',
  ports: { from: port, to: port },
  ...(source ? { source } : {}),
});
const ICMP: IngressRule = { proto: 'icmp' };

const PROBE = `table inet probe {
	counter syn8080 {}
	counter in8080 {}
	counter in80 {}
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 8080 tcp flags & (syn | ack) == syn counter name "syn8080"
		tcp dport 8080 counter name "in8080"
		tcp dport 80 counter name "in80"
	}
}
`;

describe('port policy with real traffic (kernel)', () => {
  const scratch = createScratch();
  let host: TestNs;
  let dp: LinuxDataplane;
  const N = randomId();
  const net = testNetwork(N, 40, { v6: true });
  const eps: Record<'a' | 'b' | 'c', EndpointSpec> = { a: testEndpoint(N), b: testEndpoint(N), c: testEndpoint(N) };
  const ctr = {} as Record<'a' | 'b' | 'c', Ctr>;
  const policyB = (rules: readonly IngressRule[]): PolicyObject => ({
    name: policyChainName(eps.b.id),
    endpointId: eps.b.id,
    networkId: N,
    addresses: [ctr.b.ip, ctr.b.ip6 as string],
    rules,
  });
  const listing = (): Promise<string> => host.must(['nft', 'list', 'table', 'inet', 'truss_policy']);
  const probe = async (): Promise<Record<string, { packets: number; bytes: number }>> => {
    const doc = JSON.parse(await ctr.b.ns.must(['nft', '-j', 'list', 'counters', 'table', 'inet', 'probe'])) as {
      nftables: { counter?: { name: string; packets: number; bytes: number } }[];
    };
    return Object.fromEntries(doc.nftables.flatMap((i) => (i.counter ? [[i.counter.name, i.counter]] : [])));
  };
  const denied = async (): Promise<number> => (await dp.readPolicyCounters())[policyB([]).name]?.packets ?? -1;

  before(async () => {
    // dockerd's policy with the br_netfilter calls off: ensurePolicy must raise them itself
    const h = await simulatedHost(scratch, { networks: [net], endpoints: Object.values(eps), dockerd: 'nf-off' });
    ({ ns: host, dp } = h);
    const join = async (k: 'a' | 'b' | 'c', n: number): Promise<void> => {
      ctr[k] = await h.join(k, eps[k], `198.18.40.${n}/24`, '198.18.40.1', [`fd00:40::${n}/64`, 'fd00:40::1']);
    };
    await join('a', 2);
    await join('b', 3);
    await join('c', 4);
    await h.ensureFirewall();
    await ctr.b.ns.must(['nft', '-f', '-'], PROBE);
    scratch.proc(serveHi(ctr.b.ns, 80, { sink: true }));
    scratch.proc(serveHi(ctr.b.ns, 8080, { sink: true }));
    scratch.proc(serveHi(ctr.a.ns, 80));
    await sleep(200);
  });

  it('without a policy everything in the network reaches B', async () => {
    assert.deepEqual(await Promise.all([tcpHi(ctr.a, ctr.b.ip, 8080), pingOk(ctr.c, ctr.b.ip)]), [true, true]);
  });

  it('tcp/80: only :80 gets in, from containers and from the host; B never sees the SYNs; B may still go out', async () => {
    await dp.ensurePolicy(policyB([tcp(80)]));
    for (const k of ['iptables', 'ip6tables']) {
      assert.equal((await host.must(['sysctl', '-n', `net.bridge.bridge-nf-call-${k}`])).trim(), '1', k);
    }
    const syn = (await probe()).syn8080?.packets;
    const got = await Promise.all([
      tcpHi(ctr.a, ctr.b.ip, 80),
      tcpHi(host, ctr.b.ip, 80),
      tcpHi(ctr.b, ctr.a.ip, 80), // B's own connection: its replies come back
      tcpHi(ctr.a, ctr.b.ip, 8080),
      tcpHi(host, ctr.b.ip, 8080),
      pingOk(ctr.a, ctr.b.ip),
    ]);
    assert.deepEqual(got, [true, true, true, false, false, false]);
    assert.equal((await probe()).syn8080?.packets, syn, "B's listener saw no SYN");
    assert.ok((await denied()) >= 3, 'the denied counter counted the blocked SYNs and echo');
  });

  it('icmp admits echo requests', async () => {
    await dp.ensurePolicy(policyB([tcp(80), ICMP]));
    assert.equal(await pingOk(ctr.a, ctr.b.ip), true);
  });

  it('a source-narrowed rule admits A and not C', async () => {
    await dp.ensurePolicy(policyB([tcp(80), tcp(8080, `${ctr.a.ip}/32`)]));
    assert.deepEqual(await Promise.all([tcpHi(ctr.a, ctr.b.ip, 8080), tcpHi(ctr.c, ctr.b.ip, 8080)]), [true, false]);
  });

  it('tightening cuts an established flow at once; an admitted one keeps flowing; the denied count survives', async () => {
    const stream = (port: number): ChildProcess => {
      const p = spawn('nsenter', [`--net=${ctr.a.ns.path}`, '--', BUSYBOX, 'nc', ctr.b.ip, `${port}`], {
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      p.stdin?.on('error', () => {});
      const t = setInterval(() => p.stdin?.write('x'.repeat(100)), 50);
      p.on('exit', () => clearInterval(t));
      scratch.proc(p);
      return p;
    };
    stream(8080);
    stream(80);
    await sleep(400);
    const before = await probe();
    assert.ok((before.in8080?.bytes ?? 0) > 1000, 'the 8080 flow is flowing while admitted');
    const deniedBefore = await denied();
    await dp.ensurePolicy(policyB([tcp(80)]));
    await sleep(100); // whatever was already past the policy
    const t0 = await probe();
    await sleep(1000);
    const t1 = await probe();
    assert.equal(t1.in8080?.bytes, t0.in8080?.bytes, 'no byte of the cut flow reaches B any more');
    assert.ok((t1.in80?.bytes ?? 0) > (t0.in80?.bytes ?? 0) + 1000, 'the :80 flow keeps flowing');
    const left = await host.must(['conntrack', '-L', '-p', 'tcp', '-d', ctr.b.ip, '--dport', '8080']);
    assert.equal(left.trim(), '', 'its conntrack entry is gone');
    assert.ok((await denied()) > deniedBefore, 'the update kept the counter; the cut flow now counts as denied');
  });

  it('IPv6: tcp/80 admits :80 only; with icmp, echo works and so does unicast neighbour discovery', async () => {
    const b6 = ctr.b.ip6 as string;
    await dp.ensurePolicy(policyB([tcp(80), ICMP]));
    assert.deepEqual(await Promise.all([tcpHi(ctr.a, b6, 80), tcpHi(ctr.a, b6, 8080)]), [true, false]);
    // A's entry for B goes stale; the next packet makes A probe B with a unicast NS to B's address
    const mac = (await ctr.b.ns.ipJson<{ address: string }[]>(['link', 'show', 'eth0']))[0]?.address as string;
    await ctr.a.ns.must(['sysctl', '-q', '-w', 'net/ipv6/neigh/eth0/delay_first_probe_time=0']);
    await ctr.a.ns.must(['ip', '-6', 'neigh', 'replace', b6, 'lladdr', mac, 'dev', 'eth0', 'nud', 'stale']);
    assert.equal(await pingOk(ctr.a, b6), true);
    let state = '';
    for (let i = 0; i < 20 && state !== 'REACHABLE'; i++) {
      await sleep(100);
      const n = await ctr.a.ns.ipJson<{ state?: string[] }[]>(['-6', 'neigh', 'show', b6, 'dev', 'eth0']);
      state = n[0]?.state?.[0] ?? '';
    }
    assert.equal(state, 'REACHABLE', "B answered A's unicast neighbour solicitation");
  });

  it('ensure is idempotent and drift shows in checkPolicies; ensure restores enforcement', async () => {
    const p = policyB([tcp(80)]);
    await dp.ensurePolicy(p);
    // why: the denied counter counts whatever the kernel sends meanwhile (an IPv6 router solicitation,
    // MLD): the same table is the same rules, sets and maps, whatever the counter says
    const rules = async (): Promise<string> => (await listing()).replace(/packets \d+ bytes \d+/g, 'packets N bytes N');
    const first = await rules();
    await dp.ensurePolicy(p);
    assert.equal(await rules(), first);
    assert.deepEqual(await dp.checkPolicies([p]), { drifted: [], extra: [], problems: [], tablePresent: true });
    await host.must(['nft', 'delete', 'table', 'inet', 'truss_policy']);
    const check = await dp.checkPolicies([p]);
    assert.deepEqual([check.drifted, check.problems], [[p.name], ['table inet truss_policy is missing']]);
    assert.equal(await tcpHi(ctr.a, ctr.b.ip, 8080), true, 'nothing enforces the policy now');
    await dp.ensurePolicy(p);
    assert.deepEqual(await dp.checkPolicies([p]), { drifted: [], extra: [], problems: [], tablePresent: true });
    assert.equal(await tcpHi(ctr.a, ctr.b.ip, 8080), false, 'enforced again');
  });

  it('removePolicy twice, then removePolicyTable: nothing left, B open again', async () => {
    const name = policyB([]).name;
    await dp.removePolicy(name);
    await dp.removePolicy(name);
    assert.doesNotMatch(await listing(), new RegExp(name));
    assert.equal(await tcpHi(ctr.a, ctr.b.ip, 8080), true);
    await dp.removePolicyTable();
    await dp.removePolicyTable();
    await dp.removePolicy(name);
    assert.doesNotMatch(await host.must(['nft', 'list', 'tables']), /truss_policy/);
    assert.deepEqual(await dp.readPolicyCounters(), {});
  });
});

describe('port policy: cost of one update with many entries installed (kernel)', () => {
  let ns: TestNs;
  let dp: LinuxDataplane;
  const probe = (i: number): PolicyObject => ({
    name: `ep_${i.toString(16).padStart(12, '0')}`,
    endpointId: '',
    networkId: '',
    addresses: [`198.18.${Math.floor(i / 250) % 250}.${(i % 250) + 1}`],
    rules: [tcp(80), tcp(443), tcp(5432, '198.18.7.0/24'), ICMP],
  });
  const others = (endpoints: number, ports: number): PolicyObject[] =>
    Array.from({ length: endpoints }, (_, e) => ({
      ...probe(1000 + e),
      rules: Array.from({ length: ports }, (_, k) => tcp(1000 + k * 2)),
    }));
  const median = async (n: number, f: () => Promise<void>): Promise<number> => {
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await f();
      times.push(performance.now() - t0);
    }
    return times.sort((a, b) => a - b)[Math.floor(n / 2)] as number;
  };

  const scratch = createScratch();
  before(async () => {
    ns = await scratch.ns('bench');
    dp = createLinuxDataplane({ netns: ns.path });
  });

  it('ensurePolicy with 10,000 entries installed elsewhere costs at most twice as much as with 10', async (t) => {
    for (const p of others(10, 1)) await dp.ensurePolicy(p);
    const small = await median(9, () => dp.ensurePolicy(probe(1)));
    await dp.removePolicyTable();
    const t0 = performance.now();
    for (const p of others(100, 100)) await dp.ensurePolicy(p);
    const fill = performance.now() - t0;
    const large = await median(9, () => dp.ensurePolicy(probe(1)));
    const remove = await median(3, async () => {
      await dp.removePolicy(probe(1).name);
      await dp.ensurePolicy(probe(1));
    });
    t.diagnostic(
      `ensurePolicy median: ${small.toFixed(1)} ms with 10 entries installed, ${large.toFixed(1)} ms with 10,000 ` +
        `(100 endpoints x 100 ports; filling them took ${fill.toFixed(0)} ms); removePolicy+ensurePolicy ${remove.toFixed(1)} ms`,
    );
    assert.ok(large <= 2 * small, `${large.toFixed(1)} ms > 2 x ${small.toFixed(1)} ms`);
    await dp.removePolicyTable();
  });
});

describe('port policy (kernel) cleanup', () => {
  it('leaves no truss-t-* namespace behind', async () => assert.deepEqual(await listTestNamespaces(), []));
});
