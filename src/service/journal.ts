/**
 * The request journal (issue 13): dockerd treats a request that got no successful reply as not
 * done, and never asks again. A crash (or dockerd giving up) between truss's store write and the
 * reply would otherwise leave a network dockerd does not know, a pool or address nobody releases,
 * or a release dockerd believes failed. So a mutating request records what would undo it
 * (create-network, request-pool, request-address) or what it still has to do (release-pool,
 * release-address), in the same store txn as the record it guards where the service allows.
 * The entry is cleared once the success reply has been handed to dockerd's connection; when the
 * reply was an error or could not be sent it is settled at once, and entries a crash left are
 * settled at start-up, before the plugin socket serves (and after each full pass, for settles
 * that failed). settle.ts says what settling means per kind; every settle is idempotent.
 *
 * The window that remains: the reply is handed to the kernel ('finish') but the process dies
 * before the clear commits. dockerd got the reply, yet the next start settles the entry. Each
 * settle is guarded by store revisions (an address or pool given out again since is never
 * touched) and a network with endpoints is kept, so the cost is bounded: a network created
 * just before the crash with no container yet, or a pool/address dockerd already holds, is
 * rolled back and a later request on it fails with not-found (docker network rm/create again).
 */
import { randomUUID } from 'node:crypto';
import type { RequestContext } from '../core/contracts.ts';
import type { Logger } from '../obs/logger.ts';
import type { Op, Store } from '../store/store.ts';

export const JOURNAL_PREFIX = '/truss/v1/journal/';

export type JournalEntry =
  | {
      readonly kind: 'create-network';
      readonly networkId: string;
      /** the network's pool CIDRs */
      readonly pools: readonly string[];
      readonly cluster?: string;
    }
  | { readonly kind: 'request-pool'; readonly poolId: string }
  | { readonly kind: 'request-address'; readonly poolId: string; readonly address: string }
  | { readonly kind: 'release-pool'; readonly poolId: string }
  | { readonly kind: 'release-address'; readonly poolId: string; readonly address: string };

/** An entry as stored: `revision` is the revision it was written at (its createRevision). */
export interface Recorded {
  readonly key: string;
  readonly entry: JournalEntry;
  readonly revision: number;
}

/** Undo (create/request kinds) or complete (release kinds) one entry; returns what it did, for the log. */
export type Settler = (r: Recorded) => Promise<string>;

const KINDS = new Set(['create-network', 'request-pool', 'request-address', 'release-pool', 'release-address']);

export class Journal {
  readonly #store: Store;
  readonly #log: Logger;
  #settler: Settler | undefined;
  /** keys of requests still running, or being cleared/settled by this process */
  readonly #busy = new Set<string>();
  /** follow-ups not finished yet (drain) */
  readonly #following = new Set<Promise<void>>();
  /** replied entries whose clear failed (store full, say): cleared later, never settled */
  readonly #replied = new Set<string>();

  constructor(deps: { readonly store: Store; readonly log: Logger }) {
    this.#store = deps.store;
    this.#log = deps.log;
  }

  /** The settler is wired after the services that write entries (it uses them). */
  settleWith(settler: Settler): void {
    this.#settler = settler;
  }

  /**
   * A fresh key for one request, busy until follow(): its entry is never settled behind the
   * request's back. Call follow() once the request has run, whether or not an entry was written.
   */
  begin(): string {
    // time first: leftovers settle in the order they were written
    const key = `${JOURNAL_PREFIX}${Date.now().toString(36).padStart(10, '0')}-${randomUUID()}`;
    this.#busy.add(key);
    return key;
  }

  /** The put of `key`'s entry, for the caller's own txn (the same txn as the record it guards). */
  put(key: string, e: JournalEntry): Op {
    return { type: 'put', key, value: JSON.stringify(e) };
  }

  /** Write an entry in its own txn (the release kinds: before the release itself). */
  async record(e: JournalEntry): Promise<string> {
    const key = this.begin();
    try {
      await this.#store.txn([], [this.put(key, e)]);
    } catch (err) {
      this.#busy.delete(key);
      throw err;
    }
    return key;
  }

  /**
   * Once the request has run (whatever its outcome): clear the entry when the success reply is
   * out, settle it now when it never will be. Never throws; a failed settle stays for later.
   */
  follow(key: string, ctx: RequestContext): void {
    let ok = false;
    const done = ctx.replied
      .then(async (replied) => {
        ok = replied;
        if (ok) await this.#clear(key);
        else await this.#settleKey(key, 'the request failed or its reply never reached dockerd');
      })
      .catch((err: unknown) => {
        if (ok) this.#replied.add(key);
        this.#log.warn(`request journal entry not ${ok ? 'cleared' : 'settled'}; retried after a full pass`, {
          key,
          err,
        });
      })
      .finally(() => {
        this.#busy.delete(key);
        this.#following.delete(done);
      });
    this.#following.add(done);
  }

  /**
   * Wait (at most `ms`) for the clears and settles under way: a stop (SIGTERM) right after a
   * reply must not leave its entry behind, or the next start would roll back a request dockerd has.
   */
  async drain(ms = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((r) => {
      timer = setTimeout(r, ms);
    });
    await Promise.race([Promise.all([...this.#following]), late]).finally(() => clearTimeout(timer));
  }

  /**
   * Settle every entry no request of this process is working on: at start-up (before serving),
   * entries a crash left; later, the ones whose settle failed. Returns how many were settled.
   */
  async settleLeftovers(why = 'left by a crash or restart before dockerd had the reply'): Promise<number> {
    let n = 0;
    for (const key of this.#replied) await this.#clear(key).catch(() => {});
    for (const kv of (await this.#store.list(JOURNAL_PREFIX)).items) {
      if (this.#busy.has(kv.key) || this.#replied.has(kv.key)) continue;
      try {
        if (await this.#settleKey(kv.key, why)) n++;
      } catch (err) {
        this.#log.warn('request journal entry not settled; retried after the next full pass', { key: kv.key, err });
      }
    }
    return n;
  }

  /** Entries in the store (status, tests). */
  async pending(): Promise<Recorded[]> {
    return (await this.#store.list(JOURNAL_PREFIX)).items.flatMap((kv) => {
      const entry = decodeEntry(kv.value);
      return entry ? [{ key: kv.key, entry, revision: kv.createRevision }] : [];
    });
  }

  async #clear(key: string): Promise<void> {
    await this.#store.txn([], [{ type: 'delete', key }]);
    this.#replied.delete(key);
  }

  async #settleKey(key: string, why: string): Promise<boolean> {
    const kv = await this.#store.get(key);
    if (!kv) return false;
    const entry = decodeEntry(kv.value);
    if (entry === undefined) {
      this.#log.warn('request journal entry unreadable; dropped', { key, value: kv.value.slice(0, 200) });
    } else {
      if (!this.#settler) throw new Error('request journal: no settler wired');
      const did = await this.#settler({ key, entry, revision: kv.createRevision });
      this.#log.info('request settled', { kind: entry.kind, did, why });
    }
    // only the entry as read: a rewrite meanwhile (none is made today) would be settled again
    await this.#store.txn([{ key, modRevision: kv.modRevision }], [{ type: 'delete', key }]);
    return true;
  }
}

function decodeEntry(value: string): JournalEntry | undefined {
  try {
    const e = JSON.parse(value) as JournalEntry;
    return typeof e === 'object' && e !== null && KINDS.has(e.kind) ? e : undefined;
  } catch {
    return undefined;
  }
}
