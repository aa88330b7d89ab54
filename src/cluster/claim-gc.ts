/**
 * ClaimGc: reclaims this host's cluster allocations that nothing local backs any more.
 *
 * - An orphan claim: addrs/<cluster>/<ip> recorded for this host while the local IPAM holds
 *   no record of <ip> in that cluster's network (a crash between the etcd claim and the local
 *   write, or a ReleaseAddress whose etcd delete failed while etcd was down).
 * - A left cluster: claims or blocks of this host in a cluster network it has no local
 *   network of any more and did not join in this process (a leave that failed, or a crash
 *   between deleting the network and leaving).
 *
 * Same safety rule as the endpoint GC (Calico's two observations): a candidate is reclaimed
 * only after it was seen on two passes at least `graceMs` apart, for a claim with the same
 * modRevision both times, and re-validated right before: the claim is read again from etcd,
 * then the local records, and the delete compares the claim's modRevision, so a claim that
 * was released and allocated again meanwhile is never deleted. A left cluster goes through
 * the agent's leave, which stops as soon as the host joins that cluster again. A pass that
 * cannot reach the cluster store changes nothing (sightings are neither added nor dropped).
 * A host that restarts keeps everything: its local networks and records are durable.
 */
import type { AddressClaim } from '../core/cluster/model.ts';
import { clusterKeys } from '../core/cluster/model.ts';
import type { Logger } from '../obs/logger.ts';
import type { KeyValue, Store } from '../store/store.ts';
import { clusterNames, deleteUnchanged, listHeld, type Released } from './reclaim.ts';

export interface ClaimGcDeps {
  readonly store: Store;
  readonly node: string;
  /** clusters this host has a local network of, each with the addresses its local IPAM holds there */
  localUse(): Promise<ReadonlyMap<string, ReadonlySet<string>>>;
  /** the cluster was joined in this process and not left since (a network create may be under way) */
  joined(cluster: string): boolean;
  /** leave the cluster network again: membership, claims and blocks (agent.leaveNetwork) */
  leave(cluster: string): Promise<Released>;
  readonly log: Logger;
  readonly graceMs: number;
  readonly now?: () => number;
}

interface Sighting {
  readonly cluster: string;
  readonly kind: 'claim' | 'left';
  readonly address?: string;
  /** claim: its modRevision; left: 0 */
  readonly revision: number;
  readonly firstSeen: number;
}

export interface ClaimGcStatus {
  readonly orphans: readonly { cluster: string; kind: string; address?: string; firstSeen: string }[];
  readonly reclaimedClaims: number;
  readonly reclaimedClusters: number;
  readonly lastPass?: string;
  readonly lastError?: string;
}

export class ClaimGc {
  readonly #d: ClaimGcDeps;
  readonly #seen = new Map<string, Sighting>();
  #reclaimedClaims = 0;
  #reclaimedClusters = 0;
  #lastPass: number | undefined;
  #lastError: string | undefined;
  #running = false;

  constructor(deps: ClaimGcDeps) {
    this.#d = deps;
  }

  #now(): number {
    return (this.#d.now ?? Date.now)();
  }

  status(): ClaimGcStatus {
    return {
      orphans: [...this.#seen.values()].map((s) => ({
        cluster: s.cluster,
        kind: s.kind,
        ...(s.address !== undefined ? { address: s.address } : {}),
        firstSeen: new Date(s.firstSeen).toISOString(),
      })),
      reclaimedClaims: this.#reclaimedClaims,
      reclaimedClusters: this.#reclaimedClusters,
      ...(this.#lastPass !== undefined ? { lastPass: new Date(this.#lastPass).toISOString() } : {}),
      ...(this.#lastError !== undefined ? { lastError: this.#lastError } : {}),
    };
  }

  /** One pass (hooked to the reconciler's full pass). Returns how many claims it reclaimed. */
  async observe(): Promise<number> {
    if (this.#running) return 0;
    this.#running = true;
    try {
      const n = await this.#pass();
      this.#lastError = undefined;
      return n;
    } catch (e) {
      // etcd down (or a local read failed): try again next pass, with the sightings as they were
      this.#lastError = e instanceof Error ? e.message : String(e);
      this.#d.log.debug('claim gc pass skipped', { err: e });
      return 0;
    } finally {
      this.#lastPass = this.#now();
      this.#running = false;
    }
  }

  async #pass(): Promise<number> {
    const now = this.#now();
    const local = await this.#d.localUse();
    const found: Sighting[] = [];
    const claims = new Map<string, KeyValue>();
    for (const cluster of await clusterNames(this.#d.store)) {
      const use = local.get(cluster);
      const held = await listHeld(this.#d.store, cluster, this.#d.node);
      if (use === undefined) {
        if (!this.#d.joined(cluster) && held.claims.length + held.blocks.length > 0) {
          found.push({ cluster, kind: 'left', revision: 0, firstSeen: now });
        }
        continue;
      }
      for (const kv of held.claims) {
        const address = kv.key.slice(clusterKeys.addrsPrefix(cluster).length);
        if (use.has(address)) continue;
        found.push({ cluster, kind: 'claim', address, revision: kv.modRevision, firstSeen: now });
        claims.set(kv.key, kv);
      }
    }
    const due: Sighting[] = [];
    const keep = new Set<string>();
    for (const s of found) {
      const id = `${s.kind}:${s.cluster}:${s.address ?? ''}`;
      keep.add(id);
      const prev = this.#seen.get(id);
      if (!prev || prev.revision !== s.revision) {
        this.#seen.set(id, s);
        this.#d.log.info('cluster allocation looks orphaned; reclaiming after the grace period', {
          cluster: s.cluster,
          kind: s.kind,
          address: s.address,
          graceMs: this.#d.graceMs,
        });
      } else if (now - prev.firstSeen >= this.#d.graceMs) due.push(prev);
    }
    for (const id of [...this.#seen.keys()]) if (!keep.has(id)) this.#seen.delete(id);
    if (due.length === 0) return 0;
    return this.#reclaim(due);
  }

  async #reclaim(due: readonly Sighting[]): Promise<number> {
    let reclaimed = 0;
    for (const s of due) {
      const id = `${s.kind}:${s.cluster}:${s.address ?? ''}`;
      if (s.kind === 'left') {
        if ((await this.#d.localUse()).has(s.cluster) || this.#d.joined(s.cluster)) continue;
        const r = await this.#d.leave(s.cluster);
        this.#seen.delete(id);
        this.#reclaimedClusters++;
        this.#d.log.warn('released the allocations of a cluster network this host left', {
          cluster: s.cluster,
          claims: r.claims.length,
          blocks: r.blocks,
        });
        continue;
      }
      const key = clusterKeys.addr(s.cluster, s.address as string);
      const cur = await this.#d.store.get(key); // etcd first, then local: see the header
      if (!cur || cur.modRevision !== s.revision || !isMine(cur, this.#d.node)) continue;
      const use = (await this.#d.localUse()).get(s.cluster);
      if (!use || use.has(s.address as string)) continue;
      if ((await deleteUnchanged(this.#d.store, [cur])).length === 0) continue;
      this.#seen.delete(id);
      this.#reclaimedClaims++;
      reclaimed++;
      this.#d.log.warn('reclaimed an orphaned cluster address claim', { cluster: s.cluster, address: s.address });
    }
    return reclaimed;
  }
}

function isMine(kv: KeyValue, node: string): boolean {
  try {
    return (JSON.parse(kv.value) as AddressClaim).node === node;
  } catch {
    return false;
  }
}
