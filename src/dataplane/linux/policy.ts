/**
 * Port policy in nftables: `table inet truss_policy`, an ingress allow-list per joined
 * endpoint. Unlike `inet truss` (nft.ts) it is never replaced whole: each endpoint is
 * updated on its own in one atomic `nft -f -` transaction that carries only that endpoint's
 * elements, so an update does not grow with the ports and sources of other endpoints.
 * Set contents and validation: policy-sets.ts; drift: policy-check.ts; cutting flows the
 * new rules deny: conntrack.ts.
 *
 *   map policy4/policy6          endpoint address -> jump ep_<short>
 *   chain forward / output       hook priority filter - 20 (before inet truss at - 10):
 *                                ct established,related accept; daddr vmap @policy4/6
 *   chain ep_<short>             one rule per non-empty set, echo, ND, then
 *                                `counter name "ep_<short>_denied" drop`
 *   sets ep_<short>_{tcp,udp}    any source: ports
 *        ep_<short>_{tcp,udp}{4,6}  source-narrowed: prefix . ports
 *        ep_<short>_icmp{4,6}   source-narrowed echo
 *   rules  ip[6] saddr @sel_<hash>_{4,6} ...  name=/label= sources: the selector's shared sets
 *                                (policy-selectors.ts), created empty here when missing
 *   counter ep_<short>_denied    survives updates (added, never reset)
 *
 * Ownership: the table name (naming.NFT_POLICY_TABLE); inside it, every per-endpoint
 * object carries the chain name naming.policyChainName(endpoint id).
 *
 * why this shape: with br_netfilter, frames between two containers of one bridge cross the
 * inet forward hook, routed traffic into a bridge crosses forward and host-originated
 * traffic crosses output: keying on the destination address covers all three. `accept`
 * here only ends this table's base chain; inet truss still isolates networks afterwards.
 * A new flow meets at most 3 + 10 rules (one set lookup each) whatever the number of
 * ports, sources or endpoints, plus up to 6 per name=/label= selector the policy names;
 * packets of admitted flows meet one.
 *
 * why set elements are written inline (`add set X { ...; elements = {…} }`, `add map`) and
 * never with `add element`: nft 1.0.6 answers any `add/delete element` by first dumping the
 * elements of every interval set of the table (cache flag NFT_CACHE_SETELEM_MAYBE), which
 * made one endpoint's update cost O(all endpoints' ports). `add set`/`add map` with
 * elements only needs the table in its cache. `delete element` stays for the rare
 * re-pointing of an address and for removal (those pay the dump).
 */

import type { PolicyCounter } from '../../core/contracts.ts';
import type { PolicyObject } from '../../core/desired.ts';
import { errors } from '../../core/errors.ts';
import { NFT_FAMILY, NFT_POLICY_TABLE } from '../../core/naming.ts';
import { type Exec, isKernelError } from './exec.ts';
import { readCounters } from './nft-read.ts';
import {
  type CheckedPolicy,
  checkAddress,
  checkChainName,
  checkPolicyObject,
  computePolicySets,
  formatRange,
  formatSetPrefix,
  formatSourced,
  type PolicySets,
  type Range,
  type SelectorRules,
} from './policy-sets.ts';

export const POLICY_TABLE = `${NFT_FAMILY} ${NFT_POLICY_TABLE}`;
const TABLE = POLICY_TABLE;
/** Elements per `add set`/`add map` line: keeps error line numbers and nft's parser buffers small. */
const CHUNK = 1000;

export interface SetKind {
  readonly suffix: string;
  readonly type: string;
  elements(s: PolicySets): string[];
  rule(set: string): string;
}

const sourced = (key: 'tcp4' | 'tcp6' | 'udp4' | 'udp6') => (s: PolicySets) => s[key].map(formatSourced);

/** Every set an endpoint may have, in rule order. */
export const POLICY_SET_KINDS: readonly SetKind[] = [
  { suffix: 'tcp', type: 'inet_service', elements: (s) => s.tcp.map(formatRange), rule: (n) => `tcp dport @${n}` },
  { suffix: 'udp', type: 'inet_service', elements: (s) => s.udp.map(formatRange), rule: (n) => `udp dport @${n}` },
  {
    suffix: 'tcp4',
    type: 'ipv4_addr . inet_service',
    elements: sourced('tcp4'),
    rule: (n) => `ip saddr . tcp dport @${n}`,
  },
  {
    suffix: 'tcp6',
    type: 'ipv6_addr . inet_service',
    elements: sourced('tcp6'),
    rule: (n) => `ip6 saddr . tcp dport @${n}`,
  },
  {
    suffix: 'udp4',
    type: 'ipv4_addr . inet_service',
    elements: sourced('udp4'),
    rule: (n) => `ip saddr . udp dport @${n}`,
  },
  {
    suffix: 'udp6',
    type: 'ipv6_addr . inet_service',
    elements: sourced('udp6'),
    rule: (n) => `ip6 saddr . udp dport @${n}`,
  },
  {
    suffix: 'icmp4',
    type: 'ipv4_addr',
    elements: (s) => s.icmp4.map(formatSetPrefix),
    rule: (n) => `ip saddr @${n} icmp type echo-request`,
  },
  {
    suffix: 'icmp6',
    type: 'ipv6_addr',
    elements: (s) => s.icmp6.map(formatSetPrefix),
    rule: (n) => `ip6 saddr @${n} icmpv6 type echo-request`,
  },
];

export const counterName = (chain: string): string => `${chain}_denied`;
export const policySetName = (chain: string, k: SetKind): string => `${chain}_${k.suffix}`;

// why: neighbour discovery to the endpoint's own address (NUD probes) must keep working
const ND_RULE = 'icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept';

const portList = (rs: readonly Range[]): string =>
  rs.length === 1 ? formatRange(rs[0] as Range) : `{ ${rs.map(formatRange).join(', ')} }`;

/**
 * The rules admitting one selector's members, as `nft list` prints them (a one-element
 * anonymous set prints as a plain match); at most CHUNK ranges per rule.
 */
export function selectorChainRules(s: SelectorRules): string[] {
  const out: string[] = [];
  for (const [fam, saddr, echo] of [
    ['4', 'ip saddr', 'icmp'],
    ['6', 'ip6 saddr', 'icmpv6'],
  ] as const) {
    const from = `${saddr} @${s.set}_${fam}`;
    for (const c of chunks(s.tcp)) out.push(`${from} tcp dport ${portList(c)} accept`);
    for (const c of chunks(s.udp)) out.push(`${from} udp dport ${portList(c)} accept`);
    if (s.icmp) out.push(`${from} ${echo} type echo-request accept`);
  }
  return out;
}

/** The two sets (per family) of each selector the chain names: `add set` (idempotent, elements untouched). */
export function selectorSetDecls(sets: PolicySets): string[] {
  return sets.selectors.flatMap((s) => [
    `add set ${TABLE} ${s.set}_4 { type ipv4_addr; }`,
    `add set ${TABLE} ${s.set}_6 { type ipv6_addr; }`,
  ]);
}

/** The rules of an endpoint's chain, as `nft list` prints them. */
export function policyChainRules(name: string, sets: PolicySets): string[] {
  const present = POLICY_SET_KINDS.filter((k) => k.elements(sets).length > 0);
  const rules = present
    .filter((k) => !k.suffix.startsWith('icmp'))
    .map((k) => `${k.rule(policySetName(name, k))} accept`);
  if (sets.icmpAny) rules.push('icmp type echo-request accept', 'icmpv6 type echo-request accept');
  for (const k of present.filter((k) => k.suffix.startsWith('icmp')))
    rules.push(`${k.rule(policySetName(name, k))} accept`);
  for (const s of sets.selectors) rules.push(...selectorChainRules(s));
  rules.push(ND_RULE, `counter name "${counterName(name)}" drop`);
  return rules;
}

// ---------- the base: maps and hooked chains ----------

export const BASE_RULES = [
  'ct state established,related accept comment "truss: replies and flows already admitted"',
  'ip daddr vmap @policy4 comment "truss: to an endpoint with a policy: its chain"',
  'ip6 daddr vmap @policy6 comment "truss: to an endpoint with a policy: its chain"',
];
export const hookLine = (hook: string, prio: string): string =>
  `type filter hook ${hook} priority ${prio}; policy accept;`;
export const HOOKS = ['forward', 'output'] as const;

/**
 * Pure: creates the table, maps and hooked chains when missing and rewrites the hooked
 * chains' three rules (flush + add in the same transaction: no packet sees them empty).
 * Maps, sets and endpoint chains are never flushed here.
 */
export function renderPolicyBase(): string {
  const lines = [
    `table ${TABLE} {`,
    '\tcomment "truss: port policy (ingress allow-list per endpoint); updated per endpoint by truss"',
    '\tmap policy4 {\n\t\ttype ipv4_addr : verdict\n\t}',
    '\tmap policy6 {\n\t\ttype ipv6_addr : verdict\n\t}',
    ...HOOKS.map((h) => `\tchain ${h} {\n\t\t${hookLine(h, 'filter - 20')}\n\t}`),
    '}',
    ...HOOKS.map((h) => `flush chain ${TABLE} ${h}`),
    `table ${TABLE} {`,
    ...HOOKS.map((h) => `\tchain ${h} {\n${BASE_RULES.map((r) => `\t\t${r}`).join('\n')}\n\t}`),
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

// ---------- one endpoint ----------

/** Map elements to delete before the (re-)add: addresses pointing elsewhere, or to us but no longer ours. */
export interface MapDeletes {
  readonly v4: readonly string[];
  readonly v6: readonly string[];
}

const NO_DELETES: MapDeletes = { v4: [], v6: [] };

function chunks<T>(xs: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += CHUNK) out.push(xs.slice(i, i + CHUNK));
  return out;
}

function setLines(name: string, k: SetKind, elements: readonly string[]): string[] {
  const set = `${TABLE} ${policySetName(name, k)}`;
  const decl = `type ${k.type}; flags interval;`;
  if (elements.length === 0) return [`add set ${set} { ${decl} }`, `delete set ${set}`]; // absent = fine
  return [
    `add set ${set} { ${decl} }`,
    `flush set ${set}`,
    ...chunks(elements).map((c) => `add set ${set} { ${decl} elements = { ${c.join(', ')} } }`),
  ];
}

function mapLines(c: CheckedPolicy, deletes: MapDeletes): string[] {
  const lines: string[] = [];
  for (const [fam, dels, addrs] of [
    ['4', deletes.v4, c.addresses4],
    ['6', deletes.v6, c.addresses6],
  ] as const) {
    const type = `type ipv${fam}_addr : verdict;`;
    for (const d of chunks(dels)) lines.push(`delete element ${TABLE} policy${fam} { ${d.join(', ')} }`);
    for (const a of chunks(addrs)) {
      const els = a.map((x) => `${x} : jump ${c.name}`).join(', ');
      lines.push(`add map ${TABLE} policy${fam} { ${type} elements = { ${els} } }`);
    }
  }
  return lines;
}

/**
 * Pure: the whole transaction that programs one endpoint (base included): counter, chain,
 * sets (emptied and refilled; unneeded ones deleted), rules, then its map elements.
 * `deletes` (planMapDeletes) come from reading the maps first. Every value is validated.
 */
export function renderPolicy(p: PolicyObject, deletes: MapDeletes = NO_DELETES): string {
  const c = checkPolicyObject(p);
  const dels: MapDeletes = { v4: deletes.v4.map(validAddress(4)), v6: deletes.v6.map(validAddress(6)) };
  const sets = computePolicySets(c.rules);
  const lines = [
    `add counter ${TABLE} ${counterName(c.name)}`,
    `add chain ${TABLE} ${c.name}`,
    `flush chain ${TABLE} ${c.name}`,
    ...POLICY_SET_KINDS.flatMap((k) => setLines(c.name, k, k.elements(sets))),
    // a selector's sets must exist before a rule names them (their members: policy-selectors.ts)
    ...selectorSetDecls(sets),
    ...policyChainRules(c.name, sets).map((r) => `add rule ${TABLE} ${c.name} ${r}`),
    ...mapLines(c, dels),
  ];
  return `${renderPolicyBase()}${lines.join('\n')}\n`;
}

function validAddress(family: 4 | 6): (a: string) => string {
  return (a) => {
    const c = checkAddress(`port policy map policy${family}`, a);
    if (c.family !== family) throw errors.badAddress(`port policy map policy${family}: ${a} is not IPv${family}`);
    return c.text;
  };
}

/**
 * Pure: removes an endpoint's map elements (`mapped`: the addresses pointing to it), chain,
 * sets and counter. The first line fails only when the table is missing (= all gone); every
 * other object goes by the add-then-delete idiom, so absent objects are no error.
 */
export function renderPolicyRemoval(name: string, mapped: MapDeletes = NO_DELETES): string {
  const chain = checkChainName(name);
  const dels: MapDeletes = { v4: mapped.v4.map(validAddress(4)), v6: mapped.v6.map(validAddress(6)) };
  const lines = [
    `add chain ${TABLE} ${chain}`,
    ...(['4', '6'] as const).flatMap((f) =>
      chunks(f === '4' ? dels.v4 : dels.v6).map((d) => `delete element ${TABLE} policy${f} { ${d.join(', ')} }`),
    ),
    `flush chain ${TABLE} ${chain}`,
    `delete chain ${TABLE} ${chain}`,
    ...POLICY_SET_KINDS.flatMap((k) => setLines(chain, k, [])),
    `add counter ${TABLE} ${counterName(chain)}`,
    `delete counter ${TABLE} ${counterName(chain)}`,
  ];
  return `${lines.join('\n')}\n`;
}

export const renderPolicyTableRemoval = (): string => `table ${TABLE} {}\ndelete table ${TABLE}\n`;

// ---------- the maps ----------

/** address -> chain it jumps to, per family */
export interface PolicyMaps {
  readonly v4: ReadonlyMap<string, string>;
  readonly v6: ReadonlyMap<string, string>;
}

/** Pure: which map elements must go before `c`'s addresses are (re-)added. */
export function planMapDeletes(c: CheckedPolicy, maps: PolicyMaps): MapDeletes {
  const plan = (mine: readonly string[], map: ReadonlyMap<string, string>): string[] => {
    const want = new Set(mine);
    const out: string[] = [];
    for (const [addr, target] of map) {
      if (want.has(addr) ? target !== c.name : target === c.name) out.push(addr);
    }
    return out.sort();
  };
  return { v4: plan(c.addresses4, maps.v4), v6: plan(c.addresses6, maps.v6) };
}

/** Pure: `nft -j list map` output -> address -> jump target. */
export function parseMapJson(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  const doc = JSON.parse(stdout) as { nftables?: { map?: { elem?: unknown[] } }[] };
  for (const item of doc.nftables ?? []) {
    for (const el of item.map?.elem ?? []) {
      if (!Array.isArray(el) || typeof el[0] !== 'string') continue;
      const target = (el[1] as { jump?: { target?: unknown } } | undefined)?.jump?.target;
      if (typeof target === 'string') out.set(el[0], target);
    }
  }
  return out;
}

async function readMap(exec: Exec, map: string): Promise<Map<string, string>> {
  try {
    return parseMapJson((await exec.run('nft', ['-j', 'list', 'map', NFT_FAMILY, NFT_POLICY_TABLE, map])).stdout);
  } catch (e) {
    if (isKernelError(e, 'ENOENT')) return new Map();
    throw e;
  }
}

/** Both maps (one small listing each: nft filters `list map` to that map). Missing = empty. */
export async function readPolicyMaps(exec: Exec): Promise<PolicyMaps> {
  const [v4, v6] = await Promise.all([readMap(exec, 'policy4'), readMap(exec, 'policy6')]);
  return { v4, v6 };
}

const mappedTo = (name: string, m: ReadonlyMap<string, string>): string[] =>
  [...m].filter(([, t]) => t === name).map(([a]) => a);

// ---------- kernel ----------

/** One attempt after a fresh read, one more if the maps changed in between (EEXIST/ENOENT). */
async function withFreshMaps(exec: Exec, attempt: (maps: PolicyMaps) => Promise<void>): Promise<void> {
  try {
    await attempt(await readPolicyMaps(exec));
  } catch (e) {
    if (!isKernelError(e, 'EEXIST') && !isKernelError(e, 'ENOENT')) throw e;
    await attempt(await readPolicyMaps(exec));
  }
}

export async function applyPolicy(exec: Exec, p: PolicyObject): Promise<void> {
  const c = checkPolicyObject(p);
  await withFreshMaps(exec, async (maps) => {
    await exec.run('nft', ['-f', '-'], { stdin: renderPolicy(p, planMapDeletes(c, maps)) });
  });
}

export async function removePolicy(exec: Exec, name: string): Promise<void> {
  checkChainName(name);
  await withFreshMaps(exec, async (maps) => {
    const script = renderPolicyRemoval(name, { v4: mappedTo(name, maps.v4), v6: mappedTo(name, maps.v6) });
    try {
      await exec.run('nft', ['-f', '-'], { stdin: script });
    } catch (e) {
      if (isKernelError(e, 'ENOENT') && e.line === 1) return; // `add chain` failed: no table, nothing left
      throw e;
    }
  });
}

export async function removePolicyTable(exec: Exec): Promise<void> {
  await exec.run('nft', ['-f', '-'], { stdin: renderPolicyTableRemoval() });
}

const COUNTER = /^(ep_[0-9a-f]{12})_denied$/;

export function readPolicyCounters(exec: Exec): Promise<Record<string, PolicyCounter>> {
  return readCounters(exec, NFT_FAMILY, NFT_POLICY_TABLE, (name) => COUNTER.exec(name)?.[1]);
}
