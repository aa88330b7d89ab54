/**
 * This host's own address on each cluster network (pure): Calico's tunnel address, Flannel's .0
 * on flannel.1. One address per family of the network, inside one of this host's own blocks,
 * claimed in etcd like a container's address (owner HOST_OWNER; service/host-addresses.ts). It
 * sits on the cluster device of the network's mode (a /32 or /128 on trwg0 or trvx0) and is the
 * source of every route to a peer block of that network, so what the host itself sends to a
 * container on another host (a health check, a monitoring agent) leaves with a source the peer
 * accepts: inside this host's block, hence already in the peer's WireGuard allowed-ips and in its
 * routes back. Without it the source would be the underlay address, which WireGuard drops and
 * which VXLAN would answer outside the tunnel. Peers need nothing new.
 *
 * The claims come from etcd and are checked like every record: only this host's claims with the
 * host owner count, only inside the network's subnets and one of this host's blocks.
 */
import { formatIp, type Ip, type Prefix, parseIp, parsePrefix, prefixContains, prefixWithin } from '../ip.ts';
import type { ClusterView, LocalClusterNetwork, RouteObject } from './desired.ts';
import type { AddressClaim } from './model.ts';

/**
 * The owner of a host address's claim (AddressClaim.owner; elsewhere the container's endpoint
 * name): ':' is in no Docker container name, so no endpoint is ever taken for the host's.
 */
export const HOST_OWNER = 'truss:host';

export const isHostClaim = (c: Pick<AddressClaim, 'owner'>): boolean => c.owner === HOST_OWNER;

/** One host address on a cluster device. */
export interface HostAddressObject {
  readonly cluster: string;
  /** trwg0 (encrypted network) or trvx0 */
  readonly dev: string;
  /** canonical bare IP, on the device as /32 or /128 */
  readonly address: string;
}

/** The devices this pass has, by mode (a mode's device may be missing: VXLAN without an underlay). */
export interface ClusterDevices {
  readonly wireguard?: string;
  readonly vxlan?: string;
}

const defined = <T>(x: T | undefined): x is T => x !== undefined;
const prefixes = (cidrs: readonly string[]): Prefix[] => cidrs.map(parsePrefix).filter(defined);

/**
 * The host address of each local cluster network and family that has a valid claim: the lowest
 * claimed address inside the network's subnets and inside one of this host's blocks. A claim
 * outside this host's blocks is reported in `reject` and not used.
 */
export function planHostAddresses(
  view: ClusterView,
  local: readonly LocalClusterNetwork[],
  devices: ClusterDevices,
  reject: (why: string) => void,
): HostAddressObject[] {
  const out: HostAddressObject[] = [];
  const seen = new Set<string>();
  for (const n of local) {
    const dev = n.encrypt ? devices.wireguard : devices.vxlan;
    if (dev === undefined) continue;
    const subnets = prefixes(n.subnets);
    const blocks = prefixes(
      view.blocks.filter((b) => b.node === view.self && b.cluster === n.cluster).map((b) => b.block),
    );
    const claimed = (view.hostClaims ?? [])
      .filter((c) => c.cluster === n.cluster && c.node === view.self && isHostClaim(c))
      .map((c) => parseIp(c.address))
      .filter(defined)
      .filter((ip) => subnets.some((s) => prefixContains(s, ip)))
      .sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
    for (const family of [4, 6] as const) {
      const key = `${n.cluster}/${family}`;
      if (seen.has(key)) continue;
      const ip = claimed.filter((c) => c.family === family).find((c) => inBlocks(c, blocks, n.cluster, reject));
      if (!ip) continue;
      seen.add(key);
      out.push({ cluster: n.cluster, dev, address: formatIp(ip) });
    }
  }
  return out;
}

function inBlocks(ip: Ip, blocks: readonly Prefix[], cluster: string, reject: (why: string) => void): boolean {
  if (blocks.some((b) => prefixContains(b, ip))) return true;
  reject(`host address ${formatIp(ip)} of cluster network ${cluster} is in none of this host's blocks: not used`);
  return false;
}

/**
 * The routes with `src` set to the host address of the network each one's block belongs to (same
 * device, same family); a route whose network has no host address of that family keeps none.
 */
export function withHostSources(
  routes: readonly RouteObject[],
  addrs: readonly HostAddressObject[],
  local: readonly LocalClusterNetwork[],
): RouteObject[] {
  if (addrs.length === 0) return [...routes];
  const sources = addrs.flatMap((a) => {
    const ip = parseIp(a.address);
    const subnets = prefixes(local.filter((n) => n.cluster === a.cluster).flatMap((n) => n.subnets));
    return ip ? [{ a, ip, subnets }] : [];
  });
  return routes.map((r) => {
    const dst = parsePrefix(r.dst);
    const s =
      dst &&
      sources.find(
        (x) => x.a.dev === r.dev && x.ip.family === dst.family && x.subnets.some((n) => prefixWithin(dst, n)),
      );
    return s ? { ...r, src: s.a.address } : r;
  });
}
