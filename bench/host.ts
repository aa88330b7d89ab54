/**
 * Same-host benchmark (not part of the test suite): `npm run bench:host` (root, like the e2e
 * suite; it starts its own simulated host through the e2e harness, with iperf3 and sockperf in
 * the test image). One dockerd with truss, one truss network and one network of Docker's own
 * bridge driver, plus a second bridge network as an A/A control, a server and a client container
 * on each; every measure rotates the three networks (which goes first changes each repetition),
 * never in blocks:
 *
 *  (1) TCP throughput client → server, iperf3 with 1 and with 4 streams (-P 4):
 *      truss ÷ bridge. Target ≥ 1.00 (floor 0.95).
 *  (2) request/response with small TCP messages, sockperf ping-pong (one 64-byte message in
 *      flight, each answered before the next): round trips per second, truss ÷ bridge (target
 *      ≥ 1.00), and the round-trip p99 latency, truss ÷ bridge (target ≤ 1.00: no slower).
 *
 *  (A/A) the same measures on the second bridge network ÷ the first: what the machine's noise
 *      alone does to a ratio of two identical paths. A truss ratio short of its target but inside
 *      the A/A range of per-repetition ratios is "within noise", not a finding.
 *
 * Prints a table; a full run also writes bench/results/host.json and the "Same host" section
 * of docs/benchmarks.md. `--smoke` (1 repetition, 1 s per measure, no warm-up) only prints, so CI can
 * prove the benchmark still runs (e2e/bench-smoke.e2e.ts).
 * Flags: --smoke, --reps N (default 5), --seconds S (per iperf3 run, 5), --rr-seconds S
 * (per sockperf run, 5), --msg-size B (64), --pin (confine each client container to CPU 0 and each
 * server to CPU 1, so that no migration mid-run decides a repetition; off by default because on
 * a shared 2-core machine it also stops the scheduler from moving them off a CPU someone else
 * is busy on).
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { containerIp, containerPid, runContainer } from '../e2e/harness/containers.ts';
import { run } from '../e2e/harness/exec.ts';
import { median } from '../e2e/harness/figures.ts';
import { type Host, startHost } from '../e2e/harness/host.ts';
import { CHILD_PATH } from '../e2e/harness/paths.ts';
import { bridgeName } from '../src/core/naming.ts';
import {
  f1,
  iperfGbps,
  linkFacts,
  machineFacts,
  markdownTable,
  netfilterFacts,
  offloads,
  range,
  rotate,
  stats,
  writeDocSection,
  writeResultsJson,
} from './lib.ts';

const { values: flags } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    reps: { type: 'string' },
    seconds: { type: 'string' },
    'rr-seconds': { type: 'string' },
    'msg-size': { type: 'string' },
    pin: { type: 'boolean', default: false },
  },
  strict: true,
});
const SMOKE = flags.smoke === true;
const REPS = Number(flags.reps ?? (SMOKE ? 1 : 5));
const SECONDS = Number(flags.seconds ?? (SMOKE ? 1 : 5));
const RR_SECONDS = Number(flags['rr-seconds'] ?? (SMOKE ? 1 : 5));
const MSG_SIZE = Number(flags['msg-size'] ?? 64);
const PIN = flags.pin === true;
for (const [k, v] of Object.entries({ REPS, SECONDS, RR_SECONDS, MSG_SIZE })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`bench/host: ${k} must be a positive integer, got ${v}`);
}
const IPERF_PORT = 5201;
const RR_PORT = 11111;
const TRUSS_OPTS = { defaultPools: '198.18.128.0/17:24' };

const CONDS = ['truss', 'routed', 'bridge', 'bridge2'] as const;
type Cond = (typeof CONDS)[number];
/** network, server and client container of each condition */
const NAMES: Record<Cond, { net: string; server: string; client: string }> = {
  truss: { net: 'sht', server: 'sht-s', client: 'sht-c' },
  /** a truss network in routed mode (-o truss.mode=routed): no bridge, point-to-point veths */
  routed: { net: 'shr', server: 'shr-s', client: 'shr-c' },
  bridge: { net: 'shb', server: 'shb-s', client: 'shb-c' },
  /** the A/A control: a second network of the same driver as `bridge` */
  bridge2: { net: 'shb2', server: 'shb2-s', client: 'shb2-c' },
};
/** the conditions whose links and container interfaces the report describes (bridge2 repeats bridge) */
const DESCRIBED = ['truss', 'bridge'] as const;
/** cpuset of each container role when pinned (the machine has 2 cores) */
const CPU = { client: '0', server: '1' } as const;

interface RrSample {
  readonly perSecond: number;
  readonly p50us: number;
  readonly p99us: number;
}
interface CondSamples {
  readonly gbps1: number[];
  readonly gbps4: number[];
  readonly rr: RrSample[];
}
type Results = Record<Cond, CondSamples>;

let host: Host;
/** position of truss's jump in FORWARD when the repetitions started */
let jumpBefore = 0;
/** the machine's 1-minute load average after each repetition */
const load1: number[] = [];

async function docker(args: readonly string[], timeoutMs = 120_000): Promise<string> {
  const r = await host.docker(args, timeoutMs);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr.trim()} ${r.stdout.slice(0, 500)}`);
  return r.stdout.trim();
}

const SERVER_CMD = ['sh', '-c', `iperf3 -s -D -p ${IPERF_PORT} && exec sockperf sr --tcp -i 0.0.0.0 -p ${RR_PORT}`];

async function setup(): Promise<Record<Cond, string>> {
  await docker(['network', 'create', '-d', 'truss', '--ipam-driver', 'truss', '--subnet', '198.18.60.0/24', 'sht']);
  await docker(
    ['network', 'create', '-d', 'truss', '--ipam-driver', 'truss', '-o', 'truss.mode=routed'].concat([
      '--subnet',
      '198.18.61.0/24',
      'shr',
    ]),
  );
  await docker(['network', 'create', '-d', 'bridge', '--subnet', '198.19.160.0/24', 'shb']);
  await docker(['network', 'create', '-d', 'bridge', '--subnet', '198.19.161.0/24', 'shb2']);
  const ips = {} as Record<Cond, string>;
  for (const c of CONDS) {
    await runContainer(host, { name: NAMES[c].server, network: NAMES[c].net, cmd: SERVER_CMD });
    await runContainer(host, { name: NAMES[c].client, network: NAMES[c].net });
    if (PIN) {
      // docker exec'd processes join the container's cgroup, so the clients inherit the cpuset
      await docker(['update', '--cpuset-cpus', CPU.server, NAMES[c].server]);
      await docker(['update', '--cpuset-cpus', CPU.client, NAMES[c].client]);
    }
    ips[c] = await containerIp(host, NAMES[c].server, NAMES[c].net);
  }
  return ips;
}

async function iperf(c: Cond, ip: string, streams: number, seconds = SECONDS): Promise<number> {
  const omit = seconds > 2 ? ['-O', '1'] : [];
  const args = ['iperf3', '-c', ip, '-p', String(IPERF_PORT), '-t', String(seconds), '-P', String(streams), ...omit];
  return iperfGbps(await docker(['exec', NAMES[c].client, ...args, '-J'], (seconds + 60) * 1000));
}

/** sockperf ping-pong output → round trips per second (valid period) and full-RTT percentiles in µs. */
export function parseSockperf(out: string): RrSample {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: sockperf colours its summary lines
  const text = out.replace(/\x1b\[[0-9;]*m/g, '');
  const valid = /\[Valid Duration\] RunTime=([\d.]+) sec; SentMessages=\d+; ReceivedMessages=(\d+)/.exec(text);
  const pct = (p: string): number => Number(new RegExp(`percentile ${p} = +([\\d.]+)`).exec(text)?.[1] ?? Number.NaN);
  const perSecond = valid ? Number(valid[2]) / Number(valid[1]) : Number.NaN;
  const sample = { perSecond, p50us: pct('50.000'), p99us: pct('99.000') };
  if (!Object.values(sample).every((v) => Number.isFinite(v) && v > 0)) {
    throw new Error(`sockperf: no figures in ${text.slice(-800)}`);
  }
  return sample;
}

async function sockperf(c: Cond, ip: string, seconds = RR_SECONDS): Promise<RrSample> {
  const args = ['sockperf', 'ping-pong', '--tcp', '-i', ip, '-p', String(RR_PORT), '-t', String(seconds)];
  args.push('-m', String(MSG_SIZE), '--full-rtt');
  return parseSockperf(await docker(['exec', NAMES[c].client, ...args], (seconds + 60) * 1000));
}

/** 1-based position of truss's jump among the rules of the host's iptables FORWARD chain (0: absent). */
async function jumpPosition(): Promise<number> {
  const out = (await host.exec(['iptables', '-w', '-S', 'FORWARD'])).stdout;
  const rules = out.split('\n').filter((l) => l.startsWith('-A FORWARD'));
  return rules.indexOf('-A FORWARD -j TRUSS-FORWARD') + 1;
}

/**
 * Creating the bridge networks made dockerd insert its rules above truss's jump; truss's next
 * full pass (every 30 s, or now with `truss reconcile`) moves it back on top (position 1, or 2
 * right after Docker's DOCKER-USER jump, which stays first: the admin's hook). Measure that
 * steady state, not the transient (gives up after 40 s and measures whatever is there: the
 * report shows the position).
 */
async function settleJump(): Promise<number> {
  const t0 = performance.now();
  await host.truss.cli(['reconcile', '--state-dir', host.stateDir]);
  let pos = await jumpPosition();
  const onTop = async (p: number): Promise<boolean> =>
    p === 1 ||
    (p === 2 &&
      (await host.exec(['iptables', '-w', '-S', 'FORWARD'])).stdout.includes(
        '-A FORWARD -j DOCKER-USER\n-A FORWARD -j TRUSS-FORWARD',
      ));
  while (!(await onTop(pos)) && performance.now() - t0 < 40_000) {
    await new Promise((res) => setTimeout(res, 1000));
    pos = await jumpPosition();
  }
  process.stderr.write(
    `  truss's FORWARD jump at position ${pos} after ${((performance.now() - t0) / 1000).toFixed(0)} s\n`,
  );
  return pos;
}

/** `f`, tried again every 500 ms while it fails (up to 20 more times): the servers may still be starting. */
async function retried<T>(f: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await f();
    } catch (err) {
      if (i >= 20) throw err;
      await new Promise((res) => setTimeout(res, 500));
    }
  }
}

async function measure(ips: Record<Cond, string>, r: Results): Promise<void> {
  // Warm-up, not counted (also waits out the servers' start). A smoke run has no figures to
  // protect: its first measure of each condition waits for the servers instead (12 s less).
  if (!SMOKE) {
    for (const c of CONDS) await retried(async () => [await iperf(c, ips[c], 1, 1), await sockperf(c, ips[c], 1)]);
  }
  const first = <T>(i: number, f: () => Promise<T>): Promise<T> => (SMOKE && i === 0 ? retried(f) : f());
  for (let i = 0; i < REPS; i++) {
    const line: string[] = [];
    for (const c of rotate(i, CONDS)) r[c].gbps1.push(await first(i, () => iperf(c, ips[c], 1)));
    for (const c of rotate(i + 1, CONDS)) r[c].gbps4.push(await iperf(c, ips[c], 4));
    for (const c of rotate(i + 2, CONDS)) r[c].rr.push(await first(i, () => sockperf(c, ips[c])));
    for (const c of CONDS) {
      const rr = r[c].rr.at(-1);
      line.push(
        `${c} ${r[c].gbps1.at(-1)?.toFixed(2)}/${r[c].gbps4.at(-1)?.toFixed(2)} Gbit/s, ${rr?.perSecond.toFixed(0)}/s p99 ${rr?.p99us.toFixed(1)} µs`,
      );
    }
    load1.push(loadavg()[0] ?? Number.NaN);
    process.stderr.write(`  rep ${i + 1}/${REPS}: ${line.join('; ')}\n`);
  }
}

/** The bridge of each network and the host ends of its veths (whatever is enslaved to the bridge). */
async function links(): Promise<Record<Cond, { bridge: string; veths: string[] }>> {
  const out = {} as Record<Cond, { bridge: string; veths: string[] }>;
  for (const c of CONDS) {
    if (c === 'routed') {
      out[c] = { bridge: '-', veths: [] }; // no bridge (core/routed.ts)
      continue;
    }
    const id = await docker(['network', 'inspect', '-f', '{{.Id}}', NAMES[c].net]);
    const bridge = c === 'truss' ? bridgeName(id) : `br-${id.slice(0, 12)}`;
    const r = await host.exec(['ip', '-j', 'link', 'show', 'master', bridge]);
    const veths = (JSON.parse(r.stdout || '[]') as { ifname: string }[]).map((l) => l.ifname);
    out[c] = { bridge, veths };
  }
  return out;
}

async function environment(): Promise<Record<string, string>> {
  const facts = await machineFacts();
  const nf = await netfilterFacts(host);
  const env: Record<string, string> = {
    kernel: facts.kernel,
    cpu: facts.cpu,
    brNetfilter: nf.brNetfilter,
    bridgeNfCall: nf.bridgeNfCall,
    docker: await docker(['version', '--format', '{{.Server.Version}}']),
    iperf3: (await docker(['exec', NAMES.truss.client, 'iperf3', '--version'])).split('\n')[0]?.trim() ?? '',
    sockperf: (await docker(['exec', NAMES.truss.client, 'sockperf', '--version'])).split('\n')[0]?.trim() ?? '',
    node: facts.node,
    commit: facts.commit,
  };
  const l = await links();
  for (const c of DESCRIBED) {
    for (const dev of [l[c].bridge, ...l[c].veths]) {
      const f = await linkFacts(host, dev);
      env[`${c} ${dev}`] = `mtu ${f.mtu}; ${f.offloads}`;
    }
    const pid = await containerPid(host, NAMES[c].server);
    const inCtr = {
      exec: (a: readonly string[]) =>
        run(['nsenter', `--net=/proc/${pid}/ns/net`, ...a], { env: { ...process.env, PATH: CHILD_PATH } }),
    };
    // why: not /sys/class/net (sysfs shows the netns of whoever mounted it, i.e. the machine's)
    const ipl = (await inCtr.exec(['ip', '-j', 'link', 'show', 'dev', 'eth0'])).stdout;
    const mtu = (JSON.parse(ipl || '[]') as { mtu?: number }[])[0]?.mtu ?? Number.NaN;
    env[`${c} server eth0`] = `mtu ${mtu}; ${await offloads(inCtr, 'eth0')}`;
  }
  return env;
}

/** Per-packet work on each path after the run: netfilter rules that packets traverse, and counters. */
async function perPacketWork(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const cmd = async (argv: readonly string[]): Promise<string> => {
    const r = await host.exec(argv);
    return r.code === 0 ? r.stdout.trim() : `(${argv[0]}: ${r.stderr.trim()})`;
  };
  const tables = await cmd(['nft', 'list', 'tables']);
  out['nft tables'] = tables.split('\n').join('; ');
  const rules = (t: string): number =>
    t.split('\n').filter((x) => /^\s+(?!type |policy |chain |})\S/.test(x) && !/^\s*(table|chain)/.test(x)).length;
  for (const m of tables.matchAll(/^table (\S+) (\S+)$/gm)) {
    const t = await cmd(['nft', 'list', 'table', m[1] as string, m[2] as string]);
    out[`nft rules in ${m[1]} ${m[2]}`] = String(rules(t));
  }
  const fwd = await cmd(['iptables', '-w', '-L', 'FORWARD', '-v', '-n', '-x']);
  out["truss's jump in iptables FORWARD (position before the run; after)"] = `${jumpBefore}; ${await jumpPosition()}`;
  out['iptables FORWARD (pkts bytes target in out)'] = fwd
    .split('\n')
    .slice(2)
    .map((x) => x.trim().split(/\s+/))
    .map((f) => `${f[0]} ${f[1]} ${f[2]} ${f[5]} ${f[6]}`)
    .join('; ');
  return out;
}

/** What one measure's figures say: the truss ratio, the A/A control's, and the per-repetition spreads. */
interface RatioFacts {
  /** truss ÷ bridge of the medians */
  readonly ratio: number;
  /** median and min–max of the per-repetition (back-to-back) truss ÷ bridge ratios */
  readonly paired: number;
  readonly spread: string;
  /** bridge2 ÷ bridge of the medians: what a ratio of two identical paths came out as */
  readonly aa: number;
  /** min and max of the per-repetition bridge2 ÷ bridge ratios: the noise band */
  readonly aaMin: number;
  readonly aaMax: number;
  readonly verdict: string;
}

const perRep = (a: readonly number[], b: readonly number[]): number[] => a.map((x, i) => x / (b[i] ?? Number.NaN));

/**
 * The verdict against the target and against the A/A band: a ratio that misses its target but
 * lies inside what bridge2 ÷ bridge spanned is noise, not a finding about truss.
 */
export function verdict(ratio: number, aaMin: number, aaMax: number, higherIsBetter: boolean): string {
  const band = `A/A ${aaMin.toFixed(2)}–${aaMax.toFixed(2)}`;
  if (higherIsBetter ? ratio >= 1 : ratio <= 1) return 'met';
  if (ratio >= aaMin && ratio <= aaMax) return `within noise (${band})`;
  if (higherIsBetter ? ratio >= 0.95 : ratio <= 1.05)
    return `within ${higherIsBetter ? 'floor 0.95' : '1.05'}, outside ${band}`;
  return `missed, outside ${band}`;
}

function ratioRows(r: Results): { lines: string[]; facts: Record<string, RatioFacts> } {
  const rows: string[][] = [['measure', 'network', 'n', 'median', 'min–max', 'ratio ÷ bridge', 'target', 'verdict']];
  const facts: Record<string, RatioFacts> = {};
  const add = (key: string, label: string, get: (s: CondSamples) => number[], higherIsBetter: boolean) => {
    const [t, b, b2, rt] = [stats(get(r.truss)), stats(get(r.bridge)), stats(get(r.bridge2)), stats(get(r.routed))];
    const ratio = t.median / b.median;
    const per = perRep(get(r.truss), get(r.bridge));
    const aaPer = perRep(get(r.bridge2), get(r.bridge));
    const [aaMin, aaMax] = [Math.min(...aaPer), Math.max(...aaPer)];
    const v = verdict(ratio, aaMin, aaMax, higherIsBetter);
    facts[key] = {
      ratio,
      paired: median(per),
      spread: `${f1(Math.min(...per))}–${f1(Math.max(...per))}`,
      aa: b2.median / b.median,
      aaMin,
      aaMax,
      verdict: v,
    };
    const target = higherIsBetter ? '≥ 1.00' : '≤ 1.00';
    rows.push([label, 'bridge', String(b.n), f1(b.median), range(b), '', '', '']);
    rows.push(['', 'bridge2 (A/A)', String(b2.n), f1(b2.median), range(b2), (b2.median / b.median).toFixed(3), '', '']);
    rows.push(['', 'truss', String(t.n), f1(t.median), range(t), ratio.toFixed(3), target, v]);
    const rRatio = rt.median / b.median;
    const rPer = perRep(get(r.routed), get(r.bridge));
    const rv = verdict(rRatio, aaMin, aaMax, higherIsBetter);
    facts[`${key}Routed`] = {
      ratio: rRatio,
      paired: median(rPer),
      spread: `${f1(Math.min(...rPer))}–${f1(Math.max(...rPer))}`,
      aa: b2.median / b.median,
      aaMin,
      aaMax,
      verdict: rv,
    };
    rows.push(['', 'truss routed', String(rt.n), f1(rt.median), range(rt), rRatio.toFixed(3), target, rv]);
  };
  add('tcp1', 'TCP throughput, 1 stream (Gbit/s)', (s) => s.gbps1, true);
  add('tcp4', 'TCP throughput, 4 streams (Gbit/s)', (s) => s.gbps4, true);
  add('rrRate', `TCP request/response, ${MSG_SIZE} B (round trips/s)`, (s) => s.rr.map((x) => x.perSecond), true);
  add('rrP99', 'TCP request/response, p99 RTT (µs)', (s) => s.rr.map((x) => x.p99us), false);
  add('rrP50', 'TCP request/response, p50 RTT (µs)', (s) => s.rr.map((x) => x.p50us), false);
  return { lines: markdownTable(rows), facts };
}

/** One line per measure: paired truss ÷ bridge (median, min–max) beside the A/A band. */
const pairedLine = (facts: Record<string, RatioFacts>): string =>
  Object.entries(facts)
    .map(
      ([k, f]) =>
        `${k} ${f.paired.toFixed(3)} (${f.spread}; A/A ${f.aa.toFixed(3)}, per rep ${f.aaMin.toFixed(2)}–${f.aaMax.toFixed(2)})`,
    )
    .join(', ');

interface Load {
  readonly loadavg: string;
  readonly dockerds: string;
  /** highest 1-minute load average seen after a repetition (set on the `after` sample) */
  readonly peak1?: number;
}
async function load(): Promise<Load> {
  const n = (await run(['pgrep', '-c', '-x', 'dockerd'])).stdout.trim() || '0';
  const now = {
    loadavg: loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
    dockerds: n,
  };
  return load1.length === 0 ? now : { ...now, peak1: Math.max(...load1) };
}

async function writeDocs(
  lines: string[],
  env: Record<string, string>,
  work: Record<string, string>,
  ratios: Record<string, RatioFacts>,
  ld: { before: Load; after: Load },
  summary: object,
): Promise<void> {
  const facts = Object.entries(env).filter(([k]) => k.startsWith('truss ') || k.startsWith('bridge '));
  const section = [
    '## Same host',
    '',
    `\`npm run bench:host\` (bench/host.ts), ${new Date().toISOString().slice(0, 10)}, commit ${env.commit}.`,
    `${REPS} repetitions per network, networks rotated${PIN ? ', clients on CPU 0 and servers on CPU 1' : ''}; median and min–max. Kernel ${env.kernel}; CPU ${env.cpu};`,
    `dockerd ${env.docker}; ${env.iperf3}; ${env.sockperf}; Node ${env.node}.`,
    `br_netfilter ${env.brNetfilter} (bridge-nf-call: ${env.bridgeNfCall}).`,
    `Machine load (shared, noisy: others' tests and benchmarks ran meanwhile): load average ${ld.before.loadavg} before,`,
    `${ld.after.loadavg} after, 1-minute peak ${f1(ld.after.peak1 ?? Number.NaN)} (2 cores); ${ld.before.dockerds} → ${ld.after.dockerds} dockerd processes on the machine.`,
    '',
    ...lines,
    '',
    '- One simulated host (network namespace with its own dockerd and truss); a truss network (`-d truss --ipam-driver truss`)',
    "  and two networks of Docker's bridge driver (`bridge`, and `bridge2` as the A/A control), each with a server container",
    '  (iperf3 -s, sockperf sr) and a client container.',
    `- Throughput: iperf3 -t ${SECONDS}${SECONDS > 2 ? ' -O 1' : ''}, client → server, -P 1 and -P 4 (sum).`,
    `- Request/response: sockperf ping-pong --tcp -m ${MSG_SIZE} --full-rtt -t ${RR_SECONDS} (one message in flight; the rate is`,
    '  round trips per second of its valid period; latency is the full round trip). For latency the ratio is truss ÷ bridge',
    '  too, so below 1 is better.',
    '- A/A control: bridge2 ÷ bridge is a ratio of two identical paths, so its spread over the repetitions is what the',
    '  machine\'s noise alone does to a ratio. A truss ratio short of its target but inside that band is "within noise".',
    "  (bridge2 was created after bridge, so Docker put its iptables FORWARD rules above bridge's: 4 rule tests fewer.)",
    `- Ratios of back-to-back pairs (median, and min–max, of per-repetition truss ÷ bridge; then bridge2 ÷ bridge of the`,
    `  medians and its per-repetition min–max): ${pairedLine(ratios)}.`,
    "- MTU and offloads (`ethtool -k`) of the bridges, the host ends of the veths and the server container's eth0:",
    ...facts.map(([k, v]) => `  - ${k}: ${v}`),
    '- Per-packet netfilter work in the host after the run (rule counts; iptables FORWARD counters):',
    ...Object.entries(work).map(([k, v]) => `  - ${k}: ${v}`),
    '',
  ].join('\n');
  writeDocSection(section);
  await writeResultsJson('host', summary);
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const before = await load();
  host = await startHost(SMOKE ? 'hsmoke' : 'hbench');
  try {
    await host.startTruss(TRUSS_OPTS);
    const ips = await setup();
    jumpBefore = SMOKE ? await jumpPosition() : await settleJump();
    const r = Object.fromEntries(CONDS.map((c) => [c, { gbps1: [], gbps4: [], rr: [] }])) as unknown as Results;
    process.stderr.write(
      `bench/host: ${REPS} reps, iperf ${SECONDS} s, sockperf ${RR_SECONDS} s${PIN ? ', pinned' : ''}${SMOKE ? ' (smoke)' : ''}\n`,
    );
    await measure(ips, r);
    const after = await load();
    const env = await environment();
    const work = await perPacketWork();
    const { lines, facts } = ratioRows(r);
    const out = [
      '',
      `SAME-HOST BENCHMARK${SMOKE ? ' (smoke: figures mean nothing)' : ''}`,
      `kernel ${env.kernel}; CPU ${env.cpu}; br_netfilter ${env.brNetfilter} (${env.bridgeNfCall})`,
      `load average ${before.loadavg} -> ${after.loadavg} (1-min peak ${f1(after.peak1 ?? Number.NaN)}); dockerd processes ${before.dockerds} -> ${after.dockerds}`,
      ...lines,
      `paired ratios (median, min–max of per-repetition truss ÷ bridge; A/A bridge2 ÷ bridge): ${pairedLine(facts)}`,
      ...Object.entries(env)
        .filter(([k]) => k.startsWith('truss ') || k.startsWith('bridge '))
        .map(([k, v]) => `${k}: ${v}`),
      ...Object.entries(work).map(([k, v]) => `${k}: ${v}`),
      `(${((performance.now() - t0) / 1000).toFixed(0)} s)`,
      '',
    ];
    process.stdout.write(out.join('\n'));
    if (!SMOKE) {
      const summary = {
        date: new Date().toISOString(),
        environment: env,
        load: { before, after },
        parameters: { reps: REPS, iperfSeconds: SECONDS, rrSeconds: RR_SECONDS, msgSize: MSG_SIZE, pinned: PIN },
        ratios: facts,
        targets: { tcp1: '>= 1.00 (floor 0.95)', tcp4: '>= 1.00 (floor 0.95)', rrRate: '>= 1.00', rrP99: '<= 1.00' },
        perPacketWork: work,
        samples: r,
      };
      await writeDocs(lines, env, work, facts, { before, after }, summary);
      process.stdout.write('wrote docs/benchmarks.md (Same host) and bench/results/host.json\n');
    }
  } finally {
    await host.stop();
  }
}

await main();
