/**
 * The WireGuard peers of this host and the routes through them (pure), once the records are
 * checked (desired.ts): each peer on the path reach.ts picks (dialled, learnt, punched or through
 * a relay), with exactly the blocks that path carries, and each route capped at its path's MTU.
 */
import type { ClusterView, RouteObject, WireguardPeerObject } from './desired.ts';
import type { NodeRecord } from './model.ts';
import { choosePath, type PeerPath, reachable } from './reach.ts';

export const WG_KEEPALIVE_SECONDS = 25;

/**
 * The routes to peer blocks, each with the MTU of its path when that is smaller than this host's
 * tunnel MTU: the smallest of this host's, the peer's that carries it (a relay) and the block
 * owner's (NodeRecord.mtu). A route's MTU applies to forwarded packets too, so a container sending
 * more than the far end's tunnel takes is told so by its own host (ICMP "fragmentation needed"),
 * and nothing is fragmented, not even the first packets of a flow (the relay's own ICMP, from its
 * host address, would come only after this host had fragmented the tunnel's packets to it).
 * `carrier` is the node id of the peer the block's traffic goes to.
 */
export function withPathMtu(
  routes: readonly { readonly dst: string; readonly dev: string; readonly carrier: string }[],
  accepted: readonly [string, string[]][],
  nodes: ReadonlyMap<string, NodeRecord>,
  own: number,
): RouteObject[] {
  const ownerOf = new Map(accepted.flatMap(([id, blocks]) => blocks.map((b): [string, string] => [b, id])));
  const mtuOf = (id: string | undefined): number => {
    const m = id === undefined ? undefined : nodes.get(id)?.mtu;
    return m !== undefined && Number.isInteger(m) && m >= 576 && m <= 65535 ? m : own;
  };
  return routes.map(({ dst, dev, carrier }) => {
    const mtu = Math.min(own, mtuOf(carrier), mtuOf(ownerOf.get(dst)));
    return { dst, dev, ...(mtu < own ? { mtu } : {}) };
  });
}

/**
 * Whether a live session's roamed endpoint is kept over the path's (wireguard-plan.ts): yes on a
 * path both ends use, no on a hole punch the other end has given up (relayed, or no relay at
 * all). There the session is one-sided: the other end's packets go unanswered, most likely
 * because its NAT moved it (a new outside address, a flushed mapping), and the relays' fresh
 * sighting is better evidence than where its last packet came from. Kept, the stale endpoint
 * would stand until this end's own silence timeout (40 s); re-pointed (and nudged), the pair
 * is punched again within a handshake. With an endpoint-independent NAT the two are the same
 * endpoint, so nothing changes while the NAT does not.
 */
const keepsRoamed = (path: PeerPath): boolean => path.kind !== 'relayed' && path.kind !== 'unreachable';

/**
 * The WireGuard peers: every peer with accepted blocks, on the path reach.ts picks for it, and
 * the relays those paths use (a relay is a peer even without blocks of its own). A relayed
 * peer's blocks are allowed to its relay; the peer itself stays configured, without allowed
 * IPs, while hole punching may still work (an endpoint to probe).
 */
export function wireguardPeers(
  view: ClusterView,
  nodes: ReadonlyMap<string, NodeRecord>,
  nets: readonly { readonly cluster: string }[],
  owners: ReadonlyMap<string, NodeRecord>,
  accepted: readonly [string, string[]][],
): WireguardPeerObject[] {
  // why: without its own record (not registered yet) this host is taken as reachable, so its
  // peers keep their paths (dialled, or learnt from them) rather than all going
  const self: NodeRecord = nodes.get(view.self) ?? {
    id: view.self,
    name: view.self,
    address: '',
    wgPublicKey: '',
    wgPort: 0,
  };
  const lapsed = new Set(view.lapsed ?? []);
  const memberOf = new Map<string, Set<string>>();
  for (const m of view.members) memberOf.set(m.node, (memberOf.get(m.node) ?? new Set()).add(m.cluster));
  const local = nets.map((n) => n.cluster);
  const relays = [...owners]
    .filter(([id, n]) => n.relay === true && reachable(n) && !lapsed.has(id))
    .map(([id]) => id)
    .sort();
  const relaysFor = (peer: string): string[] => {
    const shared = local.filter((cl) => memberOf.get(peer)?.has(cl));
    return relays.filter((r) => shared.length > 0 && shared.every((cl) => memberOf.get(r)?.has(cl)));
  };
  const blocks = new Map(accepted);
  const paths = new Map<string, PeerPath>();
  const direct = new Set(view.direct ?? []);
  const inputs = { self, nodes, direct, relaysFor };
  for (const [id] of accepted) paths.set(id, choosePath(owners.get(id) as NodeRecord, inputs));
  // a NATed host keeps every relay it may use as a peer: relays see its outside endpoint
  if (!reachable(self))
    for (const r of relays) if (!paths.has(r)) paths.set(r, choosePath(owners.get(r) as NodeRecord, inputs));
  const allowed = new Map<string, string[]>();
  for (const [id, path] of paths) {
    const own = blocks.get(id) ?? [];
    const to = path.kind === 'relayed' && path.via !== undefined ? path.via : id;
    allowed.set(to, [...(allowed.get(to) ?? []), ...own]);
    if (to !== id && !allowed.has(id)) allowed.set(id, []);
  }
  const out: WireguardPeerObject[] = [];
  for (const [id, path] of [...paths].sort(([a], [b]) => (a < b ? -1 : 1))) {
    // a relayed peer stays, even with nothing to carry and nowhere to probe (a NAT that maps per
    // destination): a peer without endpoint or allowed IPs sends nothing, and status shows its relay
    const ips = [...(allowed.get(id) ?? [])].sort();
    const n = owners.get(id) as NodeRecord;
    out.push({
      node: id,
      publicKey: n.wgPublicKey,
      ...(path.endpoint !== undefined ? { endpoint: path.endpoint } : {}),
      allowedIps: ips,
      keepaliveSeconds: WG_KEEPALIVE_SECONDS,
      path: path.kind,
      ...(path.via !== undefined ? { via: path.via } : {}),
      ...(direct.has(id) && keepsRoamed(path) ? { live: true } : {}),
    });
  }
  return out;
}
