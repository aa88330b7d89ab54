/**
 * One reconcile engine over a registry of kinds (kind.ts). Passes are serialised; a request that
 * wrote intent at revision R waits (bounded) for a pass that read R.
 *   - incremental pass: converge objects whose desired form changed since they were last
 *     applied (or that failed), remove objects that are no longer desired;
 *   - full pass (start-up, every resyncMs, on demand): every kind looks at the kernel; an object
 *     it finds right is adopted without a write (a restart that lost nothing writes nothing),
 *     drift is logged and repaired, leftovers pruned.
 * Kinds run in registry order; an object whose dependency failed in the same pass fails without
 * being attempted. Failures keep the object dirty and are retried with backoff; other objects
 * are unaffected. What was applied is kept in one record (applied.ts).
 *
 * What full passes and checks need not list again (idle kinds, remembered looks: issue 18) is
 * looks.ts.
 */

import { errors } from '../core/errors.ts';
import { settledWithin } from '../obs/settled.ts';
import type { EngineDeps, PassResult } from './engine-api.ts';
import { type Kind, type Owner, ownedKeys } from './kind.ts';
import { type KeyStatus, Ledger } from './ledger.ts';
import { Looks } from './looks.ts';

export type { EngineDeps, EngineObserver, PassResult } from './engine-api.ts';
export type { KeyStatus } from './ledger.ts';

interface Waiter {
  readonly revision: number;
  readonly keys: readonly string[] | Owner;
  resolve(): void;
  reject(e: unknown): void;
}

/** check() waits at most this long for the pass running when it is called */
const CHECK_WAIT_MS = 5_000;

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export class Engine<I extends { readonly revision: number }, D> {
  readonly #deps: EngineDeps<I, D>;
  readonly #ledger: Ledger<D>;
  #waiters: Waiter[] = [];
  #reconciled = -1;
  #running: Promise<void> | undefined;
  /** the pass running now (#running spans every queued pass) */
  #current: Promise<void> | undefined;
  #queued: 'none' | 'incremental' | 'full' = 'none';
  #timer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #soonTimers = new Set<NodeJS.Timeout>();
  #backoffMs = 0;
  #stopped = false;
  #lastPass: PassResult | undefined;
  /** the start-up pass: what a restart had to repair (0 changes when the kernel was right) */
  #firstPass: PassResult | undefined;
  /** the last pass that could not run at all (loading the intent failed), until one runs */
  #passError: { readonly error: string; readonly at: string } | undefined;
  /** what need not be listed again (looks.ts) */
  readonly #looks: Looks<D>;

  constructor(deps: EngineDeps<I, D>) {
    const names = deps.kinds.map((k) => k.name);
    if (new Set(names).size !== names.length) throw new Error(`kind names must be unique: ${names.join(', ')}`);
    this.#deps = deps;
    this.#ledger = new Ledger(deps.log, deps.shareFree, deps.observer);
    this.#looks = new Looks<D>(deps.kinds, {
      ...(deps.idleLookMs !== undefined ? { idleLookMs: deps.idleLookMs } : {}),
      ...(deps.shareFree ? { shareFree: deps.shareFree } : {}),
    });
  }

  /** First full pass now, then one every resyncMs. */
  start(): void {
    this.trigger('full');
    this.#timer = setInterval(() => this.trigger('full'), this.#deps.resyncMs ?? 30_000);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#retryTimer);
    for (const t of this.#soonTimers) clearTimeout(t);
    await this.#running;
    for (const w of this.#waiters) w.reject(errors.reconcileTimeout('truss is shutting down'));
    this.#waiters = [];
  }

  trigger(mode: 'incremental' | 'full' = 'incremental'): void {
    if (this.#stopped) return;
    if (mode === 'full' || this.#queued === 'none') this.#queued = mode;
    if (!this.#running) this.#running = this.#loop();
  }

  /** A full pass now and one after each delay (ms): for changes others make to shared tables around an event. */
  resyncAfter(delaysMs: readonly number[]): void {
    this.trigger('full');
    for (const ms of delaysMs) {
      const t = setTimeout(() => {
        this.#soonTimers.delete(t);
        this.trigger('full');
      }, ms);
      t.unref();
      this.#soonTimers.add(t);
    }
  }

  /** Wait for the running pass (and the ones queued behind it). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Run a full pass now and return its result. */
  async reconcileNow(): Promise<PassResult | undefined> {
    this.trigger('full');
    await this.idle();
    return this.#lastPass;
  }

  /**
   * Resolve once a pass that read intent at `revision` or later has finished and none of
   * `keys` (or of the objects `owner` derives in that pass) failed in it; reject with the
   * key's error, or on timeout.
   */
  waitFor(revision: number, keys: readonly string[] | Owner, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(errors.reconcileTimeout(`the kernel was not programmed within ${timeoutMs} ms; see truss status`));
      }, timeoutMs);
      const waiter: Waiter = {
        revision,
        keys,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.#waiters.push(waiter);
      this.trigger('incremental');
    });
  }

  /** the current retry delay (0: the last pass had no failures) */
  get backoffMs(): number {
    return this.#backoffMs;
  }

  status(): {
    reconciledRevision: number;
    lastPass?: PassResult;
    firstPass?: PassResult;
    passError?: { readonly error: string; readonly at: string };
    scheduledPasses: number;
    passRunning: boolean;
    objects: Record<string, KeyStatus>;
  } {
    return {
      reconciledRevision: this.#reconciled,
      scheduledPasses: this.#soonTimers.size,
      passRunning: this.#running !== undefined,
      ...(this.#lastPass ? { lastPass: this.#lastPass } : {}),
      ...(this.#firstPass ? { firstPass: this.#firstPass } : {}),
      ...(this.#passError ? { passError: this.#passError } : {}),
      objects: Object.fromEntries(this.#ledger.status),
    };
  }

  /** Differences between intent and kernel, changing nothing; one unreadable kind does not hide the rest. */
  async check(): Promise<string[]> {
    // why: read mid-pass, the kernel shows what the running pass is about to fix; only that pass
    // (passes queued behind it must not stall status under churn), and bounded (a stuck one)
    if (this.#current) await settledWithin(this.#current, CHECK_WAIT_MS);
    // before any read: a change announced from now on makes what this check sees stale
    const recall = this.#looks.recall(this.#deps.kernelGeneration?.());
    const desired = await this.#deps.derive(await this.#deps.load({ fresh: false }), 'check');
    // every kind's listing at once (reads only), reported in registry order
    const look = async (kind: Kind<D>): Promise<readonly string[] | { readonly paused: string }> => {
      const why = kind.paused?.(desired);
      if (why !== undefined) return { paused: why };
      if (this.#looks.idle(kind, desired)) return [];
      const old = recall.get(kind);
      if (old) return old;
      try {
        let problems: readonly string[];
        if (kind.shape === 'set') problems = (await kind.check(kind.wanted(desired), desired))?.problems ?? [];
        else {
          const want = kind.wanted(desired);
          problems = want !== undefined || !kind.blindRemoval ? await kind.check(want, desired) : [];
        }
        recall.saw(kind, problems);
        return problems;
      } catch (e) {
        return [message(e)];
      }
    };
    const out: string[] = [];
    for (const r of await Promise.all(this.#deps.kinds.map(look))) {
      if (!('paused' in r)) out.push(...r);
      else if (!out.includes(r.paused)) out.push(r.paused);
    }
    recall.done();
    return out;
  }

  async #loop(): Promise<void> {
    try {
      while (this.#queued !== 'none' && !this.#stopped) {
        const full = this.#queued === 'full';
        this.#queued = 'none';
        try {
          this.#current = this.#pass(full);
          await this.#current;
        } catch (e) {
          // loading intent failed (store unavailable): waiters time out, retry later
          this.#deps.log.error('reconcile pass failed', { err: e, full });
          this.#deps.observer?.passFailed(full);
          this.#passError = { error: e instanceof Error ? e.message : String(e), at: new Date().toISOString() };
          this.#scheduleRetry();
        }
      }
    } finally {
      this.#running = undefined;
    }
  }

  /**
   * When the oldest look the last check() answered with was made: undefined when it listed every
   * watched kind itself (or nothing is watched); status says how fresh its kernel section is.
   */
  checkLookedAt(): string | undefined {
    return this.#looks.checkLookedAt;
  }

  async #pass(full: boolean): Promise<void> {
    const started = performance.now();
    const begun = this.#looks.passBegins(this.#deps.kernelGeneration?.());
    const intent = await this.#deps.load({ fresh: full });
    const desired = await this.#deps.derive(intent, full ? 'full' : 'incremental');
    const before = this.#ledger.failed.size;
    this.#ledger.failed.clear();
    this.#ledger.unread.clear();
    this.#ledger.seen.clear();
    let changes = 0;
    const last: (() => Promise<number>)[] = [];
    const looked: Kind<D>[] = [];
    for (const kind of this.#deps.kinds) {
      if (kind.paused?.(desired) !== undefined) continue;
      // an idle kind takes the incremental step: with nothing wanted or applied, that does nothing
      const look = full && !this.#looks.idle(kind, desired);
      if (look) looked.push(kind);
      if (kind.shape === 'set') changes += await this.#ledger.set(kind, desired, look, last);
      else changes += await this.#ledger.whole(kind, desired, look);
    }
    for (const removal of last.reverse()) changes += await removal();
    this.#looks.passEnded(begun, { looked, desired, ledger: this.#ledger, unchanged: full && changes === 0 });
    if (full) this.#ledger.markSteady(this.#deps.kinds, desired);
    this.#reconciled = intent.revision;
    const failures = this.#ledger.failed.size;
    const pass = {
      full,
      revision: intent.revision,
      changes,
      failures,
      durationMs: Math.round(performance.now() - started),
    };
    this.#lastPass = {
      ...pass,
      at: new Date().toISOString(),
      ...(failures > 0 ? { failed: [...this.#ledger.failed.keys()] } : {}),
    };
    this.#passError = undefined;
    this.#deps.observer?.pass(pass);
    const startUp = full && this.#firstPass === undefined;
    if (startUp) this.#firstPass = this.#lastPass;
    this.#deps.log.debug('reconcile pass', { ...pass });
    if (startUp) this.#deps.log.info('start-up reconcile pass', { ...pass });
    else if (failures > 0 || before > 0) this.#deps.log.info('reconcile pass', { ...pass });
    this.#settleWaiters(desired);
    if (failures > 0) this.#scheduleRetry();
    else this.#backoffMs = 0;
    if (full && this.#deps.afterFullPass) await this.#deps.afterFullPass(desired);
  }

  #settleWaiters(desired: D): void {
    const keep: Waiter[] = [];
    for (const w of this.#waiters) {
      if (w.revision > this.#reconciled) {
        keep.push(w);
        continue;
      }
      // why: with no failure there is nothing to look up (the usual pass)
      const failures = this.#ledger.failed.size > 0;
      const keys =
        Array.isArray(w.keys) || !failures
          ? (w.keys as string[])
          : ownedKeys(this.#deps.kinds, w.keys as Owner, desired);
      const failedKey = failures ? keys.find((k) => this.#ledger.failed.has(k)) : undefined;
      if (failedKey === undefined) w.resolve();
      else w.reject(this.#ledger.failed.get(failedKey));
    }
    this.#waiters = keep;
  }

  #scheduleRetry(): void {
    if (this.#stopped) return;
    const { firstMs, maxMs } = this.#deps.backoff ?? { firstMs: 500, maxMs: 30_000 };
    this.#backoffMs = Math.min(maxMs, this.#backoffMs === 0 ? firstMs : this.#backoffMs * 2);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.trigger('incremental'), this.#backoffMs);
    this.#retryTimer.unref();
  }
}
