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
import { Etcd3, type IOptions, isRecoverableError } from 'etcd3';
import { errors, isTrussError } from '../core/errors.ts';
import { endpointProblem } from '../core/store-url.ts';
import { EndpointSkipped, type EtcdStoreOptions, firstLine } from './etcd-shared.ts';
import { EtcdStore } from './etcd-store.ts';
import { assertKey } from './keys.ts';

export const DEFAULT_DIAL_TIMEOUT_MS = 5000;
export { DEFAULT_REQUEST_TIMEOUT_MS, EtcdStore } from './etcd-store.ts';

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

export type { EtcdStoreOptions, Lease, LeaseState, Watch, WatchEvent, WatchHandlers } from './etcd-shared.ts';

// ---------- --store URL (store-url.ts: parsed without loading etcd3) ----------

export { endpointProblem, parseStoreUrl, type StoreUrl } from '../core/store-url.ts';

// ---------- opening ----------

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
type Ctx = { readonly signal: AbortSignal };

/** Runs the call once: no retries behind our back (writes must not be re-sent). */
const passThrough = { execute: async (fn: (c: Ctx) => unknown) => fn({ signal: new AbortController().signal }) };

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

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
