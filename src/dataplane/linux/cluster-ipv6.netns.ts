/**
 * Kernel test (root) with REAL TRAFFIC: IPv6 between containers on different hosts of a
 * dual-stack cluster network (VXLAN mode), through the objects truss programs: each simulated
 * host has truss's bridge and veth (LinuxDataplane), the anti-spoofing guard, the firewall with
 * its VXLAN guard, and what computeClusterDesired and computeProxyNdp (the pure core) make of the
 * cluster view, as the reconciler does: trvx0, the routes, the bridge's proxy NDP entries.
 *
 *   cA .2 fd00:220::2 ─ hA ─ ula 198.18.200.1 ══ 198.18.200.2 ulb ─ hB ─ cB .66 fd00:220::42
 *   cC .2 fd00:220::2 ─ hC ─ ulc fd00:200::1  ══ fd00:200::2  uld ─ hD ─ cD .66 fd00:220::42
 *     blocks 198.18.220.0/26, fd00:220::/122          blocks 198.18.220.64/26, fd00:220::40/122
 *
 * The first pair has an IPv4 underlay (IPv6 blocks go via the peer's VTEP link-local), the second
 * an IPv6 one (every block via the link-local).
 *
 * Run: TRUSS_TEST_NS_PREFIX=x- node --test src/dataplane/linux/cluster-ipv6.netns.ts (npm run test:kernel).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ClusterDesired, type ClusterView, computeClusterDesired } from '../../core/cluster/desired.ts';
import { computeVxlanMtu } from '../../core/cluster/mtu.ts';
import { computeProxyNdp } from '../../core/cluster/proxy-ndp.ts';
import { withVxlanGuard } from '../../core/desired.ts';
import { guardFor } from '../../core/guard.ts';
import type { EndpointSpec, NetworkSpec } from '../../core/model.ts';
import { VXLAN_DEVICE, VXLAN_PORT, VXLAN_VNI, vtepMac } from '../../core/naming.ts';
import { createExec, type Exec } from './exec.ts';
import {
  BUSYBOX,
  type Ctr,
  commandRecorder,
  createScratch,
  listTestNamespaces,
  pingOk,
  randomId,
  type SimulatedHost,
  serveHi,
  simulatedHost,
  tcpHi,
  testEndpoint,
  testNetwork,
} from './netns-testutil.ts';
import { PROXY_NDP_ALL_KEY, readProxyEntries } from './proxy-ndp.ts';
import { readSysctl } from './sysctl.ts';
import { checkVxlan, ensureVxlan, type VxlanDevice } from './vxlan.ts';

const CLUSTER = 'v6t';
const SUBNETS = ['198.18.220.0/24', 'fd00:220::/64'];

interface Host {
  readonly h: SimulatedHost;
  readonly net: NetworkSpec;
  readonly ctr: Ctr;
  readonly node: string;
  readonly underlay: string;
  readonly ulDev: string;
  readonly blocks: readonly string[];
  readonly rec: ReturnType<typeof commandRecorder>;
  /** reads of the host namespace (the dataplane's own Exec is not exposed) */
  readonly exec: Exec;
}

const blocksOf = (first: boolean) =>
  first ? ['198.18.220.0/26', 'fd00:220::/122'] : ['198.18.220.64/26', 'fd00:220::40/122'];

describe('IPv6 across hosts on a dual-stack cluster network (kernel, VXLAN)', { timeout: 120_000 }, () => {
  const scratch = createScratch();
  let A: Host;
  let B: Host;
  let C: Host;
  let D: Host;

  async function host(role: string, underlay: string, first: boolean, mtu: number): Promise<Host> {
    const id = randomId();
    const net: NetworkSpec = { ...testNetwork(id, 220, { v6: true }), mtu, cluster: { name: CLUSTER, encrypt: false } };
    const [ip4, ip6] = first ? ['198.18.220.2', 'fd00:220::2'] : ['198.18.220.66', 'fd00:220::42'];
    const ep: EndpointSpec = { ...testEndpoint(id), ipv4: `${ip4}/24`, ipv6: `${ip6}/64` };
    const rec = commandRecorder();
    const h = await simulatedHost(scratch, {
      networks: [net],
      endpoints: [ep],
      dockerd: 'nf-on',
      onCommand: rec.onCommand,
    });
    const ctr = await h.join(`c${role}`, ep, `${ip4}/24`, '198.18.220.1', [`${ip6}/64`, 'fd00:220::1']);
    const guard = guardFor(net, ep);
    assert.ok(guard);
    await h.dp.ensureGuard(guard);
    scratch.proc(serveHi(ctr.ns));
    const exec = createExec({ netns: h.ns.path });
    return { h, net, ctr, node: `node-${role}`, underlay, ulDev: `ul${role}`, blocks: blocksOf(first), rec, exec };
  }

  async function wire(x: Host, y: Host, len: number): Promise<void> {
    await x.h.ns.must(['ip', 'link', 'add', x.ulDev, 'type', 'veth', 'peer', 'name', y.ulDev, 'netns', y.h.ns.name]);
    const nodad = len === 64 ? ' nodad' : '';
    await x.h.ns.must(
      ['ip', '-batch', '-'],
      `addr add ${x.underlay}/${len} dev ${x.ulDev}${nodad}\nlink set ${x.ulDev} up\n`,
    );
    await y.h.ns.must(
      ['ip', '-batch', '-'],
      `addr add ${y.underlay}/${len} dev ${y.ulDev}${nodad}\nlink set ${y.ulDev} up\n`,
    );
  }

  /** What the reconciler would derive on `x` with peer `y` (both members, each with its two blocks). */
  function desiredOn(x: Host, y: Host | undefined): ClusterDesired {
    const hosts = y ? [x, y] : [x];
    const view: ClusterView = {
      self: x.node,
      nodes: hosts.map((h) => ({ name: h.node, address: h.underlay, wgPublicKey: '', wgPort: 51820 })),
      members: hosts.map((h) => ({ cluster: CLUSTER, node: h.node })),
      blocks: hosts.flatMap((h) => h.blocks.map((block) => ({ cluster: CLUSTER, node: h.node, block }))),
    };
    const local = [{ cluster: CLUSTER, subnets: SUBNETS, encrypt: false, localAddresses: [x.ctr.ip, x.ctr.ip6 ?? ''] }];
    const vxlan = { mtu: x.net.mtu, local: x.underlay, dev: x.ulDev };
    return computeClusterDesired(view, local, { wireguard: { listenPort: 51820, mtu: 1440 }, vxlan });
  }

  /** Programs `x` as the reconciler's cluster kinds and firewall would. */
  async function program(x: Host, y: Host | undefined): Promise<ClusterDesired> {
    const d = desiredOn(x, y);
    assert.deepEqual(d.rejected, []);
    assert.ok(d.vxlan);
    const fw = withVxlanGuard(x.h.desired.firewall, {
      port: VXLAN_PORT,
      vni: VXLAN_VNI,
      peers: d.vxlan.peers.map((p) => p.address),
    });
    await x.h.dp.ensureFirewall(fw);
    await x.h.dp.ensureSysctls(fw);
    await x.h.dp.ensureVxlan(d.vxlan);
    await x.h.dp.ensureRoutes(d.routes);
    for (const o of computeProxyNdp([x.net], d.routes)) await x.h.dp.ensureProxyNdp(o);
    return d;
  }

  const ipFrag = async (x: Host): Promise<string> => {
    const snmp = await x.h.ns.must(['cat', '/proc/net/snmp']);
    const [names, values] = snmp.split('\n').filter((l) => l.startsWith('Ip:'));
    const all = new Map((names ?? '').split(/\s+/).map((n, i) => [n, (values ?? '').split(/\s+/)[i]]));
    return `FragCreates=${all.get('FragCreates')} FragFails=${all.get('FragFails')}`;
  };

  /** Ip6FragCreates of a namespace (/proc/net/snmp6). */
  const ip6FragCreates = async (c: Ctr): Promise<number> =>
    Number(/^Ip6FragCreates\s+(\d+)/m.exec(await c.ns.must(['cat', '/proc/net/snmp6']))?.[1] ?? Number.NaN);

  before(async () => {
    const mtu4 = computeVxlanMtu(1500, 4);
    A = await host('a', '198.18.200.1', true, mtu4);
    B = await host('b', '198.18.200.2', false, mtu4);
    await wire(A, B, 24);
    const mtu6 = computeVxlanMtu(1500, 6);
    C = await host('c', 'fd00:200::1', true, mtu6);
    D = await host('d', 'fd00:200::2', false, mtu6);
    await wire(C, D, 64);
  });

  after(async () => {
    assert.deepEqual(
      (await listTestNamespaces()).filter((n) => scratch.spaces.some((s) => s.name === n)),
      [],
      'test namespaces left behind',
    );
  });

  it('IPv4 underlay: ping6 and TCP over IPv6 both ways, IPv4 alongside; IPv6 blocks via the VTEP link-local', async (t) => {
    const d = await program(A, B);
    await program(B, A);
    const v6 = d.routes.find((r) => r.dst === 'fd00:220::40/122');
    assert.match(v6?.via ?? '', /^fe80::/, JSON.stringify(d.routes));
    const shown = await A.h.ns.must(['ip', '-6', 'route', 'show', 'proto', '116']);
    assert.match(shown, /fd00:220::40\/122 via fe80::\S+ dev trvx0 .*onlink/);
    // the first packet into fresh bridges: no neighbour known yet anywhere on its way and back
    const first = await A.ctr.ns.run([BUSYBOX, 'ping', '-6', '-c1', '-W2', B.ctr.ip6 as string]);
    const ms = Number(/time=([\d.]+) ms/.exec(first.stdout)?.[1]);
    t.diagnostic(`first ping6 cA -> cB through fresh bridges: ${ms} ms`);
    assert.ok(ms < 200, `the first reply took ${ms} ms (a tentative bridge link-local delays it by a second)`);
    assert.ok(await pingOk(A.ctr, B.ctr.ip6 as string), 'ping6 cA -> cB');
    assert.ok(await pingOk(B.ctr, A.ctr.ip6 as string), 'ping6 cB -> cA');
    assert.ok(await tcpHi(A.ctr, B.ctr.ip6 as string), 'TCP over IPv6 cA -> cB');
    assert.ok(await tcpHi(B.ctr, A.ctr.ip6 as string), 'TCP over IPv6 cB -> cA');
    assert.ok(await pingOk(A.ctr, B.ctr.ip), 'IPv4 still: ping cA -> cB');
    assert.ok(await tcpHi(B.ctr, A.ctr.ip), 'IPv4 still: TCP cB -> cA');
  });

  it('the bridge answers for every address of the peer IPv6 block; the host-wide switch is up', async () => {
    const entries = (await readProxyEntries(A.exec)).filter((e) => e.dev === A.net.bridge);
    assert.equal(entries.length, 64);
    assert.ok(entries.some((e) => e.ip === 'fd00:220::42') && !entries.some((e) => e.ip === 'fd00:220::2'));
    assert.equal(await readSysctl(A.exec, PROXY_NDP_ALL_KEY), '1');
    assert.equal(await readSysctl(A.exec, `net/ipv6/neigh/${A.net.bridge}/proxy_delay`), '0');
    const neigh = await A.ctr.ns.must(['ip', '-6', 'neigh', 'show', 'fd00:220::42']);
    const bridgeMac = (await A.h.ns.ipJson<{ address: string }[]>(['link', 'show', A.net.bridge]))[0]?.address;
    assert.match(neigh, new RegExp(`lladdr ${bridgeMac}`), "cA reaches cB through the bridge's MAC");
  });

  it('a full-size IPv6 packet (container MTU 1450) crosses whole, and the underlay fragments nothing', async () => {
    const before = await ipFrag(A);
    const frags = () => ip6FragCreates(A.ctr);
    const f0 = await frags();
    const size = A.net.mtu - 48; // IPv6 40 + ICMPv6 8
    const big = await A.ctr.ns.run([BUSYBOX, 'ping', '-6', '-c2', '-W2', '-s', String(size), B.ctr.ip6 as string]);
    assert.equal(big.code, 0, `ping -6 -s ${size}: ${big.stdout}${big.stderr}`);
    assert.equal(await frags(), f0, 'sent whole: the container fragmented nothing');
    // the boundary: one byte more and the container itself fragments (IPv6 routers never do)
    const over = await A.ctr.ns.run([BUSYBOX, 'ping', '-6', '-c1', '-W2', '-s', String(size + 1), B.ctr.ip6 as string]);
    assert.equal(over.code, 0, `ping -6 -s ${size + 1}: ${over.stdout}`);
    assert.equal(await frags(), f0 + 2, 'one byte more: two fragments');
    assert.equal(await ipFrag(A), before, "hA's IPv4 (the underlay) fragmented nothing");
  });

  it("a container's unicast NUD probe for a remote address is answered by the host", async () => {
    const ns = A.ctr.ns;
    await ns.must(['sysctl', '-qw', 'net.ipv6.neigh.eth0.delay_first_probe_time=1']);
    const mac = /lladdr (\S+)/.exec(await ns.must(['ip', '-6', 'neigh', 'show', 'fd00:220::42']))?.[1] as string;
    await ns.must(['ip', '-6', 'neigh', 'change', 'fd00:220::42', 'lladdr', mac, 'dev', 'eth0', 'nud', 'stale']);
    assert.ok(await pingOk(A.ctr, 'fd00:220::42'));
    // one probe after 1 s: answered, the entry is REACHABLE again; unanswered, it would still be PROBE
    await sleep(2500);
    assert.match(await ns.must(['ip', '-6', 'neigh', 'show', 'fd00:220::42']), /REACHABLE/);
  });

  it('ensure again writes nothing; drift is found and repaired; entries of other devices or prefixes are left', async () => {
    const [o] = computeProxyNdp([A.net], desiredOn(A, B).routes);
    assert.ok(o);
    A.rec.reset();
    await A.h.dp.ensureProxyNdp(o);
    assert.deepEqual(A.rec.writes(), [], 'idempotent');
    await A.h.ns.must(['ip', '-6', 'neigh', 'del', 'proxy', 'fd00:220::42', 'dev', A.net.bridge]);
    await A.h.ns.must(['ip', '-6', 'neigh', 'add', 'proxy', 'fd00:220::99', 'dev', A.net.bridge]); // ours: in the subnet
    await A.h.ns.must(['ip', '-6', 'neigh', 'add', 'proxy', 'fd00:221::1', 'dev', A.net.bridge]); // not ours
    await A.h.ns.must(['ip', '-6', 'neigh', 'add', 'proxy', 'fd00:220::43', 'dev', A.ulDev]); // not ours
    await A.h.ns.must(['sysctl', '-qw', `net.ipv6.neigh.${A.net.bridge}.proxy_delay=80`]);
    const c = await A.h.dp.checkProxyNdp([o]);
    assert.deepEqual(c.drifted, [A.net.bridge]);
    assert.match(c.problems.join('\n'), /proxy_delay is 80.*1 proxy entr\(ies\) missing, 1 extra/);
    await A.h.dp.ensureProxyNdp(o);
    assert.deepEqual((await A.h.dp.checkProxyNdp([o])).problems, []);
    assert.ok(await pingOk(A.ctr, 'fd00:220::42'));
    await A.h.dp.removeProxyNdp(A.net.bridge, o.subnets);
    const left = (await readProxyEntries(A.exec)).map((e) => `${e.ip} ${e.dev}`).sort();
    assert.deepEqual(left, [`fd00:220::43 ${A.ulDev}`, `fd00:221::1 ${A.net.bridge}`]);
    await A.h.dp.removeProxyNdp(A.net.bridge, o.subnets);
    await A.h.dp.ensureProxyNdp(o);
  });

  it('IPv6 underlay: every block via the peer VTEP link-local; both families carry traffic', async () => {
    const d = await program(C, D);
    await program(D, C);
    const via = d.routes.find((r) => r.dst === 'fd00:220::40/122')?.via;
    assert.match(via ?? '', /^fe80::/);
    assert.equal(d.routes.find((r) => r.dst === '198.18.220.64/26')?.via, via);
    assert.ok(await pingOk(C.ctr, D.ctr.ip6 as string), 'ping6 cC -> cD');
    assert.ok(await tcpHi(D.ctr, C.ctr.ip6 as string), 'TCP over IPv6 cD -> cC');
    assert.ok(await pingOk(C.ctr, D.ctr.ip), 'ping cC -> cD');
    assert.ok(await tcpHi(D.ctr, C.ctr.ip), 'TCP cD -> cC');
    const size = C.net.mtu - 48;
    const big = await C.ctr.ns.run([BUSYBOX, 'ping', '-6', '-c1', '-W2', '-s', String(size), D.ctr.ip6 as string]);
    assert.equal(big.code, 0, `ping -6 -s ${size} at MTU ${C.net.mtu}: ${big.stdout}${big.stderr}`);
  });

  it('a host with IPv6 off on trvx0 still programs its IPv4-only peers (no link-local neighbour asked)', async () => {
    const ns = await scratch.ns('noip6');
    await ns.must(['sysctl', '-qw', 'net.ipv6.conf.default.disable_ipv6=1']);
    await ns.must(
      ['ip', '-batch', '-'],
      'link add ul0 type veth peer name ul1\naddr add 198.18.201.1/24 dev ul0\nlink set ul0 up\n',
    );
    const exec = createExec({ netns: ns.path });
    const dev: VxlanDevice = {
      name: VXLAN_DEVICE,
      vni: VXLAN_VNI,
      port: VXLAN_PORT,
      local: '198.18.201.1',
      dev: 'ul0',
      mac: vtepMac('node-x'),
      mtu: 1450,
      peers: [{ address: '198.18.201.2', mac: vtepMac('node-y') }],
    };
    await ensureVxlan(exec, dev);
    assert.deepEqual(await checkVxlan(exec, dev, VXLAN_DEVICE), []);
    await assert.rejects(
      ensureVxlan(exec, { ...dev, peers: dev.peers.map((p) => ({ ...p, viaLinkLocal: true })) }),
      /IPv6 is disabled/,
    );
  });

  it('the peer gone: its entries and routes go, and traffic to it stops', async () => {
    await program(A, undefined);
    assert.deepEqual(
      (await readProxyEntries(A.exec)).filter((e) => e.dev === A.net.bridge && e.ip.startsWith('fd00:220:')),
      [],
    );
    assert.equal(await pingOk(A.ctr, B.ctr.ip6 as string), false);
    await program(A, B);
    assert.ok(await pingOk(A.ctr, B.ctr.ip6 as string), 'back');
  });
});
