/**
 * WireGuard key rotation benchmark (not part of the test suite): `npm run bench:rotation` (root).
 * Two simulated hosts (wireguard-go, this kernel has no module) with a ping every --interval ms
 * from a container behind A to one behind B; A's key is rotated --rotations times. Each time
 * the new key is applied on both hosts as their reconcilers would on the store's watch event,
 * B `skew` ms after A (cycling 0, +50, −50, +100, −100: either may be first). Per rotation: the
 * longest silence between two ping replies. Then --late rotations where B learns the key
 * --late-ms after A (a slow peer): the gap is bounded by that delay plus one handshake.
 *
 * Prints a table; a full run writes bench/results/rotation.json and the "WireGuard key
 * rotation" section of docs/benchmarks.md. `--baseline FILE` (an earlier rotation.json, e.g.
 * from the code before the handshake nudge) adds a before/after table; `--out FILE` writes the
 * JSON there instead (and not the doc).
 * Flags: --rotations N (50), --interval MS (10), --late N (5), --late-ms MS (1000),
 * --baseline FILE, --out FILE, --no-write.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { percentile } from '../e2e/harness/figures.ts';
import { createWgPair, type RotationResult, rotateOnce, startPing } from '../src/dataplane/linux/wireguard-testutil.ts';
import { f1, machineFacts, markdownTable, writeDocSection, writeResultsJson } from './lib.ts';

const { values: flags } = parseArgs({
  options: {
    rotations: { type: 'string' },
    interval: { type: 'string' },
    late: { type: 'string' },
    'late-ms': { type: 'string' },
    baseline: { type: 'string' },
    out: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
  },
  strict: true,
});
const ROTATIONS = Number(flags.rotations ?? 50);
const INTERVAL_MS = Number(flags.interval ?? 10);
const LATE = Number(flags.late ?? 5);
const LATE_MS = Number(flags['late-ms'] ?? 1000);
for (const [k, v] of Object.entries({ ROTATIONS, INTERVAL_MS, LATE, LATE_MS })) {
  if (!Number.isInteger(v) || v < 0) throw new Error(`bench/rotation: ${k} must be an integer ≥ 0, got ${v}`);
}
const SKEWS = [0, 50, -50, 100, -100];

interface Summary {
  readonly n: number;
  readonly maxMs: number;
  readonly p95Ms: number;
  readonly medianMs: number;
  /** gaps longer than 1 s */
  readonly over1s: number;
}
const summarize = (gaps: readonly number[]): Summary => ({
  n: gaps.length,
  maxMs: gaps.length > 0 ? Math.max(...gaps) : Number.NaN,
  p95Ms: percentile(gaps, 95),
  medianMs: percentile(gaps, 50),
  over1s: gaps.filter((g) => g > 1000).length,
});

async function main(): Promise<void> {
  const pair = await createWgPair(220);
  const ping = startPing(pair, INTERVAL_MS);
  const same: RotationResult[] = [];
  const late: RotationResult[] = [];
  try {
    await new Promise((r) => setTimeout(r, 1000));
    if (ping.arrivals.length === 0) throw new Error('bench/rotation: no ping reply before the first rotation');
    for (let i = 0; i < ROTATIONS; i++) {
      const r = await rotateOnce(pair, ping, SKEWS[i % SKEWS.length] ?? 0);
      same.push(r);
      process.stderr.write(`rotation ${i + 1}/${ROTATIONS}: skew ${r.skewMs} ms, gap ${r.gapMs.toFixed(0)} ms\n`);
    }
    for (let i = 0; i < LATE; i++) {
      const r = await rotateOnce(pair, ping, LATE_MS);
      late.push(r);
      process.stderr.write(`late rotation ${i + 1}/${LATE}: B ${LATE_MS} ms late, gap ${r.gapMs.toFixed(0)} ms\n`);
    }
  } finally {
    ping.stop();
    await pair.close();
  }
  const facts = await machineFacts();
  const result = {
    facts,
    intervalMs: INTERVAL_MS,
    skewsMs: SKEWS,
    lateMs: LATE_MS,
    same: summarize(same.map((r) => r.gapMs)),
    late: summarize(late.map((r) => r.gapMs)),
    gaps: same.map((r) => r.gapMs),
    lateGaps: late.map((r) => r.gapMs),
  };
  const row = (what: string, s: Summary): string[] => [
    what,
    String(s.n),
    f1(s.medianMs),
    f1(s.p95Ms),
    f1(s.maxMs),
    String(s.over1s),
  ];
  const head = ['rotations', 'n', 'median gap ms', 'p95 gap ms', 'max gap ms', 'gaps > 1 s'];
  const rows = [
    head,
    row('both hosts apply it (skew 0, ±50, ±100 ms)', result.same),
    ...(LATE > 0 ? [row(`B learns it ${LATE_MS} ms after A`, result.late)] : []),
  ];
  if (flags.baseline) {
    const base = JSON.parse(readFileSync(flags.baseline, 'utf8')) as typeof result;
    rows.push(row(`before (${base.facts.commit}): both apply it`, base.same));
    if (base.late.n > 0) rows.push(row(`before: B ${base.lateMs} ms late`, base.late));
  }
  const table = markdownTable(rows);
  process.stdout.write(`${table.join('\n')}\n`);
  if (flags.out) {
    writeFileSync(flags.out, `${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  if (flags['no-write']) return;
  const section = [
    '## WireGuard key rotation',
    '',
    `\`npm run bench:rotation\` (bench/rotation.ts): two simulated hosts with wireguard-go, a ping every ${INTERVAL_MS} ms`,
    "from a container behind A to one behind B, A's key rotated; both hosts apply the new key as their reconcilers",
    "do on the store's watch event, B up to 100 ms before or after A. Gap = the longest silence between two ping",
    'replies around a rotation. The last row: B learns the new key 1 s after A (a slow peer).',
    `Kernel ${facts.kernel}; CPU ${facts.cpu}; Node ${facts.node}; commit ${facts.commit}.`,
    '',
    ...table,
    '',
    'Before, the first handshake with the new key could reach the other host before it knew the key; it was',
    "dropped and retried only after WireGuard's REKEY_TIMEOUT (5 s). Now every host that applies a key change",
    '(its own or a peer’s) starts a handshake at once (wireguard.ts nudgeArgs), so whichever applies it second',
    'completes the handshake: the gap is the skew between the two hosts plus one round trip.',
    '',
  ].join('\n');
  writeDocSection(section);
  await writeResultsJson('rotation', result);
}

await main();
