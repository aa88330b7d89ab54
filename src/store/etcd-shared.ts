/**
 * What the etcd store (opened by etcd.ts, operated by etcd-store.ts), its leases
 * (etcd-lease.ts) and its watches (etcd-watch.ts) share: the public lease and watch contracts,
 * the store's options, the calls a store hands to them, and key and message helpers.
 */
import type {
  IDuplexStream,
  ILeaseKeepAliveRequest,
  ILeaseKeepAliveResponse,
  IWatchRequest,
  IWatchResponse,
} from 'etcd3';
import type { TrussError } from '../core/errors.ts';
import type { Logger } from '../obs/logger.ts';
import type { KeyValue } from './store.ts';

export interface WatchEvent {
  readonly type: 'put' | 'delete';
  readonly key: string;
  /** the new value (puts only) */
  readonly value?: string;
  readonly modRevision: number;
  /** the key's create revision (puts only) */
  readonly createRevision?: number;
}

export interface WatchHandlers {
  /** Changes in revision order; `revision` is the last one delivered. */
  onEvents(events: readonly WatchEvent[], revision: number): void;
  /** Replace your whole view of the prefix with `items` (read at `revision`). */
  onResync(items: readonly KeyValue[], revision: number): void;
  /** Stream state, for status displays; events are never lost across a disconnect. */
  onStatus?(status: { readonly connected: boolean; readonly error?: string }): void;
}

export interface Watch {
  /** the revision the watcher's view is at (last event or resync delivered) */
  readonly revision: number;
  close(): Promise<void>;
}

export type LeaseState = 'alive' | 'lost' | 'revoked';

export interface Lease {
  readonly ttlSeconds: number;
  /** the etcd lease id in use (decimal); a re-grant changes it */
  readonly id: string;
  readonly state: LeaseState;
  /**
   * Writes key=value attached to the lease and registers it: after the lease is lost it is
   * re-granted and every registered key re-put. The key is registered before the write, so a
   * put that fails (etcd down) is written again later: after the next successful keepalive,
   * or with the re-grant.
   */
  put(key: string, value: string): Promise<void>;
  /** Unregisters the key and deletes it. */
  delete(key: string): Promise<void>;
  /** The keys (and values) the lease keeps present. */
  leaseKeys(): ReadonlyMap<string, string>;
  /** Called when the lease is declared lost (its keys may be gone until the re-grant). */
  onLost(cb: (reason: string) => void): () => void;
  /** Called after a re-grant wrote every key again under the new lease id. */
  onRestored(cb: (id: string) => void): () => void;
  /** Stops keepalives, forgets the keys and revokes the lease (its keys disappear now). */
  revoke(): Promise<void>;
}

/** The first line of an error message, without grpc-js's empty "Resolution note:" and Node's system-CA hint. */
export const firstLine = (s: string): string =>
  (s.split('\n')[0] ?? s)
    .replace(/\.? Resolution note: *$/, '')
    .replace(/; if the root CA is installed locally.*$/, '');
export const ZERO_KEY = Buffer.from([0]);

/** etcd's range end for "every key starting with `start`" ([0] = to the end of the keyspace). */
export function prefixEnd(start: Buffer): Buffer {
  const end = Buffer.from(start);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return ZERO_KEY;
}

/** The etcd calls leases and watches need, bound to one store. */
export interface EtcdOps {
  readonly log: Logger;
  readonly key: (k: string) => Buffer;
  readonly unkey: (b: Buffer) => string;
  readonly fail: (what: string, e: unknown) => TrussError;
  putAll(entries: readonly (readonly [string, string])[], leaseId: string): Promise<void>;
  remove(key: string): Promise<void>;
  grant(ttlSeconds: number): Promise<string>;
  revokeLease(id: string): Promise<void>;
  keepAliveStream(): Promise<IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>>;
  watchStream(): Promise<IDuplexStream<IWatchRequest, IWatchResponse>>;
  list(prefix: string): Promise<{ readonly items: readonly KeyValue[]; readonly revision: number }>;
}

export interface EtcdStoreOptions {
  /** "HOST:PORT" each, as parseStoreUrl returns them */
  readonly endpoints: readonly string[];
  /** file paths; TLS with a client certificate when given, plaintext otherwise */
  readonly tls?: { readonly ca: string; readonly cert: string; readonly key: string };
  /** etcd user auth (the password is never logged) */
  readonly auth?: { readonly user: string; readonly password: string };
  /** prepended to every key (and stripped from results): isolates tests sharing an etcd */
  readonly prefix?: string;
  /** how long openEtcdStore waits for etcd to answer (default 5000) */
  readonly dialTimeoutMs?: number;
  /** deadline of each later call (default 4000) */
  readonly requestTimeoutMs?: number;
  readonly log: Logger;
}

/** Thrown by etcd.ts's skipFailedEndpoint for an endpoint that failed recently: reads try the next one. */
export class EndpointSkipped extends Error {}
