/**
 * What the kernel needs for cluster networks (pure). Peers are the other hosts that share at
 * least one cluster network with this one; each is allowed exactly the address blocks it
 * owns in those networks, and each block gets a route:
 *   - encrypted networks (truss.encrypt, the default): one WireGuard device, a peer per host
 *     with those blocks as allowed-ips, routes `BLOCK dev trwg0`;
 *   - unencrypted networks (truss.encrypt=false): one VXLAN device, a permanent FDB and
 *     neighbour entry per host (its VTEP MAC, naming.vtepMac, at its underlay address) and
 *     routes `BLOCK via <peer underlay address> dev trvx0 onlink` (Flannel's and Calico's
 *     scheme, with the underlay address as the on-link next hop: no VTEP addresses to allocate).
 *     Every other block (IPv6 blocks; IPv4 blocks on an IPv6 underlay) goes
 *     `BLOCK via [inet6] <peer VTEP link-local> dev trvx0 onlink`, the EUI-64 of its VTEP MAC
 *     (vtepLinkLocal), which then has a permanent neighbour entry too (viaLinkLocal; only then: a
 *     host with IPv6 off refuses one). The kernel takes only a link-local IPv6 next hop for an
 *     IPv4 route (RFC 5549), and refuses a global one `onlink` on trvx0 for an IPv6 route while
 *     the underlay link routes that address.
 * Both can exist side by side; a device exists only while some local network needs it. Every
 * route has this host's own address on its network as source (host-address.ts), on the device.
 * Records come from etcd and are never trusted: peer-validation.ts checks each for shape and
 * consistency (ownership, overlaps, duplicates; rules N1-N5, B1-B5) and leaves out only the
 * bad record, with the reason in `rejected` (and `alarms` for what looks like an attack).
 */
import { formatIp, type Ip, parseIp, parsePrefix } from '../ip.ts';
import { VXLAN_DEVICE, VXLAN_PORT, VXLAN_VNI, vtepMac } from '../naming.ts';
import { endpointIp } from './endpoint.ts';
import { type HostAddressObject, planHostAddresses, withHostSources } from './host-address.ts';
import { type AddressClaim, type BlockRecord, type MemberRecord, type NodeRecord, nodeIdOf } from './model.ts';
import {
  acceptBlocks,
  DEFAULT_BLOCK_LENGTH,
  duplicatesOf,
  Findings,
  mergeNets,
  onePerId,
  underlayProblem,
  wellFormed,
} from './peer-validation.ts';
import { type PathKind, reachable } from './reach.ts';
import { wireguardPeers, withPathMtu } from './wireguard-peers.ts';

export { WG_KEEPALIVE_SECONDS } from './wireguard-peers.ts';

export const WG_DEVICE = 'trwg0';
export const WG_DEFAULT_PORT = 51820;

export interface ClusterView {
  /** this host's node id (members, blocks and claims name nodes by id; NodeRecord: nodeIdOf) */
  readonly self: string;
  readonly nodes: readonly NodeRecord[];
  readonly members: readonly MemberRecord[];
  readonly blocks: readonly BlockRecord[];
  /** this host's address claims with the host owner: its host address per network (host-address.ts) */
  readonly hostClaims?: readonly AddressClaim[];
  /** peers with a live direct WireGuard session (cluster/paths-observer.ts): a punched pair stays direct */
  readonly direct?: readonly string[];
  /** peers whose lease lapsed, kept programmed for a while (view-cache.ts): never chosen as relay */
  readonly lapsed?: readonly string[];
}

/** A local network that belongs to a cluster network (its subnets as agreed in the cluster). */
export interface LocalClusterNetwork {
  readonly cluster: string;
  readonly subnets: readonly string[];
  readonly encrypt: boolean;
  /** this host's container addresses on it (bare IPs): never inside a block routed to a peer */
  readonly localAddresses?: readonly string[];
}

export interface WireguardPeerObject {
  readonly node: string;
  readonly publicKey: string;
  /** "198.18.0.2:51820" or "[fd00::2]:51820"; absent: whatever WireGuard learnt (reach.ts) */
  readonly endpoint?: string;
  /** its own blocks, and those of the peers it relays to this host */
  readonly allowedIps: readonly string[];
  readonly keepaliveSeconds: number;
  /** how traffic to this peer's blocks goes (reach.ts); relayed: through `via` */
  readonly path: PathKind;
  /** a live session (packets from it just now): the endpoint WireGuard roamed to is kept */
  readonly live?: boolean;
  readonly via?: string;
}

export interface WireguardObject {
  readonly name: string;
  /** this host's public key as published (a rotation changes it, and the device follows) */
  readonly publicKey?: string;
  readonly listenPort: number;
  readonly mtu: number;
  /** sorted by node name */
  readonly peers: readonly WireguardPeerObject[];
}

export interface VxlanPeerObject {
  readonly node: string;
  /** the peer's underlay address (canonical bare IP): FDB dst, neighbour and route next hop */
  readonly address: string;
  /** the peer's VTEP MAC (vtepMac(node)) */
  readonly mac: string;
  /** some of its blocks go via its VTEP link-local (vtepLinkLocal), which then needs a neighbour entry too */
  readonly viaLinkLocal?: boolean;
}

export interface VxlanObject {
  readonly name: string;
  readonly vni: number;
  readonly port: number;
  /** this host's underlay (advertise) address */
  readonly local: string;
  /** the underlay interface, when known */
  readonly dev?: string;
  /** this host's VTEP MAC */
  readonly mac: string;
  readonly mtu: number;
  /** sorted by node name */
  readonly peers: readonly VxlanPeerObject[];
}

export interface RouteObject {
  readonly dst: string;
  readonly dev: string;
  /** the path's MTU when smaller than this host's tunnel's (a peer or relay with a smaller tunnel) */
  readonly mtu?: number;
  /** on-link next hop (VXLAN: the peer's underlay address) */
  readonly via?: string;
  /** preferred source: this host's address on the network (host-address.ts) */
  readonly src?: string;
}

export interface ClusterDesired {
  readonly wireguard?: WireguardObject;
  readonly vxlan?: VxlanObject;
  /** sorted by dst */
  readonly routes: readonly RouteObject[];
  /** this host's address on each cluster network, on its mode's device (absent: none) */
  readonly hostAddresses?: readonly HostAddressObject[];
  /** peers or blocks left out, and why (for status) */
  readonly rejected: readonly string[];
  /** the rejections that look like an attack or a cloned host (also in rejected): status, warn log */
  readonly alarms: readonly string[];
}

export interface ClusterOptions {
  readonly wireguard: { readonly listenPort: number; readonly mtu: number };
  readonly vxlan: { readonly mtu: number; readonly local: string; readonly dev?: string };
  /** block prefix length per family (default DEFAULT_BLOCK_LENGTH: /26, /122) */
  readonly blockLength?: { readonly 4: number; readonly 6: number };
}

/** The EUI-64 link-local address of a VTEP MAC: the IPv6 next hop of IPv4 blocks on an IPv6 underlay. */
export function vtepLinkLocal(mac: string): string {
  const b = mac.split(':').map((x) => Number.parseInt(x, 16));
  const hex = (hi: number | undefined, lo: number | undefined): string => (((hi ?? 0) << 8) | (lo ?? 0)).toString(16);
  const text = `fe80::${hex((b[0] ?? 0) ^ 0x02, b[1])}:${hex(b[2], 0xff)}:${hex(0xfe, b[3])}:${hex(b[4], b[5])}`;
  const ip = parseIp(text);
  return ip ? formatIp(ip) : text;
}

const KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const isStr = (v: unknown): v is string => typeof v === 'string';

const ZERO_KEY = `${'A'.repeat(43)}=`;

/** The node's record as a usable peer for WireGuard, or why not. */
function wireguardProblem(n: NodeRecord): string | undefined {
  if (!isStr(n.wgPublicKey) || !KEY.test(n.wgPublicKey) || n.wgPublicKey === ZERO_KEY)
    return `node ${nodeIdOf(n)}: bad WireGuard public key`;
  if (!Number.isInteger(n.wgPort) || n.wgPort < 1 || n.wgPort > 65535) return `node ${nodeIdOf(n)}: bad port`;
  return undefined;
}

/** The checked inputs both devices start from (peer-validation.ts: N1-N4). */
interface Checked {
  readonly view: ClusterView;
  /** node id -> its one record, this host's included */
  readonly nodes: ReadonlyMap<string, NodeRecord>;
  readonly local: Ip | undefined;
  readonly len: { readonly 4: number; readonly 6: number };
  readonly f: Findings;
}

/** Peers (not this host) whose underlay address is usable (N4), by id. */
function peersOf(
  c: Checked,
  nets: readonly ReturnType<typeof mergeNets>[number][],
  notDialled: (n: NodeRecord) => boolean = () => false,
): Map<string, NodeRecord> {
  const subnets = nets.flatMap((n) => n.subnets);
  const out = new Map<string, NodeRecord>();
  for (const [id, n] of c.nodes) {
    if (id === c.view.self) continue;
    if (notDialled(n)) {
      out.set(id, n);
      continue;
    }
    const dialled = n.publicEndpoint !== undefined ? endpointIp(n.publicEndpoint) : parseIp(n.address);
    const why = dialled ? underlayProblem(dialled, c.local, subnets) : 'not an address';
    const what =
      n.publicEndpoint !== undefined ? `public endpoint ${n.publicEndpoint}` : `underlay address ${n.address}`;
    if (why) c.f.reject(`node ${id}: its ${what} is ${why}: rejected`, why.startsWith('this host'));
    else out.set(id, n);
  }
  return out;
}

function computeWireguard(
  c: Checked,
  local: readonly LocalClusterNetwork[],
  opts: ClusterOptions['wireguard'],
): { wireguard: WireguardObject; routes: RouteObject[] } {
  const nets = mergeNets(local);
  const selfKey = c.nodes.get(c.view.self)?.wgPublicKey;
  // why: a peer behind a NAT is never dialled at its address (two NATs may hide the same private one)
  const candidates = [...peersOf(c, nets, (n) => !reachable(n))].filter(([, n]) => {
    const why = wireguardProblem(n);
    if (why) c.f.reject(why);
    return why === undefined;
  });
  const lost = duplicatesOf(
    candidates.map(([, n]) => n),
    (n) => n.wgPublicKey,
    selfKey,
    'WireGuard public key',
    c.f,
  );
  const owners = new Map(candidates.filter(([id]) => !lost.has(id)));
  const accepted = acceptBlocks(c.view, nets, owners, c.len, c.f);
  const peers = wireguardPeers(c.view, c.nodes, nets, owners, accepted);
  const routes = withPathMtu(
    peers.flatMap((p) => p.allowedIps.map((dst) => ({ dst, dev: WG_DEVICE, carrier: p.node }))),
    accepted,
    owners,
    opts.mtu,
  );
  const wireguard: WireguardObject = {
    name: WG_DEVICE,
    ...(selfKey ? { publicKey: selfKey } : {}),
    listenPort: opts.listenPort,
    mtu: opts.mtu,
    peers,
  };
  return { wireguard, routes };
}

function computeVxlan(
  c: Checked,
  local: readonly LocalClusterNetwork[],
  opts: ClusterOptions['vxlan'],
): { vxlan: VxlanObject; routes: RouteObject[] } | undefined {
  const localIp = c.local;
  if (!localIp) {
    c.f.reject('VXLAN: this host has no underlay address (cluster store not configured?)');
    return undefined;
  }
  const nets = mergeNets(local);
  const selfMac = vtepMac(c.view.self);
  const canon = (n: NodeRecord): string => formatIp(parseIp(n.address) as Ip);
  const candidates = [...peersOf(c, nets)].filter(([id, n]) => {
    const ok = parseIp(n.address)?.family === localIp.family;
    if (!ok) c.f.reject(`node ${id}: underlay address ${canon(n)} is not of this host's family (IPv${localIp.family})`);
    return ok;
  });
  const peerNodes = candidates.map(([, n]) => n);
  const lost = new Set([
    ...duplicatesOf(peerNodes, canon, formatIp(localIp), 'underlay address', c.f),
    ...duplicatesOf(peerNodes, (n) => vtepMac(nodeIdOf(n)), selfMac, 'VTEP MAC', c.f),
  ]);
  const owners = new Map(candidates.filter(([id]) => !lost.has(id)));
  const peers: VxlanPeerObject[] = [];
  const routes: RouteObject[] = [];
  for (const [id, blocks] of acceptBlocks(c.view, nets, owners, c.len, c.f)) {
    const address = canon(owners.get(id) as NodeRecord);
    const mac = vtepMac(id);
    const before = routes.length;
    for (const dst of blocks) {
      const family = parsePrefix(dst)?.family;
      if (family === 4 && localIp.family === 4) routes.push({ dst, dev: VXLAN_DEVICE, via: address });
      // why: every other block goes via the peer's VTEP link-local. An IPv4 route may take an IPv6
      // next hop only if it is link-local (RFC 5549); an IPv6 route takes a global next hop as
      // `onlink` only if no other link routes it, and the underlay link routes the peer's address
      // ("Nexthop has invalid gateway or device mismatch"): the kernel skips that check for a link-local.
      else routes.push({ dst, dev: VXLAN_DEVICE, via: vtepLinkLocal(mac) });
    }
    const viaLinkLocal = routes.slice(before).some((r) => r.via !== address);
    peers.push({ node: id, address, mac, ...(viaLinkLocal ? { viaLinkLocal } : {}) });
  }
  const vxlan: VxlanObject = {
    name: VXLAN_DEVICE,
    vni: VXLAN_VNI,
    port: VXLAN_PORT,
    local: formatIp(localIp),
    ...(opts.dev !== undefined ? { dev: opts.dev } : {}),
    mac: selfMac,
    mtu: opts.mtu,
    peers,
  };
  return { vxlan, routes };
}

export function computeClusterDesired(
  view: ClusterView,
  local: readonly LocalClusterNetwork[],
  opts: ClusterOptions,
): ClusterDesired {
  const f = new Findings();
  const encrypted = local.filter((n) => n.encrypt);
  const plain = local.filter((n) => !n.encrypt);
  if (local.length === 0) return { routes: [], rejected: f.rejected, alarms: f.alarms };
  const v = wellFormed(view, f);
  const c: Checked = {
    view: v,
    nodes: onePerId(v.nodes, f),
    local: parseIp(opts.vxlan.local),
    len: opts.blockLength ?? DEFAULT_BLOCK_LENGTH,
    f,
  };
  const wg = encrypted.length > 0 ? computeWireguard(c, encrypted, opts.wireguard) : undefined;
  const vx = plain.length > 0 ? computeVxlan(c, plain, opts.vxlan) : undefined;
  const devices = { ...(wg ? { wireguard: WG_DEVICE } : {}), ...(vx ? { vxlan: VXLAN_DEVICE } : {}) };
  const hostAddresses = planHostAddresses(view, local, devices, (why) => f.reject(why));
  const routes = withHostSources([...(wg?.routes ?? []), ...(vx?.routes ?? [])], hostAddresses, local).sort((a, b) =>
    a.dst < b.dst ? -1 : 1,
  );
  return {
    ...(wg ? { wireguard: wg.wireguard } : {}),
    ...(vx ? { vxlan: vx.vxlan } : {}),
    routes,
    ...(hostAddresses.length > 0 ? { hostAddresses } : {}),
    rejected: f.rejected,
    alarms: f.alarms,
  };
}
