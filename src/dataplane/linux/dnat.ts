/**
 * Published ports in nftables: `table inet truss_ports`, DNAT from host ports to containers.
 * Like truss_policy it is never replaced whole: one endpoint's elements are rewritten in one
 * atomic `nft -f -` transaction that carries only that endpoint's elements, so an attach does
 * not grow with the ports of other endpoints. The table exists only while some endpoint
 * publishes a port.
 *
 *   map dnat4 / dnat6          host address . proto . host port -> container address . port
 *   map dnat4_any / dnat6_any  proto . host port -> container address . port   (HostIP "")
 *   map hairpin4 / hairpin6    container . itself -> its gateway address (SNAT, see below)
 *   set bridges                bridges of publishing endpoints (hairpin masquerade)
 *   chain prerouting           nat, dstnat - 10: to a local address -> lookups (exact first)
 *   chain output               nat, dstnat - 10: the host's own connections, except loopback
 *   chain postrouting          nat, srcnat - 10: a container reaching its own published port
 *                              is SNATed to its gateway (else it would answer itself
 *                              locally); routed DNATed flows from a truss bridge are
 *                              masqueraded, so replies come back through the host
 *
 * why the hairpin map and not only the masquerade: with br_netfilter (dockerd turns it on), a
 * frame to a host address that DNAT sends back into the same bridge is bridged, not routed:
 * the IP postrouting hook then sees no input interface (no `iifname` match) and no address to
 * masquerade to. A neighbour's reply passes br_netfilter's conntrack and is un-DNATed there;
 * only the container's connection to itself needs the SNAT, keyed exactly (saddr . daddr).
 *
 * Ownership: the table name (naming.NFT_PORTS_TABLE); every element carries the comment
 * naming.portsOwnerName(endpoint id), so one endpoint's elements are found and removed without
 * memory. The bridges set only grows while the table lives (a stale name is harmless: no
 * traffic comes from a deleted bridge); it goes with the table.
 *
 * Hairpin mode on a publishing endpoint's bridge port: with br_netfilter, a frame from a
 * container to a host address that DNAT turns back into the container itself is bridged
 * (not routed) back out the port it came in on, which a bridge port only does in hairpin
 * mode. Only publishing endpoints get it (flooded frames are then reflected to the sender
 * too; IPv6 DAD tells its own looped-back probes apart by their nonce, RFC 7527). It stays
 * until the veth goes.
 *
 * why `fib daddr type local`: HostIP "" means every address of the host, whichever it is now
 * (addresses come and go); the lookup is one route check per new connection (nat chains see
 * only a flow's first packet). Loopback is excluded in `output`: a DNATed packet keeps its
 * 127.0.0.1 source and the kernel will not route that to a bridge without route_localnet,
 * which would expose localhost services to containers (CVE-2020-8558); 127.0.0.1:PORT is
 * refused instead of hanging.
 *
 * why the maps are not interval maps: `add/delete element` in nft 1.0.6 dumps every interval
 * set of the table first (see policy.ts); plain maps keep one endpoint's update O(its ports).
 *
 * why ensure reads nothing first: reading the table back (`nft -j list table`) grows with every
 * endpoint's ports (≈60 ms at 3,000 elements). Adding an element that exists with the same value
 * is a no-op and with another value fails (EEXIST), so the common attach is one blind
 * transaction; only on EEXIST (a key another, stale, endpoint still holds) does ensure read the
 * table and delete first. Old elements of the same endpoint under keys it no longer wants are the
 * reconciler's to remove (removePorts before ensurePorts when an endpoint's ports changed).
 */

import type { SetCheck } from '../../core/contracts.ts';
import type { PortsObject } from '../../core/desired.ts';
import { errors } from '../../core/errors.ts';
import { type Family, formatIp, parseIp } from '../../core/ip.ts';
import { NFT_FAMILY, NFT_PORTS_TABLE } from '../../core/naming.ts';
import type { PortProto, PublishedPort } from '../../core/portmap.ts';
import { type Exec, isKernelError } from './exec.ts';
import { checkIfName } from './links.ts';

export const PORTS_TABLE = `${NFT_FAMILY} ${NFT_PORTS_TABLE}`;
const TABLE = PORTS_TABLE;

export type MapName = 'dnat4' | 'dnat4_any' | 'dnat6' | 'dnat6_any' | 'hairpin4' | 'hairpin6';
const MAPS: readonly MapName[] = ['dnat4', 'dnat4_any', 'dnat6', 'dnat6_any', 'hairpin4', 'hairpin6'];

const mapType = (m: MapName): string => {
  const addr = m.endsWith('4') || m.startsWith('dnat4') ? 'ipv4_addr' : 'ipv6_addr';
  if (m.startsWith('hairpin')) return `${addr} . ${addr} : ${addr}`;
  const key = m.endsWith('_any') ? 'inet_proto . inet_service' : `${addr} . inet_proto . inet_service`;
  return `${key} : ${addr} . inet_service`;
};

/** One map element: `key : value`, owned by `owner`. */
export interface PortElement {
  readonly map: MapName;
  /** as nft prints it: "198.18.1.1 . tcp . 8080" or "tcp . 8080" */
  readonly key: string;
  /** "198.18.0.2 . 80" */
  readonly value: string;
  readonly owner?: string;
}

const PROTOS: ReadonlySet<string> = new Set<PortProto>(['tcp', 'udp', 'sctp']);
const PROTO_NUMBERS: Readonly<Record<number, string>> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };
const OWNER = /^ep_[0-9a-f]{12}$/;

function checkOwner(name: string): string {
  if (typeof name !== 'string' || !OWNER.test(name)) {
    throw errors.badId(`published ports: invalid owner ${JSON.stringify(name)}: expected ep_ and 12 hex digits`);
  }
  return name;
}

function checkPortNumber(what: string, n: unknown): number {
  if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > 65535)
    throw errors.badOption(`published ports: ${what} ${JSON.stringify(n)} is not 1-65535`);
  return n as number;
}

function checkIp(what: string, s: unknown, family: Family): string {
  const ip = typeof s === 'string' ? parseIp(s) : undefined;
  if (!ip || ip.family !== family)
    throw errors.badAddress(`published ports: ${what} ${JSON.stringify(s)} is not an IPv${family} address`);
  return formatIp(ip);
}

/** Pure: the validated elements of one endpoint. */
export function portElements(p: PortsObject): PortElement[] {
  const owner = checkOwner(p.name);
  checkIfName(p.bridge);
  const els = p.ports.map((b: PublishedPort): PortElement => {
    if (b.family !== 4 && b.family !== 6) throw errors.badOption(`published ports: family ${String(b.family)}`);
    if (!PROTOS.has(b.proto)) throw errors.badOption(`published ports: protocol ${JSON.stringify(b.proto)}`);
    const target = checkIp('container address', b.family === 4 ? p.address4 : p.address6, b.family);
    const hostPort = checkPortNumber('host port', b.hostPort);
    const port = checkPortNumber('container port', b.port);
    const host = b.hostIp === undefined ? undefined : checkIp('host address', b.hostIp, b.family);
    const map: MapName = `dnat${b.family}${host === undefined ? '_any' : ''}`;
    const key = `${host === undefined ? '' : `${host} . `}${b.proto} . ${hostPort}`;
    return { map, key, value: `${target} . ${port}`, owner };
  });
  return [...els, ...hairpinElements(p, owner, els)];
}

/** One SNAT element per family the endpoint publishes on and has a gateway in. */
function hairpinElements(p: PortsObject, owner: string, els: readonly PortElement[]): PortElement[] {
  const out: PortElement[] = [];
  for (const family of [4, 6] as const) {
    const gw = family === 4 ? p.gateway4 : p.gateway6;
    if (gw === undefined || !els.some((e) => e.map.startsWith(`dnat${family}`))) continue;
    const self = checkIp('container address', family === 4 ? p.address4 : p.address6, family);
    out.push({ map: `hairpin${family}`, key: `${self} . ${self}`, value: checkIp('gateway', gw, family), owner });
  }
  return out;
}

// ---------- the base ----------

const HOOKS = [
  ['prerouting', 'type nat hook prerouting priority dstnat - 10; policy accept;'],
  // why a number: nft 1.0.6 only knows the name `dstnat` for prerouting
  ['output', 'type nat hook output priority -110; policy accept;'],
  ['postrouting', 'type nat hook postrouting priority srcnat - 10; policy accept;'],
] as const;

const lookups = (extra4: string, extra6: string): string[] => [
  `meta nfproto ipv4${extra4} fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @dnat4 comment "truss: published on one host address"`,
  `meta nfproto ipv4${extra4} fib daddr type local dnat ip to meta l4proto . th dport map @dnat4_any comment "truss: published on every host address"`,
  `meta nfproto ipv6${extra6} fib daddr type local dnat ip6 to ip6 daddr . meta l4proto . th dport map @dnat6 comment "truss: published on one host address"`,
  `meta nfproto ipv6${extra6} fib daddr type local dnat ip6 to meta l4proto . th dport map @dnat6_any comment "truss: published on every host address"`,
];

/** The rules of the hooked chains, as `nft list` prints them (modulo the normaliser). */
export const BASE_RULES: Readonly<Record<(typeof HOOKS)[number][0], readonly string[]>> = {
  prerouting: lookups('', ''),
  output: lookups(' ip daddr != 127.0.0.0/8', ' ip6 daddr != ::1'),
  postrouting: [
    'meta nfproto ipv4 ct status dnat snat ip to ip saddr . ip daddr map @hairpin4 comment "truss: a container reaching itself via the host"',
    'meta nfproto ipv6 ct status dnat snat ip6 to ip6 saddr . ip6 daddr map @hairpin6 comment "truss: a container reaching itself via the host"',
    'ct status dnat iifname @bridges masquerade comment "truss: hairpin: a container reaching a published port via the host"',
  ],
};

/** Pure: creates the table, maps, set and chains when missing, and rewrites the chains' rules. */
export function renderPortsBase(): string {
  const lines = [
    `table ${TABLE} {`,
    '\tcomment "truss: published ports (-p): DNAT to containers; updated per endpoint by truss"',
    ...MAPS.map((m) => `\tmap ${m} {\n\t\ttype ${mapType(m)}\n\t}`),
    '\tset bridges {\n\t\ttype ifname\n\t}',
    ...HOOKS.map(([h, line]) => `\tchain ${h} {\n\t\t${line}\n\t}`),
    '}',
    ...HOOKS.map(([h]) => `flush chain ${TABLE} ${h}`),
    `table ${TABLE} {`,
    ...HOOKS.map(([h]) => `\tchain ${h} {\n${BASE_RULES[h].map((r) => `\t\t${r}`).join('\n')}\n\t}`),
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

const elementText = (e: PortElement, withValue: boolean): string =>
  withValue ? `${e.key} comment "${e.owner}" : ${e.value}` : e.key;

function deleteLines(dels: readonly PortElement[]): string[] {
  return dels.map((d) => `delete element ${TABLE} ${d.map} { ${elementText(d, false)} }`);
}

/**
 * Pure: the transaction that programs one endpoint: the base, its bridge, the deletion of
 * `deletes` (its old elements and any stale holder of a key it wants: planPortDeletes), then
 * its elements.
 */
export function renderPorts(p: PortsObject, deletes: readonly PortElement[] = []): string {
  const els = portElements(p);
  const lines = [
    `add element ${TABLE} bridges { "${checkIfName(p.bridge)}" }`,
    ...deleteLines(deletes),
    ...els.map((e) => `add element ${TABLE} ${e.map} { ${elementText(e, true)} }`),
  ];
  return `${renderPortsBase()}${lines.join('\n')}\n`;
}

/** Pure: what must go before `p`'s elements are added: its own elements and other holders of its keys. */
export function planPortDeletes(p: PortsObject, installed: readonly PortElement[]): PortElement[] {
  const wanted = new Set(portElements(p).map((e) => `${e.map} ${e.key}`));
  return installed.filter((e) => e.owner === p.name || wanted.has(`${e.map} ${e.key}`));
}

export const renderPortsTableRemoval = (): string => `table ${TABLE} {}\ndelete table ${TABLE}\n`;

// ---------- reading back ----------

interface NftJsonMap {
  readonly name?: unknown;
  readonly elem?: unknown[];
}

interface NftJsonRule {
  readonly chain?: unknown;
  readonly comment?: unknown;
}

interface NftJsonSet {
  readonly name?: unknown;
  readonly elem?: unknown[];
}

/** What `nft -j list table inet truss_ports` shows: elements, rule comments per chain, bridges. */
export interface PortsTable {
  readonly elements: readonly PortElement[];
  readonly rules: Readonly<Record<string, readonly string[]>>;
  readonly bridges: readonly string[];
}

function atom(x: unknown): string {
  if (typeof x === 'number') return String(x);
  if (typeof x === 'string') {
    const ip = parseIp(x);
    return ip ? formatIp(ip) : x;
  }
  return JSON.stringify(x);
}

/** A key's parts: the protocol may come back as a name or a number. */
function keyText(parts: readonly unknown[]): string {
  return parts
    .map((p, i) => (i === parts.length - 2 && typeof p === 'number' ? (PROTO_NUMBERS[p] ?? String(p)) : atom(p)))
    .join(' . ');
}

function concatOf(x: unknown): unknown[] {
  const c = (x as { concat?: unknown } | undefined)?.concat;
  return Array.isArray(c) ? c : [x];
}

/** Pure: `nft -j list table inet truss_ports` -> elements, rule comments per chain, bridges. */
export function parsePortsTableJson(stdout: string): PortsTable {
  const doc = JSON.parse(stdout) as { nftables?: { map?: NftJsonMap; rule?: NftJsonRule; set?: NftJsonSet }[] };
  const elements: PortElement[] = [];
  const rules: Record<string, string[]> = {};
  const bridges: string[] = [];
  for (const item of doc.nftables ?? []) {
    if (item.map && MAPS.includes(item.map.name as MapName)) {
      for (const el of item.map.elem ?? []) {
        if (!Array.isArray(el)) continue;
        const wrapped = (el[0] as { elem?: { val?: unknown; comment?: unknown } } | undefined)?.elem;
        const keyRaw = wrapped ? wrapped.val : el[0];
        const comment = wrapped?.comment;
        elements.push({
          map: item.map.name as MapName,
          key: keyText(concatOf(keyRaw)),
          value: concatOf(el[1]).map(atom).join(' . '),
          ...(typeof comment === 'string' ? { owner: comment } : {}),
        });
      }
    }
    if (item.rule && typeof item.rule.chain === 'string') {
      const list = rules[item.rule.chain] ?? [];
      list.push(typeof item.rule.comment === 'string' ? item.rule.comment : '');
      rules[item.rule.chain] = list;
    }
    if (item.set?.name === 'bridges') {
      for (const b of item.set.elem ?? []) if (typeof b === 'string') bridges.push(b);
    }
  }
  return { elements, rules, bridges };
}

/** The table, or undefined when it does not exist. */
export async function readPortsTable(exec: Exec): Promise<PortsTable | undefined> {
  try {
    return parsePortsTableJson((await exec.run('nft', ['-j', 'list', 'table', NFT_FAMILY, NFT_PORTS_TABLE])).stdout);
  } catch (e) {
    if (isKernelError(e, 'ENOENT')) return undefined;
    throw e;
  }
}

const commentOf = (rule: string): string => /comment "([^"]*)"$/.exec(rule)?.[1] ?? '';

/** Pure: problems of the base (chains' rules by comment); [] when it holds. */
export function checkPortsBase(t: PortsTable): string[] {
  const problems: string[] = [];
  for (const [h] of HOOKS) {
    const want = BASE_RULES[h].map(commentOf);
    const have = t.rules[h] ?? [];
    if (want.join('\n') !== have.join('\n'))
      problems.push(`nft ${TABLE} chain ${h}: expected ${want.length} rules, found ${have.length} (or others)`);
  }
  return problems;
}

const elementId = (e: PortElement): string => `${e.map} ${e.key} : ${e.value}`;

/** Pure: drift between the installed table and the desired endpoints. */
export function diffPorts(desired: readonly PortsObject[], t: PortsTable | undefined): SetCheck {
  if (!t) {
    const drifted = desired.map((p) => p.name);
    return { drifted, extra: [], problems: drifted.length > 0 ? [`nft table ${TABLE} is missing`] : [] };
  }
  const base = checkPortsBase(t);
  const byOwner = new Map<string, string[]>();
  for (const e of t.elements) {
    const list = byOwner.get(e.owner ?? '') ?? [];
    list.push(elementId(e));
    byOwner.set(e.owner ?? '', list);
  }
  const problems = [...base];
  const drifted: string[] = [];
  const bridges = new Set(t.bridges);
  for (const p of desired) {
    const want = portElements(p).map(elementId).sort();
    const have = (byOwner.get(p.name) ?? []).sort();
    const bridgeOk = bridges.has(p.bridge);
    if (base.length === 0 && bridgeOk && want.join('\n') === have.join('\n')) continue;
    drifted.push(p.name);
    if (base.length === 0) problems.push(`published ports ${p.name}: elements differ or bridge missing`);
  }
  const wanted = new Set(desired.map((p) => p.name));
  const extra = [...byOwner.keys()].filter((o) => o !== '' && !wanted.has(o)).sort();
  for (const o of extra) problems.push(`published ports ${o}: installed but not desired`);
  if (byOwner.has('')) problems.push(`nft ${TABLE}: elements without an owner comment`);
  return { drifted, extra, problems };
}

// ---------- kernel ----------

/** One attempt after a fresh read, one more if the table changed in between (EEXIST/ENOENT). */
async function withFreshTable(exec: Exec, attempt: (t: PortsTable | undefined) => Promise<void>): Promise<void> {
  try {
    await attempt(await readPortsTable(exec));
  } catch (e) {
    if (!isKernelError(e, 'EEXIST') && !isKernelError(e, 'ENOENT')) throw e;
    await attempt(await readPortsTable(exec));
  }
}

export async function applyPorts(exec: Exec, p: PortsObject): Promise<void> {
  portElements(p); // validate before reading anything
  const port = checkIfName(p.hostVeth);
  try {
    await exec.run('nft', ['-f', '-'], { stdin: renderPorts(p) });
  } catch (e) {
    if (!isKernelError(e, 'EEXIST')) throw e;
    await withFreshTable(exec, async (t) => {
      await exec.run('nft', ['-f', '-'], { stdin: renderPorts(p, planPortDeletes(p, t?.elements ?? [])) });
    });
  }
  // routed mode (core/routed.ts): `bridge` is the host end itself, no bridge port, nothing to turn on
  if (p.bridge !== p.hostVeth)
    await exec.run('ip', ['link', 'set', 'dev', port, 'type', 'bridge_slave', 'hairpin', 'on']);
}

export async function removePorts(exec: Exec, name: string): Promise<void> {
  checkOwner(name);
  await withFreshTable(exec, async (t) => {
    const mine = (t?.elements ?? []).filter((e) => e.owner === name);
    if (mine.length === 0) return;
    await exec.run('nft', ['-f', '-'], { stdin: `${deleteLines(mine).join('\n')}\n` });
  });
}

export async function removePortsTable(exec: Exec): Promise<void> {
  await exec.run('nft', ['-f', '-'], { stdin: renderPortsTableRemoval() });
}

export async function checkPorts(exec: Exec, desired: readonly PortsObject[]): Promise<SetCheck> {
  const table = await readPortsTable(exec);
  return { ...diffPorts(desired, table), tablePresent: table !== undefined };
}
