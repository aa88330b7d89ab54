/**
 * The cluster section of `truss status`: this host (node id, name, MTUs, WireGuard port), its
 * peers as desired with their latest WireGuard handshakes, the hosts' names, rejected peers and
 * alarms, malformed records, the etcd transport, this host's allocations and the claim GC.
 */

import type { ClaimGc } from '../cluster/claim-gc.ts';
import type { Cluster } from '../cluster/setup.ts';
import type { ClusterBody } from '../core/admin-api.ts';
import { WG_DEVICE } from '../core/cluster/desired.ts';
import { nodeIdOf } from '../core/cluster/model.ts';
import type { Dataplane } from '../core/contracts.ts';
import type { Reconciler } from '../reconcile/reconciler.ts';
import type { IntentRepo } from './intent.ts';

export interface ClusterStatusDeps {
  readonly cluster: Cluster;
  readonly repo: IntentRepo;
  readonly reconciler: Pick<Reconciler, 'clusterDesired'>;
  readonly dataplane: Pick<Dataplane, 'readWireguardPeers'>;
  readonly claimGc?: Pick<ClaimGc, 'status'>;
}

export async function clusterStatus(d: ClusterStatusDeps): Promise<ClusterBody> {
  const { cluster } = d;
  const view = cluster.agent.view();
  const intent = await d.repo.snapshot();
  const desired = d.reconciler.clusterDesired({ ...intent, ...(view ? { cluster: view } : {}) });
  const peers = await d.dataplane.readWireguardPeers(WG_DEVICE).catch(() => []);
  const names = new Map((view?.nodes ?? []).map((n) => [nodeIdOf(n), n.name]));
  return {
    node: cluster.agent.name,
    nodeId: cluster.agent.self,
    synced: view !== undefined,
    mtu: cluster.mtu.wireguard,
    vxlanMtu: cluster.mtu.vxlan,
    wgPort: cluster.listenPort,
    peers: (desired.wireguard?.peers ?? []).map((p) => {
      const live = peers.find((x) => x.publicKey === p.publicKey);
      return {
        node: p.node,
        name: names.get(p.node),
        endpoint: p.endpoint,
        allowedIps: p.allowedIps,
        latestHandshake: live?.latestHandshake ?? 0,
      };
    }),
    vxlanPeers: (desired.vxlan?.peers ?? []).map((p) => ({
      node: p.node,
      name: names.get(p.node),
      address: p.address,
      mac: p.mac,
    })),
    /** registered hosts: node id -> display name */
    names: Object.fromEntries(names),
    rejected: desired.rejected,
    alarms: desired.alarms,
    malformed: cluster.agent.malformed(),
    etcd: cluster.etcd,
    allocations: cluster.agent.allocations(),
    reclaim: d.claimGc?.status(),
  };
}
