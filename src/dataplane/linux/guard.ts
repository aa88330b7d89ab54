/**
 * Anti-spoofing in nftables: `table bridge truss_guard`, one chain on the bridge prerouting
 * hook that checks every frame entering a bridge from a guarded veth (the host end of a
 * container's veth pair, a port of the bridge) against that veth's identities (core/guard.ts).
 * The per-endpoint state is only set ELEMENTS keyed by the veth's name (the kernel set is named
 * `ports`: bridge ports), so guarding an endpoint is one small transaction
 * of set elements that does not grow with the number of endpoints; the chain never changes.
 *
 *   set ports   ifname                 the guarded ports (frames from any other port: accepted)
 *   set macs    ifname . ether_addr    its MAC: Ethernet source and ARP sender hardware address
 *   set addr4   ifname . ipv4_addr     its IPv4: IPv4 source and ARP sender protocol address
 *   set addr6   ifname . ipv6_addr     its IPv6 and EUI-64 link-local: IPv6 source
 *   set nd6     iifname . @th,64,128   the same as 128-bit integers: the target of a neighbour
 *                                      advertisement, and of a DAD solicitation (source ::)
 *
 * nd6 exists because nft 1.0.6 has no `icmpv6 taddr`: the target field is read raw (ICMPv6
 * header + 4 reserved bytes = bit 64), and a raw field only concatenates into a `typeof` set.
 *
 * why the bridge family and priority filter (-200): the chain sees a frame as it enters the
 * bridge, before br_netfilter (priority 0) hands it to the inet/ip hooks and conntrack, and
 * before the bridge delivers or floods it: a spoofed frame reaches neither another container,
 * the host, nor truss's `inet truss` firewall. The bridge's own frames (the gateway) leave by
 * the output hook and are not seen. Router advertisements and redirects from containers are
 * not this table's: the RA guard (`bridge truss`, ra-guard.ts) drops them for every truss veth,
 * whatever truss.antispoof says (a container that may forward for others still may not act
 * as the network's IPv6 router).
 *
 * why elements are added inline (`add set X { …; elements = { … } }`): nft 1.0.6 answers
 * `add element` by first dumping interval sets (policy.ts says more); none of this table's
 * sets are interval sets, but the inline form keeps an attach independent of that.
 * Removal uses add-then-`delete element` (absent elements are no error).
 *
 * why the per-endpoint transactions (an attach's elements, a detach's removal) go to the long-lived
 * `nft -i` (exec RunOptions.session, nft-session.ts): ~1 ms instead of a process's 3-6 ms, on the
 * path Docker waits on. The table's creation and repairs (multi-line blocks) run as `nft -f -`.
 *
 * Ownership: the table name; each element's first field names a truss veth (trv…).
 */

import type { SetCheck } from '../../core/contracts.ts';
import { errors } from '../../core/errors.ts';
import type { GuardObject } from '../../core/guard.ts';
import { formatIp, parseIp } from '../../core/ip.ts';
import { isValidIfName, NFT_GUARD_FAMILY, NFT_GUARD_TABLE } from '../../core/naming.ts';
import { type Exec, isKernelError } from './exec.ts';
import { checkIfName, checkMac } from './links.ts';
import { listTable, type NamedCounter, normaliseNft, readCounters } from './nft-read.ts';

export const GUARD_TABLE = `${NFT_GUARD_FAMILY} ${NFT_GUARD_TABLE}`;
const TABLE = GUARD_TABLE;

export type GuardSetName = 'ports' | 'macs' | 'addr4' | 'addr6' | 'nd6';

interface SetDef {
  readonly name: GuardSetName;
  /** the declaration inside `set X { … }`, as `nft list` prints it */
  readonly decl: string;
}

export const GUARD_SETS: readonly SetDef[] = [
  { name: 'ports', decl: 'type ifname' },
  { name: 'macs', decl: 'type ifname . ether_addr' },
  { name: 'addr4', decl: 'type ifname . ipv4_addr' },
  { name: 'addr6', decl: 'type ifname . ipv6_addr' },
  { name: 'nd6', decl: 'typeof iifname . @th,64,128' },
];

export const GUARD_HOOK = 'type filter hook prerouting priority filter; policy accept;';

/**
 * Named counters (`drop_<reason>`; `arp`, `ip6`… are nft keywords), one per reason a frame is dropped: they survive the chain's rewrite with
 * every ensure (rule counters would not), so `nft list counters table bridge truss_guard`
 * tells what was dropped since the table was made.
 */
export const GUARD_COUNTERS = ['drop_mac', 'drop_ethertype', 'drop_arp', 'drop_ip4', 'drop_ip6', 'drop_nd'] as const;

const drop = (counter: (typeof GUARD_COUNTERS)[number], why: string): string =>
  `counter name "${counter}" drop comment "truss: ${why}"`;

/** The chain's rules in order, as `nft list` prints them. */
export const GUARD_RULES: readonly string[] = [
  'iifname != @ports accept comment "truss: not a guarded container port"',
  `iifname . ether saddr != @macs ${drop('drop_mac', "Ethernet source is not the container's MAC")}`,
  `ether type != { ip, arp, ip6 } ${drop('drop_ethertype', 'neither IP nor ARP')}`,
  `arp htype != 1 ${drop('drop_arp', 'ARP not over Ethernet')}`,
  `arp ptype != ip ${drop('drop_arp', 'ARP not for IPv4')}`,
  `arp operation != { request, reply } ${drop('drop_arp', 'ARP neither request nor reply')}`,
  `iifname . arp saddr ether != @macs ${drop('drop_arp', "ARP sender MAC is not the container's")}`,
  `iifname . arp saddr ip != @addr4 ${drop('drop_arp', "ARP sender IP is not the container's")}`,
  `iifname . ip saddr != @addr4 ${drop('drop_ip4', "IPv4 source is not the container's")}`,
  'ip6 saddr :: icmpv6 type nd-neighbor-solicit iifname . @th,64,128 @nd6 accept comment "truss: DAD for its own address"',
  'ip6 saddr :: icmpv6 type { mld-listener-report, mld2-listener-report } accept comment "truss: MLD report before DAD"',
  `iifname . ip6 saddr != @addr6 ${drop('drop_ip6', "IPv6 source is not the container's")}`,
  `icmpv6 type nd-neighbor-advert iifname . @th,64,128 != @nd6 ${drop('drop_nd', "NA for an address not the container's")}`,
];

/** Pure: creates the table, sets and chain when missing and rewrites the chain (atomically). */
export function renderGuardBase(): string {
  const lines = [
    `table ${TABLE} {`,
    '\tcomment "truss: anti-spoofing (frames from container ports); updated per endpoint by truss"',
    ...GUARD_COUNTERS.map((c) => `\tcounter ${c} {\n\t}`),
    ...GUARD_SETS.map((s) => `\tset ${s.name} {\n\t\t${s.decl}\n\t}`),
    `\tchain prerouting {\n\t\t${GUARD_HOOK}\n\t}`,
    '}',
    `flush chain ${TABLE} prerouting`,
    `table ${TABLE} {`,
    `\tchain prerouting {\n${GUARD_RULES.map((r) => `\t\t${r}`).join('\n')}\n\t}`,
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

/** A guarded veth's elements per set, in the text nft accepts and prints (canonical). */
export type GuardElements = Readonly<Record<GuardSetName, readonly string[]>>;

const emptyElements = (): Record<GuardSetName, string[]> => ({ ports: [], macs: [], addr4: [], addr6: [], nd6: [] });

const hex128 = (v: bigint): string => `0x${v.toString(16).padStart(32, '0')}`;

function checkFamily(where: string, text: string, family: 4 | 6): bigint {
  const ip = parseIp(text);
  if (!ip || ip.family !== family)
    throw errors.badAddress(`${where}: ${JSON.stringify(text)} is not an IPv${family} address`);
  return ip.value;
}

/** Pure, validating: the elements that guard `g`'s veth. */
export function guardElements(g: GuardObject): GuardElements {
  const link = `"${checkIfName(g.name)}"`;
  const out = emptyElements();
  out.ports.push(link);
  out.macs.push(`${link} . ${checkMac(g.mac)}`);
  for (const a of g.ipv4) out.addr4.push(`${link} . ${canonical('addr4', a)}`);
  for (const a of g.ipv6) {
    out.addr6.push(`${link} . ${canonical('addr6', a)}`);
    out.nd6.push(`${link} . ${hex128(checkFamily(`guard ${g.name}`, a, 6))}`);
  }
  return out;
}

/** The canonical text of one element's value (the part after the veth name), as rendered. */
function canonical(set: GuardSetName, value: string): string {
  switch (set) {
    case 'ports':
      return value;
    case 'macs':
      return checkMac(value);
    case 'addr4':
    case 'addr6':
      return formatIp({
        family: set === 'addr4' ? 4 : 6,
        value: checkFamily(`guard set ${set}`, value, set === 'addr4' ? 4 : 6),
      });
    case 'nd6':
      if (!/^0x[0-9a-f]{1,32}$/i.test(value)) throw errors.badAddress(`guard set nd6: ${JSON.stringify(value)}`);
      return hex128(BigInt(value));
  }
}

/** Pure: an element's veth name and canonical text, or undefined when it is not one of ours. */
export function parseElement(set: GuardSetName, text: string): { link: string; text: string } | undefined {
  const m = /^"([^"]+)"(?: \. (\S+))?$/.exec(text.trim());
  if (!m?.[1]) return undefined;
  const link = m[1];
  // a name that is no interface name cannot be removed by name: not ours to handle
  if (!isValidIfName(link) || (set === 'ports') !== (m[2] === undefined)) return undefined;
  try {
    const value = m[2] === undefined ? '' : canonical(set, m[2]);
    return { link, text: m[2] === undefined ? `"${link}"` : `"${link}" . ${value}` };
  } catch {
    return undefined;
  }
}

const chunks = <T>(xs: readonly T[], n = 1000): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
};

const declOf = (name: GuardSetName): string => (GUARD_SETS.find((s) => s.name === name) as SetDef).decl;

const addLines = (els: GuardElements): string[] =>
  GUARD_SETS.flatMap((s) =>
    chunks(els[s.name]).map((c) => `add set ${TABLE} ${s.name} { ${declOf(s.name)}; elements = { ${c.join(', ')} } }`),
  );

/** add-then-delete: deleting elements that are already gone is no error */
const deleteLines = (els: GuardElements): string[] =>
  GUARD_SETS.flatMap((s) =>
    chunks(els[s.name]).flatMap((c) => [
      `add set ${TABLE} ${s.name} { ${declOf(s.name)}; elements = { ${c.join(', ')} } }`,
      `delete element ${TABLE} ${s.name} { ${c.join(', ')} }`,
    ]),
  );

/**
 * Pure: one transaction that guards `g`'s veth (base included). `unwanted`: elements found
 * on the veth that are not `g`'s (drift), deleted in the same transaction, so the veth is
 * never unguarded in between.
 */
export function renderGuard(g: GuardObject, unwanted?: GuardElements): string {
  const els = guardElements(g);
  const dels = unwanted ? checkedElements(unwanted) : undefined;
  return `${renderGuardBase()}${[...(dels ? deleteLines(dels) : []), ...addLines(els)].join('\n')}\n`;
}

/**
 * Pure: only `g`'s elements (the attach): without the table its first line fails (ENOENT) and
 * applyGuard sends renderGuard instead. Rewriting the chain with every attach would more than
 * double its cost (nft evaluates 14 rules and their set references), for nothing: a chain
 * changed behind truss's back shows in the full pass's check, which repairs with renderGuard.
 */
export const renderGuardElements = (g: GuardObject): string => `${addLines(guardElements(g)).join('\n')}\n`;

/** Pure: removes a veth's elements; the first line fails only when the table is missing (= nothing to remove). */
export function renderGuardRemoval(els: GuardElements): string {
  const first = `add set ${TABLE} ports { ${declOf('ports')}; }`;
  return `${[first, ...deleteLines(checkedElements(els))].join('\n')}\n`;
}

export const renderGuardTableRemoval = (): string => `table ${TABLE} {}\ndelete table ${TABLE}\n`;

/** Re-validates element texts before they go into a transaction (they may come from a listing). */
function checkedElements(els: GuardElements): GuardElements {
  const out = emptyElements();
  for (const s of GUARD_SETS) {
    for (const t of els[s.name]) {
      const p = parseElement(s.name, t);
      if (!p) throw errors.badAddress(`guard set ${s.name}: cannot handle element ${JSON.stringify(t)}`);
      checkIfName(p.link);
      out[s.name].push(p.text);
    }
  }
  return out;
}

// ---------- reading and comparing ----------

export interface GuardListing {
  /** normalised chain lines (hook line first), undefined when the chain is missing */
  readonly chain?: readonly string[];
  /** set name -> declaration line (undefined: set missing) */
  readonly decls: Readonly<Partial<Record<GuardSetName, string>>>;
  /** guarded veth -> its elements as listed (canonical) */
  readonly byLink: ReadonlyMap<string, GuardElements>;
  readonly counters: ReadonlySet<string>;
}

/** Pure: `nft list table bridge truss_guard` -> chain, set declarations, elements by veth. */
export function parseGuardListing(text: string): GuardListing {
  const lines = normaliseNft(text);
  let chain: string[] | undefined;
  const decls: Partial<Record<GuardSetName, string>> = {};
  const byLink = new Map<string, Record<GuardSetName, string[]>>();
  const counters = new Set<string>();
  let open: { kind: 'chain' } | { kind: 'set'; name: GuardSetName } | { kind: 'other' } | undefined;
  for (const line of lines) {
    const head = /^(chain|set|map|counter) (\S+) \{$/.exec(line);
    if (head) {
      const name = head[2] as string;
      if (head[1] === 'chain' && name === 'prerouting') {
        chain = [];
        open = { kind: 'chain' };
      } else if (head[1] === 'set' && GUARD_SETS.some((s) => s.name === name)) {
        open = { kind: 'set', name: name as GuardSetName };
      } else {
        if (head[1] === 'counter') counters.add(name);
        open = { kind: 'other' };
      }
      continue;
    }
    if (line === '}') {
      open = undefined;
      continue;
    }
    if (open?.kind === 'chain') chain?.push(line);
    else if (open?.kind === 'set') {
      const els = /^elements = \{ (.*) \}$/.exec(line);
      if (!els) {
        decls[open.name] ??= line;
        continue;
      }
      for (const t of (els[1] ?? '').split(', ')) {
        const p = parseElement(open.name, t);
        if (!p) continue;
        const mine = byLink.get(p.link) ?? emptyElements();
        byLink.set(p.link, mine);
        mine[open.name].push(p.text);
      }
    }
  }
  return { ...(chain ? { chain } : {}), decls, byLink, counters };
}

const expectedChain = (): string[] => [GUARD_HOOK, ...GUARD_RULES];

/** Pure: what is on a veth but not in `want` (per set). */
export function unwantedOf(have: GuardElements | undefined, want: GuardElements): GuardElements {
  const out = emptyElements();
  if (!have) return out;
  for (const s of GUARD_SETS) {
    const keep = new Set(want[s.name]);
    for (const t of have[s.name]) if (!keep.has(t)) out[s.name].push(t);
  }
  return out;
}

const count = (e: GuardElements): number => GUARD_SETS.reduce((n, s) => n + e[s.name].length, 0);

/**
 * Pure: compares a listing (undefined = no table) with the desired guards. Repairs stay
 * cheap: only a veth with elements not its own is repaired `exact` (it reads the table), and a
 * broken chain, counter or set is rewritten once, with the first guard's repair.
 */
export function diffGuards(desired: readonly GuardObject[], listing: string | undefined): SetCheck {
  const names = desired.map((g) => g.name);
  if (listing === undefined) {
    return desired.length === 0
      ? { drifted: [], exact: [], extra: [], problems: [] }
      : { drifted: names, exact: [], extra: [], problems: [`table ${TABLE} is missing`] };
  }
  const have = parseGuardListing(listing);
  const problems: string[] = [];
  const want = expectedChain();
  const chainOk =
    have.chain !== undefined && have.chain.length === want.length && have.chain.every((l, i) => l === want[i]);
  if (!chainOk) problems.push(`table ${TABLE}: chain prerouting ${have.chain ? 'differs' : 'is missing'}`);
  for (const c of GUARD_COUNTERS) {
    if (!have.counters.has(c)) problems.push(`table ${TABLE}: counter ${c} is missing`);
  }
  for (const s of GUARD_SETS) {
    if (have.decls[s.name] !== s.decl)
      problems.push(`table ${TABLE}: set ${s.name} ${have.decls[s.name] ? 'differs' : 'is missing'}`);
  }
  const exact = new Set(problems.length > 0 && names[0] !== undefined ? [names[0]] : []);
  const drifted = new Set(exact);
  for (const g of desired) {
    let mine: GuardElements;
    try {
      mine = guardElements(g);
    } catch (e) {
      problems.push(`guard ${g.name}: cannot be rendered: ${(e as Error).message}`);
      continue;
    }
    const found = have.byLink.get(g.name);
    const missing = unwantedOf(mine, found ?? emptyElements());
    const extra = unwantedOf(found, mine);
    if (count(missing) > 0) problems.push(`guard ${g.name}: ${count(missing)} element(s) missing`);
    if (count(extra) > 0) problems.push(`guard ${g.name}: ${count(extra)} element(s) not its own`);
    if (count(missing) + count(extra) > 0) drifted.add(g.name);
    if (count(extra) > 0) exact.add(g.name);
  }
  const wanted = new Set(names);
  const extra = [...have.byLink.keys()].filter((p) => !wanted.has(p)).sort();
  for (const p of extra) problems.push(`guard ${p}: installed but not desired`);
  return { drifted: names.filter((n) => drifted.has(n)), exact: names.filter((n) => exact.has(n)), extra, problems };
}

// ---------- kernel ----------

/** The table as `nft list` prints it, or undefined when it does not exist. */
export const readGuardTable = (exec: Exec): Promise<string | undefined> =>
  listTable(exec, NFT_GUARD_FAMILY, NFT_GUARD_TABLE);

export async function checkGuards(exec: Exec, desired: readonly GuardObject[]): Promise<SetCheck> {
  const listing = await readGuardTable(exec);
  return { ...diffGuards(desired, listing), tablePresent: listing !== undefined };
}

/**
 * Guard `g`'s veth: its elements alone, or with the table, sets and chain when the table is
 * missing. `exact`: first read the table, then rewrite the chain and delete, in the same
 * transaction, elements on the veth that are not `g`'s (repairs after drift).
 */
export async function applyGuard(exec: Exec, g: GuardObject, exact = false): Promise<void> {
  let unwanted: GuardElements | undefined;
  if (!exact) {
    try {
      await exec.run('nft', ['-f', '-'], { stdin: renderGuardElements(g), session: true });
      return;
    } catch (e) {
      if (!isKernelError(e, 'ENOENT')) throw e; // no table (yet, or any more): make it
    }
  } else {
    const listing = await readGuardTable(exec);
    const found = listing === undefined ? undefined : parseGuardListing(listing).byLink.get(g.name);
    unwanted = unwantedOf(found, guardElements(g));
  }
  await exec.run('nft', ['-f', '-'], { stdin: renderGuard(g, unwanted) });
}

/** Unguard a veth: `known` = the guard last applied (no read), else its elements are read from the table. */
export async function removeGuard(exec: Exec, link: string, known?: GuardObject): Promise<void> {
  checkIfName(link);
  let els: GuardElements | undefined;
  if (known && known.name === link) els = guardElements(known);
  else {
    const listing = await readGuardTable(exec);
    if (listing === undefined) return;
    els = parseGuardListing(listing).byLink.get(link);
  }
  if (!els || count(els) === 0) return;
  try {
    await exec.run('nft', ['-f', '-'], { stdin: renderGuardRemoval(els), session: true });
  } catch (e) {
    if (isKernelError(e, 'ENOENT') && e.line === 1) return; // no table: nothing left
    throw e;
  }
}

export async function removeGuardTable(exec: Exec): Promise<void> {
  await exec.run('nft', ['-f', '-'], { stdin: renderGuardTableRemoval() });
}

/**
 * Frames dropped so far, by reason (`mac`, `ethertype`, `arp`, `ip4`, `ip6`, `nd`: the counter
 * names without `drop_`), for the whole host; {} when no veth is guarded (no table).
 */
export function readGuardCounters(exec: Exec): Promise<Record<string, NamedCounter>> {
  const ours = new Set<string>(GUARD_COUNTERS);
  return readCounters(exec, NFT_GUARD_FAMILY, NFT_GUARD_TABLE, (name) =>
    ours.has(name) ? name.slice('drop_'.length) : undefined,
  );
}
