/**
 * Unencrypted cluster networks (truss.encrypt=false) end to end: three simulated hosts c1, c2,
 * c3 (one dockerd and one truss each) on one underlay bridge with one etcd, as in
 * cluster.e2e.ts. The cluster network `green` (198.18.96.0/20) exists on c1 and c2 and is
 * carried between them by the VXLAN device trvx0 (UDP 4789); later `blue` (198.18.64.0/20,
 * encrypted) joins on all three hosts over WireGuard, so c3 is a WireGuard peer only. Real traffic proves it: TCP and ping across hosts, an underlay capture with only
 * VXLAN between the hosts (no WireGuard while only green exists), container MTU 1450 and a bulk
 * TCP transfer that fragments nothing, both modes side by side, and a host whose green network
 * goes leaving its peer's FDB, neighbour table and routes. The last test removes everything
 * and checks that no host keeps anything of truss.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { inCidr } from './harness/cidr.ts';
import { clusterFixture, nodeName } from './harness/cluster.ts';
import { routeCovers, trussRoutes, WG_DEV } from './harness/cluster-state.ts';
import { containerIp, createClusterNetwork, removeContainers, runContainer } from './harness/containers.ts';
import { printFigures } from './harness/figures.ts';
import type { Host } from './harness/host.ts';
import { assertRemovedEverything, isTrussWireguardGo, waitNoTrussLeftovers } from './harness/leftovers.ts';
import { memoOnce } from './harness/once.ts';
import { listProcs, nsIdOfFile, waitExit } from './harness/procs.ts';
import { assertTcp, pingProbe, SINK_PORT, tcpConnect } from './harness/traffic.ts';
import { pcapContains, readPcap, UNDERLAY_ADDRESS } from './harness/underlay.ts';
import { sleep, waitFor } from './harness/wait.ts';

const GREEN = 'green';
const GREEN_SUBNET = '198.18.96.0/20';
const BLUE = 'blue';
const BLUE_SUBNET = '198.18.64.0/20';
const VX_DEV = 'trvx0';
const VXLAN_PORT = 4789;
/** truss's VNI, 0x747275 */
const VNI = 7631477;
const WG_PORT = 51820;
/** 1500 underlay - 50 (outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14) */
const VXLAN_MTU = 1450;
const WG_MTU = 1440;
const IPERF_PORT = 5201;
/** sink on SINK_PORT and an iperf3 server, in one container */
const SRV_CMD = ['sh', '-c', `nc -ll -p ${SINK_PORT} -e /bin/tsink & iperf3 -s -p ${IPERF_PORT} & wait`];

const cluster = clusterFixture({ hosts: ['c1', 'c2', 'c3'], truss: { wgPort: WG_PORT } });
const figures: string[] = [];
const once = memoOnce();
const c1 = () => cluster.host('c1');
const c2 = () => cluster.host('c2');
const c3 = () => cluster.host('c3');
/** the hosts with green */
const greenHosts = () => [c1(), c2()];

async function json<T>(h: Host, argv: readonly string[]): Promise<T> {
  const r = await h.exec(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} in ${h.name}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout.trim() || '[]') as T;
}

interface LinkJson {
  readonly ifindex: number;
  readonly ifname: string;
  readonly ifalias?: string;
  readonly mtu: number;
  readonly address: string;
  readonly linkinfo?: { readonly info_kind?: string; readonly info_data?: Record<string, unknown> };
}
const link = async (h: Host, dev: string): Promise<LinkJson | undefined> => {
  const r = await h.exec(['ip', '-j', '-d', 'link', 'show', 'dev', dev]);
  return r.code === 0 ? (JSON.parse(r.stdout) as LinkJson[])[0] : undefined;
};

const fdb = (h: Host) => json<{ mac: string; dst?: string }[]>(h, ['bridge', '-j', 'fdb', 'show', 'dev', VX_DEV]);
const neigh = (h: Host) =>
  json<{ dst: string; lladdr?: string; state?: string[] }[]>(h, ['ip', '-j', 'neigh', 'show', 'dev', VX_DEV]);

/** 20 pings 50 ms apart; the average RTT in ms. */
async function pingAvgMs(from: Host, fromCtr: string, ip: string): Promise<number> {
  const r = await from.docker(['exec', fromCtr, 'ping', '-c', '20', '-i', '0.05', '-W', '2', ip], 30_000);
  assert.equal(r.code, 0, `ping ${nodeName(from)}/${fromCtr} -> ${ip}: ${r.stdout}${r.stderr}`);
  const avg = /min\/avg\/max = [\d.]+\/([\d.]+)\//.exec(r.stdout)?.[1];
  return Number(avg);
}

/** iperf3 for 2 s from a container to ip; received Gbit/s. */
async function iperfGbits(from: Host, fromCtr: string, ip: string): Promise<number> {
  const r = await from.docker(['exec', fromCtr, 'iperf3', '-c', ip, '-p', String(IPERF_PORT), '-t', '2', '-J'], 60_000);
  assert.equal(r.code, 0, `iperf3 ${fromCtr} -> ${ip}: ${r.stdout.slice(-500)}${r.stderr}`);
  const bps = (JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second?: number } } }).end?.sum_received
    ?.bits_per_second;
  assert.ok(bps && bps > 0, `iperf3 reported no throughput: ${r.stdout.slice(-300)}`);
  return bps / 1e9;
}

/** IPv4 fragmentation and reassembly counters of a host's namespace (/proc/net/snmp). */
async function fragCounters(h: Host): Promise<Record<string, number>> {
  const r = await h.exec(['cat', '/proc/net/snmp']);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('Ip:'));
  const names = (lines[0] ?? '').split(/\s+/).slice(1);
  const values = (lines[1] ?? '').split(/\s+/).slice(1).map(Number);
  const all = Object.fromEntries(names.map((n, i) => [n, values[i] ?? 0]));
  return { FragCreates: all.FragCreates ?? 0, FragFails: all.FragFails ?? 0, ReasmReqds: all.ReasmReqds ?? 0 };
}

// ---------------------------------------------------------------- fixtures

const green = () =>
  once('green', async () => {
    for (const h of greenHosts()) {
      const r = await createClusterNetwork(h, GREEN, GREEN_SUBNET, ['-o', 'truss.encrypt=false']);
      assert.equal(r.code, 0, `docker network create ${GREEN} on ${h.name}: ${r.stderr}\n${h.truss.logTail()}`);
    }
  });

/** g<host>: sink + iperf3 server on green, one per host. */
const gName = (h: Host) => `g${nodeName(h).slice(1)}`;
const greenCtrs = () =>
  once('green-ctrs', async () => {
    await green();
    await Promise.all(greenHosts().map((h) => runContainer(h, { name: gName(h), network: GREEN, cmd: SRV_CMD })));
  });

const blue = () =>
  once('blue', async () => {
    await greenCtrs();
    for (const h of cluster.hosts) {
      const r = await createClusterNetwork(h, BLUE, BLUE_SUBNET);
      assert.equal(r.code, 0, `docker network create ${BLUE} on ${h.name}: ${r.stderr}\n${h.truss.logTail()}`);
    }
    const bName = (h: Host) => `b${nodeName(h).slice(1)}`;
    await Promise.all(cluster.hosts.map((h) => runContainer(h, { name: bName(h), network: BLUE, cmd: SRV_CMD })));
  });

/** Waits until host h routes the peer's green container into trvx0 via the peer's underlay address. */
async function waitVxlanPath(h: Host, peer: Host, ip: string): Promise<void> {
  await waitFor(
    async () => {
      const r = routeCovers(await trussRoutes(h), ip);
      if (r?.dev === VX_DEV && r.gateway === peer.underlayAddress && r.flags?.includes('onlink')) return true;
      throw new Error(`route to ${ip}: ${JSON.stringify(r)}`);
    },
    15_000,
    { what: `${h.name}: route to ${ip} via ${peer.underlayAddress} dev ${VX_DEV} onlink` },
  );
}

// ---------------------------------------------------------------- the suite

describe('truss cluster networks without encryption (VXLAN) across three hosts', { timeout: 5 * 60_000 }, () => {
  before(() => cluster.start());

  after(async () => {
    if (figures.length > 0) printFigures(figures);
    await cluster.stop();
  });

  it('1. creates green (truss.encrypt=false) on c1 and c2: one VXLAN device each, no WireGuard', async () => {
    await green();
    assert.equal(await link(c3(), VX_DEV), undefined, 'c3 has no green: no VXLAN device');
    for (const h of greenHosts()) {
      const l = await waitFor(() => link(h, VX_DEV), 10_000, { what: `${h.name}: ${VX_DEV}` });
      assert.equal(l.linkinfo?.info_kind, 'vxlan');
      assert.equal(l.ifalias, `truss:vx:${VX_DEV}`, `${h.name}: ${VX_DEV} must carry truss's mark`);
      assert.equal(l.mtu, VXLAN_MTU, `${h.name}: ${VX_DEV} MTU`);
      const d = l.linkinfo?.info_data ?? {};
      assert.deepEqual(
        { id: d.id, port: d.port, local: d.local, link: d.link, learning: d.learning },
        { id: VNI, port: VXLAN_PORT, local: h.underlayAddress, link: 'eth-ul', learning: false },
        `${h.name}: ${VX_DEV} attributes`,
      );
      assert.equal(await link(h, WG_DEV), undefined, `${h.name}: no ${WG_DEV} without an encrypted network`);
      const wgGo = listProcs().filter((p) => p.netNs === nsIdOfFile(h.netnsPath, 'net') && isTrussWireguardGo(p));
      assert.deepEqual(wgGo, [], `${h.name}: no wireguard-go`);
    }
  });

  it('2. peers: each host has the other in its FDB and neighbour table, routes its container via trvx0; MTU 1450', async () => {
    await greenCtrs();
    for (const [h, peer] of [
      [c1(), c2()],
      [c2(), c1()],
    ] as const) {
      const peerMac = (await link(peer, VX_DEV))?.address;
      await waitFor(
        async () => {
          const f = await fdb(h);
          const n = await neigh(h);
          const okF = f.some((e) => e.mac === peerMac && e.dst === peer.underlayAddress);
          const okN = n.some(
            (e) => e.dst === peer.underlayAddress && e.lladdr === peerMac && e.state?.includes('PERMANENT'),
          );
          if (okF && okN) return true;
          throw new Error(JSON.stringify({ peerMac, fdb: f, neigh: n }));
        },
        15_000,
        { what: `${h.name}: FDB + neighbour entry for ${peer.name}'s VTEP` },
      );
      await waitVxlanPath(h, peer, await containerIp(peer, gName(peer), GREEN));
      const mtu = await h.docker(['exec', gName(h), 'cat', '/sys/class/net/eth0/mtu']);
      assert.equal(mtu.stdout.trim(), String(VXLAN_MTU), `${h.name}: container MTU on green`);
      const set = await h.exec(['nft', '-j', 'list', 'set', 'inet', 'truss', 'vxlan_peers4']);
      assert.match(set.stdout, new RegExp(`"${peer.underlayAddress?.replaceAll('.', '\\.')}"`), `${h.name}: guard set`);
      assert.doesNotMatch(set.stdout, new RegExp(`"${h.underlayAddress?.replaceAll('.', '\\.')}"`));
    }
    for (const h of cluster.hosts)
      await waitFor(async () => (await h.trussStatus()).kernel.inSync, 15_000, { what: `${h.name}: in sync` });
  });

  it('3. TCP and ping between containers on the two hosts, both ways', async () => {
    await greenCtrs();
    const [a, b] = [c1(), c2()];
    const ipA = await containerIp(a, gName(a), GREEN);
    const ipB = await containerIp(b, gName(b), GREEN);
    assert.ok(inCidr(ipA, GREEN_SUBNET) && inCidr(ipB, GREEN_SUBNET));
    await assertTcp(a, gName(a), b, gName(b), ipB);
    await assertTcp(b, gName(b), a, gName(a), ipA);
    figures.push(`green (VXLAN) ping c1 -> c2 container: avg ${(await pingAvgMs(a, gName(a), ipB)).toFixed(3)} ms`);
    figures.push(`green (VXLAN) ping c2 -> c1 container: avg ${(await pingAvgMs(b, gName(b), ipA)).toFixed(3)} ms`);
  });

  it('4. the underlay carries VXLAN (UDP 4789) between the hosts, no WireGuard; the payload is in clear', async () => {
    await greenCtrs();
    const ul = cluster.underlay;
    const [a, b] = [c1(), c2()];
    const ip = await containerIp(b, gName(b), GREEN);
    const marker = `MARKER-${randomBytes(8).toString('hex')}`;
    const cap = await ul.pcap();
    let ok = false;
    try {
      for (let i = 0; i < 3; i++) ok ||= (await tcpConnect(a, gName(a), ip, SINK_PORT, 3, `${marker}-${i}`)).ok;
    } finally {
      await cap.stop();
    }
    assert.ok(ok, 'the marker connections must succeed');
    const file = await cap.stop();
    assert.ok(pcapContains(file, marker), 'unencrypted mode: the marker is visible on the underlay (inside VXLAN)');
    const hostIps = new Set(greenHosts().map((h) => h.underlayAddress as string));
    const strays: string[] = [];
    let vxlan = 0;
    for (const p of await readPcap(file)) {
      if (p.proto === 'ARP') continue;
      if ((p.src === UNDERLAY_ADDRESS || p.dst === UNDERLAY_ADDRESS) && p.proto === 'TCP') continue; // etcd
      const between = p.src !== undefined && p.dst !== undefined && hostIps.has(p.src) && hostIps.has(p.dst);
      if (between && p.proto === 'UDP' && p.dstPort === VXLAN_PORT) vxlan++;
      else strays.push(p.line);
    }
    assert.ok(vxlan >= 6, `the capture must hold the VXLAN packets (saw ${vxlan})`);
    assert.deepEqual(strays, [], `only UDP to port ${VXLAN_PORT} between hosts may cross the underlay`);
    const verbose = await ul.exec(['tcpdump', '-r', file, '-n', '-c', '1', 'udp', 'port', String(VXLAN_PORT)]);
    assert.match(verbose.stdout, new RegExp(`VXLAN.*vni ${VNI}`), 'tcpdump decodes truss VNI');
    figures.push(`underlay capture during 3 marker connections c1 -> c2 (green): ${vxlan} VXLAN packets, 0 other`);
  });

  it('5. a bulk TCP transfer at MTU 1450 fragments nothing (underlay MTU 1500)', async () => {
    await greenCtrs();
    const [a, b] = [c1(), c2()];
    const ip = await containerIp(b, gName(b), GREEN);
    const before = await Promise.all(greenHosts().map(fragCounters));
    const gbits = await iperfGbits(a, gName(a), ip);
    const afterC = await Promise.all(greenHosts().map(fragCounters));
    assert.deepEqual(afterC, before, 'no IPv4 fragments created or reassembled on either host');
    figures.push(`green (VXLAN) iperf3 c1 -> c2, 2 s: ${gbits.toFixed(2)} Gbit/s, 0 fragments`);
  });

  it('5b. kill -9 of c1 truss: VXLAN traffic continues; the restarted truss adopts trvx0 and converges', {
    timeout: 90_000,
  }, async () => {
    await greenCtrs();
    const [a, b] = [c1(), c2()];
    const ip = await containerIp(b, gName(b), GREEN);
    const before = (await link(a, VX_DEV))?.ifindex;
    const probe = pingProbe(a, gName(a), ip, 8);
    await sleep(1000);
    const pid = a.truss.pid();
    assert.ok(pid, 'c1 truss must be running');
    process.kill(pid, 'SIGKILL');
    assert.ok(await waitExit(pid, 5000), 'c1 truss must be dead');
    await sleep(2000);
    const t0 = performance.now();
    await a.startTruss();
    const p = await probe;
    assert.ok(p.received > 0 && p.maxGapMs <= 1000, `c1 -> c2 gap of ${p.maxGapMs} ms across the restart: ${p.output}`);
    await waitFor(async () => (await a.trussStatus()).kernel.inSync, 30_000, { what: 'c1: kernel.inSync' });
    figures.push(
      `c1 truss restart after kill -9 (green): kernel.inSync ${(performance.now() - t0).toFixed(0)} ms after start, max ping gap ${p.maxGapMs} ms`,
    );
    assert.equal((await link(a, VX_DEV))?.ifindex, before, 'the restarted truss keeps the running trvx0');
    await assertTcp(a, gName(a), b, gName(b), ip);
  });

  it('5c. drift: a deleted FDB entry and neighbour, then a deleted trvx0, are repaired by a full pass', {
    timeout: 90_000,
  }, async () => {
    await greenCtrs();
    const [a, b] = [c1(), c2()];
    const ip = await containerIp(b, gName(b), GREEN);
    const peerMac = (await link(b, VX_DEV))?.address as string;
    const reconcile = async () => {
      const r = await a.truss.cli(['reconcile', '--state-dir', a.stateDir]);
      assert.equal(r.code, 0, `truss reconcile on c1: ${r.stderr}${r.stdout}`);
    };
    assert.equal((await a.exec(['bridge', 'fdb', 'del', peerMac, 'dev', VX_DEV, 'self'])).code, 0);
    assert.equal((await a.exec(['ip', 'neigh', 'del', b.underlayAddress as string, 'dev', VX_DEV])).code, 0);
    assert.equal((await tcpConnect(a, gName(a), ip, SINK_PORT, 2)).ok, false, 'no FDB entry: no path');
    await reconcile();
    assert.ok(
      (await fdb(a)).some((e) => e.mac === peerMac && e.dst === b.underlayAddress),
      'FDB entry back',
    );
    assert.ok(
      (await neigh(a)).some((e) => e.dst === b.underlayAddress),
      'neighbour entry back',
    );
    await assertTcp(a, gName(a), b, gName(b), ip);
    assert.equal((await a.exec(['ip', 'link', 'del', VX_DEV])).code, 0);
    await reconcile();
    await waitVxlanPath(a, b, ip);
    await assertTcp(a, gName(a), b, gName(b), ip);
    assert.ok((await a.trussStatus()).kernel.inSync, 'c1 in sync after the repair');
  });

  it('6. an encrypted network (blue, WireGuard) on the same hosts works alongside', { timeout: 120_000 }, async () => {
    await blue();
    const [a, b] = [c1(), c2()];
    for (const h of cluster.hosts) {
      const l = await waitFor(() => link(h, WG_DEV), 15_000, { what: `${h.name}: ${WG_DEV}` });
      assert.equal(l.mtu, WG_MTU);
      if (h !== c3()) assert.ok(await link(h, VX_DEV), `${h.name}: ${VX_DEV} stays`);
      const mtu = await h.docker(['exec', `b${nodeName(h).slice(1)}`, 'cat', '/sys/class/net/eth0/mtu']);
      assert.equal(mtu.stdout.trim(), String(WG_MTU), `${h.name}: container MTU on blue`);
    }
    const blueB = await containerIp(b, 'b2', BLUE);
    const greenB = await containerIp(b, gName(b), GREEN);
    await waitFor(async () => routeCovers(await trussRoutes(a), blueB)?.dev === WG_DEV, 20_000, {
      what: `c1: route to ${blueB} via ${WG_DEV}`,
    });
    await waitVxlanPath(a, b, greenB);
    await waitFor(async () => (await tcpConnect(a, 'b1', blueB, SINK_PORT)).ok, 20_000, {
      what: 'c1/b1 -> c2/b2 over WireGuard',
    });
    await assertTcp(a, 'b1', b, 'b2', blueB);
    await assertTcp(a, gName(a), b, gName(b), greenB);
    const blueA = await containerIp(a, 'b1', BLUE);
    await assertTcp(b, 'b2', a, 'b1', blueA);
    // c3 (blue only) is a WireGuard peer of c1, never a VXLAN one
    const blueC = await containerIp(c3(), 'b3', BLUE);
    await waitFor(async () => (await tcpConnect(a, 'b1', blueC, SINK_PORT)).ok, 20_000, {
      what: 'c1/b1 -> c3/b3 over WireGuard',
    });
    assert.equal(await link(c3(), VX_DEV), undefined, 'c3: no VXLAN device');
    assert.deepEqual(
      (await fdb(a)).filter((e) => e.dst === c3().underlayAddress),
      [],
      'c1: no FDB entry for c3',
    );
    figures.push(`blue (WireGuard) ping c1 -> c2 container: avg ${(await pingAvgMs(a, 'b1', blueB)).toFixed(3)} ms`);
    figures.push(
      `green (VXLAN)     ping c1 -> c2 container: avg ${(await pingAvgMs(a, gName(a), greenB)).toFixed(3)} ms`,
    );
    figures.push(
      `blue (WireGuard, wireguard-go) iperf3 c1 -> c2, 2 s: ${(await iperfGbits(a, 'b1', blueB)).toFixed(2)} Gbit/s`,
    );
    figures.push(
      `green (VXLAN)                  iperf3 c1 -> c2, 2 s: ${(await iperfGbits(a, gName(a), greenB)).toFixed(2)} Gbit/s`,
    );
  });

  it('7. green removed on c2: c1 drops c2 from its FDB, neighbours, routes and guard; c2 drops trvx0', {
    timeout: 120_000,
  }, async () => {
    await blue();
    const [a, b] = [c1(), c2()];
    const greenB = await containerIp(b, gName(b), GREEN);
    await removeContainers(b, [gName(b)]);
    const t0 = performance.now();
    const rm = await b.docker(['network', 'rm', GREEN]);
    assert.equal(rm.code, 0, `docker network rm ${GREEN} on c2: ${rm.stderr}`);
    await waitFor(
      async () => {
        const f = (await fdb(a)).filter((e) => e.dst === b.underlayAddress);
        const n = (await neigh(a)).filter((e) => e.dst === b.underlayAddress);
        const r = routeCovers(await trussRoutes(a), greenB);
        if (f.length === 0 && n.length === 0 && r === undefined) return true;
        throw new Error(JSON.stringify({ fdb: f, neigh: n, route: r }));
      },
      10_000,
      { what: 'c1: no FDB/neighbour entry and no route for c2 on green', intervalMs: 100 },
    );
    figures.push(
      `c2 leaves green: gone from c1's FDB, neighbours and routes after ${(performance.now() - t0).toFixed(0)} ms`,
    );
    const set = await a.exec(['nft', '-j', 'list', 'set', 'inet', 'truss', 'vxlan_peers4']);
    assert.doesNotMatch(set.stdout, new RegExp(`"${b.underlayAddress?.replaceAll('.', '\\.')}"`), 'c1 guard');
    await waitFor(async () => (await link(b, VX_DEV)) === undefined, 10_000, {
      what: `c2: ${VX_DEV} gone with its last unencrypted network`,
    });
    assert.ok(await link(a, VX_DEV), `c1 keeps ${VX_DEV} (green is still there)`);
    await assertTcp(a, 'b1', b, 'b2', await containerIp(b, 'b2', BLUE));
  });

  it('8. everything removed on every host leaves nothing of truss', { timeout: 120_000 }, async () => {
    await assertRemovedEverything(cluster.hosts);
    await waitNoTrussLeftovers(cluster.hosts);
  });
});
