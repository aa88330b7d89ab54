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
 *     On an IPv6 underlay, IPv4 blocks go `via inet6 <peer VTEP link-local> dev trvx0 onlink`
 *     (RFC 5549; the kernel takes only a link-local IPv6 next hop for an IPv4 route), the
 *     link-local being the EUI-64 of the peer's VTEP MAC (vtepLinkLocal).
 * Both can exist side by side; a device exists only while some local network needs it.
 * Records come from etcd and are never trusted: a malformed one, a block outside its network,
 * a key, address or VTEP MAC claimed twice leaves that peer (or block) out, with the reason.
 */
import { formatIp, parseIp, parsePrefix, prefixWithin } from '../ip.ts';
import { VXLAN_DEVICE, VXLAN_PORT, VXLAN_VNI, vtepMac } from '../naming.ts';
import { type BlockRecord, isValidNodeName, type MemberRecord, type NodeRecord, nodeIdOf } from './model.ts';

export const WG_DEVICE = 'trwg0';
export const WG_DEFAULT_PORT = 51820;
export const WG_KEEPALIVE_SECONDS = 25;

export interface ClusterView {
  /** this host's node id (members, blocks and claims name nodes by id; NodeRecord: nodeIdOf) */
  readonly self: string;
  readonly nodes: readonly NodeRecord[];
  readonly members: readonly MemberRecord[];
  readonly blocks: readonly BlockRecord[];
}

/** A local network that belongs to a cluster network (its subnets as agreed in the cluster). */
export interface LocalClusterNetwork {
  readonly cluster: string;
  readonly subnets: readonly string[];
  readonly encrypt: boolean;
}

export interface WireguardPeerObject {
  readonly node: string;
  readonly publicKey: string;
  /** "198.18.0.2:51820" or "[fd00::2]:51820" */
  readonly endpoint: string;
  readonly allowedIps: readonly string[];
  readonly keepaliveSeconds: number;
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
  /** on-link next hop (VXLAN: the peer's underlay address) */
  readonly via?: string;
}

export interface ClusterDesired {
  readonly wireguard?: WireguardObject;
  readonly vxlan?: VxlanObject;
  /** sorted by dst */
  readonly routes: readonly RouteObject[];
  /** peers or blocks left out, and why (for status) */
  readonly rejected: readonly string[];
}

export interface ClusterOptions {
  readonly wireguard: { readonly listenPort: number; readonly mtu: number };
  readonly vxlan: { readonly mtu: number; readonly local: string; readonly dev?: string };
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

export function endpointOf(n: NodeRecord): string {
  return n.address.includes(':') ? `[${n.address}]:${n.wgPort}` : `${n.address}:${n.wgPort}`;
}

/** The node's record as a usable peer for WireGuard, or why not. */
function wireguardProblem(n: NodeRecord): string | undefined {
  if (!KEY.test(n.wgPublicKey)) return `node ${nodeIdOf(n)}: bad WireGuard public key`;
  if (!Number.isInteger(n.wgPort) || n.wgPort < 1 || n.wgPort > 65535) return `node ${nodeIdOf(n)}: bad port`;
  return undefined;
}

/** Records of the view that have the shape they must have (strings where strings belong). */
function wellFormed(view: ClusterView, rejected: string[]): ClusterView {
  const nodes = view.nodes.filter((n) => {
    const ok =
      typeof n === 'object' &&
      n !== null &&
      isStr(n.name) &&
      isValidNodeName(n.name) &&
      (n.id === undefined || (isStr(n.id) && isValidNodeName(n.id))) &&
      isStr(n.address) &&
      parseIp(n.address) !== undefined;
    const label = (n as { id?: unknown; name?: unknown } | null)?.id ?? (n as { name?: unknown } | null)?.name ?? null;
    if (!ok) rejected.push(`node record ${JSON.stringify(label)}: malformed`);
    return ok;
  });
  const members = view.members.filter((m) => typeof m === 'object' && m !== null && isStr(m.cluster) && isStr(m.node));
  const blocks = view.blocks.filter((b) => {
    const ok = typeof b === 'object' && b !== null && isStr(b.cluster) && isStr(b.node) && isStr(b.block);
    if (!ok) rejected.push('block record: malformed');
    return ok;
  });
  return { self: view.self, nodes, members, blocks };
}

/** node -> the blocks it owns in `nets` (each inside its network's subnets), other members only. */
function peerBlocks(view: ClusterView, nets: readonly LocalClusterNetwork[], rejected: string[]) {
  const out = new Map<string, Set<string>>();
  for (const net of nets) {
    const subnets = net.subnets.map((s) => parsePrefix(s)).filter((p) => p !== undefined);
    const peers = new Set(
      view.members.filter((m) => m.cluster === net.cluster && m.node !== view.self).map((m) => m.node),
    );
    for (const b of view.blocks) {
      if (b.cluster !== net.cluster || !peers.has(b.node)) continue;
      const p = parsePrefix(b.block);
      if (!p || !subnets.some((s) => prefixWithin(p, s))) {
        rejected.push(`block ${b.block} of node ${b.node} is outside cluster network ${net.cluster}`);
        continue;
      }
      const set = out.get(b.node) ?? new Set<string>();
      set.add(b.block);
      out.set(b.node, set);
    }
  }
  return [...out].sort(([a], [b]) => (a < b ? -1 : 1));
}

const countBy = <T>(items: readonly T[], key: (t: T) => string): Map<string, number> => {
  const m = new Map<string, number>();
  for (const i of items) m.set(key(i), (m.get(key(i)) ?? 0) + 1);
  return m;
};

function computeWireguard(
  view: ClusterView,
  nets: readonly LocalClusterNetwork[],
  opts: ClusterOptions['wireguard'],
  rejected: string[],
): { wireguard: WireguardObject; routes: RouteObject[] } {
  const nodes = new Map(view.nodes.map((n) => [nodeIdOf(n), n]));
  const selfKey = nodes.get(view.self)?.wgPublicKey;
  const keyCount = countBy(view.nodes, (n) => n.wgPublicKey);
  const peers: WireguardPeerObject[] = [];
  for (const [name, blocks] of peerBlocks(view, nets, rejected)) {
    const n = nodes.get(name);
    const why = !n ? `node ${name} has blocks but is not registered` : wireguardProblem(n);
    if (why || !n) {
      rejected.push(why ?? name);
      continue;
    }
    if ((keyCount.get(n.wgPublicKey) ?? 0) > 1 || n.wgPublicKey === selfKey) {
      rejected.push(`node ${name}: its public key is claimed by another node too`);
      continue;
    }
    peers.push({
      node: name,
      publicKey: n.wgPublicKey,
      endpoint: endpointOf(n),
      allowedIps: [...blocks].sort(),
      keepaliveSeconds: WG_KEEPALIVE_SECONDS,
    });
  }
  const routes = peers.flatMap((p) => p.allowedIps.map((dst) => ({ dst, dev: WG_DEVICE })));
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
  view: ClusterView,
  nets: readonly LocalClusterNetwork[],
  opts: ClusterOptions['vxlan'],
  rejected: string[],
): { vxlan: VxlanObject; routes: RouteObject[] } | undefined {
  const localIp = parseIp(opts.local);
  if (!localIp) {
    rejected.push('VXLAN: this host has no underlay address (cluster store not configured?)');
    return undefined;
  }
  const local = formatIp(localIp);
  const nodes = new Map(view.nodes.map((n) => [nodeIdOf(n), n]));
  const canon = (n: NodeRecord): string => formatIp(parseIp(n.address) as NonNullable<ReturnType<typeof parseIp>>);
  const addrCount = countBy(view.nodes, canon);
  const selfMac = vtepMac(view.self);
  const macCount = countBy(view.nodes, (n) => vtepMac(nodeIdOf(n)));
  const peers: VxlanPeerObject[] = [];
  const routes: RouteObject[] = [];
  for (const [name, blocks] of peerBlocks(view, nets, rejected)) {
    const n = nodes.get(name);
    if (!n) {
      rejected.push(`node ${name} has blocks but is not registered`);
      continue;
    }
    const address = canon(n);
    const mac = vtepMac(name);
    const why =
      parseIp(address)?.family !== localIp.family
        ? `node ${name}: underlay address ${address} is not of this host's family (IPv${localIp.family})`
        : address === local || (addrCount.get(address) ?? 0) > 1
          ? `node ${name}: its underlay address ${address} is claimed by another node too`
          : mac === selfMac || (macCount.get(mac) ?? 0) > 1
            ? `node ${name}: its VTEP MAC ${mac} collides with another node's`
            : undefined;
    if (why) {
      rejected.push(why);
      continue;
    }
    peers.push({ node: name, address, mac });
    for (const dst of [...blocks].sort()) {
      const family = parsePrefix(dst)?.family;
      if (family === localIp.family) routes.push({ dst, dev: VXLAN_DEVICE, via: address });
      // why: an IPv4 route may take an IPv6 next hop, but the kernel wants a link-local one
      else if (family === 4) routes.push({ dst, dev: VXLAN_DEVICE, via: vtepLinkLocal(mac) });
      else rejected.push(`block ${dst} of node ${name}: IPv6 blocks need an IPv6 underlay in VXLAN mode`);
    }
  }
  const vxlan: VxlanObject = {
    name: VXLAN_DEVICE,
    vni: VXLAN_VNI,
    port: VXLAN_PORT,
    local,
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
  const rejected: string[] = [];
  const encrypted = local.filter((n) => n.encrypt);
  const plain = local.filter((n) => !n.encrypt);
  if (local.length === 0) return { routes: [], rejected };
  const v = wellFormed(view, rejected);
  const wg = encrypted.length > 0 ? computeWireguard(v, encrypted, opts.wireguard, rejected) : undefined;
  const vx = plain.length > 0 ? computeVxlan(v, plain, opts.vxlan, rejected) : undefined;
  const routes = [...(wg?.routes ?? []), ...(vx?.routes ?? [])].sort((a, b) => (a.dst < b.dst ? -1 : 1));
  return {
    ...(wg ? { wireguard: wg.wireguard } : {}),
    ...(vx ? { vxlan: vx.vxlan } : {}),
    routes,
    rejected,
  };
}
