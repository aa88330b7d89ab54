/**
 * Port policy by container name or label (issue 16): the shared sets of each name=/label=
 * source, in table inet truss_policy next to the endpoint chains (policy.ts) that name them.
 *
 *   set sel_<hash>_4   type ipv4_addr   the addresses of the containers the selector selects
 *   set sel_<hash>_6   type ipv6_addr   (core/desired.ts SelectorSetObject), on any host
 *
 * <hash> is 10 hex of SHA-256 of the selector's text (naming.selectorSetName): one set pair per
 * distinct selector however many endpoints name it, and the selector's own text never reaches
 * nft. Ownership: the `sel_` prefix inside truss's own table.
 *
 * A membership change is one `nft -f -` transaction for that selector only: `flush set` and
 * `add set … { elements = {…} }`. A transaction is atomic, so no packet sees the set emptied in
 * between, and it costs O(that set): why not `add element`/`delete element`: nft 1.0.6 answers
 * those by dumping every interval set of the table first (policy.ts). An endpoint chain creates
 * the sets it names empty when missing (`add set` is idempotent), so a chain never refers to a
 * missing set; a set goes (removeSelector) once no chain refers to it (the reconciler removes
 * unwanted selectors after every chain: reconcile/kinds/endpoint.ts).
 */

import type { SetCheck } from '../../core/contracts.ts';
import type { SelectorSetObject } from '../../core/desired.ts';
import { errors } from '../../core/errors.ts';
import { selectorText } from '../../core/names/model.ts';
import { type Exec, isKernelError } from './exec.ts';
import { POLICY_TABLE, renderPolicyBase } from './policy.ts';
import { parsePolicyListing, readPolicyTable } from './policy-check.ts';
import { checkAddress } from './policy-sets.ts';

const TABLE = POLICY_TABLE;
const NAME = /^sel_[0-9a-f]{10}$/;
/** Elements per `add set` line, as policy.ts: small error line numbers and parser buffers. */
const CHUNK = 1000;

const FAMILIES = [
  { suffix: '_4', type: 'ipv4_addr', family: 4 },
  { suffix: '_6', type: 'ipv6_addr', family: 6 },
] as const;

export function checkSelectorName(name: string): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw errors.badId(
      `port policy: invalid selector set name ${JSON.stringify(name)}: expected sel_ and 10 hex digits`,
    );
  }
  return name;
}

/** The object with every address checked (family included) and spelt as nft prints it, sorted, unique. */
export function checkSelectorObject(s: SelectorSetObject): SelectorSetObject {
  const name = checkSelectorName(s.name);
  const spelt = (family: 4 | 6, list: readonly string[]): string[] => {
    if (!Array.isArray(list)) throw errors.badOption(`selector set ${name}: addresses must be a list`);
    const out = new Set<string>();
    for (const a of list) {
      const c = checkAddress(`selector set ${name}`, a);
      if (c.family !== family) throw errors.badAddress(`selector set ${name}: ${a} is not IPv${family}`);
      out.add(c.text);
    }
    return [...out].sort();
  };
  return { ...s, name, addresses4: spelt(4, s.addresses4), addresses6: spelt(6, s.addresses6) };
}

const chunks = <T>(xs: readonly T[]): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += CHUNK) out.push(xs.slice(i, i + CHUNK));
  return out;
};

/**
 * Pure: one transaction that creates the table (and its base, as policy.ts does) when missing
 * and replaces the membership of one selector's two sets, and nothing else.
 */
export function renderSelector(s: SelectorSetObject): string {
  const c = checkSelectorObject(s);
  const lines: string[] = [];
  for (const f of FAMILIES) {
    const set = `${TABLE} ${c.name}${f.suffix}`;
    const decl = `type ${f.type};`;
    lines.push(`add set ${set} { ${decl} }`, `flush set ${set}`);
    for (const els of chunks(f.family === 4 ? c.addresses4 : c.addresses6)) {
      lines.push(`add set ${set} { ${decl} elements = { ${els.join(', ')} } }`);
    }
  }
  return `${renderPolicyBase()}${lines.join('\n')}\n`;
}

/**
 * Pure: deletes both sets; absent ones are no error (add-then-delete). The first line fails only
 * when the table is missing (= gone already). A set a chain still names fails with EBUSY.
 */
export function renderSelectorRemoval(name: string): string {
  const n = checkSelectorName(name);
  return `${FAMILIES.flatMap((f) => [`add set ${TABLE} ${n}${f.suffix} { type ${f.type}; }`, `delete set ${TABLE} ${n}${f.suffix}`]).join('\n')}\n`;
}

// ---------- drift ----------

/** The elements of a `set` block of a listing (normalised lines), or undefined without an elements line. */
function elementsOf(lines: readonly string[]): string[] {
  const m = /^elements = \{ (.*) \}$/.exec(lines.find((l) => l.startsWith('elements = ')) ?? '');
  return m?.[1] ? m[1].split(', ').map((e) => e.trim()) : [];
}

/** Pure: a listing of the table (undefined = no table) against the wanted selector sets. */
export function diffSelectors(desired: readonly SelectorSetObject[], listing: string | undefined): SetCheck {
  if (listing === undefined) {
    const drifted = desired.map((s) => s.name);
    return { drifted, extra: [], problems: drifted.length > 0 ? [`table ${TABLE} is missing`] : [] };
  }
  const have = parsePolicyListing(listing);
  const drifted: string[] = [];
  const problems: string[] = [];
  for (const want of desired) {
    const who = `selector ${want.name} (${selectorText(want.selector)})`;
    let c: SelectorSetObject;
    try {
      c = checkSelectorObject(want);
    } catch (e) {
      drifted.push(want.name);
      problems.push(`${who}: cannot be rendered: ${(e as Error).message}`);
      continue;
    }
    const mine: string[] = [];
    for (const f of FAMILIES) {
      const set = `${c.name}${f.suffix}`;
      const block = have.get(`set ${set}`);
      if (block === undefined) {
        mine.push(`${who}: set ${set} is missing`);
        continue;
      }
      if (block[0] !== `type ${f.type}` || block.some((l) => l.startsWith('flags '))) {
        mine.push(`${who}: set ${set} differs (${block.filter((l) => !l.startsWith('elements')).join('; ')})`);
      }
      const wanted = new Set(f.family === 4 ? c.addresses4 : c.addresses6);
      const present = new Set(elementsOf(block));
      for (const a of wanted) if (!present.has(a)) mine.push(`${who}: set ${set} lacks ${a}`);
      for (const a of present) if (!wanted.has(a)) mine.push(`${who}: set ${set} holds ${a}, not a member`);
    }
    if (mine.length > 0) drifted.push(c.name);
    problems.push(...mine);
  }
  const wanted = new Set(desired.map((s) => s.name));
  const extra = new Set<string>();
  for (const key of have.keys()) {
    const m = /^set (sel_[0-9a-f]{10})_[46]$/.exec(key);
    if (m?.[1] && !wanted.has(m[1])) extra.add(m[1]);
  }
  for (const n of extra) problems.push(`selector ${n}: installed but no policy names it`);
  return { drifted, extra: [...extra].sort(), problems };
}

// ---------- kernel ----------

export async function checkSelectors(exec: Exec, desired: readonly SelectorSetObject[]): Promise<SetCheck> {
  const listing = await readPolicyTable(exec);
  return { ...diffSelectors(desired, listing), tablePresent: listing !== undefined };
}

export async function applySelector(exec: Exec, s: SelectorSetObject): Promise<void> {
  await exec.run('nft', ['-f', '-'], { stdin: renderSelector(s) });
}

export async function removeSelector(exec: Exec, name: string): Promise<void> {
  try {
    await exec.run('nft', ['-f', '-'], { stdin: renderSelectorRemoval(name) });
  } catch (e) {
    if (isKernelError(e, 'ENOENT') && e.line === 1) return; // no table: nothing left
    throw e;
  }
}
