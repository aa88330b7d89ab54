/**
 * Kernel tests (root) with REAL TRAFFIC through VXLAN devices: two simulated hosts joined by a
 * veth "underlay", each with the VXLAN device trvx0 (hosts are separate namespaces, so both use
 * the production name), a "container" namespace behind each, on-link routes via the peer's
 * underlay address.
 *
 *   cA 198.18.210.2 ─ hA ─ ula 198.18.200.1/24 ══ 198.18.200.2/24 ulb ─ hB ─ cB 198.18.211.2
 *   cC 198.18.212.2 ─ hC ─ ulc fd00:200::1/64  ══ fd00:200::2/64  uld ─ hD ─ cD 198.18.213.2
 *
 * The second pair has an IPv6 underlay: IPv4 blocks go via the peer's VTEP link-local address.
 *
 * Run: node --test --test-concurrency=1 'src/**\/*.netns.ts' (npm run test:kernel).
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { vtepLinkLocal } from '../../core/cluster/desired.ts';
import { computeVxlanMtu } from '../../core/cluster/mtu.ts';
import type { FirewallObject } from '../../core/desired.ts';
import { VXLAN_DEVICE, VXLAN_PORT, VXLAN_VNI, vtepMac, vxlanMark } from '../../core/naming.ts';
import { createExec, type Exec } from './exec.ts';
import {
  commandRecorder,
  createScratch,
  listTestNamespaces,
  pingOk,
  routedHost,
  serveHi,
  type TestNs,
  tcpHi,
} from './netns-testutil.ts';
import { applyNft, checkNft, removeNft, renderNftRuleset } from './nft.ts';
import { ensureRoutes, listRoutes } from './routes.ts';
import {
  checkVxlan,
  ensureVxlan,
  readVxlanEntries,
  readVxlanLink,
  readVxlanPeers,
  removeVxlan,
  type VxlanDevice,
} from './vxlan.ts';

interface Host {
  readonly ns: TestNs;
  readonly ctr: TestNs;
  readonly exec: Exec;
  readonly rec: ReturnType<typeof commandRecorder>;
  readonly node: string;
  readonly underlay: string;
  readonly ulDev: string;
  readonly block: string;
  readonly ctrIp: string;
}

const MTU = computeVxlanMtu(1500, 4);

describe('VXLAN between simulated hosts (kernel)', { timeout: 120_000 }, () => {
  const scratch = createScratch();
  let A: Host;
  let B: Host;
  let C: Host;
  let D: Host;

  async function host(role: string, n: number, underlay: string): Promise<Host> {
    const { ns, ctr } = await routedHost(scratch, {
      host: `h${role}`,
      ctr: `c${role}`,
      link: `v${role}`,
      gateway: `198.18.${n}.1/24`,
      ctrIp: `198.18.${n}.2`,
      ctrMtu: MTU,
    });
    const rec = commandRecorder();
    return {
      ns,
      ctr,
      exec: createExec({ netns: ns.path, onCommand: rec.onCommand }),
      rec,
      node: `node-${role}`,
      underlay,
      ulDev: `ul${role}`,
      block: `198.18.${n}.0/24`,
      ctrIp: `198.18.${n}.2`,
    };
  }

  const spec = (h: Host, peers: readonly Host[]): VxlanDevice => ({
    name: VXLAN_DEVICE,
    vni: VXLAN_VNI,
    port: VXLAN_PORT,
    local: h.underlay,
    dev: h.ulDev,
    mac: vtepMac(h.node),
    mtu: MTU,
    peers: peers.map((p) => ({ address: p.underlay, mac: vtepMac(p.node) })),
  });
  const routesTo = (p: Host) => [{ dst: p.block, dev: VXLAN_DEVICE, via: p.underlay }];
  const vxStats = async (h: Host): Promise<{ rx: number; tx: number }> => {
    const [l] = await h.ns.ipJson<{ stats64: { rx: { packets: number }; tx: { packets: number } } }[]>([
      '-s',
      'link',
      'show',
      VXLAN_DEVICE,
    ]);
    return { rx: l?.stats64.rx.packets ?? 0, tx: l?.stats64.tx.packets ?? 0 };
  };
  const firewall = (peers: readonly string[]): FirewallObject => ({
    networks: [
      {
        networkId: 'ab'.repeat(32),
        bridge: 'trbabababababab',
        subnets4: ['198.18.211.0/24'],
        subnets6: [],
        nat: false,
        internal: false,
        peerLinks: [VXLAN_DEVICE],
      },
    ],
    vxlan: { port: VXLAN_PORT, vni: VXLAN_VNI, peers },
  });

  before(async () => {
    A = await host('a', 210, '198.18.200.1');
    B = await host('b', 211, '198.18.200.2');
    await A.ns.must(['ip', 'link', 'add', 'ula', 'type', 'veth', 'peer', 'name', 'ulb', 'netns', B.ns.name]);
    await A.ns.must(['ip', '-batch', '-'], 'addr add 198.18.200.1/24 dev ula\nlink set ula up\n');
    await B.ns.must(['ip', '-batch', '-'], 'addr add 198.18.200.2/24 dev ulb\nlink set ulb up\n');
    scratch.proc(serveHi(B.ctr));
    scratch.proc(serveHi(A.ctr));
    C = await host('c', 212, 'fd00:200::1');
    D = await host('d', 213, 'fd00:200::2');
    await C.ns.must(['ip', 'link', 'add', 'ulc', 'type', 'veth', 'peer', 'name', 'uld', 'netns', D.ns.name]);
    await C.ns.must(['ip', '-batch', '-'], 'addr add fd00:200::1/64 dev ulc nodad\nlink set ulc up\n');
    await D.ns.must(['ip', '-batch', '-'], 'addr add fd00:200::2/64 dev uld nodad\nlink set uld up\n');
    scratch.proc(serveHi(D.ctr));
  });

  after(async () => {
    // after the scratch's own after hook: its namespaces are gone by now
    assert.deepEqual(
      (await listTestNamespaces()).filter((n) => scratch.spaces.some((s) => s.name === n)),
      [],
      'test namespaces left behind',
    );
  });

  it('creates the device as asked: nolearning, VNI, port, local, dev, VTEP MAC, MTU, mark, up', async () => {
    await ensureVxlan(A.exec, spec(A, [B]));
    await ensureVxlan(B.exec, spec(B, [A]));
    const l = await readVxlanLink(A.exec, VXLAN_DEVICE);
    assert.ok(l);
    assert.equal(l.link.kind, 'vxlan');
    assert.equal(l.link.alias, vxlanMark(VXLAN_DEVICE));
    assert.equal(l.vni, VXLAN_VNI);
    assert.equal(l.port, 4789);
    assert.equal(l.local, '198.18.200.1');
    assert.equal(l.dev, 'ula');
    assert.equal(l.learning, false);
    assert.equal(l.link.mac, vtepMac(A.node));
    assert.equal(l.link.mtu, 1450);
    assert.ok(l.link.up);
    const e = await readVxlanEntries(A.exec, VXLAN_DEVICE);
    assert.deepEqual(e.fdb, [{ mac: vtepMac(B.node), dst: '198.18.200.2' }]);
    assert.deepEqual(e.neigh, [{ ip: '198.18.200.2', mac: vtepMac(B.node), permanent: true }]);
    assert.deepEqual(await checkVxlan(A.exec, spec(A, [B]), VXLAN_DEVICE), []);
    assert.deepEqual(await readVxlanPeers(A.exec, VXLAN_DEVICE), ['198.18.200.2']);
  });

  it('ensure is idempotent: same ifindex, nothing written', async () => {
    const before = (await readVxlanLink(A.exec, VXLAN_DEVICE))?.link.ifindex;
    A.rec.reset();
    assert.deepEqual(await ensureVxlan(A.exec, spec(A, [B])), []);
    assert.deepEqual(A.rec.writes(), []);
    assert.equal((await readVxlanLink(A.exec, VXLAN_DEVICE))?.link.ifindex, before);
  });

  it('carries real traffic: ping and TCP between the containers, through trvx0 on both hosts', async () => {
    await ensureRoutes(A.exec, routesTo(B));
    await ensureRoutes(B.exec, routesTo(A));
    const [r] = await listRoutes(A.exec);
    assert.deepEqual(r, { dst: '198.18.211.0/24', dev: VXLAN_DEVICE, via: '198.18.200.2' });
    const shown = await A.ns.must(['ip', 'route', 'show', 'proto', '116']);
    assert.match(shown, /198\.18\.211\.0\/24 via 198\.18\.200\.2 dev trvx0 .*onlink/);
    const t0 = await vxStats(B);
    assert.ok(await pingOk(A.ctr, B.ctrIp), 'ping cA -> cB');
    assert.ok(await tcpHi(A.ctr, B.ctrIp), 'TCP cA -> cB');
    assert.ok(await tcpHi(B.ctr, A.ctrIp), 'TCP cB -> cA');
    const t1 = await vxStats(B);
    assert.ok(t1.rx > t0.rx && t1.tx > t0.tx, `trvx0 on hB must carry it: ${JSON.stringify({ t0, t1 })}`);
    // a full-size packet (the container MTU 1450) crosses without fragmenting the 1500 underlay
    const big = await A.ctr.run(['/usr/bin/busybox', 'ping', '-c1', '-W2', '-s', String(MTU - 28), B.ctrIp]);
    assert.equal(big.code, 0, `ping -s ${MTU - 28}: ${big.stdout}${big.stderr}`);
  });

  it('the VXLAN guard in inet truss admits only current peers', async () => {
    await applyNft(B.exec, renderNftRuleset(firewall(['198.18.200.1'])));
    assert.ok(await tcpHi(A.ctr, B.ctrIp), 'admitted peer');
    await applyNft(B.exec, renderNftRuleset(firewall(['198.18.200.9'])));
    assert.equal(await pingOk(A.ctr, B.ctrIp), false, 'a source that is no peer must be dropped');
    assert.deepEqual(await checkNft(B.exec, renderNftRuleset(firewall(['198.18.200.9']))), [], 'reads back equal');
    const list = await B.ns.must(['nft', 'list', 'chain', 'inet', 'truss', 'input']);
    assert.match(list, /udp dport 4789 @th,96,24 0x747275 ip saddr != @vxlan_peers4 drop/);
    await applyNft(B.exec, renderNftRuleset(firewall(['198.18.200.1'])));
    assert.ok(await pingOk(A.ctr, B.ctrIp), 'admitted again');
    await removeNft(B.exec);
  });

  it('repairs drift: a deleted FDB or neighbour entry, extra entries, a changed MTU', async () => {
    await A.ns.must(['bridge', 'fdb', 'del', vtepMac(B.node), 'dev', VXLAN_DEVICE, 'self']);
    await A.ns.must(['ip', 'neigh', 'del', '198.18.200.2', 'dev', VXLAN_DEVICE]);
    await A.ns.must(['bridge', 'fdb', 'add', '02:de:ad:be:ef:01', 'dev', VXLAN_DEVICE, 'dst', '198.18.200.77']);
    await A.ns.must(['ip', 'neigh', 'add', '198.18.200.77', 'lladdr', '02:de:ad:be:ef:01', 'dev', VXLAN_DEVICE]);
    await A.ns.must(['ip', 'link', 'set', VXLAN_DEVICE, 'mtu', '1400']);
    const problems = await checkVxlan(A.exec, spec(A, [B]), VXLAN_DEVICE);
    assert.equal(problems.length, 2, problems.join('\n'));
    assert.equal(await pingOk(A.ctr, B.ctrIp), false, 'no FDB entry: nothing reaches B');
    await ensureVxlan(A.exec, spec(A, [B]));
    assert.deepEqual(await checkVxlan(A.exec, spec(A, [B]), VXLAN_DEVICE), []);
    const e = await readVxlanEntries(A.exec, VXLAN_DEVICE);
    assert.deepEqual(e.fdb, [{ mac: vtepMac(B.node), dst: '198.18.200.2' }]);
    assert.deepEqual(
      e.neigh.map((n) => n.ip),
      ['198.18.200.2'],
    );
    assert.ok(await pingOk(A.ctr, B.ctrIp), 'repaired');
  });

  it('recreates a deleted device, and one whose fixed attributes differ', async () => {
    await A.ns.must(['ip', 'link', 'del', VXLAN_DEVICE]);
    assert.deepEqual(await checkVxlan(A.exec, spec(A, [B]), VXLAN_DEVICE), [`VXLAN device ${VXLAN_DEVICE} is missing`]);
    assert.deepEqual(await listRoutes(A.exec), [], 'the routes went with the device');
    await ensureVxlan(A.exec, spec(A, [B]));
    await ensureRoutes(A.exec, routesTo(B));
    assert.ok(await tcpHi(A.ctr, B.ctrIp), 'works again');
    const changes = await ensureVxlan(A.exec, { ...spec(A, [B]), vni: 42 });
    assert.match(changes[0] ?? '', /^recreated \(VNI 7631477 → 42/);
    assert.equal((await readVxlanLink(A.exec, VXLAN_DEVICE))?.vni, 42);
    await ensureVxlan(A.exec, spec(A, [B]));
    await ensureRoutes(A.exec, routesTo(B));
    assert.ok(await tcpHi(A.ctr, B.ctrIp), 'back on the right VNI');
  });

  it('a peer removed: its FDB and neighbour entries go; traffic to it stops', async () => {
    await ensureVxlan(A.exec, spec(A, []));
    assert.deepEqual(await readVxlanEntries(A.exec, VXLAN_DEVICE), { fdb: [], neigh: [] });
    assert.equal(await pingOk(A.ctr, B.ctrIp), false);
    await ensureVxlan(A.exec, spec(A, [B]));
    assert.ok(await pingOk(A.ctr, B.ctrIp));
  });

  it('refuses to adopt a foreign link with its name; remove leaves it alone', async () => {
    const other = await scratch.ns('x');
    const exec = createExec({ netns: other.path });
    await other.must(['ip', 'link', 'add', VXLAN_DEVICE, 'type', 'vxlan', 'id', '9', 'dstport', '4789']);
    await assert.rejects(ensureVxlan(exec, spec(A, [])), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'TRUSS_ERR_KERNEL_OBJECT_FOREIGN');
      return true;
    });
    await removeVxlan(exec, VXLAN_DEVICE);
    assert.ok(await readVxlanLink(exec, VXLAN_DEVICE), 'the foreign link must stay');
    assert.deepEqual(await checkVxlan(exec, undefined, VXLAN_DEVICE), [], 'a foreign link is not drift');
  });

  it('over an IPv6 underlay: IPv4 blocks via the peer VTEP link-local, real traffic', async () => {
    const mtu = computeVxlanMtu(1500, 6);
    await ensureVxlan(C.exec, { ...spec(C, [D]), mtu });
    await ensureVxlan(D.exec, { ...spec(D, [C]), mtu });
    const l = await readVxlanLink(C.exec, VXLAN_DEVICE);
    assert.equal(l?.local, 'fd00:200::1');
    assert.equal(l?.link.mtu, 1430);
    const viaD = vtepLinkLocal(vtepMac(D.node));
    assert.deepEqual(
      (await readVxlanEntries(C.exec, VXLAN_DEVICE)).neigh.map((n) => n.ip).sort(),
      ['fd00:200::2', viaD].sort(),
    );
    await ensureRoutes(C.exec, [{ dst: D.block, dev: VXLAN_DEVICE, via: viaD }]);
    await ensureRoutes(D.exec, [{ dst: C.block, dev: VXLAN_DEVICE, via: vtepLinkLocal(vtepMac(C.node)) }]);
    assert.deepEqual(await listRoutes(C.exec), [{ dst: D.block, dev: VXLAN_DEVICE, via: viaD }]);
    assert.ok(await pingOk(C.ctr, D.ctrIp), 'ping cC -> cD over the IPv6 underlay');
    assert.ok(await tcpHi(C.ctr, D.ctrIp), 'TCP cC -> cD');
    assert.deepEqual(await checkVxlan(C.exec, { ...spec(C, [D]), mtu }, VXLAN_DEVICE), []);
    C.rec.reset();
    await ensureVxlan(C.exec, { ...spec(C, [D]), mtu });
    await ensureRoutes(C.exec, [{ dst: D.block, dev: VXLAN_DEVICE, via: viaD }]);
    assert.deepEqual(C.rec.writes(), [], 'idempotent');
    await removeVxlan(C.exec, VXLAN_DEVICE);
    await removeVxlan(D.exec, VXLAN_DEVICE);
  });

  it('remove is idempotent and takes the routes through the device along', async () => {
    assert.equal((await listRoutes(A.exec)).length, 1);
    assert.deepEqual(await checkVxlan(A.exec, undefined, VXLAN_DEVICE), [
      `VXLAN device ${VXLAN_DEVICE} exists but no cluster network needs it`,
    ]);
    await removeVxlan(A.exec, VXLAN_DEVICE);
    await removeVxlan(A.exec, VXLAN_DEVICE);
    await removeVxlan(B.exec, VXLAN_DEVICE);
    assert.equal(await readVxlanLink(A.exec, VXLAN_DEVICE), undefined);
    assert.deepEqual(await listRoutes(A.exec), []);
    assert.deepEqual(await listRoutes(B.exec), []);
    assert.deepEqual(await readVxlanPeers(A.exec, VXLAN_DEVICE), []);
  });
});
