/**
 * The state store contract: an ordered key/value map with a global revision and
 * compare-and-swap transactions (the subset of etcd v3 truss needs). The embedded
 * store (SQLite, default) and the etcd store implement it; one contract test suite
 * (store.contract.ts) must pass against each. Every successful write is durable
 * before the promise resolves.
 */
export interface KeyValue {
  readonly key: string;
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  /** number of writes since creation; 0 never appears for an existing key */
  readonly version: number;
}

/**
 * Equality compares on one key (version 0 means "key absent": create-if-absent), and one range
 * compare: every key starting with `key` has a modRevision of at most `prefixModRevisionAtMost`
 * (true when there is none), i.e. nothing under the prefix was written after a read at that
 * revision (etcd: Compare MOD LESS n+1 with a range_end, etcd >= 3.3).
 */
export type Compare =
  | { readonly key: string; readonly version: number }
  | { readonly key: string; readonly prefixModRevisionAtMost: number }
  | { readonly key: string; readonly modRevision: number }
  | { readonly key: string; readonly value: string };

export type Op =
  | { readonly type: 'put'; readonly key: string; readonly value: string }
  | { readonly type: 'delete'; readonly key: string };

export interface TxnResult {
  readonly succeeded: boolean;
  /** store revision after the transaction (unchanged when nothing was written) */
  readonly revision: number;
}

export interface Store {
  readonly kind: string;
  get(key: string): Promise<KeyValue | undefined>;
  /** All keys starting with prefix, in key order, read at one revision. */
  list(prefix: string): Promise<{ readonly items: readonly KeyValue[]; readonly revision: number }>;
  /** Atomically: if every compare holds run `success`, else `failure`. */
  txn(compares: readonly Compare[], success: readonly Op[], failure?: readonly Op[]): Promise<TxnResult>;
  revision(): Promise<number>;
  close(): Promise<void>;
}
