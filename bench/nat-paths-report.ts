/**
 * The hosts-behind-NAT benchmark's report (bench/nat-paths.ts measures): the sample types, the
 * per-path table (ratios to the direct public path of the same repetition, beside the A/A
 * control's), the fail-over table, and its section of docs/benchmarks.md.
 */
import { f1, markdownTable, range, stats, writeDocSection } from './lib.ts';

/** directAA: the direct public path measured a second time in the same repetition (the A/A control) */
export type PathKey = 'direct' | 'directAA' | 'learned' | 'punched' | 'relayed';
/** the NATs while the paths were measured: both endpoint-independent, or natd port-dependent */
export type Phase = 'independent' | 'dependent';

export const PATH_LABEL: Record<PathKey, string> = {
  direct: 'direct public (pa → pb)',
  directAA: 'direct public again, A/A (pa → pb)',
  learned: 'learned NAT (pa → nc)',
  punched: 'hole-punched (nc → nd)',
  relayed: 'relayed (nc → nd)',
};
export const PHASE_LABEL: Record<Phase, string> = {
  independent: 'both NATs endpoint-independent',
  dependent: 'natd port-dependent',
};

export interface PathSample {
  readonly phase: Phase;
  readonly rep: number;
  readonly path: PathKey;
  /** median RTT of the pings (ms), and how many got no reply */
  readonly rttMs: number;
  readonly pingsLost: number;
  /** iperf3 TCP, Gbit/s */
  readonly gbps: number;
  /** ms the path took to show the expected kind before the run (0: it did at once) */
  readonly waitedMs: number;
  /** relayed: the relay's host */
  readonly via?: string;
}

export interface FailOverSample {
  /** the relay cut off, and the one the pair moved to */
  readonly relay: string;
  readonly other: string;
  /** ms from the cut until nc's status named the other relay */
  readonly chosenMs: number;
  /** longest gap of the ping nc → nd (ms), and its replies lost */
  readonly gapMs: number;
  readonly lost: number;
  /** the link back up: the relay that wins with both up, ms until both ends named it and until TCP from nc reached nd */
  readonly backTo?: string;
  readonly backMs?: number;
  readonly backPassMs?: number;
  /** the longest gap of the ping nc → nd meanwhile */
  readonly backGapMs?: number;
  /** TCP from nc did not reach nd within NatParams.failBackMs: what the relay showed of nd then */
  readonly stalled?: string;
}

export interface NatResults {
  readonly samples: readonly PathSample[];
  readonly failOvers: readonly FailOverSample[];
}

export interface NatParams {
  readonly reps: number;
  readonly seconds: number;
  readonly pings: number;
  readonly failOvers: number;
  readonly probeMs: number;
  readonly failBackMs: number;
}

/** A path's figure over the repetitions: its median and min–max of the per-repetition ratios to direct. */
export interface Ratio {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}
export interface PathSummary {
  readonly phase: Phase;
  readonly rttMs: number;
  readonly gbps: number;
  readonly rtt: Ratio;
  readonly tcp: Ratio;
}

const of = (s: readonly PathSample[], phase: Phase, path: PathKey) =>
  s.filter((x) => x.phase === phase && x.path === path).sort((a, b) => a.rep - b.rep);

/** Per-repetition x ÷ direct of the same repetition and phase. */
function paired(s: readonly PathSample[], phase: Phase, path: PathKey, k: 'rttMs' | 'gbps'): Ratio {
  const base = new Map(of(s, phase, 'direct').map((x) => [x.rep, x[k]]));
  const per = of(s, phase, path).flatMap((x) => (base.has(x.rep) ? [x[k] / (base.get(x.rep) as number)] : []));
  const st = stats(per);
  return { median: st.median, min: st.min, max: st.max };
}

const PHASE_PATHS: Record<Phase, readonly PathKey[]> = {
  independent: ['direct', 'directAA', 'learned', 'punched'],
  dependent: ['direct', 'directAA', 'relayed'],
};

export function summarize(r: NatResults): Record<string, PathSummary> {
  const out: Record<string, PathSummary> = {};
  for (const phase of ['independent', 'dependent'] as const) {
    for (const path of PHASE_PATHS[phase]) {
      const s = of(r.samples, phase, path);
      if (s.length === 0) continue;
      out[`${phase}.${path}`] = {
        phase,
        rttMs: stats(s.map((x) => x.rttMs)).median,
        gbps: stats(s.map((x) => x.gbps)).median,
        rtt: paired(r.samples, phase, path, 'rttMs'),
        tcp: paired(r.samples, phase, path, 'gbps'),
      };
    }
  }
  return out;
}

const ratioCells = (x: Ratio, isBase: boolean): string[] =>
  isBase ? ['1', ''] : [x.median.toFixed(3), `${x.min.toFixed(2)}–${x.max.toFixed(2)}`];

function pathTable(r: NatResults): string[] {
  const rows = [
    [
      'path',
      'NATs',
      'n',
      'RTT ms',
      'min–max',
      'RTT ÷ direct',
      'per rep',
      'TCP Gbit/s',
      'min–max',
      'TCP ÷ direct',
      'per rep',
    ],
  ];
  for (const phase of ['independent', 'dependent'] as const) {
    for (const path of PHASE_PATHS[phase]) {
      const s = of(r.samples, phase, path);
      if (s.length === 0) continue;
      const [rtt, tcp] = [stats(s.map((x) => x.rttMs)), stats(s.map((x) => x.gbps))];
      const isBase = path === 'direct';
      rows.push([
        PATH_LABEL[path],
        PHASE_LABEL[phase],
        String(s.length),
        rtt.median.toFixed(3),
        `${rtt.min.toFixed(3)}–${rtt.max.toFixed(3)}`,
        ...ratioCells(paired(r.samples, phase, path, 'rttMs'), isBase),
        f1(tcp.median),
        range(tcp),
        ...ratioCells(paired(r.samples, phase, path, 'gbps'), isBase),
      ]);
    }
  }
  return markdownTable(rows);
}

/**
 * The A/A band (per-repetition direct again ÷ direct, both phases) and each path's ratio against
 * it: the band says how far from 1 two identical paths came out, either way, so a path whose
 * ratio is no further from 1 than that is within noise.
 */
function findings(r: NatResults): string[] {
  const aa = (k: 'rttMs' | 'gbps') => {
    const both = (['independent', 'dependent'] as const).map((p) => paired(r.samples, p, 'directAA', k));
    const [min, max] = [Math.min(...both.map((b) => b.min)), Math.max(...both.map((b) => b.max))];
    return { min, max, factor: Math.max(max, 1 / min) };
  };
  const [aaRtt, aaTcp] = [aa('rttMs'), aa('gbps')];
  const band = (b: { min: number; max: number; factor: number }) =>
    `${b.min.toFixed(2)}–${b.max.toFixed(2)} (up to ×${b.factor.toFixed(2)} either way)`;
  const where = (x: number, b: { factor: number }) =>
    x <= b.factor && x >= 1 / b.factor ? 'within A/A noise' : 'beyond A/A noise';
  const out = [
    `- A/A control (direct public measured twice per repetition; per-repetition ratio, both phases): RTT ${band(aaRtt)},`,
    `  TCP ${band(aaTcp)}: a path ratio no further from 1 than that is noise of this machine, not a property of the path.`,
  ];
  for (const [phase, path] of [
    ['independent', 'learned'],
    ['independent', 'punched'],
    ['dependent', 'relayed'],
  ] as const) {
    if (of(r.samples, phase, path).length === 0) continue;
    const [rtt, tcp] = [paired(r.samples, phase, path, 'rttMs'), paired(r.samples, phase, path, 'gbps')];
    out.push(
      `- ${PATH_LABEL[path]}: RTT ×${rtt.median.toFixed(2)} (${where(rtt.median, aaRtt)}), ` +
        `throughput ×${tcp.median.toFixed(2)} (${where(tcp.median, aaTcp)}) of the direct public path.`,
    );
  }
  const waited = r.samples.filter((x) => x.waitedMs > 0);
  if (waited.length > 0) {
    out.push(
      `- ${waited.length} run(s) found the path not yet of its kind and waited: ` +
        waited.map((x) => `${x.path} rep ${x.rep + 1} ${f1(x.waitedMs)} ms`).join(', '),
    );
  }
  const lost = r.samples.filter((x) => x.pingsLost > 0);
  if (lost.length > 0)
    out.push(`- pings lost: ${lost.map((x) => `${x.path} rep ${x.rep + 1}: ${x.pingsLost}`).join(', ')}`);
  return out;
}

function failOverTable(f: readonly FailOverSample[], p: NatParams): string[] {
  const rows = [['relay fail-over (nc ↔ nd relayed)', 'n', 'median', 'max', 'per round']];
  const row = (label: string, v: readonly (number | undefined)[], none = '-') => {
    const xs = v.filter((x): x is number => x !== undefined);
    const st = stats(xs);
    rows.push([
      label,
      String(st.n),
      f1(st.median),
      f1(st.max),
      v.map((x) => (x === undefined ? none : f1(x))).join(', '),
    ]);
  };
  row(
    'relay cut off → nc names the other relay (ms)',
    f.map((x) => x.chosenMs),
  );
  row(
    `longest gap of a ping nc → nd every ${p.probeMs} ms (ms)`,
    f.map((x) => x.gapMs),
  );
  row(
    'link back → both ends name it again (ms)',
    f.map((x) => x.backMs),
  );
  row(
    'link back → TCP nc → nd passes again (ms)',
    f.map((x) => x.backPassMs),
    `> ${p.failBackMs}`,
  );
  row(
    'longest ping gap nc → nd while moving back (ms)',
    f.map((x) => x.backGapMs),
  );
  return markdownTable(rows);
}

function failOverFindings(f: readonly FailOverSample[], p: NatParams): string[] {
  if (f.length === 0) return [];
  const cut = f.map((x) => `${x.relay} → ${x.other}`).join(', ');
  const same = f.length > 1 && f.every((x) => x.relay === f[0]?.relay && x.backTo === x.relay);
  const out = [
    `- Relay cut per round: ${cut}.${
      same
        ? ` The pair always came back to ${f[0]?.relay} once its link was up (rendezvous hashing over the pair` +
          '\n  prefers it whenever it is live), so the choice did not allow cutting the other relay in turn.'
        : ''
    }`,
    `- Replies lost during the fail-over: ${f.map((x) => x.lost).join(', ')}.`,
  ];
  const stalled = f.filter((x) => x.stalled !== undefined);
  if (stalled.length > 0) {
    out.push(
      `- Moving back stalled in ${stalled.length} of ${f.length} round(s): both ends named the restored relay, but TCP from nc`,
      `  (the only side sending) did not reach nd within ${p.failBackMs / 1000} s; then ${stalled.map((x) => x.stalled).join('; ')}.`,
      "  While cut off, the relay's lease lapsed and its own node record went; on reconnecting it re-created its",
      '  WireGuard peers (likely: computed from a view without its own record, then with it again). nd is behind a NAT,',
      '  a peer the relay only learns from what it sends, so it came back with no endpoint and no session, while nd',
      '  still had a session with the relay and sent only keepalives (which start no handshake). Nothing reaches nd',
      '  through the relay until nd sends data (15 s unanswered start a new handshake) or its session expires (180 s).',
    );
  }
  return out;
}

export function report(r: NatResults, p: NatParams): string[] {
  return [
    ...pathTable(r),
    '',
    ...findings(r),
    '',
    ...(r.failOvers.length > 0 ? [...failOverTable(r.failOvers, p), '', ...failOverFindings(r.failOvers, p)] : []),
  ];
}

export function writeDocs(lines: readonly string[], env: Record<string, string>, p: NatParams): void {
  const section = [
    '## Hosts behind NAT',
    '',
    `\`npm run bench:nat\` (bench/nat-paths.ts), ${new Date().toISOString().slice(0, 10)}, commit ${env.commit}.`,
    `Kernel ${env.kernel}; CPU ${env.cpu}; dockerd ${env.docker}; ${env.iperf3}; Node ${env.node}; WireGuard ${env.wireguard}.`,
    `Machine load (shared): load average ${env.loadBefore} before, ${env.loadAfter} after.`,
    '',
    ...lines,
    '',
    '- Topology (e2e/harness/nat-cluster.ts, as e2e/cluster-nat.e2e.ts): simulated hosts on one underlay bridge',
    `  (MTU ${env.underlayMtu}) with etcd; pa and pb on the underlay, both \`--relay\`; nc and nd each behind its own NAT`,
    '  router (a namespace masquerading with nftables, conntrack-only inbound), both at 198.18.241.2 on their LANs.',
    '  Every host runs `scripts/run.sh --store etcd://… --etcd-insecure` (+ `--relay`); one cluster network,',
    `  tunnel MTU ${env.tunnelMtu}; one container per host.`,
    `- Per path: RTT = median of ${p.pings} pings every 50 ms (busybox ping in the container), then TCP throughput =`,
    `  iperf3 -t ${p.seconds} from the first container to the second (docker exec). ${p.reps} repetitions; the paths of a`,
    '  phase run back to back in an order that rotates each repetition. Before each run the path must show its kind in',
    "  the sender's `truss status --json` (PATH column).",
    '- Ratios are to the direct public path of the same repetition and phase (median of the per-repetition ratios,',
    '  and their min–max): RTT ÷ direct above 1 is slower, TCP ÷ direct below 1 is slower.',
    '- Phases: first both NATs endpoint-independent (learned, hole-punched); then natd is switched to a port-dependent',
    '  mapping (a new outside port per destination, `masquerade fully-random`) and its conntrack flushed, which leaves',
    '  nc ↔ nd no hole to punch: relayed.',
    `- Fail-over, ${p.failOvers} round(s): with nc ↔ nd relayed, the relay both name is cut off the underlay (\`ip link`,
    `  set eth-ul down\`, etcd included: its lease lapses); a ping nc → nd every ${p.probeMs} ms from 2 s before the cut`,
    "  until both directions connect again gives the longest gap (a reply's arrival taken as its send time + RTT, so",
    '  late replies count too). Then the link is restored: ms until both ends name the relay that wins with both up',
    `  again, and until a TCP connect from nc reaches nd (a new attempt every 250 ms, given up after ${p.failBackMs / 1000} s:`,
    '  "stalled"), with the same ping meanwhile. Only nc sends then, as a client on nc would; before the next round',
    '  traffic from nd too must pass.',
    '- Raw samples: `bench/results/nat-paths.json`. Functional checks of the same paths (no fragmentation, nothing in',
    '  plaintext on the underlay) are in e2e/cluster-nat.e2e.ts.',
    '',
  ].join('\n');
  writeDocSection(section);
}
