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
  type IKeyValue,
  type IOptions,
  type IRequestOp,
  isRecoverableError,
} from 'etcd3';
import { errors, isTrussError, type TrussError } from '../core/errors.ts';
import { endpointProblem } from '../core/store-url.ts';
import type { Logger } from '../obs/logger.ts';
import { EtcdLease } from './etcd-lease.ts';
import {
  type EtcdOps,
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

export const DEFAULT_DIAL_TIMEOUT_MS = 5000;
/** deadline of every call after open: "fails within 5 s while etcd is down" */
export const DEFAULT_REQUEST_TIMEOUT_MS = 4000;
const LIST_PAGE = 1000;
const PROBE_KEY = '/truss/';
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

export type { Lease, LeaseState, Watch, WatchEvent, WatchHandlers } from './etcd-shared.ts';

// ---------- --store URL (store-url.ts: parsed without loading etcd3) ----------

export { endpointProblem, parseStoreUrl, type StoreUrl } from '../core/store-url.ts';

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
  if (opts.auth) options.auth = { username: opts.auth.user, password: opts.auth.password };
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
      store.log.info('etcd store connected', {
        endpoints: opts.endpoints,
        tls: opts.tls !== undefined,
        ...(opts.auth ? { user: opts.auth.user } : {}),
      });
      return store;
    } catch (e) {
      const refused = /PERMISSION_DENIED|authentication failed|invalid user ID or password|user name is empty/;
      if (refused.test(String(isTrussError(e) && e.cause instanceof Error ? e.cause.message : e))) {
        await store.close();
        const who = opts.auth ? `user ${opts.auth.user}` : opts.tls ? 'the client certificate' : 'no user';
        throw errors.storeUnavailable(
          `etcd at ${opts.endpoints.join(',')} refused truss (${who}): ${firstLine(String(isTrussError(e) && e.cause instanceof Error ? e.cause.message : e))}; ` +
            "check --etcd-user and --etcd-password-file, and the user's role (truss cluster rbac --node ID)",
          e,
        );
      }
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

// ---------- leases ----------
