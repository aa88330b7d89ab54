/**
 * EtcdStore: the Store contract's key-value operations on an etcd client that etcd.ts opened
 * (the mapping and what we do not rely on in etcd3 are in etcd.ts's header), and the leases
 * and watches it hands out (etcd-lease.ts, etcd-watch.ts).
 */
import {
  type Etcd3,
  EtcdLeaseInvalidError,
  GRPCDeadlineExceededError,
  type ICompare,
  type IKeyValue,
  type IRequestOp,
  isRecoverableError,
} from 'etcd3';
import { errors, isTrussError, type TrussError } from '../core/errors.ts';
import type { Logger } from '../obs/logger.ts';
import { EtcdLease } from './etcd-lease.ts';
import {
  EndpointSkipped,
  type EtcdOps,
  type EtcdStoreOptions,
  firstLine,
  type Lease,
  prefixEnd,
  type Watch,
  type WatchHandlers,
  ZERO_KEY,
} from './etcd-shared.ts';
import { EtcdWatch } from './etcd-watch.ts';
import { assertKey, assertOps } from './keys.ts';
import type { Compare, KeyValue, Op, Store, TxnResult } from './store.ts';

/** deadline of every call after open: "fails within 5 s while etcd is down" */
export const DEFAULT_REQUEST_TIMEOUT_MS = 4000;
const LIST_PAGE = 1000;
const PROBE_KEY = '/truss/';
/** etcd's default --max-txn-ops is 128 */
const MAX_TXN_OPS = 100;

export class EtcdStore implements Store {
  readonly kind = 'etcd';
  readonly endpoints: readonly string[];
  readonly requestTimeoutMs: number;
  readonly log: Logger;
  readonly #client: Etcd3;
  readonly #prefix: string;
  readonly #leases = new Set<EtcdLease>();
  readonly #watches = new Set<EtcdWatch>();
  readonly #ops: EtcdOps;
  #closed = false;

  constructor(client: Etcd3, opts: EtcdStoreOptions) {
    this.#client = client;
    this.endpoints = [...opts.endpoints];
    this.#prefix = opts.prefix ?? '';
    this.requestTimeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.log = opts.log.child({ component: 'etcd' });
    const call = (): { deadline: number } => ({ deadline: Date.now() + this.requestTimeoutMs });
    this.#ops = {
      log: this.log,
      key: (k) => this.#key(k),
      unkey: (b) => this.#unkey(b),
      fail: (what, e) => this.#fail(what, e),
      putAll: async (entries, lease) => {
        for (let i = 0; i < entries.length; i += MAX_TXN_OPS) {
          const success = entries
            .slice(i, i + MAX_TXN_OPS)
            .map(([k, v]): IRequestOp => ({ request_put: { key: this.#key(k), value: Buffer.from(v), lease } }));
          await this.#client.kv.txn({ success }, call());
        }
      },
      remove: async (key) => void (await this.#client.kv.deleteRange({ key: this.#key(key) }, call())),
      grant: async (ttl) => (await this.#client.leaseClient.leaseGrant({ TTL: ttl }, call())).ID,
      revokeLease: async (id) => {
        try {
          await this.#client.leaseClient.leaseRevoke({ ID: id }, call());
        } catch (e) {
          if (!(e instanceof EtcdLeaseInvalidError)) throw e;
        }
      },
      keepAliveStream: () => this.#client.leaseClient.leaseKeepAlive(),
      watchStream: () => this.#client.watchClient.watch(),
      list: (prefix) => this.list(prefix),
    };
  }

  async get(key: string): Promise<KeyValue | undefined> {
    assertKey(key);
    return this.#read(`get ${key}`, async (deadline) => {
      const res = await this.#client.kv.range({ key: this.#key(key) }, { deadline });
      return res.kvs[0] ? this.#toKeyValue(res.kvs[0]) : undefined;
    });
  }

  async list(prefix: string): Promise<{ readonly items: readonly KeyValue[]; readonly revision: number }> {
    const start = this.#key(prefix);
    const key = start.length === 0 ? ZERO_KEY : start;
    const end = prefixEnd(start);
    return this.#read(`list ${prefix}`, async (deadline) => {
      for (let attempt = 1; ; attempt++) {
        const items: KeyValue[] = [];
        let revision = 0;
        let from = key;
        try {
          for (;;) {
            const page = await this.#client.kv.range(
              { key: from, range_end: end, limit: LIST_PAGE, ...(revision ? { revision } : {}) },
              { deadline },
            );
            if (!revision) revision = Number(page.header.revision);
            for (const kv of page.kvs) items.push(this.#toKeyValue(kv));
            const last = page.kvs.at(-1);
            if (!page.more || !last) return { items, revision };
            from = Buffer.concat([last.key, ZERO_KEY]);
          }
        } catch (e) {
          // why: a compaction between pages removes the pinned revision: read again from the start
          if (attempt < 3 && /required revision has been compacted/.test(String(e))) continue;
          throw e;
        }
      }
    });
  }

  async txn(compares: readonly Compare[], success: readonly Op[], failure: readonly Op[] = []): Promise<TxnResult> {
    this.#open();
    for (const c of compares) assertKey(c.key);
    assertOps(success);
    assertOps(failure);
    const compare = compares.map((c): ICompare => {
      const key = this.#key(c.key);
      if ('prefixModRevisionAtMost' in c) {
        // why: etcd compares every key of [key, range_end) and an empty range as mod 0 (etcd >= 3.3)
        return {
          key: key.length === 0 ? ZERO_KEY : key,
          range_end: prefixEnd(key),
          target: 'Mod',
          result: 'Less',
          mod_revision: c.prefixModRevisionAtMost + 1,
        };
      }
      if ('version' in c) return { key, target: 'Version', result: 'Equal', version: c.version };
      if ('modRevision' in c) return { key, target: 'Mod', result: 'Equal', mod_revision: c.modRevision };
      return { key, target: 'Value', result: 'Equal', value: Buffer.from(c.value) };
    });
    const toOp = (op: Op): IRequestOp =>
      op.type === 'put'
        ? { request_put: { key: this.#key(op.key), value: Buffer.from(op.value) } }
        : { request_delete_range: { key: this.#key(op.key) } };
    try {
      const res = await this.#client.kv.txn(
        { compare, success: success.map(toOp), failure: failure.map(toOp) },
        { deadline: Date.now() + this.requestTimeoutMs },
      );
      return { succeeded: res.succeeded, revision: Number(res.header.revision) };
    } catch (e) {
      throw this.#fail('txn', e);
    }
  }

  async revision(): Promise<number> {
    return this.#read('revision', async (deadline) => this.#revisionBy(deadline));
  }

  /** One read with its own timeout (openEtcdStore's readiness probe). */
  async probe(timeoutMs: number): Promise<number> {
    this.#open();
    try {
      return await this.#revisionBy(Date.now() + timeoutMs);
    } catch (e) {
      throw this.#fail('revision', e);
    }
  }

  /** Grants a lease kept alive in the background (see Lease). Fails fast while etcd is down. */
  async grantLease(ttlSeconds: number): Promise<Lease> {
    this.#open();
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 2) {
      throw errors.internal(`etcd lease TTL ${ttlSeconds}: expected an integer of at least 2 seconds`);
    }
    let id: string;
    try {
      id = await this.#ops.grant(ttlSeconds);
    } catch (e) {
      throw this.#fail('lease grant', e);
    }
    const lease = new EtcdLease(this.#ops, ttlSeconds, id, () => this.#leases.delete(lease));
    this.#leases.add(lease);
    return lease;
  }

  /**
   * Watches every key under `prefix`, delivering changes from revision `fromRevision` on (as
   * etcd's start_revision: after `const { revision } = await list(p)`, pass revision + 1).
   * 0 = no view yet: the watch starts with onResync. When etcd has compacted the history the
   * watch needs, it relists (onResync) and continues from there. After a disconnect it resumes
   * after the last event delivered. Reconnects by itself until closed.
   */
  watchPrefix(prefix: string, fromRevision: number, handlers: WatchHandlers): Watch {
    this.#open();
    const watch = new EtcdWatch(this.#ops, prefix, fromRevision, handlers, () => this.#watches.delete(watch));
    this.#watches.add(watch);
    return watch;
  }

  /** Stops watches and lease keepalives (leases are not revoked: their keys expire after the TTL). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of [...this.#watches]) await w.close();
    for (const l of [...this.#leases]) l.stop();
    this.#client.close();
  }

  async #revisionBy(deadline: number): Promise<number> {
    // why: one key every truss user may read (under etcd RBAC a host reads /truss/ only)
    const res = await this.#client.kv.range({ key: this.#key(PROBE_KEY), count_only: true }, { deadline });
    return Number(res.header.revision);
  }

  /** A read with one deadline, tried once per endpoint while the error is a connection failure. */
  async #read<T>(what: string, fn: (deadline: number) => Promise<T>): Promise<T> {
    this.#open();
    const deadline = Date.now() + this.requestTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(deadline);
      } catch (e) {
        const retry = attempt < this.endpoints.length && Date.now() < deadline - 100;
        if (!retry || !(e instanceof Error) || !(isRecoverableError(e) || e instanceof EndpointSkipped)) {
          throw this.#fail(what, e);
        }
      }
    }
  }

  #open(): void {
    if (this.#closed) throw errors.storeUnavailable(`the etcd store for ${this.endpoints.join(',')} is closed`);
  }

  #key(k: string): Buffer {
    return Buffer.from(this.#prefix + k, 'utf8');
  }

  #unkey(b: Buffer): string {
    return b.toString('utf8').slice(this.#prefix.length);
  }

  #toKeyValue(kv: IKeyValue): KeyValue {
    return {
      key: this.#unkey(kv.key),
      value: kv.value.toString('utf8'),
      createRevision: Number(kv.create_revision),
      modRevision: Number(kv.mod_revision),
      version: Number(kv.version),
    };
  }

  #fail(what: string, e: unknown): TrussError {
    if (isTrussError(e)) return e;
    const at = `etcd at ${this.endpoints.join(',')}`;
    if (this.#closed) return errors.storeUnavailable(`the etcd store for ${this.endpoints.join(',')} is closed`, e);
    if (e instanceof GRPCDeadlineExceededError) {
      return errors.storeUnavailable(
        `${at} is unavailable: ${what} got no answer within ${this.requestTimeoutMs} ms`,
        e,
      );
    }
    const message = firstLine(e instanceof Error ? e.message : String(e));
    if (/etcdserver:|mvcc:/.test(message)) return errors.storeUnavailable(`${at} refused ${what}: ${message}`, e);
    return errors.storeUnavailable(`${at} is unavailable: ${what} failed: ${message}`, e);
  }
}
