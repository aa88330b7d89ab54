/**
 * Drift in the port-policy table (policy.ts): one `nft list table inet truss_policy`,
 * cut into blocks (chain/set/map/counter) and compared with what ensure would install,
 * normalised as nft.ts does for the firewall (handles, counter values, element order and
 * line wrapping do not count). Counter bodies are never compared: they only count.
 */

import type { SetCheck } from '../../core/contracts.ts';
import type { PolicyObject } from '../../core/desired.ts';
import { NFT_FAMILY, NFT_POLICY_TABLE } from '../../core/naming.ts';
import type { Exec } from './exec.ts';
import { listTable, normaliseNft } from './nft-read.ts';
import {
  BASE_RULES,
  counterName,
  HOOKS,
  hookLine,
  POLICY_SET_KINDS,
  POLICY_TABLE,
  type PolicyMaps,
  policyChainRules,
  policySetName,
} from './policy.ts';
import { type CheckedPolicy, checkPolicyObject, computePolicySets } from './policy-sets.ts';

const TABLE = POLICY_TABLE;

type Blocks = Map<string, string[]>;

/** Pure: a table listing -> "kind name" -> its normalised body lines (handles, counters, element order gone). */
export function parsePolicyListing(text: string): Blocks {
  const blocks: Blocks = new Map();
  let open: string[] | undefined;
  for (const line of normaliseNft(text)) {
    const head = /^(chain|set|map|counter) (\S+) \{$/.exec(line);
    if (head) {
      open = [];
      blocks.set(`${head[1]} ${head[2]}`, open);
    } else if (line === '}') open = undefined;
    else open?.push(line);
  }
  return blocks;
}

const body = (lines: readonly string[]): string[] => normaliseNft(lines.join('\n'));

/** Pure: the blocks `nft list` shows for the base (map bodies without elements). */
function expectedBase(): Blocks {
  // why: nft 1.0.6 prints a priority beyond filter ± 10 as a number
  const base: Blocks = new Map([
    ['map policy4', ['type ipv4_addr : verdict']],
    ['map policy6', ['type ipv6_addr : verdict']],
  ]);
  for (const h of HOOKS) base.set(`chain ${h}`, body([hookLine(h, '-20'), ...BASE_RULES]));
  return base;
}

/** Pure: the blocks `nft list` shows for one endpoint (counter bodies are not compared). */
export function expectedPolicyBlocks(p: PolicyObject): Blocks {
  const c = checkPolicyObject(p);
  const sets = computePolicySets(c.rules);
  const out: Blocks = new Map([[`chain ${c.name}`, body(policyChainRules(c.name, sets))]]);
  for (const k of POLICY_SET_KINDS) {
    const els = k.elements(sets);
    if (els.length > 0) {
      out.set(
        `set ${policySetName(c.name, k)}`,
        body([`type ${k.type}`, 'flags interval', `elements = { ${els.join(', ')} }`]),
      );
    }
  }
  return out;
}

const same = (a: readonly string[] | undefined, b: readonly string[]): boolean =>
  a !== undefined && a.length === b.length && a.every((l, i) => l === b[i]);

/** Pure: map bodies -> address -> target. */
function mapElements(lines: readonly string[] | undefined): Map<string, string> {
  const out = new Map<string, string>();
  const els = /^elements = \{ (.*) \}$/.exec(lines?.find((l) => l.startsWith('elements = ')) ?? '')?.[1] ?? '';
  for (const el of els.split(', ')) {
    const m = /^(\S+) : jump (\S+)$/.exec(el.trim());
    if (m?.[1] && m[2]) out.set(m[1], m[2]);
  }
  return out;
}

const OWNED = /^(?:chain|set|counter) (ep_[0-9a-f]{12})(?:_[a-z0-9]+)?$/;

/** address -> target per family, and the inverse (target -> its addresses), built once per check. */
interface MapIndex extends PolicyMaps {
  readonly byTarget: ReadonlyMap<string, readonly string[]>;
}

function indexMaps(have: Blocks): MapIndex {
  const v4 = mapElements(have.get('map policy4'));
  const v6 = mapElements(have.get('map policy6'));
  const byTarget = new Map<string, string[]>();
  for (const m of [v4, v6]) {
    for (const [addr, target] of m) {
      const list = byTarget.get(target);
      if (list) list.push(addr);
      else byTarget.set(target, [addr]);
    }
  }
  return { v4, v6, byTarget };
}

function addressProblems(c: CheckedPolicy, maps: MapIndex): string[] {
  const problems: string[] = [];
  for (const [fam, mine, map] of [
    ['4', c.addresses4, maps.v4],
    ['6', c.addresses6, maps.v6],
  ] as const) {
    for (const a of mine) {
      const t = map.get(a);
      if (t !== c.name) problems.push(`policy ${c.name}: ${a} ${t ? `jumps to ${t}` : `is not in map policy${fam}`}`);
    }
  }
  const mine = new Set([...c.addresses4, ...c.addresses6]);
  for (const a of maps.byTarget.get(c.name) ?? []) {
    if (!mine.has(a)) problems.push(`policy ${c.name}: ${a} still jumps to it`);
  }
  return problems;
}

function policyProblems(p: PolicyObject, have: Blocks, maps: MapIndex): string[] {
  let want: Blocks;
  let c: CheckedPolicy;
  try {
    c = checkPolicyObject(p);
    want = expectedPolicyBlocks(p);
  } catch (e) {
    return [`policy ${p.name}: cannot be rendered: ${(e as Error).message}`];
  }
  const problems: string[] = [];
  for (const [key, lines] of want) {
    if (!have.has(key)) problems.push(`policy ${c.name}: ${key} is missing`);
    else if (!same(have.get(key), lines)) problems.push(`policy ${c.name}: ${key} differs`);
  }
  for (const k of POLICY_SET_KINDS) {
    const key = `set ${policySetName(c.name, k)}`;
    if (have.has(key) && !want.has(key)) problems.push(`policy ${c.name}: ${key} should not exist`);
  }
  if (!have.has(`counter ${counterName(c.name)}`)) problems.push(`policy ${c.name}: counter is missing`);
  return [...problems, ...addressProblems(c, maps)];
}

/** Pure: compares a listing (undefined = no table) with the desired policies. */
export function diffPolicies(desired: readonly PolicyObject[], listing: string | undefined): SetCheck {
  const names = desired.map((p) => p.name);
  if (listing === undefined) {
    return desired.length === 0
      ? { drifted: [], extra: [], problems: [] }
      : { drifted: names, extra: [], problems: [`table ${TABLE} is missing`] };
  }
  const have = parsePolicyListing(listing);
  const problems: string[] = [];
  for (const [key, lines] of expectedBase()) {
    const found = have.get(key);
    const ok = key.startsWith('map ') ? found?.[0] === lines[0] : same(found, lines);
    if (!ok) problems.push(`table ${TABLE}: ${key} ${found ? 'differs' : 'is missing'}`);
  }
  const maps = indexMaps(have);
  const drifted = new Set(problems.length > 0 ? names : []);
  for (const p of desired) {
    const ps = policyProblems(p, have, maps);
    if (ps.length > 0) drifted.add(p.name);
    problems.push(...ps);
  }
  const wanted = new Set(names);
  const installed = new Set<string>([...maps.byTarget.keys()].filter((t) => /^ep_/.test(t)));
  for (const key of have.keys()) {
    const m = OWNED.exec(key);
    if (m?.[1]) installed.add(m[1]);
  }
  const extra = [...installed].filter((n) => !wanted.has(n)).sort();
  for (const n of extra) problems.push(`policy ${n}: installed but not desired`);
  return { drifted: names.filter((n) => drifted.has(n)), extra, problems };
}

/** The table as `nft list` prints it, or undefined when it does not exist. */
export const readPolicyTable = (exec: Exec): Promise<string | undefined> =>
  listTable(exec, NFT_FAMILY, NFT_POLICY_TABLE);

export async function checkPolicies(exec: Exec, desired: readonly PolicyObject[]): Promise<SetCheck> {
  const listing = await readPolicyTable(exec);
  return { ...diffPolicies(desired, listing), tablePresent: listing !== undefined };
}
