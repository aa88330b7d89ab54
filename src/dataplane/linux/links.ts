/**
 * Reading links back from the kernel (`ip -j -d addr show`).
 *
 * Ownership: a link is truss's when its ifalias (IFLA_IFALIAS, a free-text label the kernel
 * keeps and never interprets) is our mark `truss:<br|ep>:<full docker id>`
 * (naming.ownerMark), or, failing a readable mark, when its name is one only truss makes
 * (naming.isTrussLinkName: trb/trv/trc + 12 hex). Everything else is foreign: listed never,
 * changed never.
 */

import type { ObservedLink } from '../../core/contracts.ts';
import { errors } from '../../core/errors.ts';
import { formatPrefix, parsePrefix } from '../../core/ip.ts';
import { isTrussLinkName, isValidIfName, parseOwnerMark } from '../../core/naming.ts';
import { type Exec, isKernelError } from './exec.ts';

/** An observed link plus the raw alias, so callers can tell "no mark" from "someone else's label". */
export interface LinkState extends ObservedLink {
  readonly alias?: string;
}

interface IpAddrInfo {
  readonly family?: string;
  readonly local?: string;
  readonly prefixlen?: number;
  readonly scope?: string;
}

interface IpLinkJson {
  readonly ifindex?: number;
  readonly ifname?: string;
  readonly ifalias?: string;
  readonly mtu?: number;
  readonly flags?: readonly string[];
  readonly master?: string;
  readonly address?: string;
  readonly linkinfo?: { readonly info_kind?: string };
  /** "default" (0), or the number (a name only when /etc/iproute2/group names it) */
  readonly group?: string | number;
  readonly addr_info?: readonly IpAddrInfo[];
}

function toLinkState(j: IpLinkJson): LinkState | undefined {
  if (typeof j.ifname !== 'string' || typeof j.ifindex !== 'number') return undefined;
  const mark = parseOwnerMark(j.ifalias);
  const addresses = (j.addr_info ?? [])
    .filter((a) => a.scope === 'global' && typeof a.local === 'string' && typeof a.prefixlen === 'number')
    .map((a) => `${a.local}/${a.prefixlen}`);
  const group = Number(j.group);
  return {
    ...(Number.isInteger(group) && group > 0 ? { group } : {}),
    name: j.ifname,
    ifindex: j.ifindex,
    kind: j.linkinfo?.info_kind ?? '',
    ...(mark ? { mark } : {}),
    ...(j.ifalias ? { alias: j.ifalias } : {}),
    mtu: j.mtu ?? 0,
    up: (j.flags ?? []).includes('UP'),
    ...(j.master ? { master: j.master } : {}),
    mac: j.address ?? '',
    addresses,
  };
}

/** Pure: the JSON of `ip -j -d addr show` → every link in it. */
export function parseIpAddrJson(stdout: string): LinkState[] {
  const text = stdout.trim();
  if (text === '') return [];
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed)) return [];
  return parsed.flatMap((j: IpLinkJson) => toLinkState(j) ?? []);
}

export const isOwnedLink = (l: LinkState): boolean => l.mark !== undefined || isTrussLinkName(l.name);

/** Strips the raw alias: callers outside dataplane/ see ObservedLink only. */
export function toObserved(l: LinkState): ObservedLink {
  const { alias: _alias, ...rest } = l;
  return rest;
}

/** Every truss link of the namespace. */
export async function listOwnedLinks(exec: Exec): Promise<ObservedLink[]> {
  const { stdout } = await exec.run('ip', ['-j', '-d', 'addr', 'show']);
  return parseIpAddrJson(stdout).filter(isOwnedLink).map(toObserved);
}

/** One link by name, ours or not; undefined when it does not exist. */
export async function readLink(exec: Exec, name: string): Promise<LinkState | undefined> {
  try {
    const { stdout } = await exec.run('ip', ['-j', '-d', 'addr', 'show', 'dev', name]);
    return parseIpAddrJson(stdout)[0];
  } catch (e) {
    if (isKernelError(e, 'ENODEV')) return undefined;
    throw e;
  }
}

interface IpRouteJson {
  readonly dev?: string;
  readonly nexthops?: readonly { readonly dev?: string }[];
}

/** Pure: the devices of `ip -j route show default` (multipath routes included). */
export function parseRouteDevices(stdout: string): string[] {
  const text = stdout.trim();
  const routes: unknown = text === '' ? [] : JSON.parse(text);
  if (!Array.isArray(routes)) return [];
  return routes
    .flatMap((r: IpRouteJson) => [r.dev, ...(r.nexthops ?? []).map((h) => h.dev)])
    .filter((d): d is string => typeof d === 'string');
}

/** The uplinks: links carrying an IPv4 or IPv6 default route of the main table, sorted, unique. */
export async function listUplinks(exec: Exec): Promise<string[]> {
  const [v4, v6] = await Promise.all([
    exec.run('ip', ['-j', '-4', 'route', 'show', 'default']),
    exec.run('ip', ['-j', '-6', 'route', 'show', 'default']),
  ]);
  return [...new Set([...parseRouteDevices(v4.stdout), ...parseRouteDevices(v6.stdout)])].sort();
}

/** Deletes a link by name; already gone = success. Callers have checked ownership. */
export async function deleteLink(exec: Exec, name: string): Promise<void> {
  try {
    await exec.run('ip', ['link', 'del', 'dev', checkIfName(name)]);
  } catch (e) {
    if (!isKernelError(e, 'ENODEV')) throw e;
  }
}

/**
 * Undoes a create batch that failed after its `link add`: the link was absent just before,
 * so one of `kind` with no alias yet, or with the mark the batch set, is the one we made.
 * Not every failure says which line failed (`ip` exits at once on a bad argument, e.g. a
 * missing master), so this re-reads.
 */
export async function undoFailedCreate(
  exec: Exec,
  err: unknown,
  created: { readonly name: string; readonly kind: string; readonly mark: string },
): Promise<void> {
  if (isKernelError(err) && err.line === 1) return; // the add itself failed: nothing was made
  const cur = await readLink(exec, created.name).catch(() => undefined);
  if (cur?.kind !== created.kind || (cur.alias !== undefined && cur.alias !== created.mark)) return;
  await deleteLink(exec, created.name).catch(() => {});
}

/** An `ip -batch -` script. Every argument in it went through the checks below (no spaces, quotes, newlines). */
export const batch = (lines: readonly string[]): string => `${lines.join('\n')}\n`;

export function checkIfName(name: string): string {
  if (!isValidIfName(name))
    throw errors.badOption(`invalid interface name ${JSON.stringify(name)}: use 1-15 of [a-zA-Z0-9_.-]`);
  return name;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
export function checkMac(mac: string): string {
  if (!MAC.test(mac))
    throw errors.badAddress(`invalid MAC address ${JSON.stringify(mac)}: use colon-hex, e.g. 02:5e:00:00:00:01`);
  return mac.toLowerCase();
}

/** "198.18.0.1/24" in the kernel's own spelling (IPv6 compressed as inet_ntop does), so sets compare. */
export function canonicalCidr(cidr: string): string {
  const p = parsePrefix(cidr);
  if (!p) throw errors.badAddress(`invalid address ${JSON.stringify(cidr)}: use CIDR form, e.g. 198.18.0.1/24`);
  return formatPrefix(p);
}
