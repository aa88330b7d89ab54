/**
 * Which path the WireGuard traffic to each peer takes (pure): hosts anywhere, NATs included.
 *
 * A host is *reachable* when others can start a handshake with it: it gave --public-endpoint
 * (a port forwarded to it), or it is not behind a NAT (its address and wgPort work). Whether it
 * is behind a NAT is learnt, never configured: the reachable hosts publish the endpoint each
 * peer's packets come from (NodeRecord.seen, read from WireGuard, which roams a peer's endpoint
 * to the source of its last authenticated packet), and a host whose seen endpoint is not its
 * own address is behind a NAT (learnNat). Per pair of hosts:
 *   - the peer is reachable: dial it (`direct`);
 *   - it is not, but this host is: give no endpoint; the peer dials this host (every host keeps
 *     a 25 s persistent keepalive, so its NAT mapping stays open) and WireGuard learns where
 *     it is (`learned`);
 *   - neither is: dial the peer's outside endpoint as a reachable host saw it, from both sides
 *     at once (UDP hole punching: works when both NATs map endpoint-independently); once a
 *     handshake completed and packets keep arriving at both ends (each publishes its live direct
 *     sessions: NodeRecord.punched), the pair is `punched` and talks directly;
 *     until then, and for good when a NAT maps per destination, the peer's blocks are routed
 *     through a relay (`relayed`): a reachable host started with --relay that has the cluster
 *     networks concerned. WireGuard decrypts and re-encrypts on the relay, so every hop is
 *     encrypted. Both hosts of a pair pick the same relay (rendezvous hashing over the pair), so
 *     each accepts the other's packets from it; the choice only moves when that relay goes.
 */

import { parseIp } from '../ip.ts';
import { sha256Hex } from '../sha256.ts';
import { canonicalEndpoint, endpointText } from './endpoint.ts';
import { type NatMapping, type NodeRecord, nodeIdOf } from './model.ts';

export type PathKind = 'direct' | 'learned' | 'punched' | 'relayed' | 'unreachable';

export interface PeerPath {
  readonly kind: PathKind;
  /** where to send: undefined = leave it to WireGuard's roaming (learned) or nowhere yet */
  readonly endpoint?: string;
  /** relayed: the relay's node id */
  readonly via?: string;
}

/** The address part of an endpoint ("198.18.0.2" of "198.18.0.2:51820", "[fd00::2]" of "[fd00::2]:51820"). */
const hostOf = (endpoint: string): string => endpoint.slice(0, endpoint.lastIndexOf(':'));

/** The endpoint a node's address and WireGuard port make ("IP:PORT" / "[IPv6]:PORT"). */
export function ownEndpoint(n: Pick<NodeRecord, 'address' | 'wgPort'>): string {
  const ip = parseIp(n.address);
  return ip ? endpointText(ip, n.wgPort) : `${n.address}:${n.wgPort}`;
}

/** Whether other hosts can start a handshake with `n`. */
export const reachable = (n: NodeRecord): boolean => n.publicEndpoint !== undefined || n.nat === undefined;

/** Where other hosts dial a reachable node. */
export const dialEndpoint = (n: NodeRecord): string => n.publicEndpoint ?? ownEndpoint(n);

/**
 * What the reachable hosts saw of `self`: whether it is behind a NAT and how that maps, or
 * `current` when no host has seen it yet (a restart keeps nothing: it is learnt again within a
 * keepalive). Behind a NAT: a host saw another endpoint than its own address and port.
 */
export function learnNat(
  self: NodeRecord,
  nodes: Iterable<NodeRecord>,
  current: NatMapping | undefined,
): NatMapping | undefined {
  const id = nodeIdOf(self);
  const seen: string[] = [];
  for (const n of nodes) {
    const ep = nodeIdOf(n) === id ? undefined : n.seen?.[id];
    if (ep !== undefined && reachable(n)) seen.push(ep);
  }
  if (seen.length === 0) return current;
  const own = ownEndpoint(self);
  if (seen.every((ep) => ep === own)) return undefined;
  // why: a NAT that maps per destination shows one outside address with another port to each
  // host; two addresses are rather a NAT whose address changed, seen before and after (one
  // host has not heard from it since): not known until they agree again
  const byIp = new Map<string, Set<string>>();
  for (const ep of seen) byIp.set(hostOf(ep), (byIp.get(hostOf(ep)) ?? new Set()).add(ep));
  if ([...byIp.values()].some((eps) => eps.size > 1)) return 'dependent';
  return byIp.size === 1 && seen.length > 1 ? 'independent' : 'unknown';
}

/**
 * The peer's outside endpoint as a reachable host saw it (the relay's sighting first, then the
 * lowest node id's: deterministic), or undefined.
 */
export function seenEndpoint(
  peer: string,
  nodes: ReadonlyMap<string, NodeRecord>,
  prefer?: string,
): string | undefined {
  const of = (n: NodeRecord | undefined): string | undefined => {
    const ep = n && reachable(n) ? n.seen?.[peer] : undefined;
    return ep !== undefined ? canonicalEndpoint(ep) : undefined;
  };
  const first = prefer !== undefined ? of(nodes.get(prefer)) : undefined;
  if (first) return first;
  for (const id of [...nodes.keys()].sort()) {
    const ep = id === peer ? undefined : of(nodes.get(id));
    if (ep) return ep;
  }
  return undefined;
}

/** The relay for the pair {a, b} among `candidates` (rendezvous hashing: both ends agree). */
export function chooseRelay(a: string, b: string, candidates: readonly string[]): string | undefined {
  const pair = a < b ? `${a}|${b}` : `${b}|${a}`;
  let best: { id: string; score: string } | undefined;
  for (const id of candidates) {
    if (id === a || id === b) continue;
    const score = sha256Hex(`${pair}|${id}`);
    if (!best || score > best.score || (score === best.score && id < best.id)) best = { id, score };
  }
  return best?.id;
}

export interface PathInputs {
  readonly self: NodeRecord;
  /** every accepted node by id, this host's included */
  readonly nodes: ReadonlyMap<string, NodeRecord>;
  /** peers with a live direct session (a recent handshake and packets still arriving) */
  readonly direct: ReadonlySet<string>;
  /** the relays that may carry this pair's traffic (reachable, --relay, with the networks concerned) */
  relaysFor(peer: string): readonly string[];
}

/** The path to `peer` (the table in the header). */
export function choosePath(peer: NodeRecord, x: PathInputs): PeerPath {
  const id = nodeIdOf(peer);
  if (reachable(peer)) return { kind: 'direct', endpoint: dialEndpoint(peer) };
  if (reachable(x.self)) return { kind: 'learned' };
  const via = chooseRelay(nodeIdOf(x.self), id, x.relaysFor(id));
  const seen = seenEndpoint(id, x.nodes, via);
  // behind the same NAT (the same outside address): the NAT would have to hairpin; its LAN address works
  const mine = seenEndpoint(nodeIdOf(x.self), x.nodes, via);
  const sameNat = seen !== undefined && mine !== undefined && hostOf(seen) === hostOf(mine);
  const outside = sameNat ? ownEndpoint(peer) : seen;
  // why: a NAT that maps per destination gives the punch a port nobody can predict
  const punchable = outside !== undefined && peer.nat !== 'dependent' && x.self.nat !== 'dependent';
  // why: both ends must agree, or one would send straight and drop what the relay brings it
  if (x.direct.has(id) && peer.punched?.includes(nodeIdOf(x.self)))
    return { kind: 'punched', ...(outside ? { endpoint: outside } : {}) };
  if (via === undefined) return { kind: 'unreachable', ...(punchable ? { endpoint: outside } : {}) };
  return { kind: 'relayed', via, ...(punchable ? { endpoint: outside } : {}) };
}
