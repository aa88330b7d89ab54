/**
 * truss's routes of the main table, both families, as one `ip` process lists them: `ip -j route
 * show table all proto 116` (any table filter makes `ip` ask the kernel for IPv4 alone), the
 * other tables' dropped. The cluster's routes (routes.ts) and the routed networks' (routed-routes.ts)
 * read their own out of it.
 */
import { TRUSS_ROUTE_PROTO } from '../../core/naming.ts';
import type { Exec } from './exec.ts';

/** The fields of a route that `ip -j route show` prints and truss reads. */
export interface RouteJson {
  readonly dst?: string;
  readonly dev?: string;
  readonly gateway?: string;
  /** a next hop of the other family: {"family":"inet6","host":"fe80::1"} */
  readonly via?: { readonly host?: string };
  readonly prefsrc?: string;
  /** absent for unicast */
  readonly type?: string;
  readonly metrics?: readonly Record<string, unknown>[];
  /** absent for the main table */
  readonly table?: string;
  /** IPv6 routes only (the kernel always gives it) */
  readonly pref?: string;
}

/**
 * A route's family as `ip` prints both: by its destination; "default" by pref (the kernel gives it
 * to IPv6 routes alone, since Linux 4.1) or an IPv6 gateway or source.
 */
export const familyOf = (r: RouteJson): 4 | 6 =>
  r.dst?.includes(':')
    ? 6
    : r.dst?.includes('.')
      ? 4
      : r.pref !== undefined || r.gateway?.includes(':') || r.prefsrc?.includes(':')
        ? 6
        : 4;

/** Pure: the main table's routes of a listing (of every table, or of main alone), each with its family. */
export function mainTableRoutes(stdout: string, family?: 4 | 6): { route: RouteJson; family: 4 | 6 }[] {
  const text = stdout.trim();
  const parsed: unknown = text === '' ? [] : JSON.parse(text);
  if (!Array.isArray(parsed)) return [];
  return (parsed as RouteJson[])
    .filter((r) => r.table === undefined || r.table === 'main')
    .map((route) => ({ route, family: family ?? familyOf(route) }));
}

/** The listing itself: every truss route of every table, both families. */
export async function dumpTrussRoutes(exec: Exec): Promise<string> {
  return (await exec.run('ip', ['-j', 'route', 'show', 'table', 'all', 'proto', String(TRUSS_ROUTE_PROTO)])).stdout;
}
