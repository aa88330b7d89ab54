/**
 * Kernel tests (root) for published ports with REAL TRAFFIC: a simulated Docker host (FORWARD
 * policy DROP, the truss firewall on), an "outside" namespace behind the host's uplink, two
 * truss networks. A publishes tcp 8080 -> 80 (every host address), udp 5353 -> 53, and tcp
 * 9090 -> 80 on one host address only.
 *
 *   outside 198.18.99.2 fd00:99::2 ── up0 198.18.99.1 fd00:99::1, 198.18.98.1 on lo (host)
 *   A 198.18.41.2 fd00:41::2 ─┬─ trb… 198.18.41.1 fd00:41::1
 *   B 198.18.41.3            ─┘
 *   C 198.18.42.2 ─── trb… 198.18.42.1 (another truss network)
 *
 * Run: node --test --test-concurrency=1 src/dataplane/linux/dnat.netns.ts
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PortsObject } from '../../core/desired.ts';
import type { EndpointSpec } from '../../core/model.ts';
import { policyChainName, portsOwnerName } from '../../core/naming.ts';
import type { LinuxDataplane } from './linux-dataplane.ts';
import {
  type Ctr,
  createScratch,
  listTestNamespaces,
  randomId,
  serveHi,
  simulatedHost,
  type TestNs,
  tcpHi,
  testEndpoint,
  testNetwork,
} from './netns-testutil.ts';

const SOCKPERF = process.env.TRUSS_E2E_SOCKPERF ?? '/usr/bin/sockperf';

/** A UDP round trip (sockperf ping-pong for 1 s) from `from` to ip:port; true when replies came back. */
async function udpRoundTrip(from: TestNs, ip: string, port: number): Promise<boolean> {
  const r = await from.run(
    [SOCKPERF, 'ping-pong', '-i', ip, '-p', `${port}`, '-t', '1', '--mps', '50'],
    undefined,
    20_000,
  );
  return r.code === 0 && /observation/.test(r.stdout) && !/No messages were received/.test(r.stdout);
}

describe('published ports with real traffic (kernel)', () => {
  const scratch = createScratch();
  let host: TestNs;
  let outside: TestNs;
  let dp: LinuxDataplane;
  const N1 = randomId();
  const N2 = randomId();
  const net1 = testNetwork(N1, 41, { v6: true });
  const net2 = testNetwork(N2, 42);
  const eps: Record<'a' | 'b' | 'c', EndpointSpec> = { a: testEndpoint(N1), b: testEndpoint(N1), c: testEndpoint(N2) };
  const ctr = {} as Record<'a' | 'b' | 'c', Ctr>;
  const portsA = (): PortsObject => ({
    name: portsOwnerName(eps.a.id),
    endpointId: eps.a.id,
    networkId: N1,
    bridge: net1.bridge,
    hostVeth: eps.a.hostVeth,
    address4: ctr.a.ip,
    address6: ctr.a.ip6 as string,
    gateway4: '198.18.41.1',
    gateway6: 'fd00:41::1',
    ports: [
      { family: 4, proto: 'tcp', hostPort: 8080, port: 80 },
      { family: 6, proto: 'tcp', hostPort: 8080, port: 80 },
      { family: 4, proto: 'udp', hostPort: 5353, port: 53 },
      { family: 4, proto: 'tcp', hostIp: '198.18.99.1', hostPort: 9090, port: 80 },
    ],
  });

  before(async () => {
    const h = await simulatedHost(scratch, { networks: [net1, net2], endpoints: Object.values(eps), dockerd: 'nf-on' });
    ({ ns: host, dp } = h);
    outside = await scratch.ns('out');
    const join = async (k: 'a' | 'b' | 'c', ip: string, gw: string, v6?: [string, string]): Promise<void> => {
      ctr[k] = await h.join(k, eps[k], ip, gw, v6);
    };
    await join('a', '198.18.41.2/24', '198.18.41.1', ['fd00:41::2/64', 'fd00:41::1']);
    await join('b', '198.18.41.3/24', '198.18.41.1');
    await join('c', '198.18.42.2/24', '198.18.42.1');
    await host.must(['ip', 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside.name]);
    await host.must(
      ['ip', '-batch', '-'],
      [
        'addr add 198.18.99.1/24 dev up0',
        'addr add fd00:99::1/64 dev up0 nodad',
        'link set up0 up',
        'addr add 198.18.98.1/32 dev lo',
      ].join('\n'),
    );
    await outside.must(
      ['ip', '-batch', '-'],
      [
        'addr add 198.18.99.2/24 dev eth0',
        'addr add fd00:99::2/64 dev eth0 nodad',
        'link set eth0 up',
        'route add default via 198.18.99.1',
        'route add default via fd00:99::1',
      ].join('\n'),
    );
    await host.must(['sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
    await h.ensureFirewall();
    // IPv6 neighbour discovery needs the link-local addresses, which are tentative until DAD ends
    for (const ns of [host, outside, ctr.a.ns]) {
      for (let i = 0; i < 50 && (await ns.must(['ip', '-6', 'addr', 'show', 'tentative'])).trim() !== ''; i++) {
        await sleep(100);
      }
    }
    scratch.proc(serveHi(ctr.a.ns, 80));
    scratch.proc(serveHi(ctr.c.ns, 80));
    scratch.proc(
      spawn('nsenter', [`--net=${ctr.a.ns.path}`, '--', SOCKPERF, 'server', '-i', ctr.a.ip, '-p', '53'], {
        stdio: 'ignore',
      }),
    );
    await sleep(200);
  });

  it('before publishing, the outside cannot reach A, directly or via the host', async () => {
    assert.deepEqual(await Promise.all([tcpHi(outside, '198.18.99.1', 8080), tcpHi(outside, ctr.a.ip, 80)]), [
      false,
      false,
    ]);
  });

  it('publishes: the outside reaches A on the host address (v4 and v6), with its own source address', async () => {
    const t0 = performance.now();
    await dp.ensurePorts(portsA());
    const applyMs = performance.now() - t0;
    assert.deepEqual(await Promise.all([tcpHi(outside, '198.18.99.1', 8080), tcpHi(outside, 'fd00:99::1', 8080)]), [
      true,
      true,
    ]);
    const ct = await host.must(['conntrack', '-L', '-p', 'tcp', '--orig-port-dst', '8080', '-s', '198.18.99.2']);
    // the reply tuple: A (DNAT target) answers the outside address itself (no SNAT)
    assert.match(ct, /src=198\.18\.41\.2 dst=198\.18\.99\.2 sport=80 /, ct);
    assert.equal(await tcpHi(outside, ctr.a.ip, 80), false, 'A itself stays closed to the outside');
    console.log(`# ensurePorts (table created, 4 bindings): ${applyMs.toFixed(1)} ms`);
  });

  it('udp: host:5353 is a round trip to A:53', async () => {
    assert.equal(await udpRoundTrip(outside, '198.18.99.1', 5353), true);
  });

  it('a binding on one host address answers only there', async () => {
    await outside.must(['ip', 'route', 'add', '198.18.98.1/32', 'via', '198.18.99.1']);
    assert.deepEqual(await Promise.all([tcpHi(outside, '198.18.99.1', 9090), tcpHi(outside, '198.18.98.1', 9090)]), [
      true,
      false,
    ]);
    assert.equal(await tcpHi(outside, '198.18.98.1', 8080), true, 'HostIP "" is every host address');
  });

  it('hairpin: A itself, its neighbour B and C on another network reach it via the host; the host too, not via loopback', async () => {
    assert.deepEqual(
      await Promise.all([
        tcpHi(ctr.a, '198.18.99.1', 8080),
        tcpHi(ctr.b, '198.18.99.1', 8080),
        tcpHi(ctr.b, '198.18.41.1', 8080),
        tcpHi(ctr.c, '198.18.99.1', 8080),
        tcpHi(host, '198.18.99.1', 8080),
        tcpHi(host, '127.0.0.1', 8080),
      ]),
      [true, true, true, true, true, false],
    );
    assert.equal(await tcpHi(ctr.c, ctr.a.ip, 80), false, 'C still cannot reach A directly: networks stay isolated');
  });

  it('an ingress policy applies to published traffic (the container port; hairpin comes from the gateway)', async () => {
    const policy = {
      name: policyChainName(eps.a.id),
      endpointId: eps.a.id,
      networkId: N1,
      addresses: [ctr.a.ip, ctr.a.ip6 as string],
      rules: [{ proto: 'tcp' as const, ports: { from: 80, to: 80 }, source: '198.18.99.0/24' }],
    };
    await dp.ensurePolicy(policy);
    assert.deepEqual(await Promise.all([tcpHi(outside, '198.18.99.1', 8080), tcpHi(ctr.b, '198.18.99.1', 8080)]), [
      true,
      false,
    ]);
    await dp.removePolicy(policy.name);
    await dp.removePolicyTable();
  });

  it('is idempotent, shows drift, repairs it; removal closes the ports and leaves no element', async () => {
    const p = portsA();
    const listing = () => host.must(['nft', 'list', 'table', 'inet', 'truss_ports']);
    await dp.ensurePorts(p);
    const first = await listing();
    await dp.ensurePorts(p);
    assert.equal(await listing(), first);
    assert.deepEqual(await dp.checkPorts([p]), { drifted: [], extra: [], problems: [], tablePresent: true });
    await host.must(['nft', 'flush', 'map', 'inet', 'truss_ports', 'dnat4_any']);
    assert.deepEqual((await dp.checkPorts([p])).drifted, [p.name]);
    assert.equal(await tcpHi(outside, '198.18.99.1', 8080), false);
    await dp.ensurePorts(p);
    assert.equal(await tcpHi(outside, '198.18.99.1', 8080), true);
    await host.must(['nft', 'delete', 'table', 'inet', 'truss_ports']);
    assert.deepEqual((await dp.checkPorts([p])).problems, ['nft table inet truss_ports is missing']);
    await dp.ensurePorts(p);
    assert.equal(await tcpHi(outside, '198.18.99.1', 8080), true);
    // an element of an endpoint no longer desired shows as extra
    assert.deepEqual((await dp.checkPorts([])).extra, [p.name]);
    await dp.removePorts(p.name);
    await dp.removePorts(p.name);
    assert.doesNotMatch(await listing(), /ep_/);
    assert.equal(await tcpHi(outside, '198.18.99.1', 8080), false);
    await dp.removePortsTable();
    await dp.removePortsTable();
    await dp.removePorts(p.name);
    assert.doesNotMatch(await host.must(['nft', 'list', 'tables']), /truss_ports/);
  });

  it('a key held by a stale endpoint is taken over by the one that wants it', async () => {
    const stale: PortsObject = {
      ...portsA(),
      name: 'ep_999999999999',
      address4: ctr.b.ip,
      ports: [portsA().ports[0] as never],
    };
    delete (stale as { address6?: string }).address6;
    await dp.ensurePorts(stale);
    await dp.ensurePorts(portsA());
    const els = (await host.must(['nft', 'list', 'map', 'inet', 'truss_ports', 'dnat4_any'])).replace(/\s+/g, ' ');
    assert.match(els, /tcp \. 8080 comment "ep_[0-9a-f]{12}" : 198\.18\.41\.2 \. 80/);
    assert.doesNotMatch(els, /ep_999999999999/);
    await dp.removePortsTable();
  });
});

describe('published ports (kernel) cleanup', () => {
  it('leaves no test namespace behind', async () => assert.deepEqual(await listTestNamespaces(), []));
});
