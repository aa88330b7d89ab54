/**
 * Port policy, the pure part under policy.ts: validation of a PolicyObject before any of
 * it reaches nft text, and the contents of one endpoint's sets in a form the kernel takes.
 *
 * why the shaping: nft refuses overlaps, each set backend in its own way.
 * - plain port sets (`type inet_service; flags interval`, rbtree) refuse overlapping ranges:
 *   ranges are merged;
 * - source-narrowed sets (`ipv4_addr . inet_service`, a concatenation: pipapo) refuse an
 *   element whose first or last point lies inside another element (order-dependent, EEXIST):
 *   elements are made pairwise disjoint (nested prefixes keep only the ports their parents
 *   do not already admit; ports any source may use are left out);
 * - icmp source sets (`ipv4_addr; flags interval`, rbtree) refuse nested prefixes: only the
 *   outermost prefixes stay.
 * The union the sets admit is exactly what core/policy's admits() admits (property-tested).
 *
 * A name= or label= rule (core/names) is no element of these: its sources are the shared sets
 * of its selector (policy-selectors.ts), so its ports go into the chain's rules instead
 * (`ip saddr @sel_<hash>_4 tcp dport { 5432, 8000-8100 } accept`), merged per selector.
 */
import type { PolicyObject } from '../../core/desired.ts';
import { errors } from '../../core/errors.ts';
import {
  bitsOf,
  type Family,
  formatIp,
  formatPrefix,
  hostMask,
  isNetworkAddress,
  type Prefix,
  parseIp,
  parsePrefix,
} from '../../core/ip.ts';
import { isValidLabelKey, isValidLabelValue, isValidNameGlob, type PeerSelector } from '../../core/names/model.ts';
import { selectorSetName } from '../../core/naming.ts';
import type { IngressPolicy, IngressRule } from '../../core/policy/model.ts';

/** Inclusive port range [from, to]. */
export type Range = readonly [number, number];
export type SourcedRange = readonly [Prefix, Range];

export interface PolicySets {
  /** any source: merged, sorted port ranges */
  readonly tcp: readonly Range[];
  readonly udp: readonly Range[];
  /** source-narrowed: pairwise disjoint (prefix, ports) */
  readonly tcp4: readonly SourcedRange[];
  readonly tcp6: readonly SourcedRange[];
  readonly udp4: readonly SourcedRange[];
  readonly udp6: readonly SourcedRange[];
  /** echo requests from any source */
  readonly icmpAny: boolean;
  /** echo requests from these (outermost, sorted) prefixes */
  readonly icmp4: readonly Prefix[];
  readonly icmp6: readonly Prefix[];
  /** name=/label= sources, sorted by set name */
  readonly selectors: readonly SelectorRules[];
}

/** What one endpoint admits from one name=/label= source: its ports per protocol and echo. */
export interface SelectorRules {
  /** the sets' base name (naming.selectorSetName): `${set}_4`, `${set}_6` */
  readonly set: string;
  /** merged, sorted */
  readonly tcp: readonly Range[];
  readonly udp: readonly Range[];
  readonly icmp: boolean;
}

/** A PolicyObject whose every value is checked and spelt as the kernel prints it. */
export interface CheckedPolicy {
  readonly name: string;
  /** canonical bare IPs, sorted, no duplicates */
  readonly addresses4: readonly string[];
  readonly addresses6: readonly string[];
  readonly rules: IngressPolicy;
}

const CHAIN = /^ep_[0-9a-f]{12}$/;
/** "all ports" for a tcp/udp rule without ports (the parser never makes one; the model allows it) */
const ALL_PORTS: Range = [0, 65_535];

export function checkChainName(name: string): string {
  if (typeof name !== 'string' || !CHAIN.test(name)) {
    throw errors.badId(`port policy: invalid chain name ${JSON.stringify(name)}: expected ep_ and 12 hex digits`);
  }
  return name;
}

/** A bare IP (strict core/ip parse) in the spelling nft prints; throws naming `context`. */
export function checkAddress(context: string, a: string): { family: Family; text: string } {
  const ip = typeof a === 'string' ? parseIp(a) : undefined;
  if (!ip) throw errors.badAddress(`${context}: invalid address ${JSON.stringify(a)}`);
  return { family: ip.family, text: formatIp(ip) };
}

const isPort = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65_535;

function checkRule(name: string, r: IngressRule): void {
  const what = `port policy ${name}: rule ${JSON.stringify(r)}`;
  if (r.proto !== 'tcp' && r.proto !== 'udp' && r.proto !== 'icmp') throw errors.badOption(`${what}: unknown protocol`);
  if (r.ports !== undefined) {
    if (r.proto === 'icmp') throw errors.badOption(`${what}: icmp takes no ports`);
    if (!isPort(r.ports.from) || !isPort(r.ports.to) || r.ports.from > r.ports.to) {
      throw errors.badOption(`${what}: ports must be 1-65535 with from <= to`);
    }
  }
  if (r.peer !== undefined) {
    if (r.source !== undefined) throw errors.badOption(`${what}: a rule has a source or a peer, not both`);
    if (!validPeer(r.peer)) throw errors.badOption(`${what}: invalid peer selector`);
  }
  if (r.source !== undefined) {
    const p = parsePrefix(r.source);
    if (!p || !isNetworkAddress(p) || formatPrefix(p) !== r.source) {
      throw errors.badOption(`${what}: source must be a canonical network prefix`);
    }
  }
}

function validPeer(p: PeerSelector): boolean {
  if (p.by === 'name') return typeof p.glob === 'string' && isValidNameGlob(p.glob);
  return (
    p.by === 'label' &&
    typeof p.key === 'string' &&
    isValidLabelKey(p.key) &&
    (p.value === undefined || (typeof p.value === 'string' && isValidLabelValue(p.value)))
  );
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Validates everything of `p` that goes into nft text; throws TrussError (invalid) naming the value. */
export function checkPolicyObject(p: PolicyObject): CheckedPolicy {
  const name = checkChainName(p.name);
  if (!Array.isArray(p.addresses) || !Array.isArray(p.rules)) {
    throw errors.badOption(`port policy ${name}: addresses and rules must be lists`);
  }
  const v4 = new Set<string>();
  const v6 = new Set<string>();
  for (const a of p.addresses) {
    const c = checkAddress(`port policy ${name}`, a);
    (c.family === 4 ? v4 : v6).add(c.text);
  }
  for (const r of p.rules) checkRule(name, r);
  return { name, addresses4: [...v4].sort(byText), addresses6: [...v6].sort(byText), rules: p.rules };
}

// ---------- ranges ----------

/** Sorted, with overlapping and adjacent ranges merged. */
export function mergeRanges(rs: readonly Range[]): Range[] {
  const sorted = [...rs].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out: [number, number][] = [];
  for (const [from, to] of sorted) {
    const last = out[out.length - 1];
    if (last && from <= last[1] + 1) last[1] = Math.max(last[1], to);
    else out.push([from, to]);
  }
  return out;
}

/** a \ b, both merged and sorted. */
export function subtractRanges(a: readonly Range[], b: readonly Range[]): Range[] {
  const out: Range[] = [];
  for (const [from, to] of a) {
    let cur = from;
    for (const [bf, bt] of b) {
      if (bt < cur || bf > to) continue;
      if (bf > cur) out.push([cur, bf - 1]);
      cur = Math.max(cur, bt + 1);
      if (cur > to) break;
    }
    if (cur <= to) out.push([cur, to]);
  }
  return out;
}

const portsOf = (r: IngressRule): Range => (r.ports === undefined ? ALL_PORTS : [r.ports.from, r.ports.to]);

// ---------- prefixes ----------

const prefixKey = (p: Prefix): string => `${p.value.toString(16)}/${p.length}`;

function truncate(p: Prefix, length: number): Prefix {
  return { family: p.family, value: p.value & ~hostMask(p.family, length), length };
}

const byPrefix = (a: Prefix, b: Prefix): number =>
  a.value < b.value ? -1 : a.value > b.value ? 1 : a.length - b.length;

/**
 * Pairwise-disjoint (prefix, range) elements whose union is ∪ entries minus `any` × everything.
 * Prefixes are nested or disjoint, so each prefix keeps only the ports that its ancestors
 * (and `any`) do not already admit. O(entries × prefix lengths).
 */
export function disjointElements(any: readonly Range[], entries: readonly SourcedRange[]): SourcedRange[] {
  const groups = new Map<string, { prefix: Prefix; ranges: Range[] }>();
  for (const [prefix, range] of entries) {
    const k = prefixKey(prefix);
    const g = groups.get(k);
    if (g) g.ranges.push(range);
    else groups.set(k, { prefix, ranges: [range] });
  }
  const lengths = [...new Set([...groups.values()].map((g) => g.prefix.length))].sort((a, b) => a - b);
  const out: SourcedRange[] = [];
  const prefixes = [...groups.values()].map((g) => g.prefix).sort(byPrefix);
  for (const prefix of prefixes) {
    const inherited: Range[] = [...any];
    for (const l of lengths) {
      if (l >= prefix.length) break;
      const anc = groups.get(prefixKey(truncate(prefix, l)));
      if (anc) inherited.push(...anc.ranges);
    }
    const own = groups.get(prefixKey(prefix))?.ranges ?? [];
    for (const r of subtractRanges(mergeRanges(own), mergeRanges(inherited))) out.push([prefix, r]);
  }
  return out;
}

/** Only the prefixes not inside another one of the list, sorted. */
export function outermostPrefixes(ps: readonly Prefix[]): Prefix[] {
  const sorted = [...ps].sort((a, b) => a.length - b.length || byPrefix(a, b));
  const kept = new Map<string, Prefix>();
  const lengths: number[] = [];
  for (const p of sorted) {
    if (kept.has(prefixKey(p))) continue;
    if (lengths.some((l) => l <= p.length && kept.has(prefixKey(truncate(p, l))))) continue;
    kept.set(prefixKey(p), p);
    if (!lengths.includes(p.length)) lengths.push(p.length);
  }
  return [...kept.values()].sort(byPrefix);
}

// ---------- the sets of one policy ----------

const sourceOf = (r: IngressRule): Prefix | undefined =>
  r.source === undefined ? undefined : (parsePrefix(r.source) as Prefix);

/** Pure: a policy's name=/label= rules, merged per selector, sorted by set name. */
function selectorRules(rules: IngressPolicy): SelectorRules[] {
  const by = new Map<string, { tcp: Range[]; udp: Range[]; icmp: boolean }>();
  for (const r of rules) {
    if (r.peer === undefined) continue;
    const set = selectorSetName(r.peer);
    let g = by.get(set);
    if (g === undefined) {
      g = { tcp: [], udp: [], icmp: false };
      by.set(set, g);
    }
    if (r.proto === 'icmp') g.icmp = true;
    else g[r.proto].push(portsOf(r));
  }
  return [...by]
    .sort(([a], [b]) => byText(a, b))
    .map(([set, g]) => ({ set, tcp: mergeRanges(g.tcp), udp: mergeRanges(g.udp), icmp: g.icmp }));
}

/** Pure: the contents of every set of a (checked) policy. */
export function computePolicySets(rules: IngressPolicy): PolicySets {
  const anyPorts: Record<'tcp' | 'udp', Range[]> = { tcp: [], udp: [] };
  const sourced: Record<'tcp4' | 'tcp6' | 'udp4' | 'udp6', SourcedRange[]> = { tcp4: [], tcp6: [], udp4: [], udp6: [] };
  const icmpFrom: Record<Family, Prefix[]> = { 4: [], 6: [] };
  let icmpAny = false;
  for (const r of rules) {
    if (r.peer !== undefined) continue; // its sources are its selector's sets: selectorRules
    const src = sourceOf(r);
    if (r.proto === 'icmp') {
      if (src === undefined) icmpAny = true;
      else icmpFrom[src.family].push(src);
    } else if (src === undefined) anyPorts[r.proto].push(portsOf(r));
    else sourced[`${r.proto}${src.family}`].push([src, portsOf(r)]);
  }
  const tcp = mergeRanges(anyPorts.tcp);
  const udp = mergeRanges(anyPorts.udp);
  return {
    tcp,
    udp,
    tcp4: disjointElements(tcp, sourced.tcp4),
    tcp6: disjointElements(tcp, sourced.tcp6),
    udp4: disjointElements(udp, sourced.udp4),
    udp6: disjointElements(udp, sourced.udp6),
    icmpAny,
    icmp4: icmpAny ? [] : outermostPrefixes(icmpFrom[4]),
    icmp6: icmpAny ? [] : outermostPrefixes(icmpFrom[6]),
    selectors: selectorRules(rules),
  };
}

// ---------- nft spelling (as `nft list` prints it) ----------

export const formatRange = ([from, to]: Range): string => (from === to ? `${from}` : `${from}-${to}`);

/** A host prefix prints as the bare address, as nft does. */
export const formatSetPrefix = (p: Prefix): string =>
  p.length === bitsOf(p.family) ? formatIp({ family: p.family, value: p.value }) : formatPrefix(p);

export const formatSourced = ([p, r]: SourcedRange): string => `${formatSetPrefix(p)} . ${formatRange(r)}`;
