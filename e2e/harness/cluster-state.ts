/**
 * What a cluster host shows of truss's cluster mode: its node id (<state-dir>/node-id), the
 * cluster section of `truss status`, its WireGuard device (`wg show` in the host's mounts: the
 * UAPI socket is in its private /run/wireguard) and truss's routes (its proto) in the main table.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inCidr } from './cidr.ts';
import { type Host, inHostMounts } from './host.ts';
import { TRUSS_ROUTE_PROTO } from './leftovers.ts';
import { waitFor } from './wait.ts';

/** truss's WireGuard device */
export const WG_DEV = 'trwg0';

/** The host's node id: its identity in etcd (--node-name is only its display name). */
export const nodeIdOf = (h: Host): string => readFileSync(join(h.truss.stateDir, 'node-id'), 'utf8').trim();

export interface ClusterPeer {
  readonly node: string;
  readonly name?: string;
  readonly endpoint: string;
  /** direct | learned | punched | relayed | unreachable (docs/cluster.md#hosts-behind-nat) */
  readonly path?: string;
  /** relayed: the relay's node id */
  readonly via?: string;
  /** the container blocks this host sends to the peer */
  readonly allowedIps?: readonly string[];
  /** WireGuard's last handshake with it (unix seconds, 0: none) */
  readonly latestHandshake?: number;
}

export interface ClusterStatus {
  readonly node: string;
  readonly nodeId: string;
  readonly synced: boolean;
  readonly mtu: number;
  readonly vxlanMtu: number;
  readonly peers: readonly ClusterPeer[];
  /** what this host learnt of its own reachability: its NAT's mapping, the endpoints others see */
  readonly reach?: { readonly nat?: string; readonly seenAs?: readonly string[] };
}

/** The cluster section of the host's `truss status --json`. */
export async function clusterStatus(h: Host): Promise<ClusterStatus> {
  const c = ((await h.trussStatus()) as { cluster?: ClusterStatus }).cluster;
  if (!c) throw new Error(`${h.name}: truss status has no cluster section`);
  return c;
}

/** Waits (20 s) until the host's truss is registered and synced with etcd. */
export const waitSynced = (h: Host, what: string): Promise<boolean> =>
  waitFor(async () => (await clusterStatus(h)).synced, 20_000, { what, intervalMs: 200 });

async function wgShow(h: Host, what: 'peers' | 'public-key'): Promise<string> {
  const r = await inHostMounts(h, ['wg', 'show', WG_DEV, what]);
  if (r.code !== 0) throw new Error(`wg show ${WG_DEV} ${what} in ${h.name}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** The public keys of the host's WireGuard peers, sorted. */
export const wgPeers = async (h: Host): Promise<string[]> =>
  (await wgShow(h, 'peers')).split(/\s+/).filter(Boolean).sort();

export const wgPublicKey = (h: Host): Promise<string> => wgShow(h, 'public-key');

export interface RouteJson {
  readonly dst: string;
  readonly dev?: string;
  readonly gateway?: string;
  readonly flags?: readonly string[];
}

/** truss's routes (its proto) in the host's main table. */
export async function trussRoutes(h: Host): Promise<RouteJson[]> {
  const r = await h.exec(['ip', '-j', 'route', 'show', 'table', 'main', 'proto', String(TRUSS_ROUTE_PROTO)]);
  if (r.code !== 0) throw new Error(`ip route in ${h.name}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout.trim() || '[]') as RouteJson[];
}

/** The route among `routes` whose destination holds ip. */
export const routeCovers = (routes: readonly RouteJson[], ip: string): RouteJson | undefined =>
  routes.find((r) => inCidr(ip, r.dst.includes('/') ? r.dst : `${r.dst}/32`));
