/**
 * What the kernel needs for cluster networks (pure): one WireGuard device whose peers
 * are the other hosts that share at least one cluster network with this one, each
 * allowed exactly the address blocks it owns in those networks, and a route per peer
 * block through the device. A peer record that is invalid or claims a block it does not
 * own is not programmed (records are validated, never trusted).
 */
import { parseIp, parsePrefix, prefixWithin } from '../ip.ts';
import type { BlockRecord, MemberRecord, NodeRecord } from './model.ts';

export const WG_DEVICE = 'trwg0';
export const WG_DEFAULT_PORT = 51820;
export const WG_KEEPALIVE_SECONDS = 25;

export interface ClusterView {
  /** this host's node name */
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

export interface RouteObject {
  readonly dst: string;
  readonly dev: string;
}

export interface ClusterDesired {
  readonly wireguard?: WireguardObject;
  /** sorted by dst */
  readonly routes: readonly RouteObject[];
  /** peers left out, and why (for status) */
  readonly rejected: readonly string[];
}

const KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export function endpointOf(n: NodeRecord): string {
  return n.address.includes(':') ? `[${n.address}]:${n.wgPort}` : `${n.address}:${n.wgPort}`;
}

function validNode(n: NodeRecord): string | undefined {
  if (!parseIp(n.address)) return `node ${n.name}: bad address ${JSON.stringify(n.address)}`;
  if (!KEY.test(n.wgPublicKey)) return `node ${n.name}: bad WireGuard public key`;
  if (!Number.isInteger(n.wgPort) || n.wgPort < 1 || n.wgPort > 65535) return `node ${n.name}: bad port`;
  return undefined;
}

export function computeClusterDesired(
  view: ClusterView,
  local: readonly LocalClusterNetwork[],
  opts: { readonly listenPort: number; readonly mtu: number },
): ClusterDesired {
  const rejected: string[] = [];
  const encrypted = local.filter((n) => n.encrypt);
  if (encrypted.length === 0) return { routes: [], rejected };
  const nodes = new Map(view.nodes.map((n) => [n.name, n]));
  const selfKey = nodes.get(view.self)?.wgPublicKey;
  const keyCount = new Map<string, number>();
  for (const n of view.nodes) keyCount.set(n.wgPublicKey, (keyCount.get(n.wgPublicKey) ?? 0) + 1);
  const allowed = new Map<string, Set<string>>();
  for (const net of encrypted) {
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
      const set = allowed.get(b.node) ?? new Set<string>();
      set.add(b.block);
      allowed.set(b.node, set);
    }
  }
  const peers: WireguardPeerObject[] = [];
  for (const [name, blocks] of [...allowed].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const n = nodes.get(name);
    const why = !n ? `node ${name} has blocks but is not registered` : validNode(n);
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
  const routes = peers
    .flatMap((p) => p.allowedIps.map((dst) => ({ dst, dev: WG_DEVICE })))
    .sort((a, b) => (a.dst < b.dst ? -1 : 1));
  const wireguard: WireguardObject = {
    name: WG_DEVICE,
    ...(selfKey ? { publicKey: selfKey } : {}),
    listenPort: opts.listenPort,
    mtu: opts.mtu,
    peers,
  };
  return { wireguard, routes, rejected };
}
