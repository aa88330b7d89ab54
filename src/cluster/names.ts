/**
 * This host's names in the cluster store (issue 16): one NameRecord per endpoint of a cluster
 * network (names/<self>/<cluster>/<endpoint id>), PUT under the host's lease so that a dead
 * host's names go with it. Every host watches everyone's (view-cache.ts names()).
 *
 * The caller hands over the host's complete current list (publish); the publisher diffs it
 * against what it last wrote and PUTs or DELETEs only the changes, one write at a time (a call
 * during a write coalesces to the latest list). It never throws: a failed write is logged and
 * retried on the next call, the next registration, or after retryMs.
 *
 * What it last wrote is unknown after a (re-)registration: a previous process of this host may
 * have left names that are no longer true, and its lease (not revoked on a graceful stop) would
 * take the still-true ones with it when it expires. So the first write after registration lists
 * the whole own names/<self>/ prefix, deletes what is not in the list and PUTs every entry again
 * under this lease. The same happens after a lost lease is re-granted (the etcd lease re-puts its
 * keys by itself; the listing catches anything a failed write left behind).
 */
import { clusterKeys, type NameRecord } from '../core/cluster/model.ts';
import { decodeClusterRecord } from '../core/cluster/records.ts';
import { formatIp, parseIp } from '../core/ip.ts';
import type { NamedEndpoint } from '../core/names/model.ts';
import type { Logger } from '../obs/logger.ts';
import type { Store } from '../store/store.ts';

/** What the publisher needs of the agent's lease (agent.ts LeaseLike has it). */
export interface NamesLease {
  put(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
  readonly state?: 'alive' | 'lost' | 'revoked';
}

export interface NamesPublisherDeps {
  readonly store: Pick<Store, 'list' | 'txn'>;
  readonly log: Logger;
  /** this host's node id */
  self(): string;
  /** the lease while registered, else undefined (nothing is written then) */
  lease(): NamesLease | undefined;
  /** after a failed write, try again this much later (default 5000) */
  readonly retryMs?: number;
}

export class NamesPublisher {
  readonly #d: NamesPublisherDeps;
  /** key -> value of the latest list; undefined until the first publish (nothing is pruned before) */
  #desired: Map<string, string> | undefined;
  /** key -> value as last written; undefined: unknown, list the own prefix first */
  #written: Map<string, string> | undefined;
  /** clusters left since: a list made before the leave must not bring their names back */
  readonly #left = new Set<string>();
  /** entries that cannot be published (key -> why), logged once */
  #unpublishable = new Map<string, string>();
  #running: Promise<void> | undefined;
  #again = false;
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(deps: NamesPublisherDeps) {
    this.#d = deps;
  }

  /** This host's complete current list (every cluster); resolves once written or failed, never rejects. */
  publish(entries: readonly NamedEndpoint[]): Promise<void> {
    this.#desired = this.#encode(entries);
    return this.#kick();
  }

  /** Registered or the lease re-granted: what is in the store is unknown; replace it whole. */
  registered(): Promise<void> {
    this.#written = undefined;
    return this.#kick();
  }

  /** The cluster is joined (again): its names may be published. */
  rejoined(cluster: string): void {
    this.#left.delete(cluster);
  }

  /**
   * This host left the cluster: its names of it go now, whatever the last list said (and a
   * list made before the leave won't bring them back). Throws when the store can't be reached,
   * as the rest of a leave does.
   */
  async leave(cluster: string): Promise<void> {
    this.#left.add(cluster);
    const prefix = clusterKeys.namesOf(cluster, this.#d.self());
    if (this.#desired) this.#desired = new Map([...this.#desired].filter(([k]) => !k.startsWith(prefix)));
    await this.#kick();
    const lease = this.#d.lease();
    for (const { key } of (await this.#d.store.list(prefix)).items) {
      if (lease)
        await lease.delete(key); // why: the etcd lease would put a key it still holds back after a re-grant
      else await this.#d.store.txn([], [{ type: 'delete', key }]);
      this.#written?.delete(key);
    }
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retry);
  }

  #kick(): Promise<void> {
    this.#again = true;
    if (!this.#running) {
      this.#running = (async () => {
        try {
          while (this.#again && !this.#stopped) {
            this.#again = false;
            await this.#syncOnce();
          }
        } finally {
          this.#running = undefined;
        }
      })();
    }
    return this.#running;
  }

  async #syncOnce(): Promise<void> {
    const lease = this.#d.lease();
    const desired = this.#desired;
    // not registered, or the lease is lost: registered() runs again when it is back
    if (!lease || !desired || (lease.state !== undefined && lease.state !== 'alive')) return;
    try {
      if (!this.#written) {
        const { items } = await this.#d.store.list(clusterKeys.ownerPrefix('names', this.#d.self()));
        // '' never equals a record: every entry of the list is PUT again, under this lease
        this.#written = new Map(items.map((kv) => [kv.key, '']));
      }
      const written = this.#written;
      for (const [key, value] of desired) {
        if (written.get(key) === value) continue;
        written.delete(key); // until the PUT is known to have landed
        await lease.put(key, value);
        written.set(key, value);
      }
      for (const key of [...written.keys()]) {
        if (desired.has(key)) continue;
        await lease.delete(key);
        written.delete(key);
      }
    } catch (e) {
      this.#d.log.warn("could not publish this host's container names to the cluster store; will retry", { err: e });
      clearTimeout(this.#retry);
      if (!this.#stopped) this.#retry = setTimeout(() => void this.#kick(), this.#d.retryMs ?? 5000).unref();
    }
  }

  /** The list as keys and values; entries a peer would refuse (records.ts) are left out and logged once. */
  #encode(entries: readonly NamedEndpoint[]): Map<string, string> {
    const self = this.#d.self();
    const out = new Map<string, string>();
    const unpublishable = new Map<string, string>();
    for (const e of entries) {
      if (e.cluster === undefined || this.#left.has(e.cluster)) continue;
      const record: NameRecord = {
        cluster: e.cluster,
        node: self,
        endpoint: e.endpointId,
        network: e.networkName,
        container: e.containerId,
        name: e.name,
        aliases: [...e.aliases],
        // sorted: the same labels are the same text, so an unchanged entry is never PUT again
        labels: Object.fromEntries(Object.entries(e.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
        addresses: e.addresses.map((a) => {
          const ip = parseIp(a);
          return ip ? formatIp(ip) : a;
        }),
      };
      const key = clusterKeys.name(e.cluster, e.endpointId, self);
      const value = JSON.stringify(record);
      const d = decodeClusterRecord({ key, value });
      if (d.kind !== 'malformed') {
        out.set(key, value);
        continue;
      }
      unpublishable.set(key, d.why);
      if (this.#unpublishable.get(key) !== d.why) {
        this.#d.log.warn('not publishing a container name peers would refuse', {
          key,
          why: d.why,
          container: e.name,
        });
      }
    }
    this.#unpublishable = unpublishable;
    return out;
  }
}
