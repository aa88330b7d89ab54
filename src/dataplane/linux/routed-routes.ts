/**
 * Routed networks' routes (core/routed.ts), in the main table with truss's protocol (116):
 *   - an endpoint's host routes on its host end: "198.18.5.2 dev trv… proto 116" (/32, /128);
 *   - a subnet's unreachable route: "unreachable 198.18.5.0/24 proto 116", so that an address of
 *     the subnet without an endpoint is refused here (ICMP unreachable) instead of following the
 *     default route out of the host.
 *
 * Ownership: the protocol, as for the cluster's routes (routes.ts); those are unicast routes on the
 * tunnel devices, these are unreachable routes or routes on truss host ends (trv…), so the two
 * listings never claim each other's. A host route goes with its link, so removing an endpoint's
 * is only needed while its link lives.
 */
import type { SetCheck } from '../../core/contracts.ts';
import { errors } from '../../core/errors.ts';
import { formatPrefix, networkOf, parsePrefix } from '../../core/ip.ts';
import { TRUSS_ROUTE_PROTO } from '../../core/naming.ts';
import type { RoutedRoutesObject } from '../../core/routed.ts';
import { type Exec, isKernelError } from './exec.ts';
import { batch, checkIfName } from './links.ts';

/** A truss host end's name (naming.hostVethName): trv + 12 hex. */
export const isHostEndName = (dev: string): boolean => /^trv[0-9a-f]{12}$/.test(dev);

interface RouteJson {
  readonly dst?: string;
  readonly dev?: string;
  readonly type?: string;
}

/** One listed routed route: a host route (dev) or an unreachable subnet (no dev). */
export interface ListedRoute {
  readonly dst: string;
  readonly dev?: string;
}

function canonical(dst: string, family: 4 | 6): string | undefined {
  const p = parsePrefix(dst.includes('/') ? dst : `${dst}/${family === 4 ? 32 : 128}`);
  return p ? formatPrefix(p) : undefined;
}

/** Pure: `ip -j [-6] route show table main proto 116` -> the routed networks' routes in it. */
export function parseRoutedRoutes(stdout: string, family: 4 | 6): ListedRoute[] {
  const text = stdout.trim();
  const parsed: unknown = text === '' ? [] : JSON.parse(text);
  if (!Array.isArray(parsed)) return [];
  return parsed.flatMap((r: RouteJson) => {
    const dst = typeof r.dst === 'string' ? canonical(r.dst, family) : undefined;
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
  return o.dsts.map((d) =>
    o.dev === undefined
      ? `route replace unreachable ${checkDst(d)} proto ${TRUSS_ROUTE_PROTO}`
      : `route replace ${checkDst(d)} dev ${checkIfName(o.dev)} proto ${TRUSS_ROUTE_PROTO}`,
  );
}

/** Pure: the wanted objects against the listing (names: host end, or subnet). */
export function diffRoutedRoutes(desired: readonly RoutedRoutesObject[], have: readonly ListedRoute[]): SetCheck {
  const key = (dst: string, dev: string | undefined): string => `${dst} ${dev ?? 'unreachable'}`;
  const present = new Set(have.map((r) => key(r.dst, r.dev)));
  const wantedKeys = new Set<string>();
  const drifted: string[] = [];
  const problems: string[] = [];
  for (const o of desired) {
    const missing = o.dsts.map(checkDst).filter((d) => {
      wantedKeys.add(key(d, o.dev));
      return !present.has(key(d, o.dev));
    });
    if (missing.length === 0) continue;
    drifted.push(o.name);
    problems.push(`routed route(s) ${missing.join(', ')} ${o.dev ? `via ${o.dev}` : '(unreachable)'} missing`);
  }
  const extra = new Set<string>();
  for (const r of have) {
    if (wantedKeys.has(key(r.dst, r.dev))) continue;
    const name = r.dev ?? r.dst;
    if (!extra.has(name))
      problems.push(`routed route ${r.dst} ${r.dev ? `via ${r.dev}` : '(unreachable)'} is not wanted`);
    extra.add(name);
  }
  return { drifted, extra: [...extra], problems };
}

export async function listRoutedRoutes(exec: Exec): Promise<ListedRoute[]> {
  const show = ['route', 'show', 'table', 'main', 'proto', String(TRUSS_ROUTE_PROTO)];
  const [v4, v6] = await Promise.all([exec.run('ip', ['-j', ...show]), exec.run('ip', ['-j', '-6', ...show])]);
  return [...parseRoutedRoutes(v4.stdout, 4), ...parseRoutedRoutes(v6.stdout, 6)];
}

export async function checkRoutedRoutes(exec: Exec, desired: readonly RoutedRoutesObject[]): Promise<SetCheck> {
  return diffRoutedRoutes(desired, await listRoutedRoutes(exec));
}

/** One `ip -batch` for the object's routes. */
export async function ensureRoutedRoutes(exec: Exec, o: RoutedRoutesObject): Promise<void> {
  await exec.run('ip', ['-batch', '-'], { stdin: batch(planRoutedRoutes(o)) });
}

/**
 * Removes a subnet's unreachable route (name: a CIDR) or a host end's routes (name: the link; gone
 * with it = success). `proto 116` on every delete: the kernel never deletes another's route.
 */
export async function removeRoutedRoutes(exec: Exec, name: string, applied?: RoutedRoutesObject): Promise<void> {
  const proto = ['proto', String(TRUSS_ROUTE_PROTO)];
  try {
    if (name.includes('/')) {
      await exec.run('ip', ['route', 'del', 'unreachable', checkDst(name), 'table', 'main', ...proto]);
      return;
    }
    const dev = checkIfName(name);
    if (applied !== undefined) {
      const lines = applied.dsts.map(
        (d) => `route del ${checkDst(d)} dev ${dev} table main proto ${TRUSS_ROUTE_PROTO}`,
      );
      if (lines.length > 0) await exec.run('ip', ['-batch', '-'], { stdin: batch(lines) });
      return;
    }
    for (const family of ['-4', '-6'])
      await exec.run('ip', [family, 'route', 'flush', 'dev', dev, 'table', 'main', ...proto]);
  } catch (e) {
    if (!isKernelError(e, 'ESRCH') && !isKernelError(e, 'ENOENT') && !isKernelError(e, 'ENODEV')) throw e;
  }
}
