/**
 * Reading nft back, for every truss table (inet truss, truss_policy, bridge truss_guard, the RA
 * guard): a table as `nft list` prints it, normalised so that it compares with what truss
 * rendered, the differences in words, and named counters. Rendering and applying each table is
 * its own module's job (nft.ts, policy.ts, guard.ts, ra-guard.ts).
 */
import { NFT_FAMILY, NFT_TABLE } from '../../core/naming.ts';
import type { Exec } from './exec.ts';
import { isKernelError } from './exec.ts';

/** Splits a comma list at top level (outside quotes). */
function splitElements(body: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of body) {
    if (ch === '"') quoted = !quoted;
    if (ch === ',' && !quoted) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim() !== '') out.push(cur.trim());
  return out;
}

/**
 * Joins `elements = { … }` that nft wraps over several lines into one. Linear in the listing: the
 * end is tested on the line, not on the joined text (testing the growing text made a guard set of
 * 5,000 endpoints take seconds per full pass: every test flattened it again).
 */
function joinElementLines(lines: readonly string[]): string[] {
  const out: string[] = [];
  let open: string[] | undefined;
  for (const line of lines) {
    if (open !== undefined) open.push(line);
    else if (/^elements = \{/.test(line)) open = [line];
    else out.push(line);
    if (open !== undefined && line.endsWith('}')) {
      out.push(open.join(' '));
      open = undefined;
    }
  }
  if (open !== undefined) out.push(open.join(' '));
  return out;
}

/**
 * Pure: a table's text in a canonical form so a rendering and `nft list table` compare
 * equal when the kernel holds what was rendered: handles, counters, blank lines,
 * indentation and the order of set elements (kernel hash order) do not count.
 */
export function normaliseNft(text: string): string[] {
  const lines = text
    .split('\n')
    .map((l) =>
      l
        .replace(/\s*# handle \d+\s*$/, '')
        .replace(/\s*counter packets \d+ bytes \d+/g, '')
        .trim(),
    )
    .filter((l) => l !== '');
  return joinElementLines(lines).map((l) => {
    const m = /^elements = \{(.*)\}$/.exec(l);
    return m
      ? `elements = { ${splitElements(m[1] ?? '')
          .sort()
          .join(', ')} }`
      : l;
  });
}

/** Human-readable differences between an expected and an observed table, [] when equal. */
export function diffNft(expected: string, observed: string, table = `${NFT_FAMILY} ${NFT_TABLE}`): string[] {
  const want = normaliseNft(expected);
  const have = normaliseNft(observed);
  const n = Math.max(want.length, have.length);
  for (let i = 0; i < n; i++) {
    if (want[i] !== have[i]) {
      return [
        `nft table ${table} differs from the desired rendering at line ${i + 1}: ` +
          `expected ${JSON.stringify(want[i] ?? '<end>')}, found ${JSON.stringify(have[i] ?? '<end>')}`,
      ];
    }
  }
  return [];
}

/** A table as `nft list` prints it, or undefined when it does not exist. */
export async function listTable(exec: Exec, family: string, table: string): Promise<string | undefined> {
  try {
    return (await exec.run('nft', ['list', 'table', family, table])).stdout;
  } catch (e) {
    if (isKernelError(e, 'ENOENT')) return undefined;
    throw e;
  }
}

/** Packets and bytes of one named nft counter. */
export interface NamedCounter {
  readonly packets: number;
  readonly bytes: number;
}

/**
 * Pure: `list counters table …` as `nft -f -` prints it -> key -> packets/bytes, for the counters
 * `key` names (it returns undefined for the ones to leave out: someone else's, or not of this kind).
 */
export function parseCounters(
  stdout: string,
  key: (counterName: string) => string | undefined,
): Record<string, NamedCounter> {
  const out: Record<string, NamedCounter> = {};
  for (const m of stdout.matchAll(/^\s*counter (\S+) \{\s*packets (\d+) bytes (\d+)/gm)) {
    const k = key(m[1] as string);
    if (k) out[k] = { packets: Number(m[2]), bytes: Number(m[3]) };
  }
  return out;
}

/**
 * Pure: one table's part of a `list counters` listing (`table FAMILY NAME {` to its closing
 * brace), or undefined when the listing has none (no such table, or no counters in it).
 */
export function tableSection(listing: string, family: string, table: string): string | undefined {
  const head = `table ${family} ${table} {`;
  const lines = listing.split('\n');
  const at = lines.findIndex((l) => l.trimEnd() === head);
  if (at < 0) return undefined;
  const end = lines.findIndex((l, i) => i > at && l === '}');
  return lines.slice(at, end < 0 ? undefined : end + 1).join('\n');
}

/**
 * The counters of every table in one `nft list counters`, shared by the reads that ask while it
 * runs. why: nft 1.0.6 fetches every set element of the ruleset before any command (the guard
 * keeps about four per endpoint: ~20 ms a process at 1,000 endpoints), and status reads the
 * policy and the anti-spoofing counters at the same time: one process serves both. A read that
 * asks after it ended starts another, so what a caller gets was listed after it asked or while
 * it did. Through `nft -f -`, whose process exec.ts starts ahead (SpareProcesses): forking a
 * fresh nft from a daemon holding 1,000 endpoints costs its event loop ~5 ms.
 */
const listings = new WeakMap<Exec, Promise<string>>();

function listCounters(exec: Exec): Promise<string> {
  const running = listings.get(exec);
  if (running) return running;
  const p = exec
    .run('nft', ['-f', '-'], { stdin: 'list counters\n' })
    .then((r) => r.stdout)
    .finally(() => listings.delete(exec));
  listings.set(exec, p);
  return p;
}

/** The named counters of one table (see parseCounters); {} when it does not exist or has none. */
export async function readCounters(
  exec: Exec,
  family: string,
  table: string,
  key: (counterName: string) => string | undefined,
): Promise<Record<string, NamedCounter>> {
  const section = tableSection(await listCounters(exec), family, table);
  return section === undefined ? {} : parseCounters(section, key);
}
