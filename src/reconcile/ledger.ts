/**
 * The engine's one record of what it applied (applied.ts) and how each object fared (status,
 * this pass's failures), with the step that runs each shape of kind (kind.ts) against it.
 */

import { errors, TrussError } from '../core/errors.ts';
import type { Logger } from '../obs/logger.ts';
import { ABSENT, Applied, fingerprint } from './applied.ts';
import type { EngineObserver } from './engine-api.ts';
import { type Kind, type KindCheck, type Named, objectKey, type SetKind, type WholeKind } from './kind.ts';

export interface KeyStatus {
  readonly state: 'ok' | 'error';
  readonly lastError?: string;
  readonly code?: string;
  /** the last attempt (ok), or the last failed attempt (error) */
  readonly updatedAt: string;
  /** error only: when its run of failures began (the first failed attempt since it was last ok) */
  readonly since?: string;
}

/** the entry of a whole kind in its record */
const WHOLE = { name: '' };

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export class Ledger<D> {
  readonly #applied = new Applied();
  readonly status = new Map<string, KeyStatus>();
  /** the keys that failed in the current pass, with their errors */
  readonly failed = new Map<string, unknown>();
  /** the set kinds whose look at the kernel failed in the current pass (nothing adopted, nothing pruned) */
  readonly unread = new Set<string>();
  /** what each kind's look found in the current full pass (before repairs), by kind name */
  readonly seen = new Map<string, readonly string[]>();
  readonly #log: Logger;
  readonly #shareFreeNow: (() => boolean) | undefined;
  readonly #observer: Pick<EngineObserver, 'drift'> | undefined;

  constructor(log: Logger, shareFree?: () => boolean, observer?: Pick<EngineObserver, 'drift'>) {
    this.#log = log;
    this.#shareFreeNow = shareFree;
    this.#observer = observer;
  }

  /** drift a full pass found in one kind: logged, and told to the observer */
  #drift(kind: string, problems: readonly string[]): void {
    for (const p of problems) this.#log.warn('kernel drift', { problem: p });
    if (problems.length > 0) this.#observer?.drift(kind, problems.length);
  }

  #shareFree(madeByUs: boolean): boolean {
    return madeByUs || (this.#shareFreeNow?.() ?? true);
  }

  /** A set kind: changed objects ensured, unwanted ones removed; on full passes the kernel's listing decides. */
  async set<T extends Named>(kind: SetKind<D, T>, desired: D, full: boolean, last: (() => Promise<number>)[]) {
    const applied = this.#applied.of<T>(kind.name);
    const key = (n: string) => objectKey(kind.name, n);
    const wanted = kind.wanted(desired);
    if (kind.table) {
      const table = this.#applied.of(kind.table.key);
      if (wanted.length === 0) {
        const hadAny = applied.size > 0 || table.fingerprintOf(WHOLE.name) !== ABSENT;
        if (!full && !hadAny) return 0;
        if (!this.#shareFree(applied.size > 0)) return 0;
        // a full pass looks first: no table (the usual case after a restart) costs no write
        const absent = full && (await this.#look(kind, [], desired))?.tablePresent === false;
        if (!absent && !(await this.#attempt(kind.table.key, () => kind.table?.remove() as Promise<void>))) return 0;
        for (const n of applied.names()) this.#forget(applied, key(n), n);
        table.setFingerprint(WHOLE, ABSENT);
        return !absent && hadAny ? 1 : 0;
      }
      table.delete(WHOLE.name);
    }
    const diff = full ? undefined : applied.diff(wanted);
    const stale = new Set(diff ? diff.stale : applied.stale(wanted));
    const checked = full ? await this.#look(kind, wanted, desired) : undefined;
    this.#drift(kind.name, checked?.problems ?? []);
    if (!kind.extrasMayBeForeign || this.#shareFree(false)) for (const n of checked?.extra ?? []) stale.add(n);
    const drifted = new Set(checked?.drifted);
    const exact = new Set(checked?.exact);
    const removeStale = async () => {
      let removed = 0;
      for (const n of stale) {
        if (await this.#attempt(key(n), () => kind.remove(n, applied.get(n)))) {
          this.#forget(applied, key(n), n);
          removed++;
        }
      }
      return removed;
    };
    let changes = kind.removeAt === 'before' ? await removeStale() : 0;
    for (const o of diff ? diff.changed : wanted) {
      if (!drifted.has(o.name) && applied.current(o)) continue;
      if (checked && !drifted.has(o.name)) {
        applied.set(o); // adopted: the kernel has it right
        continue;
      }
      const how = { replace: drifted.has(o.name) || applied.get(o.name) !== undefined, exact: exact.has(o.name) };
      const dep = kind.needs?.(o);
      const ok = await this.#attempt(
        key(o.name),
        this.#unlessFailed(dep, () => kind.ensure(o, how)),
      );
      // a failed one may be half made: removed like an applied one once no longer wanted
      if (ok) applied.set(o);
      else applied.failed(o);
      if (ok) changes++;
    }
    if (kind.removeAt === 'last') last.push(removeStale);
    else if (kind.removeAt !== 'before') changes += await removeStale();
    return changes;
  }

  /** A whole kind: ensured when its fingerprint changed, removed when no longer wanted; checked on full passes. */
  async whole<T>(kind: WholeKind<D, T>, desired: D, full: boolean): Promise<number> {
    const rec = this.#applied.of(kind.name);
    const want = kind.wanted(desired);
    const fp = want === undefined ? ABSENT : fingerprint(want);
    const prev = rec.fingerprintOf(WHOLE.name); // undefined: nothing known since start-up
    let need = prev !== fp && !(prev === undefined && want === undefined && !full);
    if (full && want === undefined && kind.blindRemoval) need = true;
    else if (full) {
      let problems: readonly string[];
      try {
        problems = await kind.check(want, desired);
        this.seen.set(kind.name, problems);
      } catch (e) {
        await this.#attempt(kind.name, () => Promise.reject(e));
        return 0;
      }
      if (!need) this.#drift(kind.name, problems);
      need = problems.length > 0;
      if (!need) rec.setFingerprint(WHOLE, fp);
    }
    if (!need) return 0;
    if (want === undefined && !this.#shareFree(prev !== undefined && prev !== ABSENT)) return 0;
    const dep = kind.needs?.find((k) => this.failed.has(k));
    const run = this.#unlessFailed(dep, want === undefined ? () => kind.remove() : () => kind.ensure(want));
    if (await this.#attempt(kind.name, run)) {
      rec.setFingerprint(WHOLE, fp);
      return want === undefined && prev === ABSENT ? 0 : 1;
    }
    rec.failed(WHOLE); // retried, and removed when it is no longer wanted
    return 0;
  }

  /** `run`, or a failure naming `dep` when that failed in this pass */
  #unlessFailed(dep: string | undefined, run: () => Promise<void>): () => Promise<void> {
    if (dep === undefined || !this.failed.has(dep)) return run;
    return () => Promise.reject(errors.reconcileFailed(`${dep.replace(':', ' ')} could not be programmed`));
  }

  /** a set kind's check; a failure to read is logged and adopts nothing */
  async #look<T extends Named>(kind: SetKind<D, T>, wanted: readonly T[], desired: D): Promise<KindCheck | undefined> {
    try {
      const checked = await kind.check(wanted, desired);
      if (checked === undefined) this.unread.add(kind.name);
      else this.seen.set(kind.name, checked.problems);
      return checked;
    } catch (e) {
      this.unread.add(kind.name);
      this.#log.warn('kernel check failed', { kind: kind.name, err: e });
      return undefined;
    }
  }

  #forget(applied: { delete(name: string): void }, key: string, name: string): void {
    applied.delete(name);
    this.status.delete(key);
  }

  async #attempt(key: string, run: () => Promise<void>): Promise<boolean> {
    try {
      await run();
      this.status.set(key, { state: 'ok', updatedAt: new Date().toISOString() });
      return true;
    } catch (e) {
      this.failed.set(key, e);
      const code = e instanceof TrussError ? e.code : ((e as { code?: string }).code ?? 'UNKNOWN');
      const now = new Date().toISOString();
      const prev = this.status.get(key);
      const since = prev?.state === 'error' ? (prev.since ?? prev.updatedAt) : now;
      this.status.set(key, { state: 'error', lastError: message(e), code, updatedAt: now, since });
      this.#log.warn('reconcile object failed', { key, err: e });
      return false;
    }
  }

  /** After a full pass every wanted object that did not fail is known to be applied. */
  markSteady(kinds: readonly Kind<D>[], desired: D): void {
    const now = new Date().toISOString();
    for (const kind of kinds) {
      if (kind.paused?.(desired) !== undefined) continue;
      if (kind.shape === 'set') {
        const applied = this.#applied.of<Named>(kind.name);
        for (const o of kind.wanted(desired)) if (this.#steady(objectKey(kind.name, o.name), now)) applied.set(o);
        continue;
      }
      const want = kind.wanted(desired);
      if (want !== undefined && this.#steady(kind.name, now)) {
        this.#applied.of(kind.name).setFingerprint(WHOLE, fingerprint(want));
      }
    }
  }

  /**
   * false when the key failed in this pass; otherwise records it as ok (keeping the timestamp of
   * an earlier ok: an earlier error is over, the full pass found the object right)
   */
  #steady(key: string, now: string): boolean {
    if (this.failed.has(key)) return false;
    if (this.status.get(key)?.state !== 'ok') this.status.set(key, { state: 'ok', updatedAt: now });
    return true;
  }
}
