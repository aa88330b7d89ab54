/**
 * What the benchmarks share: summary statistics, the markdown table they print, the machine
 * facts they record, and writing their section of docs/benchmarks.md and their
 * bench/results/<name>.json. Each benchmark owns one `## ` section of the doc and replaces
 * only that one.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { run } from '../e2e/harness/exec.ts';
import { median, percentile } from '../e2e/harness/figures.ts';
import type { Host } from '../e2e/harness/host.ts';
import { REPO_ROOT } from '../e2e/harness/paths.ts';

/** iperf3 -J output → received Gbit/s (the harness parses it for the e2e suites too). */
export { iperfGbps } from '../e2e/harness/traffic.ts';

export interface Stats {
  readonly n: number;
  readonly median: number;
  readonly p99: number;
  readonly min: number;
  readonly max: number;
}

export const stats = (v: readonly number[]): Stats => ({
  n: v.length,
  median: median(v),
  p99: percentile(v, 99),
  min: v.length > 0 ? Math.min(...v) : Number.NaN,
  max: v.length > 0 ? Math.max(...v) : Number.NaN,
});

/** 3 significant-ish digits: 0.52, 30.7, 456. */
export const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2) : 'n/a');
export const range = (s: Stats): string => `${f1(s.min)}–${f1(s.max)}`;

/** Which of two conditions goes first in repetition i: alternated, so a drift over time hits both alike. */
export const alternate = <T>(i: number, pair: readonly [T, T]): readonly [T, T] =>
  i % 2 === 0 ? pair : [pair[1], pair[0]];

/** The order of any number of conditions in repetition i: rotated, so each goes first (and last) equally often. */
export const rotate = <T>(i: number, conds: readonly T[]): readonly T[] => {
  const k = conds.length === 0 ? 0 : i % conds.length;
  return [...conds.slice(k), ...conds.slice(0, k)];
};

/** Rows (first = header) as an aligned markdown table. */
export function markdownTable(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length))) ?? [];
  const fmt = (row: readonly string[]) => `| ${row.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join(' | ')} |`;
  return [fmt(rows[0] ?? []), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(fmt)];
}

/** Facts every benchmark records: kernel, CPU, Node, and the commit measured (flagged when src/ was modified). */
export async function machineFacts(): Promise<{ kernel: string; cpu: string; node: string; commit: string }> {
  const git = (args: readonly string[]) => run(['git', '-C', REPO_ROOT, ...args]);
  const dirty = (await git(['status', '--porcelain', '--', 'src'])).stdout.trim() !== '';
  return {
    kernel: (await run(['uname', '-r'])).stdout.trim(),
    cpu: `${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores)`,
    node: process.version,
    commit: `${(await git(['rev-parse', '--short', 'HEAD'])).stdout.trim()}${dirty ? ' (src/ modified)' : ''}`,
  };
}

const OFFLOADS = [
  'tx-checksumming',
  'scatter-gather',
  'tcp-segmentation-offload',
  'generic-segmentation-offload',
  'generic-receive-offload',
];
const SHORT: Record<string, string> = {
  'tx-checksumming': 'tx-csum',
  'scatter-gather': 'sg',
  'tcp-segmentation-offload': 'tso',
  'generic-segmentation-offload': 'gso',
  'generic-receive-offload': 'gro',
};

/**
 * `ethtool -k` of a link in a host (or anything with a host's exec, e.g. a container's netns), as
 * "tx-csum on, sg on, tso off, ..." ('' without ethtool); `extra` features are appended by their full name.
 */
export async function offloads(h: Pick<Host, 'exec'>, dev: string, extra: readonly string[] = []): Promise<string> {
  const r = await h.exec(['ethtool', '-k', dev]);
  if (r.code !== 0) return `(ethtool -k: ${r.stderr.trim() || 'unavailable'})`;
  return [...OFFLOADS, ...extra]
    .map((k) => {
      const v = new RegExp(`^${k}: (\\w+)`, 'm').exec(r.stdout)?.[1] ?? '?';
      return `${SHORT[k] ?? k} ${v}`;
    })
    .join(', ');
}

/** A link of a host: its MTU and offloads ("mtu ? (...)" when it cannot be read). */
export async function linkFacts(h: Host, dev: string): Promise<{ mtu: number; offloads: string }> {
  const r = await h.exec(['ip', '-j', 'link', 'show', 'dev', dev]);
  const mtu = (JSON.parse(r.stdout || '[]') as { mtu?: number }[])[0]?.mtu ?? Number.NaN;
  return { mtu, offloads: await offloads(h, dev) };
}

/**
 * br_netfilter's state: whether bridged frames go through iptables/ip6tables/arptables (the
 * per-packet work Docker's bridge pays when the module is loaded), in the machine's and the
 * host's namespace (the sysctls are per namespace).
 */
export async function netfilterFacts(h: Host): Promise<{ brNetfilter: string; bridgeNfCall: string }> {
  const read = (p: string): string => (existsSync(p) ? readFileSync(p, 'utf8').trim() : 'absent');
  const inHost = async (p: string): Promise<string> => {
    const r = await h.exec(['cat', p]);
    return r.code === 0 ? r.stdout.trim() : 'absent';
  };
  const brNetfilter = !existsSync('/proc/sys/net/bridge')
    ? 'absent'
    : existsSync('/sys/module/br_netfilter')
      ? 'active (module loaded)'
      : 'active (built in)';
  const calls: string[] = [];
  for (const k of ['iptables', 'ip6tables', 'arptables']) {
    const p = `/proc/sys/net/bridge/bridge-nf-call-${k}`;
    calls.push(`${k} root ${read(p)}/host ${await inHost(p)}`);
  }
  return { brNetfilter, bridgeNfCall: calls.join(', ') };
}

const DOC_HEADER =
  '# Benchmarks\n\nFigures measured on the machine named in each section; rerun with `npm run bench`.\n';

/**
 * Replaces the section of docs/benchmarks.md that has `section`'s heading (its first line, `## …`),
 * or appends it; other sections stay as they are. `at: 'top'` puts it right after the page's
 * intro instead, before the first `## ` section (moved there if it was elsewhere).
 */
export function writeDocSection(section: string, at: 'own place' | 'top' = 'own place'): void {
  const file = join(REPO_ROOT, 'docs', 'benchmarks.md');
  mkdirSync(dirname(file), { recursive: true });
  const old = existsSync(file) ? readFileSync(file, 'utf8') : DOC_HEADER;
  writeFileSync(file, `${placeSection(old, section, at).trimEnd()}\n`);
}

/** The page `old` with the section of `section`'s heading replaced by `section` (pure: writeDocSection's text). */
export function placeSection(old: string, section: string, at: 'own place' | 'top'): string {
  // the heading's whole line: "## Scale" must not find "## Scale: 5,000 endpoints"
  const heading = section.split('\n', 1)[0] ?? '';
  if (!heading.startsWith('## '))
    throw new Error(`a section of docs/benchmarks.md starts with its "## " heading, not ${JSON.stringify(heading)}`);
  const start = old.indexOf(`\n${heading}\n`) + 1;
  let next = start <= 0 ? -1 : old.indexOf('\n## ', start + 1);
  if (next >= 0) next += 1;
  if (at === 'top') {
    const rest = start <= 0 ? old : `${old.slice(0, start)}${next < 0 ? '' : old.slice(next)}`;
    const first = rest.indexOf('\n## ') + 1;
    if (first > 0) return `${rest.slice(0, first)}${section.trimEnd()}\n\n${rest.slice(first)}`;
    return `${rest.trimEnd()}\n\n${section}`;
  }
  return start <= 0
    ? `${old.trimEnd()}\n\n${section}`
    : `${old.slice(0, start)}${section.trimEnd()}\n${next < 0 ? '' : `\n${old.slice(next)}`}`;
}

/**
 * Writes bench/results/<name>.json (numbers rounded to 3 decimals) and lets the repository's
 * formatter own its look (best effort: a missing biome only leaves it unformatted).
 */
export async function writeResultsJson(name: string, summary: object): Promise<string> {
  const json = join(REPO_ROOT, 'bench', 'results', `${name}.json`);
  mkdirSync(dirname(json), { recursive: true });
  const round = (_k: string, v: unknown): unknown => (typeof v === 'number' ? Math.round(v * 1000) / 1000 : v);
  writeFileSync(json, `${JSON.stringify(summary, round, 2)}\n`);
  const biome = join(REPO_ROOT, 'node_modules', '.bin', 'biome');
  if (existsSync(biome)) await run([biome, 'format', '--write', json]);
  return json;
}
