/**
 * The cluster section of `truss status`: this host (node id, name, MTUs, WireGuard port), its
 * peers as desired with their latest WireGuard handshakes and transfer, the hosts' names, rejected
 * peers and alarms, malformed records, the etcd transport and connection (a read now, this host's
 * lease and watch), this host's allocations, its own addresses on the cluster networks and the claim GC.
 */

import type { ClusterStore } from '../cluster/agent.ts';
import type { ClaimGc } from '../cluster/claim-gc.ts';
import type { Cluster } from '../cluster/setup.ts';
import type { ClusterBody } from '../core/admin-api.ts';
import { WG_DEVICE } from '../core/cluster/desired.ts';
import { type NodeRecord, nodeIdOf } from '../core/cluster/model.ts';
import type { Dataplane } from '../core/contracts.ts';
import type { Reconciler } from '../reconcile/reconciler.ts';
import type { IntentRepo } from './intent.ts';

export interface ClusterStatusDeps {
  readonly cluster: Cluster;
  readonly repo: IntentRepo;
  readonly reconciler: Pick<Reconciler, 'clusterDesired'>;
  readonly dataplane: Pick<Dataplane, 'readWireguardPeers' | 'wireguardImplementation'>;
  readonly claimGc?: Pick<ClaimGc, 'status'>;
}

/** how long status waits for etcd to answer one read before it calls etcd unreachable */
export const ETCD_PROBE_MS = 2000;

/** One read of etcd's revision now: a frozen or cut-off etcd shows at once, not after a lease TTL. */
export async function probeEtcd(
  store: Pick<ClusterStore, 'revision'>,
  timeoutMs = ETCD_PROBE_MS,
): Promise<{ readonly reachable: boolean; readonly error?: string; readonly latencyMs?: number }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([store.revision(), timeout]);
    return { reachable: true, latencyMs: Math.round(performance.now() - started) };
  } catch (e) {
    return { reachable: false, error: (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '' };
  } finally {
    clearTimeout(timer);
  }
}

/** This host's reachability as its record says and as the others see it. */
function reachOf(self: string, nodes: readonly NodeRecord[]): ClusterBody['reach'] {
  const me = nodes.find((n) => nodeIdOf(n) === self);
  if (!me) return undefined;
  const seenAs = [...new Set(nodes.flatMap((n) => (nodeIdOf(n) !== self && n.seen?.[self] ? [n.seen[self]] : [])))];
  return {
    address: me.address,
    ...(me.publicEndpoint !== undefined ? { publicEndpoint: me.publicEndpoint } : {}),
    relay: me.relay === true,
    ...(me.nat !== undefined ? { nat: me.nat } : {}),
    ...(seenAs.length > 0 ? { seenAs: seenAs.sort() } : {}),
  };
}

export async function clusterStatus(d: ClusterStatusDeps): Promise<ClusterBody> {
  const { cluster } = d;
  const view = cluster.agent.view();
  const [intent, peers, probe, wireguard] = await Promise.all([
    d.repo.snapshot(),
    d.dataplane.readWireguardPeers(WG_DEVICE).catch(() => []),
    probeEtcd(cluster.store),
    d.dataplane.wireguardImplementation?.().catch(() => undefined),
  ]);
  const desired = d.reconciler.clusterDesired({ ...intent, ...(view ? { cluster: view } : {}) });
  const names = new Map((view?.nodes ?? []).map((n) => [nodeIdOf(n), n.name]));
  return {
    node: cluster.agent.name,
    nodeId: cluster.agent.self,
    synced: view !== undefined,
    mtu: cluster.mtu.wireguard,
    vxlanMtu: cluster.mtu.vxlan,
    wgPort: cluster.listenPort,
    ...(wireguard !== undefined ? { wireguard } : {}),
    peers: (desired.wireguard?.peers ?? []).map((p) => {
      const live = peers.find((x) => x.publicKey === p.publicKey);
      const endpoint = live?.endpoint ?? p.endpoint;
      return {
        node: p.node,
        name: names.get(p.node),
        ...(endpoint !== undefined ? { endpoint } : {}),
        path: p.path,
        ...(p.via !== undefined ? { via: p.via } : {}),
        allowedIps: p.allowedIps,
        latestHandshake: live?.latestHandshake ?? 0,
        ...(live ? { rxBytes: live.rxBytes, txBytes: live.txBytes } : {}),
      };
    }),
    vxlanPeers: (desired.vxlan?.peers ?? []).map((p) => ({
      node: p.node,
      name: names.get(p.node),
      address: p.address,
      mac: p.mac,
    })),
    reach: reachOf(cluster.agent.self, view?.nodes ?? []),
    /** registered hosts: node id -> display name */
    names: Object.fromEntries(names),
    lapsed: cluster.agent.lapsedPeers(),
    rejected: desired.rejected,
    alarms: desired.alarms,
    malformed: cluster.agent.malformed(),
    etcd: { ...cluster.etcd, ...probe, ...cluster.agent.connection() },
    allocations: cluster.agent.allocations(),
    hostAddresses: [...(desired.hostAddresses ?? [])],
    reclaim: d.claimGc?.status(),
  };
}
