/**
 * EtcdStore: the Store contract on etcd v3 (npm etcd3 over gRPC), plus what the cluster module
 * needs from etcd: presence leases that come back by themselves, and prefix watches that resume.
 *
 * Mapping: get = Range(key); list = Range pages pinned to the first page's revision (one
 * consistent read however large); txn = Txn with Version/Mod/Value equality compares (etcd
 * treats an absent key as version 0 / mod 0 and never equal to a value, as the contract
 * does); revision = the header of a Range. Keys are used as given, behind `prefix` when one
 * is set (tests); values are UTF-8 strings.
 *
 * Where we do not rely on etcd3@1.1.2 (each is a bug we would otherwise ship):
 * - `dialTimeout` is accepted but never read by etcd3, and calls carry no deadline: a call
 *   to a black-holed etcd waits forever. Every unary call here has a deadline.
 * - its default policy retries any "recoverable" error 3 times, Txn included: a create-if-
 *   absent that was applied but whose answer was lost comes back "failed" on the retry. We
 *   never re-send a write; reads retry on another endpoint.
 * - leases: etcd3 says `lost` only after 2×TTL without keepalive, a TTL after etcd deleted our
 *   keys. We keep alive over our own stream, call the lease lost after TTL − min(2 s, TTL/3)
 *   without a successful keepalive (or at once when etcd answers TTL 0), then re-grant and
 *   re-put every key of the lease until it works.
 * - watches: etcd3 resumes from the response header's revision + 1, but while a watcher
 *   catches up etcd sends history in batches whose header is the *current* revision, so a
 *   break between batches skips events; and on compaction it only emits an error. Our
 *   watch resumes after the last event delivered and relists the prefix when compacted.
 */
import { readFileSync } from 'node:fs';
import {
  Etcd3,
  EtcdLeaseInvalidError,
  GRPCDeadlineExceededError,
  type ICompare,
  type IDuplexStream,
  type IKeyValue,
  type ILeaseKeepAliveRequest,
  type ILeaseKeepAliveResponse,
  type IOptions,
  type IRequestOp,
  type IWatchRequest,
  type IWatchResponse,
  isRecoverableError,
} from 'etcd3';
import { errors, isTrussError, type TrussError } from '../core/errors.ts';
import type { Logger } from '../obs/logger.ts';
import { assertKey, assertOps } from './keys.ts';
import type { Compare, KeyValue, Op, Store, TxnResult } from './store.ts';
import { endpointProblem } from './store-url.ts';

export const DEFAULT_DIAL_TIMEOUT_MS = 5000;
/** deadline of every call after open: "fails within 5 s while etcd is down" */
export const DEFAULT_REQUEST_TIMEOUT_MS = 4000;
const LIST_PAGE = 1000;
/** etcd's default --max-txn-ops is 128 */
const MAX_TXN_OPS = 100;
const GRPC_OPTIONS = {
  // why: grpc-js backs reconnects off up to 120 s; a restarted etcd must be used within seconds
  'grpc.initial_reconnect_backoff_ms': 250,
  'grpc.max_reconnect_backoff_ms': 2000,
  // why: detect a black-holed connection (no RST) in ~20 s; etcd allows pings every 5 s, with streams only
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 0,
  // why: grpc-js refuses messages over 4 MiB (etcd's Go client allows 2 GiB); a watch catch-up can be larger
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
};

export interface EtcdStoreOptions {
  /** "HOST:PORT" each, as parseStoreUrl returns them */
  readonly endpoints: readonly string[];
  /** file paths; TLS with a client certificate when given, plaintext otherwise */
  readonly tls?: { readonly ca: string; readonly cert: string; readonly key: string };
  /** prepended to every key (and stripped from results): isolates tests sharing an etcd */
  readonly prefix?: string;
  /** how long openEtcdStore waits for etcd to answer (default 5000) */
  readonly dialTimeoutMs?: number;
  /** deadline of each later call (default 4000) */
  readonly requestTimeoutMs?: number;
  readonly log: Logger;
}

export interface WatchEvent {
  readonly type: 'put' | 'delete';
  readonly key: string;
  /** the new value (puts only) */
  readonly value?: string;
  readonly modRevision: number;
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

// ---------- --store URL (store-url.ts: parsed without loading etcd3) ----------

export { endpointProblem, parseStoreUrl, type StoreUrl } from './store-url.ts';

// ---------- opening ----------

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
type Ctx = { readonly signal: AbortSignal };

/** Runs the call once: no retries behind our back (writes must not be re-sent). */
const passThrough = { execute: async (fn: (c: Ctx) => unknown) => fn({ signal: new AbortController().signal }) };

class EndpointSkipped extends Error {}

/**
 * With several endpoints: after a connection failure, skip that endpoint for a while (0.5 s
 * doubling to 5 s) so calls go to the others. etcd3 tries the next endpoint only when an
 * endpoint's policy refuses the call without running it.
 */
function skipFailedEndpoint(): Policy {
  let until = 0;
  let pause = 500;
  return {
    execute: async (fn: (c: Ctx) => unknown) => {
      if (Date.now() < until) throw new EndpointSkipped('endpoint failed recently');
      try {
        const result = await fn({ signal: new AbortController().signal });
        pause = 500;
        return result;
      } catch (e) {
        if (e instanceof Error && isRecoverableError(e)) {
          until = Date.now() + pause;
          pause = Math.min(pause * 2, 5000);
        }
        throw e;
      }
    },
  } as unknown as Policy;
}

function readTlsFile(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw errors.storeUnavailable(`${flag} ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? e})`, e);
  }
}

/**
 * Connects and waits (up to dialTimeoutMs) for etcd to answer a read. Fails with
 * TRUSS_ERR_STORE_UNAVAILABLE naming the endpoints when it does not.
 */
export async function openEtcdStore(opts: EtcdStoreOptions): Promise<EtcdStore> {
  if (opts.endpoints.length === 0) throw errors.badOption('etcd store: no endpoint given');
  for (const ep of opts.endpoints) {
    const problem = endpointProblem(ep);
    if (problem) throw errors.badOption(`etcd endpoint ${JSON.stringify(ep)}: ${problem}`);
  }
  const prefix = opts.prefix ?? '';
  if (prefix !== '') assertKey(prefix);
  const options: IOptions = {
    hosts: [...opts.endpoints],
    grpcOptions: GRPC_OPTIONS,
    faultHandling: {
      global: passThrough as unknown as Policy,
      host: () => (opts.endpoints.length > 1 ? skipFailedEndpoint() : (passThrough as unknown as Policy)),
    },
  };
  if (opts.tls) {
    options.credentials = {
      rootCertificate: readTlsFile('--etcd-ca', opts.tls.ca),
      certChain: readTlsFile('--etcd-cert', opts.tls.cert),
      privateKey: readTlsFile('--etcd-key', opts.tls.key),
    };
  }
  let client: Etcd3;
  try {
    client = new Etcd3(options);
  } catch (e) {
    // why: grpc-js checks the TLS material when the client is made (a key that is not the cert's throws here)
    const tls = opts.tls ? `--etcd-ca ${opts.tls.ca}, --etcd-cert ${opts.tls.cert}, --etcd-key ${opts.tls.key}` : '';
    throw errors.storeUnavailable(`cannot set up the etcd client (${tls}): ${firstLine(String(e))}`, e);
  }
  const store = new EtcdStore(client, opts);
  const dialMs = opts.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
  const deadline = Date.now() + dialMs;
  for (;;) {
    try {
      await store.probe(Math.max(1, Math.min(deadline - Date.now(), store.requestTimeoutMs)));
      store.log.info('etcd store connected', { endpoints: opts.endpoints, tls: opts.tls !== undefined });
      return store;
    } catch (e) {
      if (Date.now() + 200 >= deadline) {
        await store.close();
        const why = isTrussError(e) && e.cause instanceof Error ? firstLine(e.cause.message) : String(e);
        throw errors.storeUnavailable(
          `etcd at ${opts.endpoints.join(',')} is unavailable: no answer within ${dialMs} ms (${why})` +
            (opts.tls || /ECONNREFUSED/.test(why)
              ? ''
              : '; if etcd serves TLS, give --etcd-ca, --etcd-cert and --etcd-key'),
          e,
        );
      }
      await sleep(200);
    }
  }
}

// ---------- the store ----------

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** The first line of an error message, without grpc-js's empty "Resolution note:" and Node's system-CA hint. */
const firstLine = (s: string): string =>
  (s.split('\n')[0] ?? s)
    .replace(/\.? Resolution note: *$/, '')
    .replace(/; if the root CA is installed locally.*$/, '');
const ZERO_KEY = Buffer.from([0]);

/** etcd's range end for "every key starting with `start`" ([0] = to the end of the keyspace). */
function prefixEnd(start: Buffer): Buffer {
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
interface Ops {
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

export class EtcdStore implements Store {
  readonly kind = 'etcd';
  readonly endpoints: readonly string[];
  readonly requestTimeoutMs: number;
  readonly log: Logger;
  readonly #client: Etcd3;
  readonly #prefix: string;
  readonly #leases = new Set<EtcdLease>();
  readonly #watches = new Set<EtcdWatch>();
  readonly #ops: Ops;
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
    const res = await this.#client.kv.range({ key: ZERO_KEY, count_only: true }, { deadline });
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

// ---------- leases ----------

class EtcdLease implements Lease {
  readonly ttlSeconds: number;
  readonly #ops: Ops;
  readonly #log: Logger;
  readonly #forget: () => void;
  readonly #lossAfterMs: number;
  readonly #intervalMs: number;
  readonly #keys = new Map<string, string>();
  /** registered keys whose last write failed while the lease was alive */
  readonly #dirty = new Set<string>();
  readonly #lostHandlers = new Set<(reason: string) => void>();
  readonly #restoredHandlers = new Set<(id: string) => void>();
  #id: string;
  #state: LeaseState = 'alive';
  #stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> | undefined;
  #opening = false;
  #flushing = false;
  #tick: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #retryMs = 250;

  constructor(ops: Ops, ttlSeconds: number, id: string, forget: () => void) {
    this.#ops = ops;
    this.ttlSeconds = ttlSeconds;
    this.#id = id;
    this.#forget = forget;
    this.#log = ops.log;
    // why: etcd3 reports `lost` after 2×TTL; etcd deletes our keys after TTL
    this.#lossAfterMs = (ttlSeconds - Math.min(2, ttlSeconds / 3)) * 1000;
    this.#intervalMs = this.#lossAfterMs / 3;
    this.#startKeepalive();
  }

  get id(): string {
    return this.#id;
  }

  get state(): LeaseState {
    return this.#state;
  }

  leaseKeys(): ReadonlyMap<string, string> {
    return new Map(this.#keys);
  }

  onLost(cb: (reason: string) => void): () => void {
    this.#lostHandlers.add(cb);
    return () => this.#lostHandlers.delete(cb);
  }

  onRestored(cb: (id: string) => void): () => void {
    this.#restoredHandlers.add(cb);
    return () => this.#restoredHandlers.delete(cb);
  }

  async put(key: string, value: string): Promise<void> {
    assertKey(key);
    if (this.#state === 'revoked') {
      throw errors.storeUnavailable(`etcd lease ${this.#id} is revoked: cannot put ${key}`);
    }
    this.#keys.set(key, value);
    if (this.#state === 'lost') {
      this.#dirty.add(key); // why: a re-grant in flight may be writing the keys without this one
      throw errors.storeUnavailable(`etcd lease ${this.#id} is lost: ${key} will be written when it is re-granted`);
    }
    this.#dirty.add(key);
    const id = this.#id;
    try {
      await this.#ops.putAll([[key, value]], id);
      if (this.#keys.get(key) === value && this.#id === id) this.#dirty.delete(key);
    } catch (e) {
      if (e instanceof EtcdLeaseInvalidError) this.#declareLost(`etcd no longer knows lease ${id}`);
      throw this.#ops.fail(`put ${key} with lease ${id}`, e);
    }
  }

  async delete(key: string): Promise<void> {
    this.#keys.delete(key);
    this.#dirty.delete(key);
    try {
      await this.#ops.remove(key);
    } catch (e) {
      throw this.#ops.fail(`delete ${key}`, e);
    }
  }

  async revoke(): Promise<void> {
    const id = this.#id;
    this.stop();
    this.#keys.clear();
    try {
      await this.#ops.revokeLease(id);
    } catch (e) {
      throw this.#ops.fail(`revoke lease ${id} (its keys expire within ${this.ttlSeconds} s anyway)`, e);
    }
  }

  /** Stops everything locally; the lease expires on etcd after its TTL. */
  stop(): void {
    this.#state = 'revoked';
    this.#stopKeepalive();
    this.#forget();
  }

  /** Runs `fn` after `ms` unless the keepalive stops first (one pending retry at a time). */
  #later(ms: number, fn: () => void): void {
    clearTimeout(this.#retry);
    this.#retry = setTimeout(fn, ms);
  }

  #startKeepalive(): void {
    this.#armWatchdog();
    this.#tick = setInterval(() => this.#keepalive(), this.#intervalMs);
  }

  #stopKeepalive(): void {
    clearInterval(this.#tick);
    clearTimeout(this.#watchdog);
    clearTimeout(this.#retry);
    const stream = this.#stream;
    this.#stream = undefined;
    stream?.cancel();
  }

  #armWatchdog(): void {
    clearTimeout(this.#watchdog);
    this.#watchdog = setTimeout(() => {
      if (this.#state === 'alive') this.#declareLost(`no successful keepalive for ${this.#lossAfterMs / 1000} s`);
    }, this.#lossAfterMs);
  }

  #keepalive(): void {
    if (this.#state !== 'alive') return;
    if (this.#stream) {
      try {
        this.#stream.write({ ID: this.#id });
      } catch {
        // the stream is ending: its 'error'/'end' handler schedules a new one
      }
      return;
    }
    if (this.#opening) return;
    this.#opening = true;
    this.#ops.keepAliveStream().then(
      (stream) => {
        this.#opening = false;
        if (this.#state !== 'alive') return void stream.cancel();
        this.#stream = stream;
        const broken = (e: Error): void => {
          if (this.#stream !== stream) return;
          this.#stream = undefined;
          this.#log.debug('etcd keepalive stream broken', { lease: this.#id, error: firstLine(e.message) });
          this.#later(500, () => this.#keepalive());
        };
        stream.on('error', broken);
        stream.on('end', () => broken(new Error('stream ended')));
        stream.on('data', (res) => this.#onKeepalive(res));
        stream.write({ ID: this.#id });
      },
      (e: Error) => {
        this.#opening = false;
        this.#log.debug('etcd keepalive stream not opened', { lease: this.#id, error: firstLine(e.message) });
        this.#later(500, () => this.#keepalive());
      },
    );
  }

  #onKeepalive(res: ILeaseKeepAliveResponse): void {
    if (this.#state !== 'alive' || res.ID !== this.#id) return;
    if (Number(res.TTL) <= 0) {
      this.#declareLost(`etcd no longer knows lease ${this.#id}`);
      return;
    }
    this.#armWatchdog();
    if (this.#dirty.size > 0 && !this.#flushing) this.#flush();
  }

  /** Writes again the keys whose last write failed. */
  #flush(): void {
    const id = this.#id;
    const batch = [...this.#dirty].flatMap((k): [string, string][] => {
      const v = this.#keys.get(k);
      return v === undefined ? [] : [[k, v]];
    });
    this.#dirty.clear();
    this.#flushing = true;
    this.#ops.putAll(batch, id).then(
      () => {
        this.#flushing = false;
      },
      (e: Error) => {
        this.#flushing = false;
        for (const [k] of batch) if (this.#keys.has(k)) this.#dirty.add(k);
        if (e instanceof EtcdLeaseInvalidError) this.#declareLost(`etcd no longer knows lease ${id}`);
      },
    );
  }

  #declareLost(reason: string): void {
    if (this.#state !== 'alive') return;
    this.#state = 'lost';
    this.#stopKeepalive();
    this.#log.warn('etcd lease lost', { lease: this.#id, reason, keys: this.#keys.size });
    for (const cb of this.#lostHandlers) {
      try {
        cb(reason);
      } catch (e) {
        this.#log.error('etcd lease onLost handler threw', { lease: this.#id, error: e });
      }
    }
    this.#retryMs = 250;
    this.#later(0, () => void this.#regrant());
  }

  /** Grants a new lease and writes every registered key under it; retries until it works. */
  async #regrant(): Promise<void> {
    if (this.#state !== 'lost') return;
    const old = this.#id;
    let id: string | undefined;
    try {
      id = await this.#ops.grant(this.ttlSeconds);
      if (this.#state !== 'lost') return void this.#ops.revokeLease(id).catch(() => {});
      this.#dirty.clear();
      await this.#ops.putAll([...this.#keys], id);
    } catch (e) {
      if (id !== undefined) void this.#ops.revokeLease(id).catch(() => {});
      if (this.#state !== 'lost') return;
      this.#log.debug('etcd lease re-grant failed', { lease: old, error: this.#ops.fail('lease re-grant', e).message });
      this.#later(this.#retryMs, () => void this.#regrant());
      this.#retryMs = Math.min(this.#retryMs * 2, 2000);
      return;
    }
    if (this.#state !== 'lost') return void this.#ops.revokeLease(id).catch(() => {});
    this.#id = id;
    this.#state = 'alive';
    this.#startKeepalive();
    if (this.#dirty.size > 0) this.#flush();
    // why: after an etcd restart the old lease is alive again for a TTL; its keys are ours now
    void this.#ops.revokeLease(old).catch(() => {});
    this.#log.info('etcd lease re-granted', { lease: id, old, keys: this.#keys.size });
    for (const cb of this.#restoredHandlers) {
      try {
        cb(id);
      } catch (e) {
        this.#log.error('etcd lease onRestored handler threw', { lease: id, error: e });
      }
    }
  }
}

// ---------- watches ----------

class EtcdWatch implements Watch {
  readonly #ops: Ops;
  readonly #prefix: string;
  readonly #handlers: WatchHandlers;
  readonly #forget: () => void;
  readonly #log: Logger;
  /** the revision our caller's view is at; the stream starts at #revision + 1 */
  #revision: number;
  #needRelist: boolean;
  #stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  /** last state told to onStatus (undefined: nothing told yet) */
  #connected: boolean | undefined;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #backoffMs = 100;

  constructor(ops: Ops, prefix: string, fromRevision: number, handlers: WatchHandlers, forget: () => void) {
    this.#ops = ops;
    this.#prefix = prefix;
    this.#handlers = handlers;
    this.#forget = forget;
    this.#log = ops.log.child({ watch: prefix });
    this.#revision = Math.max(0, fromRevision - 1);
    this.#needRelist = fromRevision <= 0;
    void this.#connect();
  }

  get revision(): number {
    return this.#revision;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    const stream = this.#stream;
    this.#stream = undefined;
    stream?.cancel();
    this.#forget();
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    try {
      if (this.#needRelist) {
        const { items, revision } = await this.#ops.list(this.#prefix);
        if (this.#closed) return;
        this.#needRelist = false;
        this.#revision = revision;
        this.#call('onResync', () => this.#handlers.onResync(items, revision));
      }
      const stream = await this.#ops.watchStream();
      if (this.#closed) return void stream.cancel();
      this.#stream = stream;
      stream.on('error', (e) => this.#broken(stream, e));
      stream.on('end', () => this.#broken(stream, new Error('watch stream ended')));
      stream.on('data', (res) => this.#onResponse(stream, res));
      const start = this.#ops.key(this.#prefix);
      stream.write({
        create_request: {
          key: start.length === 0 ? ZERO_KEY : start,
          range_end: prefixEnd(start),
          start_revision: this.#revision + 1,
          progress_notify: true,
        },
      });
    } catch (e) {
      this.#retry(e);
    }
  }

  #retry(e: unknown): void {
    if (this.#closed) return;
    const error = this.#ops.fail(`watch ${this.#prefix}`, e).message;
    if (this.#connected !== false) {
      this.#connected = false;
      this.#log.warn('etcd watch disconnected', { error });
      this.#status({ connected: false, error });
    } else {
      this.#log.debug('etcd watch still not connected', { error });
    }
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#connect(), this.#backoffMs);
    this.#backoffMs = Math.min(this.#backoffMs * 2, 2000);
  }

  #broken(stream: IDuplexStream<IWatchRequest, IWatchResponse>, e: Error): void {
    if (this.#stream !== stream) return;
    this.#stream = undefined;
    stream.cancel();
    this.#retry(e);
  }

  #onResponse(stream: IDuplexStream<IWatchRequest, IWatchResponse>, res: IWatchResponse): void {
    if (this.#stream !== stream || this.#closed) return;
    if (res.canceled) {
      this.#stream = undefined;
      stream.cancel();
      if (Number(res.compact_revision) > 0) {
        // why: etcd compacted the history after our revision; a new watch there fails too (etcd-io/etcd#8668)
        this.#log.info('etcd watch fell behind compaction: relisting', {
          revision: this.#revision,
          compactRevision: Number(res.compact_revision),
        });
        this.#needRelist = true;
        this.#backoffMs = 100;
        return void this.#connect();
      }
      this.#retry(new Error(`watch canceled by etcd: ${res.cancel_reason || 'no reason given'}`));
      return;
    }
    if (res.created) {
      this.#backoffMs = 100;
      if (this.#connected !== true) {
        this.#connected = true;
        this.#log.debug('etcd watch connected', { from: this.#revision + 1 });
        this.#status({ connected: true });
      }
    }
    if (res.events.length === 0) {
      // progress notification: nothing under the prefix up to header.revision (only sent when in sync)
      if (!res.created) this.#revision = Math.max(this.#revision, Number(res.header.revision));
      return;
    }
    const events = res.events.map((ev): WatchEvent => {
      const key = this.#ops.unkey(ev.kv.key);
      const modRevision = Number(ev.kv.mod_revision);
      return String(ev.type).toLowerCase() === 'delete'
        ? { type: 'delete', key, modRevision }
        : { type: 'put', key, value: ev.kv.value.toString('utf8'), modRevision };
    });
    // why: the header revision may be ahead of these events while etcd sends history in batches
    const revision = events.at(-1)?.modRevision ?? this.#revision;
    this.#revision = revision;
    this.#call('onEvents', () => this.#handlers.onEvents(events, revision));
  }

  #status(status: { readonly connected: boolean; readonly error?: string }): void {
    const cb = this.#handlers.onStatus;
    if (cb) this.#call('onStatus', () => cb(status));
  }

  #call(name: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.#log.error('etcd watch handler threw', { handler: name, error: e });
    }
  }
}
