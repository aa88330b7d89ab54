/**
 * Routes to remote peers' address blocks (multi-host), one per block, in the main table:
 * "198.18.211.0/24 dev trwg0" (WireGuard) or "198.18.211.0/24 via 198.18.255.2 dev trvx0
 * onlink" (VXLAN: the peer's underlay address as on-link next hop, vxlan.ts).
 *
 * Ownership: the route's protocol field (rtm_protocol), which the kernel never interprets and
 * keeps as given: ours is TRUSS_ROUTE_PROTO (116). Listing filters on it (`ip route show proto
 * 116`), replacing only touches routes listed as ours, and deleting passes `proto 116`, so the
 * kernel itself refuses to delete anyone else's route with the same destination (IPv4 and IPv6
 * both match rtm_protocol on delete). A route we want whose destination is taken by a foreign
 * route is refused (TRUSS_ERR_KERNEL_OBJECT_FOREIGN), never replaced: new routes are `add`ed,
 * only our own are `replace`d.
 */
import { errors } from '../../core/errors.ts';
import { formatIp, formatPrefix, isNetworkAddress, parseIp, parsePrefix } from '../../core/ip.ts';
import { TRUSS_ROUTE_PROTO } from '../../core/naming.ts';
import { type Exec, isKernelError } from './exec.ts';
import { batch, checkIfName } from './links.ts';
import { dumpTrussRoutes, mainTableRoutes } from './route-dump.ts';
import { isHostEndName } from './routed-routes.ts';

export { TRUSS_ROUTE_PROTO };

export interface RouteSpec {
  /** CIDR, network address (host bits clear): "198.18.211.0/24", "fd00:211::/64" */
  readonly dst: string;
  readonly dev: string;
  /**
   * next hop, always `onlink` (reachable on `dev` whatever its addresses): the VXLAN peer's
   * underlay address, or for an IPv4 route an IPv6 link-local address (RFC 5549)
   */
  readonly via?: string;
  /** route MTU (RTAX_MTU): caps host-originated traffic, e.g. to the tunnel's inner MTU */
  readonly mtu?: number;
  /** preferred source for host-originated traffic (must be an address the peer accepts) */
  readonly src?: string;
}

/** One truss route as the kernel reports it (main table, our proto). */
export type OwnedRoute = RouteSpec;

/** "198.18.213.7" (how `ip` prints a host route) → "198.18.213.7/32"; "default" → "0.0.0.0/0". */
function canonicalDst(dst: string, family: 4 | 6): string | undefined {
  if (dst === 'default') return family === 4 ? '0.0.0.0/0' : '::/0';
  const p = parsePrefix(dst.includes('/') ? dst : `${dst}/${family === 4 ? 32 : 128}`);
  return p ? formatPrefix(p) : undefined;
}

/**
 * Pure: a listing of truss's routes (route-dump.ts: every table, both families; or one family of
 * the main table, with `family`) → the cluster's routes of the main table.
 */
export function parseRoutesJson(stdout: string, family?: 4 | 6): OwnedRoute[] {
  return mainTableRoutes(stdout, family).flatMap(({ route: r, family: f }) => {
    const dst = typeof r.dst === 'string' ? canonicalDst(r.dst, f) : undefined;
    if (dst === undefined || typeof r.dev !== 'string') return []; // multipath/blackhole: never ours
    // a routed network's (routed-routes.ts): unreachable subnets, host routes on host ends
    if ((r.type !== undefined && r.type !== 'unicast') || isHostEndName(r.dev)) return [];
    const mtu = r.metrics?.map((m) => m.mtu).find((v): v is number => typeof v === 'number');
    const hop = r.gateway ?? r.via?.host;
    const via = typeof hop === 'string' ? parseIp(hop) : undefined;
    return [
      {
        dst,
        dev: r.dev,
        ...(via ? { via: formatIp(via) } : {}),
        ...(mtu !== undefined ? { mtu } : {}),
        ...(r.prefsrc ? { src: r.prefsrc } : {}),
      },
    ];
  });
}

/** Validates and canonicalises a wanted route; throws TRUSS_ERR_ADDRESS_INVALID / OPTION_INVALID. */
export function checkRoute(r: RouteSpec): RouteSpec {
  const p = parsePrefix(r.dst);
  if (!p || !isNetworkAddress(p))
    throw errors.badAddress(
      `invalid route destination ${JSON.stringify(r.dst)}: use a network CIDR, e.g. 198.18.0.0/24`,
    );
  const dev = checkIfName(r.dev);
  if (r.mtu !== undefined && !(Number.isInteger(r.mtu) && r.mtu >= 68 && r.mtu <= 65535))
    throw errors.badOption(`invalid route MTU ${r.mtu} for ${r.dst}: use 68-65535`);
  let via: string | undefined;
  if (r.via !== undefined) {
    const ip = parseIp(r.via);
    const v6LinkLocal = ip?.family === 6 && ip.value >> 118n === 0x3fan;
    if (!ip || (ip.family !== p.family && !(p.family === 4 && v6LinkLocal)))
      throw errors.badAddress(
        `invalid route next hop ${JSON.stringify(r.via)} for ${r.dst}: use an address of its family ` +
          '(or, for IPv4, an IPv6 link-local one)',
      );
    via = formatIp(ip);
  }
  let src: string | undefined;
  if (r.src !== undefined) {
    const ip = parseIp(r.src);
    if (!ip || ip.family !== p.family)
      throw errors.badAddress(
        `invalid route source ${JSON.stringify(r.src)} for ${r.dst}: use an address of its family`,
      );
    src = formatIp(ip);
  }
  return {
    dst: formatPrefix(p),
    dev,
    ...(via ? { via } : {}),
    ...(r.mtu !== undefined ? { mtu: r.mtu } : {}),
    ...(src ? { src } : {}),
  };
}

const viaFamily = (r: RouteSpec): string => (r.via?.includes(':') && !r.dst.includes(':') ? 'inet6 ' : '');

const routeLine = (verb: 'add' | 'replace', r: RouteSpec): string =>
  `route ${verb} ${r.dst}${r.via !== undefined ? ` via ${viaFamily(r)}${r.via}` : ''} dev ${r.dev}${r.via !== undefined ? ' onlink' : ''} ` +
  `proto ${TRUSS_ROUTE_PROTO}${r.mtu !== undefined ? ` mtu ${r.mtu}` : ''}${r.src !== undefined ? ` src ${r.src}` : ''}`;

const sameRoute = (a: RouteSpec, b: RouteSpec): boolean =>
  a.dev === b.dev && a.via === b.via && a.mtu === b.mtu && a.src === b.src;

/**
 * Pure: the `ip -batch` lines that bring `want` into the kernel, given our current routes:
 * `add` for a new destination (fails with EEXIST on a foreign route: never clobbered),
 * `replace` for one of ours that differs (same key, so it is replaced, not duplicated),
 * nothing for one that matches. Routes of ours not in `want` are left alone (removeRoute).
 */
export function planRoutes(current: readonly OwnedRoute[], want: readonly RouteSpec[]): string[] {
  const have = new Map(current.map((r) => [r.dst, r]));
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const raw of want) {
    const r = checkRoute(raw);
    if (seen.has(r.dst)) throw errors.badOption(`route to ${r.dst} is wanted twice: give each destination once`);
    seen.add(r.dst);
    const cur = have.get(r.dst);
    if (cur === undefined) lines.push(routeLine('add', r));
    else if (!sameRoute(cur, r)) lines.push(routeLine('replace', r));
  }
  return lines;
}

/** Every truss route of the main table, both families, from one process (route-dump.ts). */
export async function listRoutes(exec: Exec): Promise<OwnedRoute[]> {
  return parseRoutesJson(await dumpTrussRoutes(exec));
}

/**
 * Creates or converges the given routes in one `ip -batch` (no process per route). Idempotent:
 * when all match, only the listing runs (none when the caller passes `current`, its
 * own listing of our routes just before). A destination held by a foreign route is skipped, the
 * rest still programmed, then the call throws TRUSS_ERR_KERNEL_OBJECT_FOREIGN naming it.
 * Returns the batch lines it ran.
 */
export async function ensureRoutes(
  exec: Exec,
  routes: readonly RouteSpec[],
  current?: readonly OwnedRoute[],
): Promise<string[]> {
  let lines = planRoutes(current ?? (await listRoutes(exec)), routes);
  const ran = [...lines];
  const foreign: string[] = [];
  while (lines.length > 0) {
    try {
      await exec.run('ip', ['-batch', '-'], { stdin: batch(lines) });
      break;
    } catch (e) {
      // why: `ip -batch` stops at the first failing line; an `add` refused with EEXIST is a
      // foreign route with our destination: note it and go on with the lines after it.
      if (!isKernelError(e, 'EEXIST') || e.line === undefined) throw e;
      const failed = lines[e.line - 1];
      if (!failed?.startsWith('route add ')) throw e;
      foreign.push(failed.split(' ')[2] as string);
      lines = lines.slice(e.line);
    }
  }
  if (foreign.length > 0) {
    throw errors.kernelObjectForeign(
      `route${foreign.length > 1 ? 's' : ''} to ${foreign.join(', ')} already exist${foreign.length > 1 ? '' : 's'} ` +
        `and ${foreign.length > 1 ? 'are' : 'is'} not truss's (protocol other than ${TRUSS_ROUTE_PROTO}): ` +
        'remove them (ip route del …) or keep that block out of the cluster',
    );
  }
  return ran;
}

/** Deletes our route to `dst` (main table). Gone = success; a foreign route to `dst` is never touched. */
export async function removeRoute(exec: Exec, dst: string): Promise<void> {
  const p = parsePrefix(dst);
  if (!p) throw errors.badAddress(`invalid route destination ${JSON.stringify(dst)}: use CIDR form`);
  try {
    await exec.run('ip', ['route', 'del', formatPrefix(p), 'table', 'main', 'proto', String(TRUSS_ROUTE_PROTO)]);
  } catch (e) {
    if (!isKernelError(e, 'ESRCH') && !isKernelError(e, 'ENOENT')) throw e;
  }
}

/**
 * The local end of the path towards `ip` (what `ip route get` picks): the source address
 * peers should use to reach this host, and the MTU of that link (the underlay's).
 */
export async function underlayTowards(
  exec: Exec,
  ip: string,
): Promise<{ readonly address: string; readonly dev: string; readonly mtu: number } | undefined> {
  const parsed = parseIp(ip);
  if (parsed === undefined) return undefined;
  const target = formatIp(parsed);
  const r = await exec.run('ip', ['-j', 'route', 'get', target]);
  const route = (JSON.parse(r.stdout || '[]') as { prefsrc?: string; dev?: string }[])[0];
  if (!route?.prefsrc || !route.dev) return undefined;
  const l = await exec.run('ip', ['-j', 'link', 'show', 'dev', checkIfName(route.dev)]);
  const mtu = (JSON.parse(l.stdout || '[]') as { mtu?: number }[])[0]?.mtu;
  return mtu === undefined ? undefined : { address: route.prefsrc, dev: route.dev, mtu };
}

/** Every link with its MTU and addresses (`ip -j addr show`): the facts for chooseUnderlay. */
export async function readLinks(
  exec: Exec,
): Promise<{ readonly dev: string; readonly mtu: number; readonly addresses: readonly string[] }[]> {
  const r = await exec.run('ip', ['-j', 'addr', 'show']);
  const links = JSON.parse(r.stdout || '[]') as { ifname?: string; mtu?: number; addr_info?: { local?: string }[] }[];
  return links.flatMap((l) =>
    l.ifname && l.mtu !== undefined
      ? [
          {
            dev: l.ifname,
            mtu: l.mtu,
            addresses: (l.addr_info ?? []).flatMap((a) => (typeof a.local === 'string' ? [a.local] : [])),
          },
        ]
      : [],
  );
}

/** The main table's default routes of both families: device and preferred source. */
export async function readDefaultRoutes(
  exec: Exec,
): Promise<{ readonly dev: string; readonly prefsrc?: string; readonly family: 4 | 6 }[]> {
  const out: { dev: string; prefsrc?: string; family: 4 | 6 }[] = [];
  for (const family of [4, 6] as const) {
    // a kernel without IPv6 (ipv6.disable=1) refuses the family: no default route of it
    const r = await exec
      .run('ip', [`-${family}`, '-j', 'route', 'show', 'default', 'table', 'main'])
      .catch(() => undefined);
    for (const x of JSON.parse(r?.stdout || '[]') as { dev?: string; prefsrc?: string }[]) {
      if (x.dev) out.push({ dev: x.dev, family, ...(x.prefsrc ? { prefsrc: x.prefsrc } : {}) });
    }
  }
  return out;
}
