/**
 * The agent's watched copy of everything under /truss/v2/ (nodes, cluster networks, members,
 * blocks, names), kept from the list and the watch, and the view and the names derived from it
 * (the view also carries this host's own address claims: core/cluster/host-address.ts).
 *
 * Lapsed peers (a host cut off from etcd past its lease TTL while the underlay still works):
 * its node and member records go with its lease, but its blocks are not leased and stay. The
 * copy keeps such a host's last node and member records in the view for `lapsedGraceMs`
 * (default 15 min) while it still holds blocks, so peers keep its WireGuard/VXLAN entry and
 * traffic to its running containers flows on (see agent.ts).
 *
 * Its names (names/, under the same lease) are kept the same way and for as long as its node
 * record: a partitioned host that still carries traffic keeps its containers resolvable and
 * selectable by name or label, as it keeps its routes; when its node record goes, so do they.
 * Only names deleted together with the node record (the lease expiring) are kept: a name a live
 * host deletes (a container gone) goes at once, and never comes back with a later lapse.
 */
import type { ClusterView } from '../core/cluster/desired.ts';
import { isHostClaim } from '../core/cluster/host-address.ts';
import {
  type AddressClaim,
  type BlockRecord,
  CLUSTER_PREFIX,
  clusterKeys,
  type MemberRecord,
  type NodeRecord,
  nodeIdOf,
} from '../core/cluster/model.ts';
import { decodeClusterRecord } from '../core/cluster/records.ts';
import type { NamedEndpoint } from '../core/names/model.ts';
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
  /** only names (names/) changed: called instead of onChange when given (cheaper than a reconcile) */
  onNamesChange?(): void;
  /** how long a peer whose lease lapsed but who still holds blocks stays programmed (default 15 min) */
  readonly lapsedGraceMs?: number;
  readonly now?: () => number;
}

const { node: nodeKey } = clusterKeys;
const NAMES = clusterKeys.kindPrefix('names');
const NODES = clusterKeys.nodesPrefix;
/** the owner (node id) of a key of the layout: the part after the kind */
const ownerOf = (key: string): string => key.slice(CLUSTER_PREFIX.length).split('/')[1] ?? '';

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
  /** bumped on every change of the copy: names() is computed once per change, not per pass */
  #rev = 0;
  #namesMemo: { readonly rev: number; readonly lapsed: string; readonly out: NamedEndpoint[] } | undefined;

  constructor(deps: WatchedRecordsDeps, self: () => string) {
    this.#d = deps;
    this.#self = self;
  }

  get self(): string {
    return this.#self();
  }

  /** The watch's events: applied to the copy, then one onChange (onNamesChange if only names changed). */
  apply(events: readonly WatchEvent[]): void {
    this.#rev++;
    const namesGone: string[] = [];
    for (const e of events) {
      if (e.type === 'put' && e.value !== undefined) {
        const rev = e.createRevision !== undefined ? { createRevision: e.createRevision } : {};
        this.#cache.set(e.key, { value: e.value, ...rev });
        this.#lapsed.delete(e.key);
        if (e.key.startsWith(NODES)) this.#dropLapsedNames(ownerOf(e.key)); // back: its fresh names follow
      } else if (e.key.startsWith(NAMES)) {
        namesGone.push(e.key);
      } else {
        this.#lapse(e.key);
        this.#cache.delete(e.key);
      }
    }
    // why: etcd deletes a lease's keys in one revision, and a watch response never splits one
    for (const key of namesGone) {
      if (!this.#cache.has(nodeKey(ownerOf(key)))) this.#lapse(key);
      this.#cache.delete(key);
    }
    const namesOnly = events.every((e) => e.key.startsWith(NAMES));
    if (!namesOnly || !this.#d.onNamesChange) this.#d.onChange();
    if (events.some((e) => e.key.startsWith(NAMES))) this.#d.onNamesChange?.();
  }

  replace(items: readonly KeyValue[]): void {
    this.#rev++;
    this.#synced = true;
    const now = new Set(items.map((kv) => kv.key));
    for (const key of this.#cache.keys()) {
      if (now.has(key)) continue;
      if (key.startsWith(NAMES) && now.has(nodeKey(ownerOf(key)))) continue; // deleted by its live host
      this.#lapse(key);
    }
    this.#cache.clear();
    for (const kv of items) {
      this.#cache.set(kv.key, { value: kv.value, createRevision: kv.createRevision });
      this.#lapsed.delete(kv.key);
      if (kv.key.startsWith(NODES)) this.#dropLapsedNames(ownerOf(kv.key));
    }
    this.#d.onChange();
    this.#d.onNamesChange?.();
  }

  /** true once the first list was applied (names() is complete from then on) */
  get synced(): boolean {
    return this.#synced;
  }

  #dropLapsedNames(owner: string): void {
    this.#rev++;
    const prefix = `${NAMES}${owner}/`;
    for (const key of this.#lapsed.keys()) if (key.startsWith(prefix)) this.#lapsed.delete(key);
  }

  /** A node, member or name record of another host is being deleted: keep its last value (see the header). */
  #lapse(key: string): void {
    this.#rev++;
    const rest = key.slice(CLUSTER_PREFIX.length);
    const entry = this.#cache.get(key);
    const kind = rest.split('/')[0];
    if (entry === undefined || !(kind === 'nodes' || kind === 'members' || kind === 'names')) return;
    if (ownerOf(key) === this.self) return;
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
      const isName = key.startsWith(NAMES);
      if (now - since > grace) {
        this.#lapsed.delete(key);
        this.#rev++;
        if (!isName)
          this.#d.log.warn('a lapsed peer stayed away past the grace: no longer programmed', { key, graceMs: grace });
        continue;
      }
      if (isName) continue; // names() keeps them with their node record
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
    const hostClaims: AddressClaim[] = [];
    const malformed = new Map<string, string>();
    for (const [key, { value, createRevision }] of [...this.#cache, ...this.#keptLapsed()]) {
      const d = decodeClusterRecord({ key, value, ...(createRevision !== undefined ? { createRevision } : {}) });
      if (d.kind === 'nodes') nodes.push(d.record);
      else if (d.kind === 'members') members.push(d.record);
      else if (d.kind === 'blocks') blocks.push(d.record);
      else if (d.kind === 'addrs' && d.record.node === this.self && isHostClaim(d.record)) hostClaims.push(d.record);
      else if (d.kind === 'malformed') {
        malformed.set(key, d.why);
        if (this.#malformed.get(key) !== d.why) {
          this.#d.log.warn('ignoring a malformed cluster record', { key, why: d.why });
        }
      }
    }
    this.#malformed = malformed;
    return { self: this.self, nodes, members, blocks, ...(hostClaims.length > 0 ? { hostClaims } : {}) };
  }

  /**
   * Every other host's valid name records, live or kept with its lapsed node record, as
   * NamedEndpoint (no networkId: ids differ between hosts). A malformed one is left out and
   * reported like view()'s.
   */
  names(): NamedEndpoint[] {
    if (!this.#synced) return [];
    const self = this.self;
    const lapsedPeers = new Set(this.lapsedPeers());
    // the same list (same array) while nothing changed: a pass at 1,000 names neither decodes
    // them again nor hands computeDesired a new catalog (its selector sets are memoised on it)
    const lapsedKey = [...lapsedPeers].sort().join(',');
    const memo = this.#namesMemo;
    if (memo && memo.rev === this.#rev && memo.lapsed === lapsedKey) return memo.out;
    const out: NamedEndpoint[] = [];
    const kept = [...this.#lapsed].filter(([k]) => k.startsWith(NAMES) && lapsedPeers.has(ownerOf(k)));
    for (const [key, { value }] of [...this.#cache, ...kept]) {
      if (!key.startsWith(NAMES) || ownerOf(key) === self) continue;
      const d = decodeClusterRecord({ key, value });
      if (d.kind === 'malformed') {
        if (this.#malformed.get(key) !== d.why)
          this.#d.log.warn('ignoring a malformed cluster record', { key, why: d.why });
        this.#malformed.set(key, d.why);
        continue;
      }
      if (d.kind !== 'names') continue;
      this.#malformed.delete(key);
      const r = d.record;
      out.push({
        endpointId: r.endpoint,
        node: r.node,
        networkName: r.network,
        cluster: r.cluster,
        containerId: r.container,
        name: r.name,
        aliases: r.aliases,
        labels: r.labels,
        addresses: r.addresses,
      });
    }
    this.#namesMemo = { rev: this.#rev, lapsed: lapsedKey, out };
    return out;
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
