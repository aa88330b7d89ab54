/**
 * Which addresses the bridge of each dual-stack cluster network answers neighbour solicitations
 * for (pure): IPv6's stand-in for the proxy ARP that serves IPv4.
 *
 * A container sees its network's whole subnet as on-link (Docker gives it `fd00::5/64`), so
 * before it sends to a container on another host it asks on the bridge who has that address.
 * For IPv4 the bridge's proxy_arp answers for anything routed out another link (the tunnel). IPv6
 * has no such rule: the kernel answers only for addresses listed one by one as proxy entries
 * (`ip -6 neigh add proxy ADDR dev BRIDGE`, no prefixes), so every address of every IPv6 block
 * routed to a peer on that network gets one: a /122 block is 64 entries.
 *
 * An entry is wanted on the bridge of each local cluster network with IPv6 subnets, for each
 * address of each IPv6 peer route (ClusterDesired.routes: the accepted blocks, peer-validation.ts)
 * inside those subnets, less the addresses every host uses itself: the gateway (the bridge's own)
 * and the aux addresses (reserved by every member, never a container of another host).
 */
import {
  formatIp,
  formatPrefix,
  hostMask,
  type Ip,
  parseIp,
  parsePrefix,
  prefixContains,
  prefixWithin,
} from '../ip.ts';
import type { NetworkSpec } from '../model.ts';

export interface ProxyNdpObject {
  /** the local network's bridge */
  readonly name: string;
  readonly networkId: string;
  /** the network's IPv6 subnets: the proxy entries on the bridge inside them are truss's */
  readonly subnets: readonly string[];
  /** the addresses to answer for (canonical, ascending) */
  readonly addresses: readonly string[];
}

/**
 * why a cap: blocks are /122 (64 addresses, peer-validation.ts B1); a route this much wider would
 * be a bug, and must not become millions of kernel entries
 */
export const MAX_PROXY_BLOCK_BITS = 8;

const addressOf = (cidrOrIp: string): Ip | undefined => parseIp(cidrOrIp.split('/')[0] as string);

/** The proxy entries each dual-stack cluster network's bridge needs, sorted by bridge. */
export function computeProxyNdp(
  networks: readonly NetworkSpec[],
  routes: readonly { readonly dst: string }[],
): ProxyNdpObject[] {
  const blocks = routes
    .map((r) => parsePrefix(r.dst))
    .filter((p) => p?.family === 6 && 128 - p.length <= MAX_PROXY_BLOCK_BITS);
  const out: ProxyNdpObject[] = [];
  for (const n of networks) {
    // routed mode (core/routed.ts): no bridge; containers reach other hosts through their gateway
    if (!n.cluster || n.ipv6.length === 0 || n.mode === 'routed') continue;
    const subnets = n.ipv6.map((d) => parsePrefix(d.pool)).filter((p) => p !== undefined);
    const own = new Set(
      n.ipv6
        .flatMap((d) => [d.gateway, ...Object.values(d.auxAddresses)])
        .map((a) => (a === undefined ? undefined : addressOf(a)?.value))
        .filter((v) => v !== undefined),
    );
    const values = new Set<bigint>();
    for (const b of blocks) {
      if (!b || !subnets.some((s) => prefixWithin(b, s))) continue;
      const first = b.value & ~hostMask(6, b.length);
      for (let v = first; v <= (first | hostMask(6, b.length)); v++) {
        // the subnet-router anycast address (the subnet's first) is the bridge's own too
        const anycast = subnets.some((s) => (s.value & ~hostMask(6, s.length)) === v);
        if (!own.has(v) && !anycast) values.add(v);
      }
    }
    out.push({
      name: n.bridge,
      networkId: n.id,
      subnets: subnets.map((s) => formatPrefix({ ...s, value: s.value & ~hostMask(6, s.length) })),
      addresses: [...values]
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
        .map((value) => formatIp({ family: 6, value })),
    });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Whether `address` lies in one of `subnets` (CIDRs): which proxy entries on a bridge are truss's. */
export function inSubnets(address: string, subnets: readonly string[]): boolean {
  const ip = parseIp(address);
  return (
    ip !== undefined &&
    subnets.some((s) => {
      const p = parsePrefix(s);
      return p !== undefined && prefixContains(p, ip);
    })
  );
}
