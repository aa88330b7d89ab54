/**
 * A cluster store that connects on first use and again after a failed connect, so truss
 * starts (and keeps serving single-host networks) while etcd is down. Every call made
 * while etcd cannot be reached fails fast with the store's own "unavailable" error.
 */
import { errors } from '../core/errors.ts';
import type { Compare, KeyValue, Op, TxnResult } from '../store/store.ts';
import type { ClusterStore, LeaseLike } from './agent.ts';

export class LazyClusterStore implements ClusterStore {
  readonly kind = 'etcd';
  readonly #open: () => Promise<ClusterStore>;
  #opening: Promise<ClusterStore> | undefined;
  #store: ClusterStore | undefined;

  constructor(open: () => Promise<ClusterStore>) {
    this.#open = open;
  }

  async #get(): Promise<ClusterStore> {
    if (this.#store) return this.#store;
    this.#opening ??= this.#open().then(
      (s) => {
        this.#store = s;
        return s;
      },
      (e: unknown) => {
        this.#opening = undefined;
        throw e;
      },
    );
    return this.#opening;
  }

  async get(key: string): Promise<KeyValue | undefined> {
    return (await this.#get()).get(key);
  }
  async list(prefix: string): Promise<{ readonly items: readonly KeyValue[]; readonly revision: number }> {
    return (await this.#get()).list(prefix);
  }
  async txn(compares: readonly Compare[], success: readonly Op[], failure?: readonly Op[]): Promise<TxnResult> {
    return (await this.#get()).txn(compares, success, failure);
  }
  async revision(): Promise<number> {
    return (await this.#get()).revision();
  }
  async grantLease(ttlSeconds: number): Promise<LeaseLike> {
    return (await this.#get()).grantLease(ttlSeconds);
  }
  watchPrefix(...args: Parameters<ClusterStore['watchPrefix']>): ReturnType<ClusterStore['watchPrefix']> {
    if (!this.#store) throw errors.storeUnavailable('the cluster store is not connected yet');
    return this.#store.watchPrefix(...args);
  }
  async close(): Promise<void> {
    await this.#store?.close();
  }
}
