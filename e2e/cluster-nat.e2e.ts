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
 *      relay meanwhile and is punched again.
 *   4. natd turns port-dependent (a new mapping per destination): nc and nd go through the
 *      relay both pick; nothing crosses any underlay link in plaintext (a marker payload).
 *   5. the relay goes away (its underlay link down): nc and nd fail over to the other relay.
 *   6. each path type: a 1,400-byte DF payload passes, a bulk TCP transfer fragments nothing;
 *      RTT and throughput as ratios to the direct public path (figures).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { clusterFixture } from './harness/cluster.ts';
import { waitSynced } from './harness/cluster-state.ts';
import { containerIp, createClusterNetwork, runContainer } from './harness/containers.ts';
import { printFigures } from './harness/figures.ts';
import { type Host, inHostMounts, startHost } from './harness/host.ts';
import { attachBehind, type Nat, renderNatRuleset, startNat } from './harness/nat.ts';
import { pingProbe, SINK_PORT, tcpConnect } from './harness/traffic.ts';
import { pcapContains, readPcap } from './harness/underlay.ts';
import { sleep, waitFor } from './harness/wait.ts';

const BLUE = 'blue';
const BLUE_SUBNET = '198.18.64.0/20';
const IPERF_PORT = 5201;
const SRV_CMD = ['sh', '-c', `nc -ll -p ${SINK_PORT} -e /bin/tsink & iperf3 -s -p ${IPERF_PORT} & wait`];
const KEEPALIVE_S = 25;

const cluster = clusterFixture({
  hosts: ['pa', 'pb'],
  host: (_, i) => ({ hostname: `public${i + 1}` }),
  runScript: true,
});
const figures: string[] = [];
const nats: Nat[] = [];
const behind: Host[] = [];
const pa = () => cluster.host('pa');
const pb = () => cluster.host('pb');
const nc = () => behind[0] as Host;
const nd = () => behind[1] as Host;
const natc = () => nats[0] as Nat;
const natd = () => nats[1] as Nat;
const ip = new Map<string, string>();
/** per path type: RTT and throughput (tests 3 and 6) */
const paths: { what: string; rttMs: number; gbits: number }[] = [];

interface Peer {
  readonly node: string;
  readonly name?: string;
  readonly endpoint?: string;
  readonly path?: string;
  readonly via?: string;
}
interface Reach {
  readonly nat?: string;
  readonly seenAs?: string[];
}
async function cluster_(
  h: Host,
): Promise<{ nodeId: string; peers: Peer[]; reach?: Reach; names: Record<string, string> }> {
  const c = (
    (await h.trussStatus()) as {
      cluster?: { nodeId: string; peers: Peer[]; reach?: Reach; names: Record<string, string> };
    }
  ).cluster;
  if (!c) throw new Error(`${h.name}: no cluster section`);
  return c;
}
const nameOf = async (h: Host): Promise<string> => (await cluster_(h)).nodeId;
async function peerOn(h: Host, other: Host): Promise<Peer | undefined> {
  const id = await nameOf(other);
  return (await cluster_(h)).peers.find((p) => p.node === id);
}
/** What the hosts think (peers, paths, reachability, the device), printed for a failure report. */
async function diagnose(hosts: readonly Host[]): Promise<void> {
  for (const x of hosts) {
    const c = await cluster_(x).catch((err: Error) => err.message);
    const brief =
      typeof c === 'string'
        ? c
        : {
            reach: c.reach,
            peers: c.peers.map((p) => [p.name, p.path, p.via, p.endpoint, (p as { allowedIps?: string[] }).allowedIps]),
          };
    console.log(`${x.name} cluster:`, JSON.stringify(brief));
    const wg = (await inHostMounts(x, ['wg', 'show', 'trwg0', 'dump'])).stdout.replace(/^\S+\t/, 'PRIV\t');
    console.log(`${x.name} wg (at ${Math.round(Date.now() / 1000)}):\n${wg}`);
  }
}

async function pathIs(h: Host, other: Host, path: string, ms: number): Promise<void> {
  try {
    await waitFor(async () => (await peerOn(h, other))?.path === path, ms, {
      what: `${other.name}'s path on ${h.name} to be ${path}`,
      intervalMs: 250,
    });
  } catch (e) {
    await diagnose([pa(), pb(), nc(), nd()]);
    throw e;
  }
}

async function ok(r: Promise<{ code: number; stderr: string; stdout: string }>, what: string): Promise<string> {
  const x = await r;
  assert.equal(x.code, 0, `${what}: ${x.stderr}${x.stdout}`);
  return x.stdout.trim();
}

const ctr = (h: Host): string => `s-${h.name.slice(-2)}`;
const reaches = async (from: Host, to: Host): Promise<boolean> =>
  (await tcpConnect(from, ctr(from), ip.get(ctr(to)) as string)).ok;

/** ms until TCP from `from` to `to` works again (probing every 250 ms), or throws after `ms`. */
async function timeUntilReach(from: Host, to: Host, ms: number): Promise<number> {
  const t0 = Date.now();
  try {
    await waitFor(() => reaches(from, to), ms, { what: `${from.name} -> ${to.name}`, intervalMs: 250 });
  } catch (e) {
    await diagnose([pa(), pb(), nc(), nd()]);
    throw e;
  }
  return Date.now() - t0;
}

/** RTT (ms, median of 20 pings at 50 ms) and iperf3 throughput (Gbit/s, 2 s) from one host's container to another's. */
async function measure(from: Host, to: Host): Promise<{ rttMs: number; gbits: number }> {
  const target = ip.get(ctr(to)) as string;
  const p = await from.docker(['exec', ctr(from), 'ping', '-c', '20', '-i', '0.05', '-W', '1', target], 30_000);
  const times = [...p.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  const r = await from.docker(
    ['exec', ctr(from), 'iperf3', '-c', target, '-p', String(IPERF_PORT), '-t', '2', '-J'],
    60_000,
  );
  assert.equal(r.code, 0, `iperf3 ${from.name} -> ${to.name}: ${r.stdout.slice(-300)}${r.stderr}`);
  const bps = (JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second?: number } } }).end?.sum_received
    ?.bits_per_second;
  return { rttMs: times[Math.floor(times.length / 2)] ?? Number.NaN, gbits: (bps ?? 0) / 1e9 };
}

/** IPv4 fragments created or reassembled in a namespace (/proc/net/snmp). */
async function fragments(exec: (argv: readonly string[]) => Promise<{ stdout: string }>): Promise<number> {
  const lines = (await exec(['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Ip:'));
  const names = (lines[0] ?? '').split(/\s+/);
  const values = (lines[1] ?? '').split(/\s+/).map(Number);
  return ['FragCreates', 'ReasmReqds'].reduce((n, k) => n + (values[names.indexOf(k)] ?? 0), 0);
}

before(async () => {
  await cluster.start();
  nats.push(await startNat(cluster.underlay, { name: 'c', mapping: 'endpoint-independent', wanIndex: 201, lan: 241 }));
  nats.push(await startNat(cluster.underlay, { name: 'd', mapping: 'endpoint-independent', wanIndex: 202, lan: 241 }));
  behind.push(await startHost('nc', { hostname: 'laptop' }));
  behind.push(await startHost('nd', { hostname: 'cloudvm' }));
  await attachBehind(natc(), nc().name, 2);
  await attachBehind(natd(), nd().name, 2);
  const etcd = `etcd://${cluster.underlay.etcd.endpoint}`;
  const user = ['--store', etcd, '--etcd-insecure'];
  await Promise.all([
    ...[pa(), pb()].map((h) =>
      h.startTruss({ runScript: true, extraArgs: [...user, '--relay'], readyTimeoutMs: 120_000 }),
    ),
    ...[nc(), nd()].map((h) => h.startTruss({ runScript: true, extraArgs: user, readyTimeoutMs: 120_000 })),
  ]);
  const all = [pa(), pb(), nc(), nd()];
  for (const h of all) assert.ok(await waitSynced(h, 'cluster'), `${h.name} synced`);
  for (const h of all) await ok(createClusterNetwork(h, BLUE, BLUE_SUBNET), `blue on ${h.name}`);
  await Promise.all(all.map((h) => runContainer(h, { name: ctr(h), network: BLUE, cmd: SRV_CMD })));
  for (const h of all) ip.set(ctr(h), await containerIp(h, ctr(h), BLUE));
});

after(async () => {
  for (const h of behind) await h.stop().catch(() => {});
  for (const n of nats) await n.stop().catch(() => {});
  await cluster.stop();
  printFigures(figures);
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
    await waitFor(async () => (await cluster_(nc())).reach?.nat !== undefined, 30_000, {
      what: 'nc learning it is behind a NAT',
    });
    const reach = (await cluster_(nc())).reach;
    assert.deepEqual(reach?.seenAs, [`${natc().wanAddress()}:51820`], 'seen at its NAT, port kept');
    assert.equal((await peerOn(pa(), nc()))?.path, 'learned');
    assert.equal((await peerOn(pa(), nc()))?.endpoint, `${natc().wanAddress()}:51820`);
    assert.equal((await peerOn(nc(), pa()))?.path, 'direct');
    const text = await ok(nc().truss.cli(['status']), 'truss status');
    assert.match(text, /^reachability: address 198\.18\.241\.2, behind a NAT/m);
  });

  it('2. two hosts behind endpoint-independent NATs punch a hole and talk directly', async () => {
    const t0 = Date.now();
    await pathIs(nc(), nd(), 'punched', 60_000);
    await pathIs(nd(), nc(), 'punched', 10_000);
    const punchedMs = Date.now() - t0;
    const pcap = await cluster.underlay.pcap('udp');
    try {
      assert.ok(await reaches(nc(), nd()), 'nc -> nd');
      assert.ok(await reaches(nd(), nc()), 'nd -> nc');
    } finally {
      await pcap.stop();
    }
    const lines = await readPcap(await pcap.stop());
    const [c, d] = [natc().wanAddress(), natd().wanAddress()];
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
      nc().docker(['exec', ctr(nc()), 'ping', '-c', '3', '-s', '1400', '-W', '2', ip.get(ctr(nd())) as string]),
      'punched: 1,400-byte ping',
    );
    paths.push({ what: 'hole-punched (nc -> nd)', ...(await measure(nc(), nd())) });
  });

  it('3. a NAT changes its outside address and forgets its mappings: traffic resumes within the keepalive, a punched pair through the relay, then punched again', async () => {
    const fromPublic = pingProbe(pa(), ctr(pa()), ip.get(ctr(nc())) as string, 45, 200);
    const pair = pingProbe(nc(), ctr(nc()), ip.get(ctr(nd())) as string, 45, 200);
    await sleep(3_000);
    const t0 = Date.now();
    await natc().changeExternalAddress(211);
    const [r, p] = await Promise.all([fromPublic, pair]);
    assert.ok(r.received > 0 && r.output.includes('seq='), r.output.slice(-300));
    assert.ok(r.maxGapMs <= (KEEPALIVE_S + 5) * 1000, `longest gap ${r.maxGapMs} ms (keepalive ${KEEPALIVE_S} s)`);
    // the punched pair: nc's packets go unanswered, it takes the relay (15 s), nd follows
    assert.ok(p.maxGapMs <= (KEEPALIVE_S + 5) * 1000, `nc -> nd: longest gap ${p.maxGapMs} ms`);
    await waitFor(async () => (await peerOn(pa(), nc()))?.endpoint === `${natc().wanAddress()}:51820`, 10_000, {
      what: "pa following nc's new outside endpoint",
    });
    await pathIs(nc(), nd(), 'punched', 60_000);
    await pathIs(nd(), nc(), 'punched', 10_000);
    figures.push(
      `NAT address change + conntrack flush: longest gap pa -> nc ${r.maxGapMs} ms, nc -> nd (punched pair) ` +
        `${p.maxGapMs} ms (pings every 200 ms); the pair punched again ${Date.now() - t0} ms after the change`,
    );
  });

  let relay: Host | undefined;
  it('4. a NAT that maps per destination: relayed through the pair relay, nothing in plaintext', async () => {
    // traffic flowing, as with a workload: the punched session's packets go unanswered (15 s)
    const load = pingProbe(nc(), ctr(nc()), ip.get(ctr(nd())) as string, 30, 200);
    await ok(natd().exec(['nft', '-f', '-'], { input: renderNatRuleset('port-dependent') }), 'natd port-dependent');
    await natd().flushConntrack();
    const t0 = Date.now();
    await waitFor(async () => (await cluster_(nd())).reach?.nat === 'dependent', 60_000, {
      what: 'nd learning its NAT maps per destination',
    });
    await pathIs(nc(), nd(), 'relayed', 60_000);
    await pathIs(nd(), nc(), 'relayed', 10_000);
    const switchMs = Date.now() - t0;
    const gap = (await load).maxGapMs;
    const via = (await peerOn(nc(), nd()))?.via;
    assert.equal((await peerOn(nd(), nc()))?.via, via, 'both ends picked the same relay');
    relay = via === (await nameOf(pa())) ? pa() : pb();
    const marker = `truss-marker-${randomBytes(8).toString('hex')}`;
    const pcap = await cluster.underlay.pcap();
    try {
      await timeUntilReach(nc(), nd(), 30_000);
      const r = await tcpConnect(nc(), ctr(nc()), ip.get(ctr(nd())) as string, SINK_PORT, 3, marker);
      assert.ok(r.ok, r.output);
      assert.ok((await tcpConnect(nd(), ctr(nd()), ip.get(ctr(nc())) as string, SINK_PORT, 3, marker)).ok);
    } finally {
      await pcap.stop();
    }
    const file = await pcap.stop();
    assert.equal(pcapContains(file, marker), false, 'the marker never crosses the underlay in clear');
    const lines = await readPcap(file);
    const relayAddr = relay.underlayAddress as string;
    const [c, d] = [natc().wanAddress(), natd().wanAddress()];
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
    const other = relay === pa() ? pb() : pa();
    const probe = pingProbe(nc(), ctr(nc()), ip.get(ctr(nd())) as string, 50, 200);
    await sleep(2_000);
    const t0 = Date.now();
    await ok(relay.exec(['ip', 'link', 'set', 'eth-ul', 'down']), 'relay cut off');
    try {
      await waitFor(async () => (await peerOn(nc(), nd()))?.via === (await nameOf(other)), 60_000, {
        what: 'nc choosing the other relay',
        intervalMs: 250,
      });
      const chosenMs = Date.now() - t0;
      const r = await probe;
      assert.ok(r.received > 0);
      assert.ok(await reaches(nc(), nd()), 'nc -> nd through the other relay');
      assert.ok(await reaches(nd(), nc()), 'nd -> nc through the other relay');
      figures.push(
        `relay fail-over: other relay chosen ${chosenMs} ms after the relay was cut off; longest ping gap ${r.maxGapMs} ms`,
      );
      assert.ok(r.maxGapMs < 40_000, `fail-over gap ${r.maxGapMs} ms`);
    } finally {
      await relay.exec(['ip', 'link', 'set', 'eth-ul', 'up']);
    }
  });

  it('6. every path: a 1,400-byte DF payload passes, bulk TCP fragments nothing; RTT and throughput', async () => {
    // pb's truss is back (test 5); paths: direct public, learned (behind a NAT), relayed
    await timeUntilReach(pa(), pb(), 60_000);
    await timeUntilReach(nc(), nd(), 60_000);
    const spaces = [
      ...[pa(), pb(), nc(), nd()].map((h) => (argv: readonly string[]) => h.exec(argv)),
      ...nats.map((n) => (argv: readonly string[]) => n.exec(argv)),
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
      const target = ip.get(ctr(b)) as string;
      // busybox ping: -s 1400 + 28 = 1428 bytes, under the tunnel MTU 1440; DF is set by Linux's PMTU default
      await ok(
        a.docker(['exec', ctr(a), 'ping', '-c', '3', '-s', '1400', '-W', '2', target]),
        `${what}: 1,400-byte ping`,
      );
      results.push({ what, ...(await measure(a, b)) });
    }
    const afterF = await Promise.all(spaces.map(fragments));
    assert.deepEqual(afterF, before, 'no IPv4 fragment created or reassembled on any host');
    const base = results.find((r) => r.what.startsWith('direct public')) as { rttMs: number; gbits: number };
    for (const r of results) {
      figures.push(
        `${r.what}: RTT ${r.rttMs.toFixed(3)} ms (×${(r.rttMs / base.rttMs).toFixed(2)}), ` +
          `${r.gbits.toFixed(2)} Gbit/s (×${(r.gbits / base.gbits).toFixed(2)})`,
      );
    }
  });
});
