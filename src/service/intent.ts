/**
 * IntentRepo: networks, endpoints and run-time policies as stored intent (JSON under
 * /truss/v1/). Every write is a compare-and-swap transaction and durable before it resolves;
 * the returned revision is what the caller hands to reconciler.waitFor().
 *
 * snapshot() serves the reconciler's passes from a write-through cache, so a pass costs no
 * store read and no JSON decoding: truss is the only writer of these keys, and every write
 * goes through this repo, one at a time, and lands in the cache once committed. An
 * unchanged record stays the same (frozen) object from one snapshot to the next, which lets
 * computeDesired and the reconciler reuse what they derived from it. snapshot({ fresh: true })
 * (full passes) re-reads the store and keeps the objects whose modRevision did not move; a
 * write whose outcome is unknown (the store failed) drops the cache.
 */
import { errors } from '../core/errors.ts';
import type { Intent } from '../core/intent.ts';
import { formatIp, parsePrefix } from '../core/ip.ts';
import type { EndpointSpec, NetworkPolicyRecord, NetworkSpec } from '../core/model.ts';
import type { Compare, KeyValue, Op, Store, TxnResult } from '../store/store.ts';
import { Mutex } from './mutex.ts';

const NETWORKS = '/truss/v1/networks/';
const ENDPOINTS = '/truss/v1/endpoints/';
const POLICIES = '/truss/v1/policies/';
const policyKey = (nid: string): string => `${POLICIES}${nid}`;
const networkKey = (id: string): string => `${NETWORKS}${id}`;
const endpointKey = (nid: string, eid: string): string => `${ENDPOINTS}${nid}/${eid}`;

function decode<T>(kv: KeyValue): T {
  return JSON.parse(kv.value) as T;
}

interface Cached {
  readonly modRevision: number;
  readonly value: unknown;
}

/** The intent as last read or written: one map per prefix, key -> decoded (frozen) record. */
interface Cache {
  readonly maps: Record<string, Map<string, Cached>>;
  revision: number;
  /** the Intent handed out since the last change (undefined: rebuild on the next snapshot) */
  view: Intent | undefined;
  /** holderKey(network, bare address) -> the store keys of the endpoints holding it; built on first use */
  holders?: Map<string, Set<string>>;
}

/** "198.18.0.5" of "198.18.0.5/24", canonical */
const bareOf = (cidr: string): string => {
  const p = parsePrefix(cidr);
  return p ? formatIp(p) : cidr;
};
const holderKey = (nid: string, bare: string): string => `${nid} ${bare}`;

/** add (+1) or drop (-1) an endpoint record's addresses in the holders index */
function index(holders: Map<string, Set<string>>, key: string, value: unknown, how: 1 | -1): void {
  const e = value as EndpointSpec | undefined;
  if (!e) return;
  for (const a of [e.ipv4, e.ipv6]) {
    if (a === undefined) continue;
    const k = holderKey(e.networkId, bareOf(a));
    let keys = holders.get(k);
    if (how === 1) {
      if (!keys) {
        keys = new Set();
        holders.set(k, keys);
      }
      keys.add(key);
    } else {
      keys?.delete(key);
      if (keys?.size === 0) holders.delete(k);
    }
  }
}

const PREFIXES = [NETWORKS, ENDPOINTS, POLICIES] as const;
const prefixOf = (key: string): string | undefined => PREFIXES.find((p) => key.startsWith(p));
const values = <T>(m: Map<string, Cached> | undefined): T[] => [...(m?.values() ?? [])].map((c) => c.value as T);

export class IntentRepo {
  readonly #store: Store;
  readonly #writes = new Mutex();
  #cache: Cache | undefined;
  constructor(store: Store) {
    this.#store = store;
  }

  /** The intent at one revision; `fresh` re-reads the store (full passes). Do not mutate what it returns. */
  async snapshot(opts: { readonly fresh?: boolean } = {}): Promise<Intent> {
    const cache = opts.fresh || !this.#cache ? await this.#writes.run(() => this.#load()) : this.#cache;
    cache.view ??= {
      networks: values<NetworkSpec>(cache.maps[NETWORKS]),
      endpoints: values<EndpointSpec>(cache.maps[ENDPOINTS]),
      policies: values<NetworkPolicyRecord>(cache.maps[POLICIES]),
      revision: cache.revision,
    };
    return cache.view;
  }

  /**
   * The endpoints of network `nid` holding `bare` (a canonical bare IP), from the cache: an index
   * kept with every write, so CreateEndpoint's address check costs no walk of the network's
   * endpoints (issue 18 item 5). Built on first use after each full read.
   */
  async holding(nid: string, bare: string): Promise<EndpointSpec[]> {
    if (!this.#cache) await this.snapshot();
    const cache = this.#cache;
    if (!cache) return [];
    const endpoints = cache.maps[ENDPOINTS] as Map<string, Cached>;
    if (!cache.holders) {
      cache.holders = new Map();
      for (const [key, c] of endpoints) index(cache.holders, key, c.value, 1);
    }
    return [...(cache.holders.get(holderKey(nid, bare)) ?? [])].flatMap((k) => {
      const c = endpoints.get(k);
      return c ? [c.value as EndpointSpec] : [];
    });
  }

  /** Reads every intent key at one revision; records whose modRevision is unchanged keep their object. */
  async #load(): Promise<Cache> {
    // one revision for all lists: retry if a write slipped in between (rare; writes are ~1 ms)
    for (let i = 0; ; i++) {
      const lists = await Promise.all(PREFIXES.map((p) => this.#store.list(p)));
      const revs = lists.map((l) => l.revision);
      if (revs.some((r) => r !== revs[0]) && i < 5) continue;
      const maps: Record<string, Map<string, Cached>> = {};
      PREFIXES.forEach((prefix, n) => {
        const old = this.#cache?.maps[prefix];
        maps[prefix] = new Map(
          (lists[n]?.items ?? []).map((kv) => {
            const had = old?.get(kv.key);
            const keep = had && had.modRevision === kv.modRevision;
            return [kv.key, keep ? had : { modRevision: kv.modRevision, value: Object.freeze(decode(kv)) }];
          }),
        );
      });
      this.#cache = { maps, revision: Math.max(...revs), view: undefined };
      return this.#cache;
    }
  }

  /** Every intent write: one at a time, so the cache sees them in commit order. */
  #txn(compares: readonly Compare[], ops: readonly Op[]): Promise<TxnResult> {
    return this.#writes.run(async () => {
      let r: TxnResult;
      try {
        r = await this.#store.txn(compares, ops);
      } catch (e) {
        this.#cache = undefined; // the outcome is unknown: read the store again next time
        throw e;
      }
      const cache = this.#cache;
      if (!cache) return r;
      if (r.succeeded) {
        for (const op of ops) {
          const prefix = prefixOf(op.key);
          const map = prefix === undefined ? undefined : cache.maps[prefix];
          if (!map) continue;
          const holders = prefix === ENDPOINTS ? cache.holders : undefined;
          if (holders) index(holders, op.key, map.get(op.key)?.value, -1);
          if (op.type === 'delete') map.delete(op.key);
          else {
            const value = Object.freeze(JSON.parse(op.value));
            map.set(op.key, { modRevision: r.revision, value });
            if (holders) index(holders, op.key, value, 1);
          }
        }
        cache.view = undefined;
      }
      if (r.revision > cache.revision) {
        cache.revision = r.revision;
        cache.view = undefined;
      }
      return r;
    });
  }

  async getPolicy(nid: string): Promise<NetworkPolicyRecord | undefined> {
    const kv = await this.#store.get(policyKey(nid));
    return kv ? decode<NetworkPolicyRecord>(kv) : undefined;
  }

  /** Store a run-time network policy, only while the network exists. */
  async putPolicy(rec: NetworkPolicyRecord): Promise<number> {
    const nkv = await this.#store.get(networkKey(rec.networkId));
    if (!nkv) throw errors.networkNotFound(`network ${rec.networkId.slice(0, 12)} is not known to truss`);
    const r = await this.#txn(
      [{ key: networkKey(rec.networkId), modRevision: nkv.modRevision }],
      [{ type: 'put', key: policyKey(rec.networkId), value: JSON.stringify(rec) }],
    );
    if (!r.succeeded) throw errors.storeConflict(`network ${rec.networkId.slice(0, 12)} changed meanwhile; retry`);
    return r.revision;
  }

  async getNetwork(id: string): Promise<NetworkSpec | undefined> {
    const kv = await this.#store.get(networkKey(id));
    return kv ? decode<NetworkSpec>(kv) : undefined;
  }

  async listNetworks(): Promise<NetworkSpec[]> {
    return (await this.#store.list(NETWORKS)).items.map((kv) => decode<NetworkSpec>(kv));
  }

  async getEndpoint(nid: string, eid: string): Promise<EndpointSpec | undefined> {
    const kv = await this.#store.get(endpointKey(nid, eid));
    return kv ? decode<EndpointSpec>(kv) : undefined;
  }

  async listEndpoints(nid?: string): Promise<EndpointSpec[]> {
    const prefix = nid === undefined ? ENDPOINTS : `${ENDPOINTS}${nid}/`;
    return (await this.#store.list(prefix)).items.map((kv) => decode<EndpointSpec>(kv));
  }

  /**
   * Create-if-absent; returns the revision, or throws a store conflict if it exists. `also`
   * commits in the same txn (the request journal's entry).
   */
  async createNetwork(spec: NetworkSpec, also: readonly Op[] = []): Promise<number> {
    const key = networkKey(spec.id);
    const r = await this.#txn([{ key, version: 0 }], [{ type: 'put', key, value: JSON.stringify(spec) }, ...also]);
    if (!r.succeeded) throw errors.storeConflict(`network ${spec.id.slice(0, 12)} was created concurrently`);
    return r.revision;
  }

  /** Deletes the network and every endpoint still recorded under it. */
  async deleteNetwork(id: string): Promise<number> {
    const eps = await this.listEndpoints(id);
    const ops = [
      ...eps.map((e) => ({ type: 'delete' as const, key: endpointKey(id, e.id) })),
      { type: 'delete' as const, key: policyKey(id) },
      { type: 'delete' as const, key: networkKey(id) },
    ];
    return (await this.#txn([], ops)).revision;
  }

  /** Create-if-absent, only while the network exists. */
  async createEndpoint(spec: EndpointSpec): Promise<number> {
    const key = endpointKey(spec.networkId, spec.id);
    const nkv = await this.#store.get(networkKey(spec.networkId));
    if (!nkv) throw errors.networkNotFound(`network ${spec.networkId.slice(0, 12)} is not known to truss`);
    const r = await this.#txn(
      [
        { key, version: 0 },
        { key: networkKey(spec.networkId), modRevision: nkv.modRevision },
      ],
      [{ type: 'put', key, value: JSON.stringify(spec) }],
    );
    if (!r.succeeded) throw errors.storeConflict(`endpoint ${spec.id.slice(0, 12)} was created concurrently`);
    return r.revision;
  }

  /**
   * Update an existing endpoint (Join, Leave, ports). Never re-creates one deleted meanwhile
   * (by DeleteEndpoint or the endpoint GC, whose address may be released already): that is
   * endpoint-not-found. The write compares the modRevision it read (L13).
   */
  async putEndpoint(spec: EndpointSpec): Promise<number> {
    const key = endpointKey(spec.networkId, spec.id);
    for (let i = 0; ; i++) {
      const kv = await this.#store.get(key);
      if (!kv) throw errors.endpointNotFound(`endpoint ${spec.id.slice(0, 12)} was deleted meanwhile`);
      const r = await this.#txn(
        [{ key, modRevision: kv.modRevision }],
        [{ type: 'put', key, value: JSON.stringify(spec) }],
      );
      if (r.succeeded) return r.revision;
      if (i >= 5) throw errors.storeConflict(`endpoint ${spec.id.slice(0, 12)} changed meanwhile; retry`);
    }
  }

  /**
   * The endpoint GC's delete: only while the record is exactly `expected` (a Join, Leave or
   * re-create meanwhile wins). Returns the record's createRevision when deleted.
   */
  async deleteEndpointIfUnchanged(expected: EndpointSpec): Promise<number | undefined> {
    const key = endpointKey(expected.networkId, expected.id);
    const kv = await this.#store.get(key);
    if (!kv || kv.value !== JSON.stringify(expected)) return undefined;
    const r = await this.#txn([{ key, modRevision: kv.modRevision }], [{ type: 'delete', key }]);
    return r.succeeded ? kv.createRevision : undefined;
  }

  async deleteEndpoint(nid: string, eid: string): Promise<number> {
    return (await this.#txn([], [{ type: 'delete', key: endpointKey(nid, eid) }])).revision;
  }
}
