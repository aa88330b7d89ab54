/**
 * ClaimGc: reclaims this host's cluster allocations that nothing local backs any more.
 *
 * - An orphan claim: addrs/<self>/<cluster>/<ip> recorded for this host while the local IPAM holds
 *   no record of <ip> in that cluster's network (a crash between the etcd claim and the local
 *   write, or a ReleaseAddress whose etcd delete failed while etcd was down).
 *   This host's own address (owner HOST_OWNER, core/cluster/host-address.ts) is never an orphan
 *   while the host has a local network of its cluster.
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
import { isHostClaim } from '../core/cluster/host-address.ts';
import { clusterKeys, SHARED_OWNER } from '../core/cluster/model.ts';
import { recordsOf } from '../core/cluster/records.ts';
import type { Logger } from '../obs/logger.ts';
import type { Store } from '../store/store.ts';
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

/** A local address record of a cluster network that no claim of this host backs in etcd. */
export interface Unclaimed {
  readonly cluster: string;
  readonly address: string;
  /** the host whose claim it is instead, if any */
  readonly holder?: string;
}

export interface ClaimGcStatus {
  /** deadline: released by the first pass after it (firstSeen + the grace period) */
  readonly orphans: readonly {
    cluster: string;
    kind: string;
    address?: string;
    firstSeen: string;
    deadline?: string;
  }[];
  /** seen on two passes in a row: this host was forgotten, or etcd lost data (never repaired here) */
  readonly unclaimed: readonly Unclaimed[];
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
  /** unclaimed local addresses: seen once (false) or confirmed on two passes in a row (true) */
  #unclaimed = new Map<string, { readonly u: Unclaimed; readonly confirmed: boolean }>();

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
        deadline: new Date(s.firstSeen + this.#d.graceMs).toISOString(),
      })),
      unclaimed: [...this.#unclaimed.values()].filter((x) => x.confirmed).map((x) => x.u),
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
    const unclaimed: Unclaimed[] = [];
    // every cluster with records, and this host's own (even when nothing of it is left in etcd)
    for (const cluster of new Set([...(await clusterNames(this.#d.store)), ...local.keys()])) {
      const use = local.get(cluster);
      if (use === undefined) {
        const held = await listHeld(this.#d.store, cluster, this.#d.node);
        if (!this.#d.joined(cluster) && held.claims.length + held.blocks.length > 0) {
          found.push({ cluster, kind: 'left', revision: 0, firstSeen: now });
        }
        continue;
      }
      const holders = new Map<string, string>();
      for (const kind of ['shared', 'addrs'] as const) {
        for (const { record } of recordsOf(kind, (await this.#d.store.list(clusterKeys.kindPrefix(kind))).items)) {
          if (record.cluster === cluster) holders.set(record.address, kind === 'shared' ? SHARED_OWNER : record.node);
        }
      }
      // this host's own claims, by key (a malformed one is not an orphan: it is left alone; nor is
      // the host's own address, backed by the local network itself: a leave releases it)
      for (const kv of (await this.#d.store.list(clusterKeys.addrsOf(cluster, this.#d.node))).items) {
        const claim = recordsOf('addrs', [kv])[0]?.record;
        const address = claim?.address;
        if (address === undefined || use.has(address) || (claim && isHostClaim(claim))) continue;
        found.push({ cluster, kind: 'claim', address, revision: kv.modRevision, firstSeen: now });
      }
      // the other way round (never acted on, only reported): a local address without our claim
      for (const address of use) {
        const holder = holders.get(address);
        if (holder !== this.#d.node && holder !== SHARED_OWNER) {
          unclaimed.push({ cluster, address, ...(holder !== undefined ? { holder } : {}) });
        }
      }
    }
    this.#noteUnclaimed(unclaimed);
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

  #noteUnclaimed(now: readonly Unclaimed[]): void {
    const next = new Map<string, { u: Unclaimed; confirmed: boolean }>();
    for (const u of now) {
      const id = `${u.cluster}:${u.address}:${u.holder ?? ''}`;
      const confirmed = this.#unclaimed.has(id);
      if (confirmed && !this.#unclaimed.get(id)?.confirmed) {
        this.#d.log.error('a local address of a cluster network has no claim of this host in etcd', {
          ...u,
          hint: u.holder
            ? 'another host holds it: remove this container and start it again'
            : 'was this host forgotten (truss cluster forget) or etcd restored from an old backup?',
        });
      }
      next.set(id, { u, confirmed });
    }
    this.#unclaimed = next;
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
      const key = clusterKeys.addr(s.cluster, s.address as string, this.#d.node);
      const cur = await this.#d.store.get(key); // etcd first, then local: see the header
      if (!cur || cur.modRevision !== s.revision) continue;
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
