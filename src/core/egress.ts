/**
 * Policy routing (`-o truss.egress.via=IP[,IP6]`): traffic that leaves a network goes to a chosen
 * next hop (a gateway container, a VPN host) instead of the host's default route. Pure: option
 * parsing, validation against the network, and the kernel objects it needs.
 *
 * Per network with the option, per family it names:
 *   - a routing table of its own, id egressTable(network id) in truss's reserved range, holding
 *       the network's own subnets on its bridge (traffic inside the network stays there; in
 *       routed mode `throw` routes instead, so the lookup goes on to the main table and its host
 *       routes: no per-attach route in the table),
 *       `unreachable default` at the worst metric (fail closed: while the next hop's route is
 *       missing, traffic that would leave is refused, never sent out the normal way), and
 *       `default via IP` (the next hop);
 *   - `ip rule from SUBNET lookup TABLE` (priority EGRESS_RULE_PRIORITY) for each subnet: only
 *       packets sourced in the network use the table; the host's own traffic is untouched;
 *   - when the next hop is inside the network (a gateway container on the same bridge),
 *       `ip rule from IP lookup main` before it (EGRESS_EXEMPT_PRIORITY): the gateway's own traffic
 *       (NATed or tunnelled) takes the host's normal route, else it would be sent back to itself.
 * Every route and rule carries protocol TRUSS_ROUTE_PROTO (116), like the cluster routes.
 *
 * Traffic between containers of the network is bridged (routed mode: thrown back to the main
 * table), and traffic to the host's own addresses matches the `local` table (rule 0) first, so
 * neither is affected. The rules match by source subnet, never by link, so a routed network's
 * per-container host ends need nothing per attach.
 */

import { errors } from './errors.ts';
import {
  type Family,
  formatIp,
  formatPrefix,
  hostRange,
  type Ip,
  ipEquals,
  networkOf,
  parseIp,
  parsePrefix,
  prefixContains,
} from './ip.ts';
import type { IpamData, NetworkSpec } from './model.ts';
import { shortId, TRUSS_ROUTE_PROTO } from './naming.ts';
import { isRouted } from './routed.ts';
import { showValue } from './safe-json.ts';

export const OPT_EGRESS_VIA = 'truss.egress.via';

/** truss's route and rule protocol number (dataplane/linux/routes.ts TRUSS_ROUTE_PROTO). */
export const EGRESS_PROTO = TRUSS_ROUTE_PROTO;
/** The reserved table ids: 0x74000000 ('t' in the top byte) + 24 bits of the network id. */
export const EGRESS_TABLE_BASE = 0x74000000;
export const EGRESS_TABLE_SPAN = 0x1000000;
/** Rule priorities (truss's band, before the main table's 32766): exemptions, then the subnets. */
export const EGRESS_EXEMPT_PRIORITY = 11600;
export const EGRESS_RULE_PRIORITY = 11610;
/** The fail-closed fallback's metric: the worst there is, so any real default route wins. */
export const UNREACHABLE_METRIC = 4294967295;

export const egressTable = (networkId: string): number =>
  EGRESS_TABLE_BASE + Number.parseInt(networkId.slice(0, 6), 16);

export const isEgressTable = (t: number): boolean =>
  Number.isInteger(t) && t >= EGRESS_TABLE_BASE && t < EGRESS_TABLE_BASE + EGRESS_TABLE_SPAN;

export interface EgressRoute {
  readonly family: Family;
  readonly table: number;
  /** CIDR, network address; "0.0.0.0/0" / "::/0" for the default */
  readonly dst: string;
  /** the refusing fallback (`unreachable`), else a unicast route */
  readonly unreachable?: boolean;
  /**
   * a `throw` route: the lookup leaves this table and goes on with the next rule (the main table).
   * A routed network's subnet: its containers' host routes are in the main table, one per attach.
   */
  readonly throw?: boolean;
  readonly dev?: string;
  readonly via?: string;
  /** absent: the family's default (IPv4 0, IPv6 1024) */
  readonly metric?: number;
}

export interface EgressRule {
  readonly family: Family;
  readonly priority: number;
  /** source CIDR (network address) */
  readonly from: string;
  readonly table: number | 'main';
}

/** One network's table and rules. */
export interface EgressNetwork {
  readonly networkId: string;
  readonly bridge: string;
  readonly table: number;
  /** next hops, v4 first */
  readonly via: readonly string[];
  /** in the order they must be programmed (the next hop's route last) */
  readonly routes: readonly EgressRoute[];
  readonly rules: readonly EgressRule[];
}

/** Every network's policy routing, sorted by table: converged as one object. */
export interface EgressObject {
  readonly networks: readonly EgressNetwork[];
}

const fail = (value: string, why: string) => errors.badOption(`option ${OPT_EGRESS_VIA}=${showValue(value)}: ${why}`);

const V4_SPECIAL: readonly [string, string][] = [
  ['0.0.0.0/8', 'a "this network" address'],
  ['127.0.0.0/8', 'a loopback address'],
  ['169.254.0.0/16', 'a link-local address (it names no link)'],
  ['224.0.0.0/4', 'a multicast address'],
  ['240.0.0.0/4', 'a reserved or broadcast address'],
];
const V6_SPECIAL: readonly [string, string][] = [
  ['::/127', 'the unspecified or loopback address'],
  ['fe80::/10', 'a link-local address (it names no link)'],
  ['ff00::/8', 'a multicast address'],
];

function specialKind(ip: Ip): string | undefined {
  for (const [cidr, what] of ip.family === 4 ? V4_SPECIAL : V6_SPECIAL) {
    if (prefixContains(parsePrefix(cidr) as NonNullable<ReturnType<typeof parsePrefix>>, ip)) return what;
  }
  return undefined;
}

/**
 * Syntax: one unicast address, or two separated by a comma (one IPv4, one IPv6). Returns them
 * canonical, IPv4 first. Throws TRUSS_ERR_OPTION_INVALID naming the key and value.
 */
export function parseEgressVia(value: string): string[] {
  const parts = value.split(',').map((s) => s.trim());
  if (parts.length > 2 || parts.some((p) => p === '')) {
    throw fail(value, 'expected a next-hop address, or one IPv4 and one IPv6 separated by a comma');
  }
  const ips = parts.map((p) => {
    const ip = parseIp(p);
    if (!ip) throw fail(value, `${showValue(p)} is not an IP address`);
    const special = specialKind(ip);
    if (special) throw fail(value, `${p} is ${special}; use a unicast address of a host this host can reach`);
    return ip;
  });
  if (ips.length === 2 && ips[0]?.family === ips[1]?.family) {
    throw fail(value, `two IPv${ips[0]?.family} next hops: give at most one per family`);
  }
  return ips.sort((a, b) => a.family - b.family).map(formatIp);
}

const poolsOf = (data: readonly IpamData[]) =>
  data.flatMap((d) => {
    const p = parsePrefix(d.pool);
    return p ? [networkOf(p)] : [];
  });

/**
 * The next hops against the network they serve. Each must be of a family the network has. One
 * inside the network's subnet must be a usable host address other than the gateway (that is
 * this host: the traffic would loop); one outside it must be on-link on another interface of
 * this host, which only the kernel can tell: the route is then refused and the create fails.
 */
export function checkEgressVia(
  via: readonly string[],
  net: {
    readonly ipv4: readonly IpamData[];
    readonly ipv6: readonly IpamData[];
    readonly internal: boolean;
    readonly mode?: 'routed';
  },
  cluster: boolean,
): void {
  const text = via.join(',');
  if (net.internal) throw fail(text, 'an --internal network has no traffic leaving it to route');
  if (cluster) throw fail(text, 'not supported on truss.cluster networks (their subnet spans hosts)');
  for (const v of via) {
    const ip = parseIp(v) as Ip;
    const data = ip.family === 4 ? net.ipv4 : net.ipv6;
    if (data.length === 0) throw fail(text, `${v} is IPv${ip.family} but the network has no IPv${ip.family} subnet`);
    for (const d of data) {
      const pool = parsePrefix(d.pool);
      if (!pool || !prefixContains(pool, ip)) continue;
      const r = hostRange(pool);
      if (ip.value < r.first || ip.value > r.last) {
        throw fail(text, `${v} is the network or broadcast address of ${formatPrefix(networkOf(pool))}`);
      }
      const gw = d.gateway ? parseIp(d.gateway.split('/')[0] as string) : undefined;
      if (gw && ipEquals(gw, ip)) {
        throw fail(text, `${v} is the network's gateway, this host itself; name the gateway container's address`);
      }
      if (net.mode === 'routed') {
        // why: the route to a next hop must name its link, and in routed mode a container's link is
        // its own host end, made and removed with the container (the table would lose its default)
        throw fail(text, `${v} is inside the network; in truss.mode=routed the next hop must be outside it`);
      }
    }
  }
}

/** A network whose table id is already another network's (24 bits of the id: rare, but refused). */
export function egressTableClash(spec: NetworkSpec, other: NetworkSpec): string | undefined {
  if (spec.egressVia === undefined || other.egressVia === undefined) return undefined;
  if (egressTable(spec.id) !== egressTable(other.id)) return undefined;
  return (
    `network ${shortId(spec.id)}: its ${OPT_EGRESS_VIA} routing table ${egressTable(spec.id)} is already used by ` +
    `truss network ${shortId(other.id)}; create the network again (it gets another id)`
  );
}

const DEFAULT_DST: Record<Family, string> = { 4: '0.0.0.0/0', 6: '::/0' };

function networkEgress(n: NetworkSpec, via: readonly string[]): EgressNetwork {
  const table = egressTable(n.id);
  const routes: EgressRoute[] = [];
  const rules: EgressRule[] = [];
  for (const v of via) {
    const ip = parseIp(v) as Ip;
    const family = ip.family;
    const pools = poolsOf(family === 4 ? n.ipv4 : n.ipv6);
    const inside = pools.some((p) => prefixContains(p, ip));
    const routed = isRouted(n);
    for (const p of pools) {
      const dst = formatPrefix(p);
      routes.push(routed ? { family, table, dst, throw: true } : { family, table, dst, dev: n.bridge });
    }
    routes.push({ family, table, dst: DEFAULT_DST[family], unreachable: true, metric: UNREACHABLE_METRIC });
    routes.push({ family, table, dst: DEFAULT_DST[family], via: v, ...(inside ? { dev: n.bridge } : {}) });
    if (inside) {
      const host = `${v}/${family === 4 ? 32 : 128}`;
      rules.push({ family, priority: EGRESS_EXEMPT_PRIORITY, from: host, table: 'main' });
    }
    for (const p of pools) rules.push({ family, priority: EGRESS_RULE_PRIORITY, from: formatPrefix(p), table });
  }
  return { networkId: n.id, bridge: n.bridge, table, via, routes, rules };
}

const memo = new WeakMap<NetworkSpec, EgressNetwork>();

/** The policy routing of every network with truss.egress.via (memoised on the record's identity). */
export function computeEgress(networks: readonly NetworkSpec[]): EgressObject {
  const out: EgressNetwork[] = [];
  for (const n of networks) {
    if (n.egressVia === undefined || n.egressVia.length === 0) continue;
    let e = memo.get(n);
    if (!e) {
      e = networkEgress(n, n.egressVia);
      memo.set(n, e);
    }
    out.push(e);
  }
  return { networks: out.sort((a, b) => a.table - b.table) };
}
