/**
 * MemoryStore: the Store contract in process memory, for tests. Every method finishes its
 * work synchronously before the returned promise settles, so a txn is atomic; callers
 * still see the same async interleavings as with a real store (their read, compute and
 * CAS steps are separate awaits).
 */
import { errors } from '../core/errors.ts';
import { assertKey, assertOps, compareKeys } from './keys.ts';
import type { Compare, KeyValue, Op, Store, TxnResult } from './store.ts';

export class MemoryStore implements Store {
  readonly kind = 'memory';
  readonly #data = new Map<string, KeyValue>();
  /** the same entries, kept in compareKeys order for prefix scans */
  readonly #sorted: KeyValue[] = [];
  #revision = 0;
  #closed = false;

  async get(key: string): Promise<KeyValue | undefined> {
    this.#open();
    assertKey(key);
    return this.#data.get(key);
  }

  async list(prefix: string): Promise<{ readonly items: readonly KeyValue[]; readonly revision: number }> {
    this.#open();
    // Keys with the prefix are contiguous: [first >= prefix, first after them).
    const lo = this.#search((k) => compareKeys(k, prefix) < 0);
    const hi = this.#search((k) => compareKeys(k, prefix) < 0 || k.startsWith(prefix));
    return { items: this.#sorted.slice(lo, hi), revision: this.#revision };
  }

  async txn(compares: readonly Compare[], success: readonly Op[], failure: readonly Op[] = []): Promise<TxnResult> {
    this.#open();
    for (const c of compares) assertKey(c.key);
    assertOps(success);
    assertOps(failure);
    const succeeded = compares.every((c) => this.#holds(c));
    const ops = succeeded ? success : failure;
    const next = this.#revision + 1;
    let changed = false;
    for (const op of ops) changed = this.#apply(op, next) || changed;
    if (changed) this.#revision = next;
    return { succeeded, revision: this.#revision };
  }

  async revision(): Promise<number> {
    this.#open();
    return this.#revision;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #open(): void {
    if (this.#closed) throw errors.storeUnavailable('the memory store is closed');
  }

  #holds(c: Compare): boolean {
    if ('prefixModRevisionAtMost' in c) {
      const lo = this.#search((k) => compareKeys(k, c.key) < 0);
      const hi = this.#search((k) => compareKeys(k, c.key) < 0 || k.startsWith(c.key));
      return this.#sorted.slice(lo, hi).every((kv) => kv.modRevision <= c.prefixModRevisionAtMost);
    }
    const kv = this.#data.get(c.key);
    if ('version' in c) return (kv?.version ?? 0) === c.version;
    if ('modRevision' in c) return (kv?.modRevision ?? 0) === c.modRevision;
    return kv !== undefined && kv.value === c.value;
  }

  /** Applies one op at revision `rev`; true when it changed something. */
  #apply(op: Op, rev: number): boolean {
    const old = this.#data.get(op.key);
    const at = this.#search((k) => compareKeys(k, op.key) < 0);
    if (op.type === 'delete') {
      if (!old) return false;
      this.#data.delete(op.key);
      this.#sorted.splice(at, 1);
      return true;
    }
    const kv: KeyValue = {
      key: op.key,
      value: op.value,
      createRevision: old?.createRevision ?? rev,
      modRevision: rev,
      version: (old?.version ?? 0) + 1,
    };
    this.#data.set(op.key, kv);
    this.#sorted.splice(at, old ? 1 : 0, kv);
    return true;
  }

  /** Index of the first entry whose key fails `before` (which must hold for a prefix of #sorted). */
  #search(before: (key: string) => boolean): number {
    let lo = 0;
    let hi = this.#sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(this.#sorted[mid]!.key)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
