/**
 * Routed networks' subnet routes (core/routed.ts), in the main table with truss's protocol (116):
 * "unreachable 198.18.5.0/24 proto 116", so that an address of the subnet without an endpoint is
 * refused here (ICMP unreachable) instead of following the default route out of the host.
 *
 * An endpoint's host routes ("198.18.5.2 dev trv… proto 116") are its veth's (veth.ts: made in the
 * link's own `ip -batch`, listed with the links, links.ts), not this kind's.
 *
 * Ownership: the protocol, as for the cluster's routes (routes.ts); those are unicast routes on the
 * tunnel devices, these are unreachable routes, so the two listings never claim each other's.
 */
import type { ObservedLink, SetCheck } from '../../core/contracts.ts';
import { errors } from '../../core/errors.ts';
import { formatPrefix, networkOf, parsePrefix } from '../../core/ip.ts';
import { TRUSS_ROUTE_PROTO } from '../../core/naming.ts';
import type { RoutedRoutesObject } from '../../core/routed.ts';
import { type Exec, isKernelError } from './exec.ts';
import { batch, checkIfName } from './links.ts';
import { dumpTrussRoutes, mainTableRoutes } from './route-dump.ts';

/** A truss host end's name (naming.hostVethName): trv + 12 hex. */
export const isHostEndName = (dev: string): boolean => /^trv[0-9a-f]{12}$/.test(dev);

/** One listed route: a host route on a truss host end (dev: listed for links.ts) or an unreachable subnet. */
export interface ListedRoute {
  readonly dst: string;
  readonly dev?: string;
}

function canonical(dst: string, family: 4 | 6): string | undefined {
  const p = parsePrefix(dst.includes('/') ? dst : `${dst}/${family === 4 ? 32 : 128}`);
  return p ? formatPrefix(p) : undefined;
}

/** Pure: a listing of truss's routes (route-dump.ts) -> the routed networks' routes in it. */
export function parseRoutedRoutes(stdout: string, family?: 4 | 6): ListedRoute[] {
  return mainTableRoutes(stdout, family).flatMap(({ route: r, family: f }) => {
    const dst = typeof r.dst === 'string' ? canonical(r.dst, f) : undefined;
    if (dst === undefined) return [];
    if (r.type === 'unreachable') return [{ dst }];
    if ((r.type === undefined || r.type === 'unicast') && typeof r.dev === 'string' && isHostEndName(r.dev))
      return [{ dst, dev: r.dev }];
    return [];
  });
}

function checkDst(dst: string): string {
  const p = parsePrefix(dst);
  if (!p) throw errors.badAddress(`invalid route destination ${JSON.stringify(dst)}: use CIDR form`);
  return formatPrefix(networkOf(p));
}

/** Pure: the `ip -batch` lines that put `o` in place (replace: idempotent, no read first). */
export function planRoutedRoutes(o: RoutedRoutesObject): string[] {
  return o.dsts.map((d) => `route replace unreachable ${checkDst(d)} proto ${TRUSS_ROUTE_PROTO}`);
}

/** Pure: a host end's host routes, for its veth's batch (veth.ts). */
export const hostRouteLines = (dsts: readonly string[], dev: string): string[] =>
  dsts.map((d) => `route replace ${checkDst(d)} dev ${checkIfName(dev)} proto ${TRUSS_ROUTE_PROTO}`);

/** Pure: the wanted subnets against the listing (host routes are the links'). */
export function diffRoutedRoutes(desired: readonly RoutedRoutesObject[], have: readonly ListedRoute[]): SetCheck {
  const present = new Set(have.filter((r) => r.dev === undefined).map((r) => r.dst));
  const wantedKeys = new Set<string>();
  const drifted: string[] = [];
  const problems: string[] = [];
  for (const o of desired) {
    const missing = o.dsts.map(checkDst).filter((d) => {
      wantedKeys.add(d);
      return !present.has(d);
    });
    if (missing.length === 0) continue;
    drifted.push(o.name);
    problems.push(`routed route(s) ${missing.join(', ')} (unreachable) missing`);
  }
  const extra = [...present].filter((d) => !wantedKeys.has(d));
  for (const d of extra) problems.push(`routed route ${d} (unreachable) is not wanted`);
  return { drifted, extra, problems };
}

/**
 * Pure: the links with the host routes of each routed host end (one in an interface group) added.
 * The links' check (reconcile/plan.ts) tells a host end that lost one.
 */
export function withHostRoutes(links: readonly ObservedLink[], routes: readonly ListedRoute[]): ObservedLink[] {
  const byDev = new Map<string, string[]>();
  for (const r of routes) if (r.dev !== undefined) byDev.set(r.dev, [...(byDev.get(r.dev) ?? []), r.dst]);
  return links.map((l) => (l.group === undefined ? l : { ...l, hostRoutes: byDev.get(l.name) ?? [] }));
}

export async function listRoutedRoutes(exec: Exec): Promise<ListedRoute[]> {
  return parseRoutedRoutes(await dumpTrussRoutes(exec));
}

export async function checkRoutedRoutes(exec: Exec, desired: readonly RoutedRoutesObject[]): Promise<SetCheck> {
  return diffRoutedRoutes(desired, await listRoutedRoutes(exec));
}

/** One `ip -batch` for the object's routes. */
export async function ensureRoutedRoutes(exec: Exec, o: RoutedRoutesObject): Promise<void> {
  await exec.run('ip', ['-batch', '-'], { stdin: batch(planRoutedRoutes(o)) });
}

/**
 * Removes a subnet's unreachable route (name: a CIDR). `proto 116`: the kernel never deletes
 * another's route. A name that is not a CIDR (a host end: this kind's before host routes moved
 * to the veth) is left alone: its routes are the veth's now and go with it.
 */
export async function removeRoutedRoutes(exec: Exec, name: string): Promise<void> {
  if (!name.includes('/')) return;
  const proto = ['proto', String(TRUSS_ROUTE_PROTO)];
  try {
    await exec.run('ip', ['route', 'del', 'unreachable', checkDst(name), 'table', 'main', ...proto]);
  } catch (e) {
    if (!isKernelError(e, 'ESRCH') && !isKernelError(e, 'ENOENT')) throw e;
  }
}
