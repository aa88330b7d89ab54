/**
 * The issue 18 targets table (bench/summary.ts writes it): one row per target of the issue,
 * each read from the bench/results/*.json its benchmark writes, keyed to the current writers'
 * shapes (bench/host.ts, start.ts, cluster.ts with cluster-vxlan-report.ts, scale.ts, converge.ts).
 * A results file from an older run may lack a figure (older shape): that figure is "not run",
 * never guessed from a field that meant something else then. Pure: parsed JSON in, text out.
 */
import { median } from '../e2e/harness/figures.ts';
import { markdownTable } from './lib.ts';
import {
  aaBand,
  type Band,
  findHeading,
  type Goal,
  judge,
  measured,
  mib,
  ms,
  type Origin,
  type Part,
  ratio3,
  rowVerdict,
  runLine,
  shortDate,
  slug,
} from './summary-judge.ts';

/** Parsed bench/results/<name>.json by name ("host", "scale-5k"); absent when the file is. */
export type Results = Readonly<Record<string, unknown>>;

/** The value at `path` inside parsed JSON, or undefined. */
export function at(o: unknown, ...path: readonly string[]): unknown {
  let v = o;
  for (const k of path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}
const num = (o: unknown, ...path: readonly string[]): number | undefined => {
  const v = at(o, ...path);
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
};
const str = (o: unknown, ...path: readonly string[]): string | undefined => {
  const v = at(o, ...path);
  return typeof v === 'string' ? v : undefined;
};
const nums = (o: unknown, ...path: readonly string[]): number[] =>
  ((at(o, ...path) as unknown[] | undefined) ?? []).filter((x): x is number => typeof x === 'number');
const medianOf = (v: readonly number[]): number | undefined => (v.length === 0 ? undefined : median(v));
const band = (min: number | undefined, max: number | undefined): Band | undefined =>
  min === undefined || max === undefined ? undefined : { min, max };
const quotient = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined || b === 0 ? undefined : a / b;

export interface Row {
  /** the issue's own words, and its target */
  readonly measure: string;
  readonly target: string;
  readonly parts: readonly Part[];
  /** the measured cell from the parts' figures, laid out as the target is (default: joined by " / ") */
  readonly layout?: (cells: readonly string[]) => string;
  readonly origin: Origin;
  /** whether the results file exists at all */
  readonly present: boolean;
  /** the `## ` heading (or its start) of the section with the details */
  readonly section: string;
  /** set when the file measured something else than the target names (other endpoint or host counts) */
  readonly offScope?: string | undefined;
  /** where the figure comes from, for the notes */
  readonly from: string;
}

const GE = (value: number): Goal => ({ op: '≥', value });
const LE = (value: number): Goal => ({ op: '≤', value });
const LT = (value: number): Goal => ({ op: '<', value });

/** "7.82 → 20.23" from load-average strings ("7.82 13.16 13.04": the 1-minute figure), undefined when not recorded. */
export function loadText(before: string | undefined, after: string | undefined): string | undefined {
  const one = (s: string | undefined) => s?.trim().split(/\s+/)[0];
  const [b, a] = [one(before), one(after)];
  if (b === undefined) return undefined;
  return a === undefined ? b : `${b} → ${a}`;
}

/** Each writer records the load somewhere else, if at all (cluster.json does not). */
const LOAD: Record<string, (j: unknown) => string | undefined> = {
  host: (j) => loadText(str(j, 'load', 'before', 'loadavg'), str(j, 'load', 'after', 'loadavg')),
  scale: (j) => loadText(str(j, 'parameters', 'loadAverageBefore'), undefined),
  'scale-5k': (j) => loadText(str(j, 'parameters', 'loadAverageBefore'), undefined),
  converge: (j) => loadText(str(j, 'environment', 'loadBefore'), str(j, 'environment', 'loadAfter')),
  start: (j) => loadText(str(j, 'environment', 'loadBefore'), str(j, 'environment', 'loadAfter')),
};

const origin = (r: Results, name: string): Origin => ({
  file: `${name}.json`,
  date: str(r[name], 'date'),
  commit: str(r[name], 'environment', 'commit'),
  load: LOAD[name]?.(r[name]),
});

function hostRows(r: Results): Row[] {
  const h = r.host;
  const part = (label: string, key: string, goal: Goal): Part => ({
    label,
    value: num(h, 'ratios', key, 'ratio'),
    goal,
    band: band(num(h, 'ratios', key, 'aaMin'), num(h, 'ratios', key, 'aaMax')),
    format: ratio3,
  });
  const common = { origin: origin(r, 'host'), present: h !== undefined, section: '## Same host' };
  return [
    {
      measure: 'same-host TCP throughput, routed ÷ Docker bridge (1 and 4 streams)',
      target: '≥ 1.05',
      parts: [part('1 stream', 'tcp1Routed', GE(1.05)), part('4 streams', 'tcp4Routed', GE(1.05))],
      from: 'host.json ratios.tcp1Routed, tcp4Routed: ratio of the medians, A/A band aaMin–aaMax (bridge2 ÷ bridge per repetition)',
      ...common,
    },
    {
      measure: 'same-host request/response rate, routed ÷ Docker bridge',
      target: '≥ 1.10',
      parts: [part('rate', 'rrRateRouted', GE(1.1))],
      from: 'host.json ratios.rrRateRouted (sockperf round trips/s), same A/A band',
      ...common,
    },
  ];
}

function clusterRows(r: Results): Row[] {
  const c = r.cluster;
  const vx = at(c, 'vxlan');
  const one = (value: number | undefined, goal: Goal): Part[] => [{ label: 'ratio', value, goal, format: ratio3 }];
  return [
    {
      measure: 'cross-host WireGuard, truss (routed) ÷ bare tunnel of the same implementation',
      target: '≥ 0.97',
      parts: one(num(c, 'ratios', 'trussRoutedOverBarePaired'), GE(0.97)),
      origin: origin(r, 'cluster'),
      present: c !== undefined,
      section: '## Multi-host',
      from: 'cluster.json ratios.trussRoutedOverBarePaired: median of per-repetition trussRouted ÷ bare (newest wireguard-go)',
    },
    {
      measure: 'cross-host VXLAN, truss (routed) ÷ bare VXLAN device',
      target: '≥ 0.95',
      parts: one(num(vx, 'ratios', 'trussRoutedOverBarePaired'), GE(0.95)),
      // the vxlan member has its own run (a --part vxlan run replaces only it)
      origin: { file: 'cluster.json vxlan', date: str(vx, 'date'), commit: str(vx, 'commit') },
      present: vx !== undefined,
      section: '## Unencrypted cluster networks',
      from: 'cluster.json vxlan.ratios.trussRoutedOverBarePaired: median of per-repetition trussRouted ÷ bare',
    },
  ];
}

function startRows(r: Results): Row[] {
  const s = at(r.start, 'summary');
  const one = (label: string, value: number | undefined, goal: Goal, format = ratio3, aa?: number): Part => ({
    label,
    value,
    goal,
    format,
    ...(aa !== undefined ? { band: aaBand(aa) } : {}),
  });
  const aa = (k: string): number | undefined => num(s, 'aa', k);
  const common = { origin: origin(r, 'start'), present: r.start !== undefined, section: '## Container start' };
  return [
    {
      measure: 'CreateEndpoint + Join p50 with the guard on',
      target: '< 10 ms (p99 < 20 ms)',
      parts: [
        one('p50', num(s, 'plugin', 'createPlusJoin', 'median'), LT(10), ms),
        one('p99', num(s, 'plugin', 'createPlusJoin', 'p99'), LT(20), (x) => `p99 ${ms(x)}`),
      ],
      layout: ([p50, p99]) => `${p50} (${p99})`,
      from: 'start.json summary.plugin.createPlusJoin median and p99 (debug-log durationMs, guard on as by default)',
      ...common,
    },
    {
      measure: 'Leave + DeleteEndpoint p50',
      target: '< 10 ms',
      parts: [one('p50', num(s, 'plugin', 'leavePlusDelete', 'median'), LT(10), ms)],
      from: 'start.json summary.plugin.leavePlusDelete median',
      ...common,
    },
    {
      measure: 'whole `docker run --rm` lifecycle, truss ÷ bridge',
      target: '≤ 1.00',
      parts: [one('p50', num(s, 'ratios', 'lifecycle'), LE(1), ratio3, aa('lifecycle'))],
      from: 'start.json summary.ratios.lifecycle (p50 ÷ p50), A/A band from summary.aa.lifecycle (bridge2 ÷ bridge, either way from 1)',
      ...common,
    },
    {
      measure: '`docker run` → first TCP connect, truss ÷ bridge, p50',
      target: '≤ 1.00',
      parts: [one('p50', num(s, 'ratios', 'p50'), LE(1), ratio3, aa('p50'))],
      from: 'start.json summary.ratios.p50, A/A band from summary.aa.p50',
      ...common,
    },
    {
      measure: "burst of 50, p99 truss ÷ Docker's bridge",
      target: '≤ 1.0',
      // from the bursts, not ratios.burst: in older start.json that was burst p99 ÷ single p99
      parts: [
        one(
          'p99',
          quotient(num(s, 'bursts', 'truss', 'connect', 'p99'), num(s, 'bursts', 'bridge', 'connect', 'p99')),
          LE(1),
          ratio3,
          aa('burst'),
        ),
      ],
      offScope: offCount(num(r.start, 'parameters', 'burst'), 50, 'a burst of'),
      from: 'start.json summary.bursts.{truss,bridge}.connect.p99, A/A band from summary.aa.burst',
      ...common,
    },
  ];
}

/** "a burst of 20" when the file measured `n` instead of `want` (undefined: as the target says, or unknown). */
function offCount(n: number | undefined, want: number, what: string): string | undefined {
  return n === undefined || n === want ? undefined : `${what} ${n.toLocaleString('en-US')}`;
}

function scaleRows(r: Results): Row[] {
  const s1 = r.scale;
  const s5 = r['scale-5k'];
  return [
    {
      measure: '`truss status` at 1,000 endpoints',
      target: '< 150 ms',
      parts: [{ label: 'status', value: medianOf(nums(s1, 'samples', 'statusCliMs')), goal: LT(150), format: ms }],
      origin: origin(r, 'scale'),
      present: s1 !== undefined,
      section: '## Scale',
      offScope: offCount(num(s1, 'parameters', 'endpoints'), 1000, 'at'),
      from: 'scale.json median of samples.statusCliMs (the CLI, Node start-up included)',
    },
    {
      measure: '5,000 endpoints: attach growth / RSS / full pass',
      target: '≤ 1.2 / < 200 MiB / < 1 s',
      parts: [
        { label: 'attach growth', value: num(s5, 'summary', 'ratio'), goal: LE(1.2), format: ratio3 },
        { label: 'RSS', value: num(s5, 'summary', 'memory', 'rssMiB'), goal: LT(200), format: mib },
        {
          label: 'full pass',
          value: medianOf(nums(s5, 'samples', 'reconcilePassMs')),
          goal: LT(1000),
          format: (x) => `${(x / 1000).toFixed(2)} s`,
        },
      ],
      origin: origin(r, 'scale-5k'),
      present: s5 !== undefined,
      section: '## Scale: 5,000 endpoints',
      offScope: offCount(num(s5, 'parameters', 'endpoints'), 5000, 'at'),
      from: 'scale-5k.json summary.ratio (attach p50 last 500 ÷ first 500), summary.memory.rssMiB, median of samples.reconcilePassMs',
    },
  ];
}

function convergeRow(r: Results): Row {
  const c = r.converge;
  const aa = ((at(c, 'summary', 'perCount') as unknown[] | undefined) ?? []).flatMap((p) => {
    const x = num(p, 'aa');
    return x === undefined ? [] : [x];
  });
  const counts = nums(c, 'parameters', 'counts');
  const [lo, hi] = [Math.min(...counts), Math.max(...counts)];
  return {
    measure: 'convergence, 20 hosts ÷ 2 hosts',
    target: '≤ 1.5',
    parts: [
      {
        label: 'growth',
        value: num(c, 'summary', 'growth'),
        goal: LE(1.5),
        band: aa.length > 0 ? { min: Math.min(...aa), max: Math.max(...aa) } : undefined,
        format: ratio3,
      },
    ],
    origin: origin(r, 'converge'),
    present: c !== undefined,
    section: '## Convergence: 2 to 20 hosts',
    offScope: counts.length === 0 || (lo === 2 && hi === 20) ? undefined : `${hi} ÷ ${lo} hosts`,
    from: 'converge.json summary.growth (p50 at the most hosts ÷ at the fewest), A/A band over summary.perCount[].aa (round 1 ÷ round 2)',
  };
}

/** Issue 18's table, row for row, in its order. */
export const targetRows = (r: Results): Row[] => [
  ...hostRows(r),
  ...clusterRows(r),
  ...startRows(r),
  ...scaleRows(r),
  convergeRow(r),
];

const hasFigure = (row: Row): boolean => row.parts.some((p) => judge(p.value, p.goal) !== 'not run');

function runCell(row: Row): string {
  const o = row.origin;
  const run = `${shortDate(o.date) ?? 'undated'}, ${o.commit ?? 'commit ?'}${o.load ? `, load ${o.load}` : ''}`;
  if (hasFigure(row)) return run;
  return row.present ? `not in ${o.file} (${run})` : `no ${o.file}`;
}

function verdictCell(row: Row): string {
  if (!hasFigure(row)) return 'not run';
  return row.offScope ? `not comparable (measured ${row.offScope})` : rowVerdict(row.parts);
}

function measuredCell(row: Row): string {
  if (!hasFigure(row)) return 'not run';
  return (row.layout ?? ((cells) => cells.join(' / ')))(row.parts.map(measured));
}

/** The `## Targets (issue 18)` section: the run line, the table, and where each figure comes from. */
export function renderSection(rows: readonly Row[], doc: string): string {
  const link = (row: Row): string => {
    const h = findHeading(doc, row.section);
    return h === undefined ? '—' : `[${row.section.replace(/^## /, '')}](#${slug(h)})`;
  };
  const measuredRows = rows.filter(hasFigure);
  const table = markdownTable([
    ['measure', 'measured', 'target', 'verdict', 'run (UTC), commit, load', 'details'],
    ...rows.map((row) => [row.measure, measuredCell(row), row.target, verdictCell(row), runCell(row), link(row)]),
  ]);
  return [
    '## Targets (issue 18)',
    '',
    '`npm run bench:summary` (bench/summary.ts, the last step of `npm run bench`) fills this table from bench/results/*.json:',
    "each of issue 18's targets with the figure measured, the verdict, the run that measured it and the section with the details.",
    '',
    runLine(
      measuredRows.map((r) => r.origin),
      rows.length - measuredRows.length,
    ),
    '',
    ...table,
    '',
    '- Verdicts: met; missed; within noise when the figure misses its target but the A/A band of its run covers the target',
    '  (figure ÷ target inside the band the same ratio of two identical paths spanned, as bench/host.ts judges); not run',
    '  when no results file holds the figure (a file from an older run may predate it). bench/host.ts, bench/start.ts',
    '  (its ratios: a second Docker bridge network) and bench/converge.ts run an A/A control: the other rows are met or',
    '  missed on the figure alone. A single A/A ratio (bench/start.ts) is a band either way from 1.',
    "- Load: the machine's 1-minute load average before → after the run (2 cores), where the benchmark records it",
    '  (bench/cluster.ts does not); a quiet run is what issue 18 asks for.',
    '- Figures, from the results files:',
    ...rows.map((row) => `  - ${row.measure}: ${row.from}.`),
    '',
  ].join('\n');
}
