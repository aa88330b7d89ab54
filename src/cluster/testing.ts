/**
 * Test doubles for the cluster side: a Store that can be "down" (every call fails like an
 * unreachable etcd) and a ClusterStore over any Store (leases put and delete plain keys,
 * watches deliver nothing), so the agent and the GC run without an etcd.
 */
import { errors } from '../core/errors.ts';
import type { Compare, KeyValue, Op, Store, TxnResult } from '../store/store.ts';
import type { ClusterStore, LeaseLike } from './agent.ts';

export class SwitchableStore implements ClusterStore {
  readonly kind = 'switchable';
  down = false;
  readonly #inner: Store;
  constructor(inner: Store) {
    this.#inner = inner;
  }
  #check(): void {
    if (this.down) throw errors.storeUnavailable('etcd at 127.0.0.1:1 is unavailable: connection refused (test)');
  }
  async get(key: string): Promise<KeyValue | undefined> {
    this.#check();
    return this.#inner.get(key);
  }
  async list(prefix: string): Promise<{ readonly items: readonly KeyValue[]; readonly revision: number }> {
    this.#check();
    return this.#inner.list(prefix);
  }
  async txn(compares: readonly Compare[], success: readonly Op[], failure?: readonly Op[]): Promise<TxnResult> {
    this.#check();
    return this.#inner.txn(compares, success, failure);
  }
  async revision(): Promise<number> {
    this.#check();
    return this.#inner.revision();
  }
  async close(): Promise<void> {}
  async grantLease(): Promise<LeaseLike> {
    this.#check();
    return {
      put: async (key, value) => {
        this.#check();
        await this.#inner.txn([], [{ type: 'put', key, value }]);
      },
      delete: async (key) => {
        this.#check();
        await this.#inner.txn([], [{ type: 'delete', key }]);
      },
    };
  }
  watchPrefix(): { close(): Promise<void> } {
    return { close: async () => {} };
  }
}
