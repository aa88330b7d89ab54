/**
 * How the issue 18 summary (bench/summary.ts) judges a figure against its target, and the
 * small text helpers it needs: pure, so that test/bench-summary.test.ts can hold them.
 *
 * A verdict is "met" when the figure satisfies the target; "within noise" when it does not but
 * the run's A/A band (the spread of a ratio of two identical paths, e.g. bench/host.ts's
 * bridge2 ÷ bridge per repetition) covers the target: placed around the figure, the band
 * reaches it, i.e. figure ÷ target lies inside the band. With a target of 1.00 that is
 * bench/host.ts's own rule (the ratio inside the A/A band). Otherwise "missed"; and a figure
 * no results file holds is "not run".
 */

export type Op = '≥' | '≤' | '<';

export interface Goal {
  readonly op: Op;
  readonly value: number;
}

/** min and max of a run's A/A ratios (two identical paths): what noise alone did to a ratio */
export interface Band {
  readonly min: number;
  readonly max: number;
}

/** The band of a bench with one A/A ratio `aa` (not one per repetition): noise may have gone either way. */
export const aaBand = (aa: number): Band => ({ min: Math.min(aa, 1 / aa), max: Math.max(aa, 1 / aa) });

export type Verdict = 'met' | 'within noise' | 'missed' | 'not run';

export const satisfies = (x: number, g: Goal): boolean =>
  g.op === '≥' ? x >= g.value : g.op === '≤' ? x <= g.value : x < g.value;

/** The verdict of one figure (undefined: not measured) against its goal and, if the bench has one, its A/A band. */
export function judge(value: number | undefined, goal: Goal, band?: Band): Verdict {
  if (value === undefined || !Number.isFinite(value)) return 'not run';
  if (satisfies(value, goal)) return 'met';
  if (band && Number.isFinite(band.min) && Number.isFinite(band.max)) {
    const off = value / goal.value;
    if (off >= band.min && off <= band.max) return 'within noise';
  }
  return 'missed';
}

/** One figure of a row: `label` names it when a row has several (1 and 4 streams; growth, RSS, pass). */
export interface Part {
  readonly label: string;
  readonly value: number | undefined;
  readonly goal: Goal;
  readonly band?: Band | undefined;
  readonly format: (x: number) => string;
}

const RANK: Record<Verdict, number> = { met: 0, 'within noise': 1, missed: 2, 'not run': 3 };

const bandText = (b: Band): string => `A/A ${b.min.toFixed(2)}–${b.max.toFixed(2)}`;

/**
 * A row's verdict from its parts: one word when they agree ("within noise" with its band),
 * else each part's own, worst first ("missed: RSS; met: attach growth, full pass").
 */
export function rowVerdict(parts: readonly Part[]): string {
  const v = parts.map((p) => ({ p, v: judge(p.value, p.goal, p.band) }));
  const word = (x: Verdict, ps: readonly Part[]): string => {
    const b = ps.find((p) => p.band)?.band;
    return x === 'within noise' && b ? `within noise (${bandText(b)})` : x;
  };
  const kinds = [...new Set(v.map((x) => x.v))].sort((a, b) => RANK[b] - RANK[a]);
  if (kinds.length === 1) return word(kinds[0] as Verdict, parts);
  return kinds
    .map((k) => {
      const ps = v.filter((x) => x.v === k).map((x) => x.p);
      return `${word(k, ps)}: ${ps.map((p) => p.label).join(', ')}`;
    })
    .join('; ');
}

/** A part's figure as the measured cell shows it ("not run" where absent). */
export const measured = (p: Part): string =>
  p.value === undefined || !Number.isFinite(p.value) ? 'not run' : p.format(p.value);

export const ratio3 = (x: number): string => x.toFixed(3);
export const ms = (x: number): string => `${x.toFixed(x >= 100 ? 0 : 1)} ms`;
export const mib = (x: number): string => `${x.toFixed(0)} MiB`;

/** GitHub's heading anchor (as test/docs-links.test.ts computes it): lower case, punctuation dropped, spaces hyphens. */
export const slug = (heading: string): string =>
  heading
    .replace(/^#+\s+/, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/ /g, '-');

/** The heading line of the `## ` section `prefix` names ("## Scale" is not "## Scale: 5,000 endpoints"). */
export function findHeading(doc: string, prefix: string): string | undefined {
  return doc.split('\n').find((l) => l === prefix || l.startsWith(`${prefix} `));
}

/** "2026-12-07 03:35" (UTC) from an ISO date, or undefined. */
export function shortDate(iso: string | undefined): string | undefined {
  if (iso === undefined || Number.isNaN(Date.parse(iso))) return undefined;
  return new Date(iso).toISOString().slice(0, 16).replace('T', ' ');
}

/** Where a row's figures came from: the results file, its run's date and commit. */
export interface Origin {
  readonly file: string;
  readonly date?: string | undefined;
  readonly commit?: string | undefined;
  /** the machine's 1-minute load average before (and after) the run, where the benchmark records it */
  readonly load?: string | undefined;
}

/** At most this far apart, results of the same commit count as one `npm run bench` (a full run takes hours). */
export const ONE_RUN_HOURS = 12;

/**
 * Whether the measured rows come from one run (one commit, dates within ONE_RUN_HOURS) or
 * several, as one sentence; `notRun` rows are counted apart.
 */
export function runLine(origins: readonly Origin[], notRun: number): string {
  const tail = notRun > 0 ? ` ${notRun} row${notRun === 1 ? '' : 's'} not run.` : '';
  if (origins.length === 0) return `No figures yet: every row is not run.`;
  const commits = [...new Set(origins.map((o) => o.commit ?? '?'))];
  const times = origins.flatMap((o) => (o.date && !Number.isNaN(Date.parse(o.date)) ? [Date.parse(o.date)] : []));
  const [lo, hi] = [Math.min(...times), Math.max(...times)];
  const span = times.length === 0 ? Number.NaN : (hi - lo) / 3_600_000;
  const when =
    times.length === 0
      ? 'undated'
      : `${shortDate(new Date(lo).toISOString())} to ${shortDate(new Date(hi).toISOString())} UTC`;
  const n = `${origins.length} measured row${origins.length === 1 ? '' : 's'}`;
  if (commits.length === 1 && span <= ONE_RUN_HOURS) {
    return `One run: the ${n} come from commit ${commits[0]}, ${when} (${span.toFixed(1)} h apart at most).${tail}`;
  }
  const why = commits.length > 1 ? `${commits.length} commits (${commits.join(', ')})` : `commit ${commits[0]}`;
  return (
    `Several runs, not one: the ${n} come from ${why}, ${when}; issue 18 wants them from one quiet run of ` +
    `\`npm run bench\`.${tail}`
  );
}
