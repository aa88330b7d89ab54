/**
 * Routed mode (`-o truss.mode=routed`): no bridge. Each container's veth is a point-to-point
 * link; the host end carries the network's gateway addresses (/32, /128) and a host route
 * (proto 116) to the container's address, and the subnet itself is an unreachable route, so an
 * address without an endpoint never leaks out of the default route.
 *
 * Neighbours on the same network are reached through the gateway: Join hands Docker two static
 * routes per subnet, its halves (one prefix length longer than the connected route the container
 * derives from its address), via the gateway. The container then resolves only the gateway,
 * which the host end answers as its own address: no proxy ARP or proxy NDP, no per-veth proxy
 * sysctls, the same mechanism for both families.
 *
 * Per-network matching without per-attach firewall rewrites: every host end of a routed network
 * is in the interface group routedGroup(network id); `inet truss` matches iifgroup/oifgroup.
 *
 * Pure; the kernel side is dataplane/linux/veth.ts and routed-routes.ts.
 */

import { errors } from './errors.ts';
import { OPT_ANTISPOOF } from './guard.ts';
import { formatPrefix, networkOf, parsePrefix } from './ip.ts';
import type { EndpointSpec, NetworkSpec } from './model.ts';

export const OPT_MODE = 'truss.mode';
export type NetworkMode = 'bridge' | 'routed';
export const MODES: readonly NetworkMode[] = ['bridge', 'routed'];

/** Pure: truss.mode's value; absent = bridge. */
export function parseMode(value: string | undefined): NetworkMode {
  if (value === undefined || value === 'bridge') return 'bridge';
  if (value === 'routed') return 'routed';
  throw errors.badOption(
    `option ${OPT_MODE}=${JSON.stringify(value)}: expected bridge (the default) or routed, e.g. -o ${OPT_MODE}=routed`,
  );
}

export const isRouted = (n: Pick<NetworkSpec, 'mode'>): boolean => n.mode === 'routed';

/**
 * What a routed network refuses at create (nothing is stored), with the way out: a bridge name
 * (`bridgeName`: com.docker.network.bridge.name was given), since it has no bridge.
 */
export function checkRoutedOptions(bridgeName: boolean): void {
  if (bridgeName) {
    throw errors.unsupported(
      `${OPT_MODE}=routed does not support com.docker.network.bridge.name (a routed network has no bridge); ` +
        `create the network without it, or with ${OPT_MODE}=bridge`,
    );
  }
}

/** An endpoint option routed mode refuses: per-container anti-spoofing opt-out (the check is per network). */
export function checkRoutedEndpoint(options: Readonly<Record<string, string>>): void {
  const v = options[OPT_ANTISPOOF];
  if (v === 'false' || v === '0') {
    throw errors.unsupported(
      `--driver-opt ${OPT_ANTISPOOF}=false is per network in ${OPT_MODE}=routed: ` +
        `create the network with -o ${OPT_ANTISPOOF}=false instead`,
    );
  }
}

/** 't' 'r' in the top byte: clear of the small numbers admins give groups by hand. */
const GROUP_BASE = 0x74000000;

/**
 * Pure: the interface group of a routed network's host ends: 24 bits of its id. Two routed
 * networks of one host with the same group are refused at create (network-service.ts).
 */
export function routedGroup(networkId: string): number {
  return GROUP_BASE + Number.parseInt(networkId.slice(0, 6), 16);
}

/** Pure: the two halves of a prefix ("198.18.5.0/24" -> /25s), its network address first; none for a host prefix. */
export function halves(cidr: string): string[] {
  const p = parsePrefix(cidr);
  if (!p) return [];
  const bits = p.family === 4 ? 32 : 128;
  if (p.length >= bits) return [];
  const n = networkOf(p);
  const len = p.length + 1;
  const upper = n.value | (1n << BigInt(bits - len));
  return [formatPrefix({ ...n, length: len }), formatPrefix({ family: n.family, value: upper, length: len })];
}

export interface StaticRoute {
  /** CIDR */
  readonly destination: string;
  /** 0: via next hop; 1: connected (on the interface) */
  readonly routeType: 0 | 1;
  readonly nextHop?: string;
}

const bareOf = (cidr: string | undefined): string | undefined => cidr?.split('/')[0];

/**
 * Pure: the Join static routes of a routed network: each subnet's halves via its gateway, so the
 * container sends even to its on-link neighbours through the host end.
 */
export function routedStaticRoutes(n: Pick<NetworkSpec, 'ipv4' | 'ipv6' | 'mode'>): StaticRoute[] {
  if (!isRouted(n)) return [];
  return [...n.ipv4, ...n.ipv6].flatMap((d) => {
    const gw = bareOf(d.gateway);
    if (gw === undefined) return [];
    // the gateway itself first, as connected: the lower half covers it, and a next hop must not be
    // reached through a route via itself (IPv6 refuses such a route: "No route to host")
    const own: StaticRoute = { destination: `${gw}/${gw.includes(':') ? 128 : 32}`, routeType: 1 };
    return [own, ...halves(d.pool).map((destination): StaticRoute => ({ destination, routeType: 0, nextHop: gw }))];
  });
}

/** The gateway addresses a routed host end carries: /32 and /128, whatever the subnet's length. */
export function gatewayHostAddresses(n: Pick<NetworkSpec, 'ipv4' | 'ipv6'>): string[] {
  return [...n.ipv4, ...n.ipv6].flatMap((d) => {
    const gw = bareOf(d.gateway);
    return gw === undefined ? [] : [`${gw}/${gw.includes(':') ? 128 : 32}`];
  });
}

/**
 * A routed network's subnet's unreachable route (proto 116), named after the subnet. (A container's
 * host routes belong to its veth object: made in the same `ip -batch` as the link, desired.ts.)
 */
export interface RoutedRoutesObject {
  readonly name: string;
  readonly networkId: string;
  /** CIDRs, network addresses */
  readonly dsts: readonly string[];
}

/** Pure: the host routes of a routed endpoint: its /32 and /128. */
export function endpointRoutes(e: Pick<EndpointSpec, 'ipv4' | 'ipv6'>): string[] {
  return [e.ipv4, e.ipv6].flatMap((c) => {
    const ip = bareOf(c);
    return ip === undefined ? [] : [`${ip}/${ip.includes(':') ? 128 : 32}`];
  });
}

/** Pure: a routed network's unreachable subnet routes, one object per subnet. */
export function subnetRoutes(n: NetworkSpec): RoutedRoutesObject[] {
  if (!isRouted(n)) return [];
  return [...n.ipv4, ...n.ipv6].flatMap((d) => {
    const p = parsePrefix(d.pool);
    if (!p) return [];
    const dst = formatPrefix(networkOf(p));
    return [{ name: dst, networkId: n.id, dsts: [dst] }];
  });
}
