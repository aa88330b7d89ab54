/**
 * IntentRepo: networks and endpoints as stored intent (JSON under /truss/v1/). Every write
 * is a compare-and-swap transaction and durable before it resolves; the returned revision
 * is what the caller hands to reconciler.waitFor().
 */
import { errors } from '../core/errors.ts';
import type { EndpointSpec, NetworkPolicyRecord, NetworkSpec } from '../core/model.ts';
import type { Intent } from '../reconcile/reconciler.ts';
import type { KeyValue, Store } from '../store/store.ts';

const NETWORKS = '/truss/v1/networks/';
const ENDPOINTS = '/truss/v1/endpoints/';
const POLICIES = '/truss/v1/policies/';
const policyKey = (nid: string): string => `${POLICIES}${nid}`;
const networkKey = (id: string): string => `${NETWORKS}${id}`;
const endpointKey = (nid: string, eid: string): string => `${ENDPOINTS}${nid}/${eid}`;

function decode<T>(kv: KeyValue): T {
  return JSON.parse(kv.value) as T;
}

export class IntentRepo {
  readonly #store: Store;
  constructor(store: Store) {
    this.#store = store;
  }

  async snapshot(): Promise<Intent> {
    // one revision for all lists: retry if a write slipped in between (rare; writes are ~1 ms)
    for (let i = 0; ; i++) {
      const nets = await this.#store.list(NETWORKS);
      const eps = await this.#store.list(ENDPOINTS);
      const pols = await this.#store.list(POLICIES);
      const same = nets.revision === eps.revision && eps.revision === pols.revision;
      if (same || i >= 5) {
        return {
          networks: nets.items.map((kv) => decode<NetworkSpec>(kv)),
          endpoints: eps.items.map((kv) => decode<EndpointSpec>(kv)),
          policies: pols.items.map((kv) => decode<NetworkPolicyRecord>(kv)),
          revision: Math.max(nets.revision, eps.revision, pols.revision),
        };
      }
    }
  }

  async getPolicy(nid: string): Promise<NetworkPolicyRecord | undefined> {
    const kv = await this.#store.get(policyKey(nid));
    return kv ? decode<NetworkPolicyRecord>(kv) : undefined;
  }

  /** Store a run-time network policy, only while the network exists. */
  async putPolicy(rec: NetworkPolicyRecord): Promise<number> {
    const nkv = await this.#store.get(networkKey(rec.networkId));
    if (!nkv) throw errors.networkNotFound(`network ${rec.networkId.slice(0, 12)} is not known to truss`);
    const r = await this.#store.txn(
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

  /** Create-if-absent; returns the revision, or throws a store conflict if it exists. */
  async createNetwork(spec: NetworkSpec): Promise<number> {
    const key = networkKey(spec.id);
    const r = await this.#store.txn([{ key, version: 0 }], [{ type: 'put', key, value: JSON.stringify(spec) }]);
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
    return (await this.#store.txn([], ops)).revision;
  }

  /** Create-if-absent, only while the network exists. */
  async createEndpoint(spec: EndpointSpec): Promise<number> {
    const key = endpointKey(spec.networkId, spec.id);
    const nkv = await this.#store.get(networkKey(spec.networkId));
    if (!nkv) throw errors.networkNotFound(`network ${spec.networkId.slice(0, 12)} is not known to truss`);
    const r = await this.#store.txn(
      [
        { key, version: 0 },
        { key: networkKey(spec.networkId), modRevision: nkv.modRevision },
      ],
      [{ type: 'put', key, value: JSON.stringify(spec) }],
    );
    if (!r.succeeded) throw errors.storeConflict(`endpoint ${spec.id.slice(0, 12)} was created concurrently`);
    return r.revision;
  }

  async putEndpoint(spec: EndpointSpec): Promise<number> {
    const key = endpointKey(spec.networkId, spec.id);
    return (await this.#store.txn([], [{ type: 'put', key, value: JSON.stringify(spec) }])).revision;
  }

  async deleteEndpoint(nid: string, eid: string): Promise<number> {
    return (await this.#store.txn([], [{ type: 'delete', key: endpointKey(nid, eid) }])).revision;
  }
}
