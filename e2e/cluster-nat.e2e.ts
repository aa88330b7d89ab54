/**
 * Hosts anywhere (issue 17, docs/cluster.md#hosts-behind-nat): hosts behind NATs, found and
 * connected with no port forwarding and no endpoint configured by hand. Four simulated hosts
 * started the README way (`scripts/run.sh --store etcd://… --etcd-insecure`, own hostnames, no
 * --node-name, no --advertise-address): pa and pb on the underlay ("the internet"), both with
 * --relay; nc behind a home router natc and nd behind natd (harness/nat.ts: Linux masquerade,
 * conntrack-only inbound), both on 198.18.241.2: two home LANs with the same private address.
 *   1. nc behind a NAT: containers on all three hosts reach each other both ways; nc learns
 *      it is behind a NAT and the public hosts reach it on the endpoint its packets come from.
 *   2. nc and nd behind two endpoint-independent NATs: a hole is punched, they talk directly
 *      (the capture shows UDP between the two NATs' outside addresses, no relay hop).
 *   3. natc's outside address changes and its conntrack is flushed mid-run: traffic from pa
 *      resumes within the keepalive interval (25 s); the punched pair nc-nd goes through the
 *      relay meanwhile and is punched again while traffic flows (nd dials nc where the relays
 *      now see it as soon as nc gives the old hole up).
 *   4. natd turns port-dependent (a new mapping per destination): nc and nd go through the
 *      relay both pick; nothing crosses any underlay link in plaintext (a marker payload).
 *   5. the relay goes away (its underlay link down): nc and nd fail over to the other relay.
 *   6. each path type: a 1,400-byte DF payload passes, a bulk TCP transfer fragments nothing;
 *      RTT and throughput as ratios to the direct public path (figures).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { clusterStatus } from './harness/cluster-state.ts';
import { printFigures } from './harness/figures.ts';
import type { Host } from './harness/host.ts';
import {
  failOver,
  measurePath,
  msUntilReach,
  natClusterFixture,
  type PathFigures,
  peerOn,
  reaches,
  setUnderlayLink,
  waitPath,
  waitPunched,
  waitRelayed,
  withDiagnosis,
} from './harness/nat-cluster.ts';
import { pingProbe, SINK_PORT, tcpConnect } from './harness/traffic.ts';
import { pcapContains, readPcap } from './harness/underlay.ts';
import { sleep, waitFor } from './harness/wait.ts';

const KEEPALIVE_S = 25;

const net = natClusterFixture();
const figures: string[] = [];
const pa = () => net.pa;
const pb = () => net.pb;
const nc = () => net.nc;
const nd = () => net.nd;
const natc = () => net.natc;
/** per path type: RTT and throughput (tests 2 and 6) */
const paths: ({ what: string } & PathFigures)[] = [];

async function ok(r: Promise<{ code: number; stderr: string; stdout: string }>, what: string): Promise<string> {
  const x = await r;
  assert.equal(x.code, 0, `${what}: ${x.stderr}${x.stdout}`);
  return x.stdout.trim();
}

/** ms until TCP from `from` to `to` works again (probing every 250 ms); on time-out the error carries what every host thinks. */
async function timeUntilReach(from: Host, to: Host, ms: number): Promise<number> {
  try {
    return await msUntilReach(net, from, to, ms);
  } catch (e) {
    return withDiagnosis(net, e);
  }
}

/** IPv4 fragments created or reassembled in a namespace (/proc/net/snmp). */
async function fragments(exec: (argv: readonly string[]) => Promise<{ stdout: string }>): Promise<number> {
  const lines = (await exec(['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Ip:'));
  const names = (lines[0] ?? '').split(/\s+/);
  const values = (lines[1] ?? '').split(/\s+/).map(Number);
  return ['FragCreates', 'ReasmReqds'].reduce((n, k) => n + (values[names.indexOf(k)] ?? 0), 0);
}

before(() => net.start());

after(async () => {
  try {
    await net.stop();
  } finally {
    printFigures(figures);
  }
});

describe('hosts behind NATs (WireGuard, found and connected by themselves)', () => {
  it('1. a host behind a NAT: containers on all three hosts reach each other both ways', async () => {
    const t0 = Date.now();
    for (const [a, b] of [
      [pa(), nc()],
      [nc(), pa()],
      [pb(), nc()],
      [nc(), pb()],
      [pa(), pb()],
    ] as const) {
      await timeUntilReach(a, b, 60_000);
    }
    figures.push(`a host behind a NAT: all pairs reached ${Date.now() - t0} ms after the containers ran`);
    await waitFor(async () => (await clusterStatus(nc())).reach?.nat !== undefined, 30_000, {
      what: 'nc learning it is behind a NAT',
    });
    const reach = (await clusterStatus(nc())).reach;
    assert.deepEqual(reach?.seenAs, [`${natc().wanAddress()}:51820`], 'seen at its NAT, port kept');
    assert.equal((await peerOn(pa(), nc()))?.path, 'learned');
    assert.equal((await peerOn(pa(), nc()))?.endpoint, `${natc().wanAddress()}:51820`);
    assert.equal((await peerOn(nc(), pa()))?.path, 'direct');
    const text = await ok(nc().truss.cli(['status']), 'truss status');
    assert.match(text, /^reachability: address 198\.18\.241\.2, behind a NAT/m);
  });

  it('2. two hosts behind endpoint-independent NATs punch a hole and talk directly', async () => {
    const punchedMs = await waitPunched(net);
    const pcap = await net.underlay.pcap('udp');
    try {
      assert.ok(await reaches(net, nc(), nd()), 'nc -> nd');
      assert.ok(await reaches(net, nd(), nc()), 'nd -> nc');
    } finally {
      await pcap.stop();
    }
    const lines = await readPcap(await pcap.stop());
    const [c, d] = [natc().wanAddress(), net.natd.wanAddress()];
    const direct = lines.filter((l) => (l.src === c && l.dst === d) || (l.src === d && l.dst === c));
    assert.ok(direct.length > 0, 'UDP between the two NATs');
    const relays = [pa(), pb()].map((h) => h.underlayAddress);
    const viaRelay = lines.filter(
      (l) => (l.src === c || l.dst === c) && relays.includes(l.src === c ? l.dst : l.src) && (l.srcPort ?? 0) > 0,
    );
    figures.push(
      `hole punched between two endpoint-independent NATs within ${punchedMs} ms of the check; ` +
        `${direct.length} packets NAT to NAT, ${viaRelay.length} between natc and the relays (keepalives) during the check`,
    );
    await ok(
      nc().docker(['exec', net.ctr(nc()), 'ping', '-c', '3', '-s', '1400', '-W', '2', net.ip(nd())]),
      'punched: 1,400-byte ping',
    );
    paths.push({ what: 'hole-punched (nc -> nd)', ...(await measurePath(net, nc(), nd())) });
  });

  it('3. a NAT changes its outside address and forgets its mappings: traffic resumes within the keepalive, a punched pair through the relay, then punched again', async () => {
    const fromPublic = pingProbe(pa(), net.ctr(pa()), net.ip(nc()), 45, 200);
    const pair = pingProbe(nc(), net.ctr(nc()), net.ip(nd()), 45, 200);
    await sleep(3_000);
    const t0 = Date.now();
    await natc().changeExternalAddress(211);
    // the punched pair: nc's packets go unanswered, it takes the relay (15 s), nd follows and dials
    // nc where the relays now see it: punched again, while the pings still run
    const again = (async () => {
      await waitPath(net, nc(), nd(), 'relayed', 30_000);
      await waitPunched(net, 45_000);
      return Date.now() - t0;
    })();
    const [r, p, againMs] = await Promise.all([fromPublic, pair, again]);
    assert.ok(r.received > 0 && r.output.includes('seq='), r.output.slice(-300));
    assert.ok(r.maxGapMs <= (KEEPALIVE_S + 5) * 1000, `longest gap ${r.maxGapMs} ms (keepalive ${KEEPALIVE_S} s)`);
    assert.ok(p.maxGapMs <= (KEEPALIVE_S + 5) * 1000, `nc -> nd: longest gap ${p.maxGapMs} ms`);
    await waitFor(async () => (await peerOn(pa(), nc()))?.endpoint === `${natc().wanAddress()}:51820`, 10_000, {
      what: "pa following nc's new outside endpoint",
    });
    figures.push(
      `NAT address change + conntrack flush: longest gap pa -> nc ${r.maxGapMs} ms, nc -> nd (punched pair) ` +
        `${p.maxGapMs} ms (pings every 200 ms); the pair punched again ${againMs} ms after the change`,
    );
  });

  let relay: Host | undefined;
  it('4. a NAT that maps per destination: relayed through the pair relay, nothing in plaintext', async () => {
    // traffic flowing, as with a workload: the punched session's packets go unanswered (15 s)
    const load = pingProbe(nc(), net.ctr(nc()), net.ip(nd()), 30, 200);
    // natd port-dependent, its conntrack flushed; waits until both ends name the same relay
    const { relay: r0, ms: switchMs } = await waitRelayed(net);
    relay = r0;
    const gap = (await load).maxGapMs;
    const marker = `truss-marker-${randomBytes(8).toString('hex')}`;
    const pcap = await net.underlay.pcap();
    try {
      await timeUntilReach(nc(), nd(), 30_000);
      const r = await tcpConnect(nc(), net.ctr(nc()), net.ip(nd()), SINK_PORT, 3, marker);
      assert.ok(r.ok, r.output);
      assert.ok((await tcpConnect(nd(), net.ctr(nd()), net.ip(nc()), SINK_PORT, 3, marker)).ok);
    } finally {
      await pcap.stop();
    }
    const file = await pcap.stop();
    assert.equal(pcapContains(file, marker), false, 'the marker never crosses the underlay in clear');
    const lines = await readPcap(file);
    const relayAddr = relay.underlayAddress as string;
    const [c, d] = [natc().wanAddress(), net.natd.wanAddress()];
    assert.ok(
      lines.some((l) => l.src === c && l.dst === relayAddr),
      'nc -> relay',
    );
    assert.ok(
      lines.some((l) => l.src === relayAddr && l.dst === d),
      'relay -> nd',
    );
    figures.push(
      `port-dependent NAT: relayed via ${relay.name} ${switchMs} ms after the NAT changed (ping nc -> nd: longest gap ${gap} ms)`,
    );
  });

  it('5. the relay goes away: the pair fails over to the other relay', async () => {
    assert.ok(relay, 'test 4 found the relay');
    try {
      // failOver: nc names the other relay, then both directions connect through it
      const f = await failOver(net, relay);
      assert.ok(f.probe.received > 0, f.probe.output.slice(-300));
      figures.push(
        `relay fail-over to ${f.other.name}: chosen ${f.chosenMs} ms after the relay was cut off; ` +
          `longest ping gap ${f.probe.maxGapMs} ms (ping every 100 ms)`,
      );
      assert.ok(f.probe.maxGapMs < 40_000, `fail-over gap ${f.probe.maxGapMs} ms`);
    } finally {
      await setUnderlayLink(relay, 'up');
    }
  });

  it('6. every path: a 1,400-byte DF payload passes, bulk TCP fragments nothing; RTT and throughput', async () => {
    // pb's truss is back (test 5); paths: direct public, learned (behind a NAT), relayed
    await timeUntilReach(pa(), pb(), 60_000);
    await timeUntilReach(nc(), nd(), 60_000);
    const spaces = [
      ...[pa(), pb(), nc(), nd()].map((h) => (argv: readonly string[]) => h.exec(argv)),
      ...[natc(), net.natd].map((n) => (argv: readonly string[]) => n.exec(argv)),
    ];
    const before = await Promise.all(spaces.map(fragments));
    const rows: [string, Host, Host][] = [
      ['direct public (pa -> pb)', pa(), pb()],
      ['learned NAT (pa -> nc)', pa(), nc()],
      ['relayed (nc -> nd)', nc(), nd()],
    ];
    const results = paths;
    for (const [what, a, b] of rows) {
      await timeUntilReach(a, b, 60_000); // a relay cut off and back (test 5) may have been either end
      const target = net.ip(b);
      // busybox ping: -s 1400 + 28 = 1428 bytes, under the tunnel MTU 1440; DF is set by Linux's PMTU default
      await ok(
        a.docker(['exec', net.ctr(a), 'ping', '-c', '3', '-s', '1400', '-W', '2', target]),
        `${what}: 1,400-byte ping`,
      );
      results.push({ what, ...(await measurePath(net, a, b)) });
    }
    const afterF = await Promise.all(spaces.map(fragments));
    assert.deepEqual(afterF, before, 'no IPv4 fragment created or reassembled on any host');
    const base = results.find((r) => r.what.startsWith('direct public')) as PathFigures;
    for (const r of results) {
      figures.push(
        `${r.what}: RTT ${r.rttMs.toFixed(3)} ms (×${(r.rttMs / base.rttMs).toFixed(2)}), ` +
          `${r.gbps.toFixed(2)} Gbit/s (×${(r.gbps / base.gbps).toFixed(2)})`,
      );
    }
  });
});
