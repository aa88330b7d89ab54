/**
 * What settling a request journal entry (journal.ts) means, per kind. Every settle is guarded by
 * store revisions, so it never takes back what was handed out again after the request, and is
 * idempotent (a second run finds nothing to do):
 * - create-network: undo. The network intent goes unless it has endpoints (then dockerd did use
 *   it: kept); the cluster is left if this was its last local network; truss IPAM pools with the
 *   network's CIDRs allocated before the create (so for it) go unless another network uses them
 *   (dockerd's own ReleasePool after the failed create reaches a restarting plugin with an
 *   empty body, so it never frees them).
 * - request-pool / request-address: undo; only the record written with the entry.
 * - release-pool / release-address: redo; only a record that existed when the release was asked.
 * The reconciler removes the kernel objects of an undone network on its next pass.
 */

import type { ClusterMembership } from '../core/contracts.ts';
import { shortId } from '../core/naming.ts';
import type { Logger } from '../obs/logger.ts';
import type { IntentRepo } from './intent.ts';
import type { CreatedGuard } from './ipam-service.ts';
import type { Recorded, Settler } from './journal.ts';
import { leaveIfLast } from './network-cluster.ts';

export interface SettleDeps {
  readonly repo: IntentRepo;
  readonly ipam: {
    releasePoolIf(poolId: string, guard: CreatedGuard): Promise<boolean>;
    releaseAddressIf(poolId: string, address: string, guard: CreatedGuard): Promise<boolean>;
    poolsOf(pool: string): Promise<readonly { readonly id: string; readonly createRevision: number }[]>;
  };
  readonly cluster?: ClusterMembership;
  /** ask the reconciler for a pass (an undone network's kernel objects go) */
  readonly trigger: () => void;
  readonly log: Logger;
}

export function createSettler(d: SettleDeps): Settler {
  return async ({ entry: e, revision }: Recorded): Promise<string> => {
    const done = (did: boolean, what: string): string => `${what}${did ? '' : ': nothing to do'}`;
    switch (e.kind) {
      case 'create-network':
        return undoCreateNetwork(d, e.networkId, e.pools, revision);
      case 'request-pool':
        return done(await d.ipam.releasePoolIf(e.poolId, (r) => r === revision), `released pool ${e.poolId}`);
      case 'request-address':
        return done(
          await d.ipam.releaseAddressIf(e.poolId, e.address, (r) => r === revision),
          `released address ${e.address} of pool ${e.poolId}`,
        );
      case 'release-pool':
        return done(await d.ipam.releasePoolIf(e.poolId, (r) => r < revision), `released pool ${e.poolId}`);
      case 'release-address':
        return done(
          await d.ipam.releaseAddressIf(e.poolId, e.address, (r) => r < revision),
          `released address ${e.address} of pool ${e.poolId}`,
        );
    }
  };
}

async function undoCreateNetwork(
  d: SettleDeps,
  networkId: string,
  pools: readonly string[],
  revision: number,
): Promise<string> {
  const did: string[] = [];
  const net = await d.repo.getNetwork(networkId);
  if (net) {
    if ((await d.repo.listEndpoints(networkId)).length > 0) {
      return `kept network ${shortId(networkId)}: it has endpoints, so dockerd uses it`;
    }
    await d.repo.deleteNetwork(networkId);
    d.trigger();
    did.push(`deleted network ${shortId(networkId)} (bridge ${net.bridge})`);
    if (net.cluster) {
      // not awaited: start-up settles before serving and must not wait on etcd; a failed or
      // unfinished leave is completed by the claim GC (leaveIfLast logs it)
      void leaveIfLast(d.repo, d.cluster, net.cluster.name, d.log);
      did.push(`leaving cluster ${net.cluster.name} if it was its last network here`);
    }
  }
  const inUse = new Set((await d.repo.listNetworks()).flatMap((n) => [...n.ipv4, ...n.ipv6].map((x) => x.pool)));
  for (const cidr of pools) {
    if (inUse.has(cidr)) continue;
    for (const p of await d.ipam.poolsOf(cidr)) {
      if (p.createRevision >= revision) continue; // requested after the create: not this network's
      if (await d.ipam.releasePoolIf(p.id, (r) => r === p.createRevision)) did.push(`released pool ${p.id}`);
    }
  }
  return did.length > 0 ? did.join(', ') : `network ${shortId(networkId)}: nothing to do`;
}
