/**
 * The cluster commands of the admin API: `truss keys rotate` (a new WireGuard key, published
 * for the peers) and `truss cluster forget` (free a gone host's claims). Without a cluster
 * store both are refused.
 */

import { forgetNode } from '../cluster/reclaim.ts';
import type { Cluster } from '../cluster/setup.ts';
import { isValidNodeName } from '../core/cluster/model.ts';
import { errors } from '../core/errors.ts';
import type { Logger } from '../obs/logger.ts';

export interface ClusterAdminDeps {
  readonly cluster: Cluster | undefined;
  /** replaces the key file in the key dir (the dataplane's key store) */
  rotatePrivateKey(keyDir: string): Promise<{ readonly publicKey: string }>;
  /** the cluster changed: reconcile */
  trigger(): void;
  readonly log: Logger;
}

export class ClusterAdmin {
  readonly #d: ClusterAdminDeps;
  constructor(deps: ClusterAdminDeps) {
    this.#d = deps;
  }

  async rotateKey(): Promise<{ node: string; nodeId: string; publicKey: string }> {
    const { cluster } = this.#d;
    if (!cluster) throw errors.unsupported('truss keys rotate needs a cluster store (--store etcd://...)');
    const key = await this.#d.rotatePrivateKey(cluster.keyDir);
    await cluster.agent.publishKey(key.publicKey);
    this.#d.trigger();
    return { node: cluster.agent.name, nodeId: cluster.agent.self, publicKey: key.publicKey };
  }

  async forget(node: string, force: boolean): Promise<Awaited<ReturnType<typeof forgetNode>>> {
    const { cluster } = this.#d;
    if (!cluster) throw errors.unsupported('truss cluster forget needs a cluster store (--store etcd://...)');
    if (!isValidNodeName(node)) {
      throw errors.badRequest(`${JSON.stringify(node)} is not a node id ([a-z0-9.-]; see truss status)`);
    }
    const result = await forgetNode(cluster.store, node, cluster.agent.self, force);
    this.#d.log.warn('forgot a cluster host', { ...result });
    this.#d.trigger();
    return result;
  }
}
