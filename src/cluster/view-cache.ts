/**
 * The agent's watched copy of everything under /truss/v2/ (nodes, cluster networks, members,
 * blocks), kept from the list and the watch, and the view derived from it.
 *
 * Lapsed peers (a host cut off from etcd past its lease TTL while the underlay still works):
 * its node and member records go with its lease, but its blocks are not leased and stay. The
 * copy keeps such a host's last node and member records in the view for `lapsedGraceMs`
 * (default 15 min) while it still holds blocks, so peers keep its WireGuard/VXLAN entry and
 * traffic to its running containers flows on (see agent.ts).
 */
import type { ClusterView } from '../core/cluster/desired.ts';
import {
  type BlockRecord,
  CLUSTER_PREFIX,
  clusterKeys,
  type MemberRecord,
  type NodeRecord,
  nodeIdOf,
} from '../core/cluster/model.ts';
import { decodeClusterRecord } from '../core/cluster/records.ts';
import type { Logger } from '../obs/logger.ts';
import type { KeyValue } from '../store/store.ts';
import { countAllocations } from './reclaim.ts';

/** One change the watch reports. */
export interface WatchEvent {
  type: 'put' | 'delete';
  key: string;
  value?: string;
  createRevision?: number;
}

/** What the copy needs of the agent's deps (ClusterAgentDeps has it). */
export interface WatchedRecordsDeps {
  readonly log: Logger;
  /** the cluster view changed: reconcile */
  onChange(): void;
  /** how long a peer whose lease lapsed but who still holds blocks stays programmed (default 15 min) */
  readonly lapsedGraceMs?: number;
  readonly now?: () => number;
}

const { node: nodeKey } = clusterKeys;

interface CacheEntry {
  readonly value: string;
  readonly createRevision?: number;
}

export class WatchedRecords {
  readonly #d: WatchedRecordsDeps;
  /** this host's node id */
  readonly #self: () => string;
  /** key -> value and create revision of every record under CLUSTER_PREFIX */
  readonly #cache = new Map<string, CacheEntry>();
  /** node and member records deleted from etcd (a lapsed lease): key -> last entry and when it went */
  readonly #lapsed = new Map<string, CacheEntry & { readonly since: number }>();
  /** malformed records already logged (key -> why) */
  #malformed = new Map<string, string>();
  #synced = false;

  constructor(deps: WatchedRecordsDeps, self: () => string) {
    this.#d = deps;
    this.#self = self;
  }

  get self(): string {
    return this.#self();
  }

  /** The watch's events: applied to the copy, then one onChange. */
  apply(events: readonly WatchEvent[]): void {
    for (const e of events) {
      if (e.type === 'put' && e.value !== undefined) {
        const rev = e.createRevision !== undefined ? { createRevision: e.createRevision } : {};
        this.#cache.set(e.key, { value: e.value, ...rev });
        this.#lapsed.delete(e.key);
      } else {
        this.#lapse(e.key);
        this.#cache.delete(e.key);
      }
    }
    this.#d.onChange();
  }

  replace(items: readonly KeyValue[]): void {
    this.#synced = true;
    const now = new Set(items.map((kv) => kv.key));
    for (const key of this.#cache.keys()) if (!now.has(key)) this.#lapse(key);
    this.#cache.clear();
    for (const kv of items) {
      this.#cache.set(kv.key, { value: kv.value, createRevision: kv.createRevision });
      this.#lapsed.delete(kv.key);
    }
    this.#d.onChange();
  }

  /** A node or member record of another host is being deleted: keep its last value (see the header). */
  #lapse(key: string): void {
    const rest = key.slice(CLUSTER_PREFIX.length);
    const entry = this.#cache.get(key);
    if (entry === undefined || !(rest.startsWith('nodes/') || rest.startsWith('members/'))) return;
    if (key === nodeKey(this.self) || rest.startsWith(`members/${this.self}/`)) return;
    this.#lapsed.set(key, { ...entry, since: (this.#d.now ?? Date.now)() });
  }

  /**
   * Kept records of lapsed peers that still hold blocks, within the grace (expired ones are
   * dropped). A deliberate leave releases the blocks first, so it is never kept.
   */
  #keptLapsed(): [string, CacheEntry][] {
    const now = (this.#d.now ?? Date.now)();
    const grace = this.#d.lapsedGraceMs ?? 15 * 60_000;
    const holders = new Set<string>();
    for (const [key, { value }] of this.#cache) {
      if (!key.slice(CLUSTER_PREFIX.length).startsWith('blocks/')) continue;
      try {
        holders.add(String((JSON.parse(value) as BlockRecord).node));
      } catch {} // malformed: view() reports it
    }
    const out: [string, CacheEntry][] = [];
    for (const [key, { value, since, createRevision }] of this.#lapsed) {
      if (now - since > grace) {
        this.#lapsed.delete(key);
        this.#d.log.warn('a lapsed peer stayed away past the grace: no longer programmed', { key, graceMs: grace });
        continue;
      }
      let node: string;
      try {
        const v = JSON.parse(value) as NodeRecord & MemberRecord;
        node = key.slice(CLUSTER_PREFIX.length).startsWith('nodes/') ? nodeIdOf(v) : v.node;
      } catch {
        continue;
      }
      if (holders.has(node)) out.push([key, { value, ...(createRevision !== undefined ? { createRevision } : {}) }]);
    }
    return out;
  }

  /** Node ids of peers whose lease lapsed and which are kept programmed (for status and tests). */
  lapsedPeers(): string[] {
    return [
      ...new Set(
        this.#keptLapsed()
          .filter(([k]) => k.slice(CLUSTER_PREFIX.length).startsWith('nodes/'))
          .map(([, v]) => nodeIdOf(JSON.parse(v.value) as NodeRecord)),
      ),
    ];
  }

  /**
   * The cluster as last seen, or undefined until the first sync: nothing cluster-wide may be
   * pruned before that. Every record is checked for shape and owner (records.ts): a bad one is
   * left out (and logged once); nodes, members and blocks carry their createRevision.
   */
  view(): ClusterView | undefined {
    if (!this.#synced) return undefined;
    const nodes: NodeRecord[] = [];
    const members: MemberRecord[] = [];
    const blocks: BlockRecord[] = [];
    const malformed = new Map<string, string>();
    for (const [key, { value, createRevision }] of [...this.#cache, ...this.#keptLapsed()]) {
      const d = decodeClusterRecord({ key, value, ...(createRevision !== undefined ? { createRevision } : {}) });
      if (d.kind === 'nodes') nodes.push(d.record);
      else if (d.kind === 'members') members.push(d.record);
      else if (d.kind === 'blocks') blocks.push(d.record);
      else if (d.kind === 'malformed') {
        malformed.set(key, d.why);
        if (this.#malformed.get(key) !== d.why) {
          this.#d.log.warn('ignoring a malformed cluster record', { key, why: d.why });
        }
      }
    }
    this.#malformed = malformed;
    return { self: this.self, nodes, members, blocks };
  }

  /** The records the last view() left out, and why (for status). */
  malformed(): readonly { readonly key: string; readonly why: string }[] {
    return [...this.#malformed].map(([key, why]) => ({ key, why }));
  }

  /** Per cluster and node: blocks and claims held, member or not (from the watched copy). */
  allocations(): ReturnType<typeof countAllocations> {
    return countAllocations([...this.#cache].map(([k, v]) => [k, v.value] as const));
  }
}
