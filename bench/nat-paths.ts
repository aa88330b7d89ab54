/**
 * Hosts-behind-NAT benchmark (not part of the test suite): `npm run bench:nat` (root, like the
 * e2e suite). On the topology of e2e/cluster-nat.e2e.ts (e2e/harness/nat-cluster.ts: public
 * hosts pa and pb, both relays; nc and nd each behind its own NAT; all started the README way)
 * it measures each path type docs/cluster.md#hosts-behind-nat names, as ratios to the direct
 * public path:
 *
 *  (1) RTT (median of N pings every 50 ms) and TCP throughput (iperf3) container to container,
 *      per path: direct public (pa → pb), learned NAT (pa → nc), hole-punched (nc → nd, both
 *      NATs endpoint-independent), relayed (nc → nd once natd maps per destination). The direct
 *      public path runs twice per repetition (A/A control), so the noise of a ratio is visible.
 *      Two phases, because punched and relayed are the same pair under different NATs: the
 *      paths of a phase run back to back, their order rotated each repetition; each ratio is
 *      to the direct path of the same repetition.
 *  (2) relay fail-over: with nc ↔ nd relayed, the relay both name is cut off the underlay; ms
 *      until nc names the other relay, and the longest gap of a ping nc → nd every 100 ms. The
 *      link is restored and the pair watched moving back (how long, the longest gap), then again.
 *
 * Prints tables; a full run also writes bench/results/nat-paths.json and the "Hosts behind NAT"
 * section of docs/benchmarks.md (nat-paths-report.ts). `--smoke` (1 repetition, 1 s of iperf3,
 * 20 pings, 1 fail-over) only prints, so CI can prove the benchmark still runs
 * (e2e/bench-smoke.e2e.ts).
 * Flags: --smoke, --reps N (3), --seconds S (iperf3, 5), --pings N (100), --failovers N (3).
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { nodeName } from '../e2e/harness/cluster.ts';
import { clusterStatus, nodeIdOf } from '../e2e/harness/cluster-state.ts';
import type { Host } from '../e2e/harness/host.ts';
import {
  agreedRelay,
  type FailOver,
  failOver,
  measurePath,
  msUntilReach,
  type NatCluster,
  natClusterFixture,
  peerOn,
  relayOf,
  setUnderlayLink,
  waitPath,
  waitPunched,
  waitRelayed,
  withDiagnosis,
} from '../e2e/harness/nat-cluster.ts';
import { startPingProbe } from '../e2e/harness/traffic.ts';
import { UNDERLAY_MTU } from '../e2e/harness/underlay.ts';
import { waitFor } from '../e2e/harness/wait.ts';
import { chooseRelay } from '../src/core/cluster/reach.ts';
import { wireguardGoVersions } from './cluster-wggo.ts';
import { machineFacts, rotate, writeResultsJson } from './lib.ts';
import {
  type FailOverSample,
  type NatParams,
  PATH_LABEL,
  type PathKey,
  type PathSample,
  type Phase,
  report,
  summarize,
  writeDocs,
} from './nat-paths-report.ts';

const { values: flags } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    reps: { type: 'string' },
    seconds: { type: 'string' },
    pings: { type: 'string' },
    failovers: { type: 'string' },
  },
  strict: true,
});
const SMOKE = flags.smoke === true;
const REPS = Number(flags.reps ?? (SMOKE ? 1 : 3));
const SECONDS = Number(flags.seconds ?? (SMOKE ? 1 : 5));
const PINGS = Number(flags.pings ?? (SMOKE ? 20 : 100));
const FAILOVERS = Number(flags.failovers ?? (SMOKE ? 1 : 3));
for (const [k, v] of Object.entries({ REPS, SECONDS, PINGS, FAILOVERS })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`bench/nat-paths: ${k} must be a positive integer, got ${v}`);
}
const PROBE_MS = 100;
/** how long a path may take to show its kind again before a run (a flap), and the pair to settle after a fail-over */
const PATH_WAIT_MS = 60_000;
const SETTLE_MS = 120_000;
/** how long TCP from nc may take to reach nd once the pair moved back to the restored relay before it counts as stalled */
const FAILBACK_MS = SMOKE ? 30_000 : 60_000;

const PARAMS: NatParams = {
  reps: REPS,
  seconds: SECONDS,
  pings: PINGS,
  failOvers: FAILOVERS,
  probeMs: PROBE_MS,
  failBackMs: FAILBACK_MS,
};

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** Sender, receiver and the path kind the sender's status shows for the receiver. */
function ends(net: NatCluster, path: PathKey): { from: Host; to: Host; kind: string } {
  if (path === 'learned') return { from: net.pa, to: net.nc, kind: 'learned' };
  if (path === 'punched' || path === 'relayed') return { from: net.nc, to: net.nd, kind: path };
  return { from: net.pa, to: net.pb, kind: 'direct' };
}

async function measureOne(net: NatCluster, phase: Phase, rep: number, path: PathKey): Promise<PathSample> {
  const { from, to, kind } = ends(net, path);
  let waitedMs = 0;
  if ((await peerOn(from, to))?.path !== kind) {
    const t0 = Date.now();
    await waitPath(net, from, to, kind, PATH_WAIT_MS);
    waitedMs = Date.now() - t0;
  }
  const via = path === 'relayed' ? nodeName(await agreedRelay(net, PATH_WAIT_MS)) : undefined;
  const m = await measurePath(net, from, to, { pings: PINGS, seconds: SECONDS });
  const s: PathSample = { phase, rep, path, ...m, waitedMs, ...(via ? { via } : {}) };
  log(
    `  ${phase} rep ${rep + 1}/${REPS} ${PATH_LABEL[path]}: RTT ${m.rttMs.toFixed(3)} ms, ${m.gbps.toFixed(3)} Gbit/s` +
      `${m.pingsLost > 0 ? `, ${m.pingsLost} pings lost` : ''}${waitedMs > 0 ? `, waited ${waitedMs} ms for the path` : ''}`,
  );
  return s;
}

/** REPS repetitions of the phase's paths, the order rotated; one short warm-up run each first (full runs). */
async function measurePhase(net: NatCluster, phase: Phase, paths: readonly PathKey[]): Promise<PathSample[]> {
  if (!SMOKE) {
    for (const p of paths) {
      const { from, to } = ends(net, p);
      await measurePath(net, from, to, { pings: 5, seconds: 1 });
    }
  }
  const out: PathSample[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    for (const p of rotate(rep, paths)) out.push(await measureOne(net, phase, rep, p));
  }
  return out;
}

/**
 * One fail-over round: the relay both ends name now is cut off (failOver), then its link comes
 * back (moveBack). The last round leaves the pair as it is.
 */
async function failOverRound(net: NatCluster, i: number): Promise<FailOverSample> {
  const relay = await agreedRelay(net, SETTLE_MS);
  let f: FailOver;
  try {
    f = await failOver(net, relay, PROBE_MS);
  } catch (err) {
    await setUnderlayLink(relay, 'up');
    throw err;
  }
  log(
    `  fail-over ${i + 1}/${FAILOVERS}: ${nodeName(relay)} cut, ${nodeName(f.other)} named after ${f.chosenMs} ms, longest gap ${f.probe.maxGapMs} ms`,
  );
  const back = await moveBack(net, relay, i === FAILOVERS - 1);
  return {
    relay: nodeName(relay),
    other: nodeName(f.other),
    chosenMs: f.chosenMs,
    gapMs: f.probe.maxGapMs,
    lost: f.probe.sent - f.probe.received,
    ...back,
  };
}

/**
 * The relay's link comes back: ms until both ends name the relay that wins with both up, and
 * until TCP from nc reaches nd again, with a ping nc → nd meanwhile. Only nc sends, as a
 * client on nc would: nd answers what reaches it and sends nothing else. A pair that does not
 * pass within FAILBACK_MS counts as stalled (with what the relay shows of nd); unless `last`,
 * traffic from nd then gets it going for the next round.
 */
async function moveBack(net: NatCluster, relay: Host, last: boolean): Promise<Partial<FailOverSample>> {
  const preferred = relayOf(net, chooseRelay(nodeIdOf(net.nc), nodeIdOf(net.nd), [net.pa, net.pb].map(nodeIdOf)));
  const probe = startPingProbe(net.nc, net.ctr(net.nc), net.ip(net.nd), PROBE_MS);
  const t0 = Date.now();
  await setUnderlayLink(relay, 'up');
  try {
    const id = nodeIdOf(preferred);
    const onIt = async (a: Host, b: Host) => (await peerOn(a, b))?.via === id;
    await waitFor(async () => (await onIt(net.nc, net.nd)) && (await onIt(net.nd, net.nc)), SETTLE_MS, {
      what: `nc and nd both naming ${preferred.name} again`,
      intervalMs: 250,
    });
    const backMs = Date.now() - t0;
    const left = Math.max(1_000, FAILBACK_MS - backMs);
    const passed = await msUntilReach(net, net.nc, net.nd, left).then(
      () => true,
      () => false,
    );
    const backPassMs = passed ? Date.now() - t0 : undefined;
    const gap = await probe.stop();
    const nd = passed ? undefined : await peerOn(preferred, net.nd);
    const stalled =
      nd &&
      `${nodeName(preferred)}'s peer nd: endpoint ${nd.endpoint ?? 'none'}, handshake ${nd.latestHandshake ?? '?'}`;
    log(
      `  ... link back: both on ${nodeName(preferred)} after ${backMs} ms, ` +
        `${passed ? `TCP nc -> nd after ${backPassMs} ms` : `no TCP nc -> nd within ${FAILBACK_MS} ms (${stalled})`}, longest gap ${gap.maxGapMs} ms`,
    );
    if (!last) {
      try {
        await msUntilReach(net, net.nd, net.nc, 60_000);
        await msUntilReach(net, net.nc, net.nd, 30_000);
      } catch (err) {
        log(`  nc and nd name ${nodeName(preferred)} again, but traffic does not pass:`);
        await withDiagnosis(net, err);
      }
    }
    return {
      backTo: nodeName(preferred),
      backMs,
      ...(backPassMs !== undefined ? { backPassMs } : {}),
      backGapMs: gap.maxGapMs,
      ...(stalled ? { stalled } : {}),
    };
  } finally {
    await probe.stop();
  }
}

async function environment(net: NatCluster): Promise<Record<string, string>> {
  const facts = await machineFacts();
  const wgGo = (await wireguardGoVersions()).newest; // the one truss runs (cluster-wggo.ts)
  const iperf = await net.pa.docker(['exec', net.ctr(net.pa), 'iperf3', '--version']);
  return {
    ...facts,
    wireguard: `userspace: wireguard-go v${wgGo.version} (${wgGo.path})`,
    docker: (await net.pa.docker(['version', '--format', '{{.Server.Version}}'])).stdout.trim(),
    iperf3: iperf.stdout.split('\n')[0]?.trim() ?? '',
    underlayMtu: String(UNDERLAY_MTU),
    tunnelMtu: String((await clusterStatus(net.pa)).mtu),
  };
}

const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

async function main(): Promise<void> {
  const t0 = performance.now();
  const loadBefore = load();
  const net = natClusterFixture();
  try {
    log(
      `bench/nat-paths: ${REPS} reps, ${PINGS} pings, iperf3 ${SECONDS} s, ${FAILOVERS} fail-overs${SMOKE ? ' (smoke)' : ''}`,
    );
    await net.start();
    for (const [a, b] of [
      [net.pa, net.pb],
      [net.pa, net.nc],
    ] as const)
      await msUntilReach(net, a, b, 60_000);
    log(
      `  started (${((performance.now() - t0) / 1000).toFixed(0)} s); hole punched after ${await waitPunched(net)} ms`,
    );
    const samples = await measurePhase(net, 'independent', ['direct', 'learned', 'punched', 'directAA']);
    const { relay, ms } = await waitRelayed(net);
    log(`  natd port-dependent: relayed via ${nodeName(relay)} after ${ms} ms`);
    await msUntilReach(net, net.nc, net.nd, 30_000);
    samples.push(...(await measurePhase(net, 'dependent', ['direct', 'relayed', 'directAA'])));
    const failOvers: FailOverSample[] = [];
    for (let i = 0; i < FAILOVERS; i++) failOvers.push(await failOverRound(net, i));
    const env: Record<string, string> = { ...(await environment(net)), loadBefore, loadAfter: load() };
    const r = { samples, failOvers };
    const lines = report(r, PARAMS);
    const out = [
      '',
      `HOSTS BEHIND NAT BENCHMARK${SMOKE ? ' (smoke: figures mean nothing)' : ''}`,
      `kernel ${env.kernel}; CPU ${env.cpu}; WireGuard ${env.wireguard}; load ${env.loadBefore} -> ${env.loadAfter}`,
      ...lines,
      `(${((performance.now() - t0) / 1000).toFixed(0)} s)`,
      '',
    ];
    process.stdout.write(out.join('\n'));
    if (!SMOKE) {
      writeDocs(lines, env, PARAMS);
      await writeResultsJson('nat-paths', {
        date: new Date().toISOString(),
        environment: env,
        parameters: PARAMS,
        summary: summarize(r),
        samples: r,
      });
      process.stdout.write('wrote docs/benchmarks.md (Hosts behind NAT) and bench/results/nat-paths.json\n');
    }
  } finally {
    const t1 = performance.now();
    await net.stop().catch((err: Error) => process.stderr.write(`${err.message}\n`));
    log(`bench/nat-paths: teardown ${((performance.now() - t1) / 1000).toFixed(0)} s`);
  }
}

await main();
