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
 *   chain prerouting   nat, dstnat - 15: udp/tcp dport 53 -> one map lookup per family
 *
 * The rules do not grow with networks or upstreams: one lookup per family, keyed on the input
 * bridge and the destination; a miss (another bridge, another destination) leaves the packet
 * alone. Matching `iifname` by name needs no device: a map may name a bridge not made yet.
 *
 * why this nft syntax: nft 1.0.6 (this project's) accepts `dnat ip to iifname . ip daddr map
 * @dns4` with a concatenated `address . port` value, and inserts the `meta nfproto ipv4`
 * dependency itself (`nft --debug=netlink`); `nft -j` lists each element as
 * [{"concat": [ifname, address]}, {"concat": [address, port]}].
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
 * Ownership: the table name (naming.NFT_DNS_TABLE); the table is truss's whole and replaced
 * whole in one atomic `nft -f -` (create-if-absent, delete, create), like `inet truss`: it
 * changes only when dns-enabled networks or upstreams do.
 */

import type { DnsRedirectObject } from '../../core/desired.ts';
import { errors } from '../../core/errors.ts';
import { type Family, formatIp, parseIp } from '../../core/ip.ts';
import { NFT_DNS_TABLE, NFT_FAMILY } from '../../core/naming.ts';
import { type Exec, isKernelError } from './exec.ts';
import { checkIfName } from './links.ts';

export const DNS_TABLE = `${NFT_FAMILY} ${NFT_DNS_TABLE}`;
const TABLE = DNS_TABLE;

type MapName = 'dns4' | 'dns6';

/** One map element, as `nft list` prints it. */
export interface DnsElement {
  readonly map: MapName;
  /** `"trb…" . 8.8.8.8` */
  readonly key: string;
  /** `198.18.0.1 . 35301` */
  readonly value: string;
}

/** The prerouting chain's hook and rules; the comments are what check() compares. */
const HOOK = 'type nat hook prerouting priority dstnat - 15; policy accept;';
export const DNS_PRIORITY = -115;
export const DNS_RULES: readonly string[] = [
  'meta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 dnat ip to iifname . ip daddr map @dns4 comment "truss: DNS from a dns-enabled network to an upstream: to the responder"',
  'meta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 dnat ip6 to iifname . ip6 daddr map @dns6 comment "truss: DNS from a dns-enabled network to an upstream: to the responder (IPv6)"',
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
    const gw4 = b.gateway4 === undefined ? undefined : checkIp(`gateway of ${bridge}`, b.gateway4, 4);
    const gw6 = b.gateway6 === undefined ? undefined : checkIp(`gateway of ${bridge}`, b.gateway6, 6);
    for (const u of upstreams) {
      const gw = u.family === 4 ? gw4 : gw6;
      if (gw === undefined) continue;
      out.push({ map: `dns${u.family}`, key: `"${bridge}" . ${u.address}`, value: `${gw} . ${u.port}` });
    }
  }
  return out;
}

function mapLines(name: MapName, els: readonly DnsElement[]): string[] {
  const addr = name === 'dns4' ? 'ipv4_addr' : 'ipv6_addr';
  const mine = els.filter((e) => e.map === name).map((e) => `${e.key} : ${e.value}`);
  const body = mine.length > 0 ? [`\t\telements = { ${mine.join(', ')} }`] : [];
  return [`\tmap ${name} {`, `\t\ttype ifname . ${addr} : ${addr} . inet_service`, ...body, '\t}', ''];
}

/** Pure: the table for `o`. */
export function renderDnsRedirect(o: DnsRedirectObject): string {
  const els = dnsElements(o);
  const lines = [
    `table ${TABLE} {`,
    '\tcomment "truss: DNS of dns-enabled networks to truss\'s responder; replaced whole by truss"',
    ...mapLines('dns4', els),
    ...mapLines('dns6', els),
    '\tchain prerouting {',
    `\t\t${HOOK}`,
    ...DNS_RULES.map((r) => `\t\t${r}`),
    '\t}',
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

/** Pure: the transaction that swaps the table for the rendering of `o` (create-if-absent, delete, create). */
export const renderDnsTransaction = (o: DnsRedirectObject): string =>
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

interface NftJsonItem {
  readonly map?: { readonly name?: unknown; readonly elem?: unknown[] };
  readonly chain?: { readonly name?: unknown; readonly hook?: unknown; readonly prio?: unknown };
  readonly rule?: { readonly chain?: unknown; readonly comment?: unknown };
}

/** Pure: `nft -j list table inet truss_dns` -> its elements, the chain's priority and rule comments. */
export function parseDnsTableJson(stdout: string): DnsTable {
  const doc = JSON.parse(stdout) as { nftables?: NftJsonItem[] };
  const elements: DnsElement[] = [];
  const rules: string[] = [];
  let priority: number | undefined;
  for (const item of doc.nftables ?? []) {
    const m = item.map;
    if (m && (m.name === 'dns4' || m.name === 'dns6')) {
      for (const el of m.elem ?? []) {
        if (!Array.isArray(el)) continue;
        const wrapped = (el[0] as { elem?: { val?: unknown } } | undefined)?.elem;
        elements.push({
          map: m.name,
          key: partsText(wrapped ? wrapped.val : el[0], true),
          value: partsText(el[1], false),
        });
      }
    }
    const c = item.chain;
    if (c?.name === 'prerouting' && c.hook === 'prerouting' && typeof c.prio === 'number') priority = c.prio;
    if (item.rule?.chain === 'prerouting') rules.push(typeof item.rule.comment === 'string' ? item.rule.comment : '');
  }
  return { elements, rules, ...(priority !== undefined ? { priority } : {}) };
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
  const wanted = new Set(dnsElements(want).map(elementText));
  const have = new Set(t.elements.map(elementText));
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

export async function ensureDnsRedirect(exec: Exec, o: DnsRedirectObject): Promise<void> {
  await exec.run('nft', ['-f', '-'], { stdin: renderDnsTransaction(o) });
}

/** Deletes the table; absent = success (the create-then-delete pair never fails on absence). */
export async function removeDnsRedirect(exec: Exec): Promise<void> {
  await exec.run('nft', ['-f', '-'], { stdin: renderDnsRemoval() });
}

export async function checkDnsRedirect(exec: Exec, want: DnsRedirectObject | undefined): Promise<string[]> {
  if (want !== undefined) dnsElements(want); // an invalid object is an error, not drift
  return diffDnsRedirect(want, await readDnsTable(exec));
}
