/**
 * DNS redirection for dns-enabled networks (truss.dns=true): `table inet truss_dns`. Docker's
 * embedded DNS forwards what it cannot answer to the upstream servers from inside the
 * container's namespace, so those queries leave through the truss bridge; here, on the host,
 * they are DNATed to truss's responder on that bridge's gateway address, one responder port per
 * upstream (the port tells the responder where the query was going, so it can forward it
 * unchanged). Replies are un-DNATed by conntrack: the container sees them come from the upstream.
 *
 *   map dns4   ifname . ipv4_addr : ipv4_addr . inet_service
 *              "trb…" . 8.8.8.8 : 198.18.0.1 . 35301     (bridge . upstream : gateway . port)
 *   map dns6   ifname . ipv6_addr : ipv6_addr . inet_service   (bridges with a v6 gateway)
 *   set bridges4, bridges6   ifname: the dns-enabled bridges with a gateway of that family
 *   set seen4, seen6         ipv4_addr / ipv6_addr, dynamic, 1 h timeout, 256 at most: learnt upstreams
 *   chain prerouting   nat, dstnat - 15: udp/tcp dport 53 from a bridge of @bridgesN to a
 *              destination not in @dnsN -> `update @seenN` (and pass); then one map lookup per family
 *
 * Learning: truss cannot compute every server a container queries (daemon.json "dns" servers,
 * anything a program asks directly), so a query from a dns-enabled bridge to a server not in
 * the map passes untouched and leaves its address in @seen4/@seen6; the daemon reads them
 * (readDnsSeen) and makes them upstreams, and the next ensure redirects them. A nat chain sees
 * only a flow's first packet, so the set is updated once per query, not per packet.
 *
 * The rules do not grow with networks or upstreams: two per family, keyed on the input bridge
 * and the destination; a miss (another bridge, another destination) leaves the packet alone.
 * Matching `iifname` by name needs no device: a map or set may name a bridge not made yet.
 *
 * why this nft syntax: nft 1.0.6 (this project's) accepts `dnat ip to iifname . ip daddr map
 * @dns4` with a concatenated `address . port` value, and inserts the `meta nfproto ipv4`
 * dependency itself (`nft --debug=netlink`); `nft -j` lists each element as
 * [{"concat": [ifname, address]}, {"concat": [address, port]}]; `iifname . ip daddr != @dns4`
 * looks a map up as a set; an element of a set with a timeout is {"elem": {"val", "expires"}}.
 *
 * why dstnat - 15: nat chains of one hook run in priority order and the first that DNATs a flow
 * wins (later ones are skipped). truss_ports (dnat.ts) runs at dstnat - 10 and Docker's own nat
 * PREROUTING (iptables-nft) at dstnat; both DNAT only to local addresses (`fib daddr type
 * local`, `--dst-type LOCAL`), so they meet a query only when the upstream is an address of the
 * host itself with port 53 published. Running first, the network's opt-in wins there too, and
 * nothing is lost: the responder forwards from the host, where truss_ports' `output` chain
 * still sends it to the published port.
 *
 * The redirected packets reach the host's INPUT from a truss bridge. Nothing of truss drops
 * them: `inet truss` (nft.ts) has an input chain only for the VXLAN guard (our VNI on the VXLAN
 * port), truss_policy filters forward/output into endpoints, truss_guard only frames with a
 * container's wrong source. dockerd writes no INPUT rules (its FORWARD DROP does not apply). A
 * host firewall that drops input from unknown interfaces (firewalld's default zone, ufw) does
 * stop them, and an accept here could not override another table's drop.
 *
 * Ownership: the table name (naming.NFT_DNS_TABLE); the table is truss's whole. An ensure
 * rewrites it in one atomic `nft -f -` that replaces everything but @seen4/@seen6 (declare each
 * object if absent, delete the chain, maps and bridge sets, create them all again): replacing
 * the table whole would forget what was learnt since the daemon last read it. Should that
 * transaction fail (a seen set of another shape, left by another version), the table is
 * replaced whole. It changes only when dns-enabled networks or upstreams do.
 */

import type { DnsRedirectObject } from '../../core/desired.ts';
import { errors } from '../../core/errors.ts';
import { type Family, formatIp, parseIp } from '../../core/ip.ts';
import { NFT_DNS_TABLE, NFT_FAMILY } from '../../core/naming.ts';
import { type Exec, isKernelError } from './exec.ts';
import { checkIfName } from './links.ts';

export const DNS_TABLE = `${NFT_FAMILY} ${NFT_DNS_TABLE}`;
const TABLE = DNS_TABLE;

type MapName = 'dns4' | 'dns6' | 'gdns4' | 'gdns6';
type BridgeSet = 'bridges4' | 'bridges6' | 'groups4' | 'groups6';

/** One map element, as `nft list` prints it. */
export interface DnsElement {
  readonly map: MapName;
  /** `"trb…" . 8.8.8.8` */
  readonly key: string;
  /** `198.18.0.1 . 35301` */
  readonly value: string;
}

const COMMENT = 'comment "truss: DNS of dns-enabled networks to truss\'s responder; rewritten by truss"';

/** The prerouting chain's hook and rules; the comments are what check() compares. */
const HOOK = 'type nat hook prerouting priority dstnat - 15; policy accept;';
export const DNS_PRIORITY = -115;
export const DNS_RULES: readonly string[] = [
  'meta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 iifname @bridges4 iifname . ip daddr != @dns4 update @seen4 { ip daddr } comment "truss: DNS from a dns-enabled network to a server truss does not know: learn it"',
  'meta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 iifname @bridges6 iifname . ip6 daddr != @dns6 update @seen6 { ip6 daddr } comment "truss: DNS from a dns-enabled network to a server truss does not know: learn it (IPv6)"',
  'meta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 dnat ip to iifname . ip daddr map @dns4 comment "truss: DNS from a dns-enabled network to an upstream: to the responder"',
  'meta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 dnat ip6 to iifname . ip6 daddr map @dns6 comment "truss: DNS from a dns-enabled network to an upstream: to the responder (IPv6)"',
  'meta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 iifgroup @groups4 iifgroup . ip daddr != @gdns4 update @seen4 { ip daddr } comment "truss: DNS from a dns-enabled routed network to a server truss does not know: learn it"',
  'meta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 iifgroup @groups6 iifgroup . ip6 daddr != @gdns6 update @seen6 { ip6 daddr } comment "truss: DNS from a dns-enabled routed network to a server truss does not know: learn it (IPv6)"',
  'meta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 dnat ip to iifgroup . ip daddr map @gdns4 comment "truss: DNS from a dns-enabled routed network to an upstream: to the responder"',
  'meta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 dnat ip6 to iifgroup . ip6 daddr map @gdns6 comment "truss: DNS from a dns-enabled routed network to an upstream: to the responder (IPv6)"',
];

const commentOf = (rule: string): string => /comment "([^"]*)"$/.exec(rule)?.[1] ?? '';

function checkIp(what: string, s: unknown, family?: Family): string {
  const ip = typeof s === 'string' ? parseIp(s) : undefined;
  if (!ip || (family !== undefined && ip.family !== family)) {
    const want = family === undefined ? 'an IP address' : `an IPv${family} address`;
    throw errors.badAddress(`DNS redirection: ${what} ${JSON.stringify(s)} is not ${want}`);
  }
  return formatIp(ip);
}

function checkPort(what: string, n: unknown): number {
  if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > 65535)
    throw errors.badOption(`DNS redirection: ${what} ${JSON.stringify(n)} is not 1-65535`);
  return n as number;
}

/** A routed network's interface group (core/routed.ts routedGroup): an unsigned 32-bit number. */
function checkGroup(n: unknown): number {
  if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > 0xffffffff)
    throw errors.badOption(`DNS redirection: interface group ${JSON.stringify(n)} is not 1-4294967295`);
  return n as number;
}

function once(seen: Set<string>, what: string, v: string): void {
  if (seen.has(v)) throw errors.badOption(`DNS redirection: ${what} ${JSON.stringify(v)} appears twice`);
  seen.add(v);
}

/**
 * Pure: the validated elements of `o`, bridges × upstreams of a family the bridge has a gateway
 * in. Every name, address and port is checked here, before it reaches nft text. Two upstreams
 * on one port (or one address on two ports) would make the responder guess: refused.
 */
export function dnsElements(o: DnsRedirectObject): DnsElement[] {
  const addresses = new Set<string>();
  const ports = new Set<string>();
  const upstreams = o.upstreams.map((u) => {
    const address = checkIp('upstream', u.address);
    const port = checkPort(`responder port of upstream ${address}`, u.port);
    once(addresses, 'upstream', address);
    once(ports, 'responder port', String(port));
    return { address, port, family: parseIp(address)?.family as Family };
  });
  const bridges = new Set<string>();
  const out: DnsElement[] = [];
  for (const b of o.bridges) {
    const bridge = checkIfName(b.bridge);
    once(bridges, 'bridge', bridge);
    const group = b.group === undefined ? undefined : checkGroup(b.group);
    const gw4 = b.gateway4 === undefined ? undefined : checkIp(`gateway of ${bridge}`, b.gateway4, 4);
    const gw6 = b.gateway6 === undefined ? undefined : checkIp(`gateway of ${bridge}`, b.gateway6, 6);
    for (const u of upstreams) {
      const gw = u.family === 4 ? gw4 : gw6;
      if (gw === undefined) continue;
      out.push(
        group === undefined
          ? { map: `dns${u.family}`, key: `"${bridge}" . ${u.address}`, value: `${gw} . ${u.port}` }
          : { map: `gdns${u.family}`, key: `${group} . ${u.address}`, value: `${gw} . ${u.port}` },
      );
    }
  }
  return out;
}

/** Pure: the bridge sets' members as check() compares them, `bridges4 "trb…"` (names checked by dnsElements). */
export function dnsBridgeMembers(o: DnsRedirectObject): string[] {
  const out: string[] = [];
  for (const b of o.bridges) {
    const [set, member] = b.group === undefined ? ['bridges', `"${b.bridge}"`] : ['groups', String(b.group)];
    if (b.gateway4 !== undefined) out.push(`${set}4 ${member}`);
    if (b.gateway6 !== undefined) out.push(`${set}6 ${member}`);
  }
  return out;
}

/** A learning set: its elements expire an hour after a query last refreshed them; a full set learns nothing more. */
const seenLines = (name: 'seen4' | 'seen6'): string[] => [
  `\tset ${name} {`,
  `\t\ttype ${name === 'seen4' ? 'ipv4_addr' : 'ipv6_addr'}`,
  '\t\tsize 256',
  '\t\tflags dynamic,timeout',
  '\t\ttimeout 1h',
  '\t}',
  '',
];

function bridgeSetLines(name: BridgeSet, o: DnsRedirectObject): string[] {
  const mine = dnsBridgeMembers(o)
    .filter((m) => m.startsWith(`${name} `))
    .map((m) => m.slice(name.length + 1));
  const body = mine.length > 0 ? [`\t\telements = { ${mine.join(', ')} }`] : [];
  const type = name.startsWith('groups') ? 'devgroup' : 'ifname';
  return [`\tset ${name} {`, `\t\ttype ${type}`, ...body, '\t}', ''];
}

function mapLines(name: MapName, els: readonly DnsElement[]): string[] {
  const addr = name.endsWith('4') ? 'ipv4_addr' : 'ipv6_addr';
  const key = name.startsWith('g') ? 'devgroup' : 'ifname';
  const mine = els.filter((e) => e.map === name).map((e) => `${e.key} : ${e.value}`);
  const body = mine.length > 0 ? [`\t\telements = { ${mine.join(', ')} }`] : [];
  return [`\tmap ${name} {`, `\t\ttype ${key} . ${addr} : ${addr} . inet_service`, ...body, '\t}', ''];
}

/** Pure: the table for `o`. */
export function renderDnsRedirect(o: DnsRedirectObject): string {
  const els = dnsElements(o);
  const lines = [
    `table ${TABLE} {`,
    `\t${COMMENT}`,
    ...seenLines('seen4'),
    ...seenLines('seen6'),
    ...bridgeSetLines('bridges4', o),
    ...bridgeSetLines('bridges6', o),
    ...bridgeSetLines('groups4', o),
    ...bridgeSetLines('groups6', o),
    ...mapLines('dns4', els),
    ...mapLines('dns6', els),
    ...mapLines('gdns4', els),
    ...mapLines('gdns6', els),
    '\tchain prerouting {',
    `\t\t${HOOK}`,
    ...DNS_RULES.map((r) => `\t\t${r}`),
    '\t}',
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * Pure: the transaction that rewrites the table as the rendering of `o`, all but the seen sets'
 * elements: declare every object (created if absent, unchanged if present), delete all but the
 * seen sets (the chain first: its rules refer to the rest), create them again.
 */
export function renderDnsTransaction(o: DnsRedirectObject): string {
  const declare = [
    `table ${TABLE} {`,
    `\t${COMMENT}`,
    ...seenLines('seen4'),
    ...seenLines('seen6'),
    '\tset bridges4 {\n\t\ttype ifname\n\t}',
    '\tset bridges6 {\n\t\ttype ifname\n\t}',
    '\tmap dns4 {\n\t\ttype ifname . ipv4_addr : ipv4_addr . inet_service\n\t}',
    '\tmap dns6 {\n\t\ttype ifname . ipv6_addr : ipv6_addr . inet_service\n\t}',
    '\tset groups4 {\n\t\ttype devgroup\n\t}',
    '\tset groups6 {\n\t\ttype devgroup\n\t}',
    '\tmap gdns4 {\n\t\ttype devgroup . ipv4_addr : ipv4_addr . inet_service\n\t}',
    '\tmap gdns6 {\n\t\ttype devgroup . ipv6_addr : ipv6_addr . inet_service\n\t}',
    // no hook: an existing base chain is left as it is (whatever its priority) until deleted below
    '\tchain prerouting {\n\t}',
    '}',
  ];
  const del = [
    'chain prerouting',
    'map dns4',
    'map dns6',
    'map gdns4',
    'map gdns6',
    'set bridges4',
    'set bridges6',
    'set groups4',
    'set groups6',
  ].map((x) => `delete ${x.replace(' ', ` ${TABLE} `)}`);
  return `${[...declare, ...del].join('\n')}\n${renderDnsRedirect(o)}`;
}

/** Pure: the transaction that replaces the table whole (create-if-absent, delete, create); forgets what was learnt. */
export const renderDnsReplacement = (o: DnsRedirectObject): string =>
  `table ${TABLE} {}\ndelete table ${TABLE}\n${renderDnsRedirect(o)}`;

export const renderDnsRemoval = (): string => `table ${TABLE} {}\ndelete table ${TABLE}\n`;

// ---------- reading back ----------

/** What `nft -j list table inet truss_dns` shows. */
export interface DnsTable {
  readonly elements: readonly DnsElement[];
  /** the prerouting chain's priority, undefined without the chain */
  readonly priority?: number;
  /** comments of the prerouting chain's rules, in order */
  readonly rules: readonly string[];
  /** members of the bridge sets, `bridges4 "trb…"` */
  readonly bridges: readonly string[];
  /** what seen4/seen6 learnt: bare canonical IPs (check() ignores them) */
  readonly seen: readonly string[];
}

const concatOf = (x: unknown): unknown[] => {
  const c = (x as { concat?: unknown } | undefined)?.concat;
  return Array.isArray(c) ? c : [x];
};

/** An element's part as rendered: the ifname quoted (a valid ifname may look like an address), addresses canonical. */
function atom(x: unknown, ifname: boolean): string {
  if (typeof x === 'number') return String(x);
  if (typeof x !== 'string' || ifname) return JSON.stringify(x);
  const ip = parseIp(x);
  return ip ? formatIp(ip) : JSON.stringify(x);
}

const partsText = (x: unknown, ifnameFirst: boolean): string =>
  concatOf(x)
    .map((p, i) => atom(p, ifnameFirst && i === 0))
    .join(' . ');

/** A set element: bare, or wrapped with its timeout ({"elem": {"val": …, "expires": …}}). */
const elemValue = (x: unknown): unknown => {
  const wrapped = (x as { elem?: { val?: unknown } } | undefined)?.elem;
  return wrapped ? wrapped.val : x;
};

interface NftJsonItem {
  readonly map?: { readonly name?: unknown; readonly elem?: unknown[] };
  readonly set?: { readonly name?: unknown; readonly elem?: unknown[] };
  readonly chain?: { readonly name?: unknown; readonly hook?: unknown; readonly prio?: unknown };
  readonly rule?: { readonly chain?: unknown; readonly comment?: unknown };
}

/** Pure: `nft -j list table inet truss_dns` -> elements, bridges, what it learnt, the chain's priority and rules. */
export function parseDnsTableJson(stdout: string): DnsTable {
  const doc = JSON.parse(stdout) as { nftables?: NftJsonItem[] };
  const elements: DnsElement[] = [];
  const rules: string[] = [];
  const bridges: string[] = [];
  const seen: string[] = [];
  let priority: number | undefined;
  for (const item of doc.nftables ?? []) {
    const m = item.map;
    if (m && (m.name === 'dns4' || m.name === 'dns6' || m.name === 'gdns4' || m.name === 'gdns6')) {
      for (const el of m.elem ?? []) {
        if (!Array.isArray(el)) continue;
        const key = partsText(elemValue(el[0]), m.name === 'dns4' || m.name === 'dns6');
        elements.push({ map: m.name, key, value: partsText(el[1], false) });
      }
    }
    const set = item.set;
    if (set && (set.name === 'bridges4' || set.name === 'bridges6' || set.name === 'groups4' || set.name === 'groups6'))
      for (const el of set.elem ?? []) bridges.push(`${set.name} ${JSON.stringify(elemValue(el))}`);
    if (set && (set.name === 'seen4' || set.name === 'seen6')) {
      for (const el of set.elem ?? []) {
        const v = elemValue(el);
        const ip = typeof v === 'string' ? parseIp(v) : undefined;
        if (ip) seen.push(formatIp(ip));
      }
    }
    const c = item.chain;
    if (c?.name === 'prerouting' && c.hook === 'prerouting' && typeof c.prio === 'number') priority = c.prio;
    if (item.rule?.chain === 'prerouting') rules.push(typeof item.rule.comment === 'string' ? item.rule.comment : '');
  }
  return { elements, rules, bridges, seen, ...(priority !== undefined ? { priority } : {}) };
}

const elementText = (e: DnsElement): string => `${e.map} ${e.key} : ${e.value}`;

function listed(what: string, xs: readonly string[]): string {
  const shown = xs.slice(0, 3).join(', ');
  return `nft table ${TABLE}: ${xs.length} element(s) ${what}: ${shown}${xs.length > 3 ? ', …' : ''}`;
}

/** Pure: problems between the installed table and `want` ([] when it matches; `want` undefined: none wanted). */
export function diffDnsRedirect(want: DnsRedirectObject | undefined, t: DnsTable | undefined): string[] {
  if (want === undefined) return t ? [`nft table ${TABLE} exists but no network wants DNS redirection`] : [];
  if (!t) return [`nft table ${TABLE} is missing`];
  const problems: string[] = [];
  if (t.priority !== DNS_PRIORITY || t.rules.join('\n') !== DNS_RULES.map(commentOf).join('\n'))
    problems.push(`nft table ${TABLE}: chain prerouting differs (its hook priority or rules)`);
  const wanted = new Set([...dnsElements(want).map(elementText), ...dnsBridgeMembers(want)]);
  const have = new Set([...t.elements.map(elementText), ...t.bridges]);
  const missing = [...wanted].filter((e) => !have.has(e)).sort();
  const extra = [...have].filter((e) => !wanted.has(e)).sort();
  if (missing.length > 0) problems.push(listed('missing', missing));
  if (extra.length > 0) problems.push(listed('not desired', extra));
  return problems;
}

// ---------- kernel ----------

/** The table, or undefined when it does not exist. */
export async function readDnsTable(exec: Exec): Promise<DnsTable | undefined> {
  try {
    return parseDnsTableJson((await exec.run('nft', ['-j', 'list', 'table', NFT_FAMILY, NFT_DNS_TABLE])).stdout);
  } catch (e) {
    if (isKernelError(e, 'ENOENT')) return undefined;
    throw e;
  }
}

/** What the seen sets learnt (bare IPs, both families); [] without the table. */
export async function readDnsSeen(exec: Exec): Promise<string[]> {
  return [...((await readDnsTable(exec))?.seen ?? [])];
}

export async function ensureDnsRedirect(exec: Exec, o: DnsRedirectObject): Promise<void> {
  const text = renderDnsTransaction(o); // validates before anything runs
  try {
    await exec.run('nft', ['-f', '-'], { stdin: text });
  } catch (e) {
    // why: a table this transaction cannot rewrite (an object of another shape with our name);
    // replacing it whole converges, at the cost of what it had learnt
    if (!isKernelError(e)) throw e;
    await exec.run('nft', ['-f', '-'], { stdin: renderDnsReplacement(o) });
  }
}

/** Deletes the table; absent = success (the create-then-delete pair never fails on absence). */
export async function removeDnsRedirect(exec: Exec): Promise<void> {
  await exec.run('nft', ['-f', '-'], { stdin: renderDnsRemoval() });
}

export async function checkDnsRedirect(exec: Exec, want: DnsRedirectObject | undefined): Promise<string[]> {
  if (want !== undefined) dnsElements(want); // an invalid object is an error, not drift
  return diffDnsRedirect(want, await readDnsTable(exec));
}
