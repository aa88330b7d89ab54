/**
 * Kernel tests (root) with REAL TRAFFIC: a simulated Docker host in a throwaway namespace,
 * "containers" in their own namespaces attached through truss veths (peer moved in and
 * configured as dockerd would), dockerd's `iptables -P FORWARD DROP` and br_netfilter on,
 * a foreign Docker-like bridge, and an uplink router namespace that has no route back to
 * the container subnets (so only NAT gets replies home).
 *
 *   a1,a2 ── trb(A) 198.18.1.0/24 nat, fd00:1::/64 ─┐
 *   b1    ── trb(B) 198.18.2.0/24 nat                ├─ host ── upbr 198.19.0.1 (bridge: up0) ── out 198.19.0.2
 *   i1,i2 ── trb(I) 198.18.3.0/24 internal          │
 *   d1    ── dk0    198.18.9.0/24 (Docker's, foreign)┘
 *
 * Run: node --test --test-concurrency=1 'src/**\/*.netns.ts' (npm run test:kernel).
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { computeDesired } from '../../core/desired.ts';
import { createLinuxDataplane, type LinuxDataplane } from './linux-dataplane.ts';
import {
  type Ctr,
  createScratch,
  testEndpoint as endpoint,
  listTestNamespaces,
  testNetwork as network,
  pingOk as ping,
  randomId,
  serveHi,
  simulatedHost,
  type TestNs,
  tcpHi as tcp,
} from './netns-testutil.ts';

describe('traffic through truss bridges (kernel)', () => {
  const scratch = createScratch();
  let host: TestNs;
  let out: TestNs;
  let dp: LinuxDataplane;
  const [A, B, I] = [randomId(), randomId(), randomId()];
  const networks = [network(A, 1, { v6: true }), network(B, 2), network(I, 3, { internal: true })];
  const ctr: Record<string, Ctr> = {};

  /** A Docker-like bridge truss does not own, with one container, and the uplink router. */
  async function foreignAndUplink(): Promise<void> {
    const d1 = await scratch.ns('d1');
    out = await scratch.ns('out');
    await host.must(
      ['ip', '-batch', '-'],
      [
        'link add dk0 type bridge',
        'addr add 198.18.9.1/24 dev dk0',
        'link set dk0 up',
        `link add dkv type veth peer name eth0 netns ${d1.name}`,
        'link set dkv master dk0 up',
        // The uplink is a bridge, as on many VM hosts: rule 5 must exempt it (uplinks: 'auto').
        'link add upbr type bridge',
        `link add up0 type veth peer name eth0 netns ${out.name}`,
        'link set up0 master upbr up',
        'addr add 198.19.0.1/24 dev upbr',
        'link set upbr up',
        'route add default via 198.19.0.2',
        '',
      ].join('\n'),
    );
    await d1.must(
      ['ip', '-batch', '-'],
      'addr add 198.18.9.2/24 dev eth0\nlink set eth0 up\nroute add default via 198.18.9.1\n',
    );
    // The outside can route to the container subnets, so only the firewall (not a missing route) stops flows.
    await out.must(
      ['ip', '-batch', '-'],
      'addr add 198.19.0.2/24 dev eth0\nlink set eth0 up\nroute add 198.18.0.0/16 via 198.19.0.1\n',
    );
    // The outside counts what reaches it: the host's address (NAT) vs container addresses (no NAT).
    await out.must(
      ['nft', '-f', '-'],
      'table ip probe {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n' +
        '\t\tip saddr 198.19.0.1 tcp dport 8080 counter\n\t\tip saddr 198.18.0.0/16 counter\n\t}\n}\n',
    );
    ctr.d1 = { ns: d1, ip: '198.18.9.2' };
  }

  const probeCounts = async (): Promise<number[]> => {
    const text = await out.must(['nft', 'list', 'table', 'ip', 'probe']);
    return [...text.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
  };

  before(async () => {
    const eps = { a1: endpoint(A), a2: endpoint(A), b1: endpoint(B), i1: endpoint(I), i2: endpoint(I) };
    const h = await simulatedHost(scratch, { networks, endpoints: Object.values(eps), dockerd: 'nf-on' });
    ({ ns: host, dp } = h);
    ctr.a1 = await h.join('a1', eps.a1, '198.18.1.2/24', '198.18.1.1', ['fd00:1::2/64', 'fd00:1::1']);
    ctr.a2 = await h.join('a2', eps.a2, '198.18.1.3/24', '198.18.1.1', ['fd00:1::3/64', 'fd00:1::1']);
    ctr.b1 = await h.join('b1', eps.b1, '198.18.2.2/24', '198.18.2.1');
    ctr.i1 = await h.join('i1', eps.i1, '198.18.3.2/24', '198.18.3.1');
    ctr.i2 = await h.join('i2', eps.i2, '198.18.3.3/24', '198.18.3.1');
    await foreignAndUplink();
    await dp.ensureSysctls(h.desired.firewall);
    for (const c of [ctr.a1, ctr.a2, ctr.b1, ctr.i2, ctr.d1]) scratch.proc(serveHi((c as Ctr).ns));
    scratch.proc(serveHi(out));
  });

  const c = (name: string): Ctr => ctr[name] as Ctr;
  const firewall = () => computeDesired(networks, []).firewall;

  it('br_netfilter is per namespace here, and with FORWARD DROP kills even same-bridge traffic', async () => {
    assert.equal((await host.must(['sysctl', '-n', 'net.bridge.bridge-nf-call-iptables'])).trim(), '1');
    const other = await scratch.ns('probe');
    await other.must(['sysctl', '-q', '-w', 'net.bridge.bridge-nf-call-iptables=0']);
    assert.equal((await host.must(['sysctl', '-n', 'net.bridge.bridge-nf-call-iptables'])).trim(), '1');
    assert.equal(await ping(c('a1'), c('a2').ip), false, 'no firewall yet: Docker-style DROP policy wins');
  });

  it('applies the firewall', async () => {
    await dp.ensureFirewall(firewall());
    assert.deepEqual(await dp.checkFirewall(firewall()), []);
  });

  it('same network: ping and TCP work (v4 and v6), and the gateway answers', async () => {
    const results = await Promise.all([
      ping(c('a1'), c('a2').ip),
      tcp(c('a1'), c('a2').ip),
      ping(c('a2'), c('a1').ip6 as string),
      ping(c('a1'), '198.18.1.1'),
      tcp(c('i1'), c('i2').ip),
    ]);
    assert.deepEqual(results, [true, true, true, true, true]);
  });

  it('across truss networks: dropped both ways', async () => {
    const results = await Promise.all([
      ping(c('a1'), c('b1').ip),
      tcp(c('a1'), c('b1').ip),
      tcp(c('b1'), c('a1').ip),
      tcp(c('i1'), c('a1').ip),
      tcp(c('a1'), c('i2').ip),
    ]);
    assert.deepEqual(results, [false, false, false, false, false]);
  });

  it('outbound: a NAT network reaches the outside, which sees only the host address (it could route back)', async () => {
    const before = await probeCounts();
    assert.equal(await tcp(c('a1'), '198.19.0.2'), true);
    assert.equal(await ping(c('b1'), '198.19.0.2'), true);
    const after = await probeCounts();
    assert.ok((after[0] ?? 0) > (before[0] ?? 0), 'the outside saw the host address');
    assert.equal(after[1], before[1], 'the outside never saw a container address');
  });

  it('an uplink that is a bridge is only reachable because it carries the default route', async () => {
    const fixed = createLinuxDataplane({ netns: host.path, uplinks: [] });
    await fixed.ensureFirewall(firewall());
    assert.equal(await tcp(c('a1'), '198.19.0.2'), false, 'without the exemption rule 5 drops it');
    await dp.ensureFirewall(firewall());
    assert.match(await host.must(['nft', 'list', 'set', 'inet', 'truss', 'uplinks']), /elements = \{ "upbr" \}/);
    assert.equal(await tcp(c('a1'), '198.19.0.2'), true);
  });

  it('internal network: no way out', async () => {
    assert.deepEqual(await Promise.all([tcp(c('i1'), '198.19.0.2'), ping(c('i1'), '198.19.0.2')]), [false, false]);
  });

  it("Docker's (foreign) bridge: dropped both ways", async () => {
    assert.deepEqual(await Promise.all([tcp(c('a1'), c('d1').ip), tcp(c('d1'), c('a1').ip)]), [false, false]);
  });

  it('new flows from the outside into a truss network: dropped even with a route', async () => {
    assert.deepEqual(await Promise.all([tcp(out, c('a1').ip), ping(out, c('a1').ip)]), [false, false]);
  });

  it('removeFirewall: the DROP policy is back in charge', async () => {
    await dp.removeFirewall();
    assert.equal(await ping(c('a1'), c('a2').ip), false);
  });
});

describe('traffic (kernel) cleanup', () => {
  it('leaves no truss-t-* namespace behind', async () => assert.deepEqual(await listTestNamespaces(), []));
});
