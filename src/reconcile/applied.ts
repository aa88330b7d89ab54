/**
 * What the reconciler last programmed, so an incremental pass converges only what changed.
 *
 * fingerprint: the part of an object whose change needs programming again, as a string. A
 * veth's `joined` flag only tells the dataplane not to recreate a missing pair; Join itself
 * changes nothing in the kernel, so it is left out (Join then costs no kernel work).
 *
 * Desired objects are immutable, and computeDesired hands out an unchanged object as the same
 * object on every pass (it memoises on the intent records' identity). So both the fingerprint
 * and the "is this what was applied?" test are first decided on identity: an incremental pass
 * over 1,000 endpoints compares 1,000 references and serialises only what changed.
 *
 * The incremental diff need not even look up names (issue 18 item 5: at 5,000 endpoints a pass
 * looking up every wanted object by name cost more than the attach it served): an AppliedSet
 * remembers the wanted list of its last diff, every object of which was current once that pass
 * ended (what changed was applied; a failure forgets the list). The next diff walks the new list
 * beside the old one: an object in the same place (or one place on: a removal) is the very object
 * that was applied, and only the others are looked up. So a pass after one attach looks up one
 * object per kind, and the rest is a walk of references. Anything else that changes the record
 * (a full pass adopting, a failure, a removal the diff did not name) forgets the list; the next
 * diff then looks up every object, as before.
 */

/** How much work the diffs did (tests: an incremental pass does work in proportion to what changed). */
export const diffStats = { lookedUp: 0, fingerprinted: 0 };

const fingerprints = new WeakMap<object, string>();

export function fingerprint(obj: unknown): string {
  if (!obj || typeof obj !== 'object') return JSON.stringify(obj);
  const known = fingerprints.get(obj);
  if (known !== undefined) return known;
  diffStats.fingerprinted++;
  let fp: string;
  if ('joined' in obj) {
    const { joined: _joined, ...rest } = obj as Record<string, unknown>;
    fp = JSON.stringify(rest);
  } else fp = JSON.stringify(obj);
  fingerprints.set(obj, fp);
  return fp;
}

const FAILED = '\u0000failed';

/** a whole object recorded as not existing */
export const ABSENT = '\u0000absent';

/** The applied objects of one kind (bridges, veths, policy chains), by name. */
export class AppliedSet<T extends { readonly name: string }> {
  readonly #byName = new Map<string, { readonly obj: T; readonly fp: string }>();
  /** a diff is running (its adoptions keep the list it is about to replace) */
  #diffing = false;
  /** the wanted list of the last diff (undefined: forgotten), with what that diff found changed and stale */
  #last:
    | { readonly wanted: readonly T[]; readonly changed: ReadonlySet<T>; readonly stale: ReadonlySet<string> }
    | undefined;

  /** true when `obj` (or an equal object) is what was last applied under its name */
  current(obj: T): boolean {
    const a = this.#byName.get(obj.name);
    if (a === undefined || a.fp === FAILED) return false;
    if (a.obj === obj) return true;
    if (a.fp !== fingerprint(obj)) return false;
    // why: an equal new object (Join only flips `joined`; a fresh read makes new objects) is adopted,
    // so the next pass decides on identity again instead of comparing strings
    this.#byName.set(obj.name, { obj, fp: a.fp });
    // outside a diff, the last list may hold the object this one replaced
    if (!this.#diffing) this.#last = undefined;
    return true;
  }

  /**
   * One look at the wanted list: the objects that need applying, and the names applied but no
   * longer wanted. When every applied name is still wanted (the usual pass) no set is built.
   */
  diff(wanted: readonly T[]): { readonly changed: T[]; readonly stale: string[] } {
    const changed: T[] = [];
    let present = 0;
    const check = (o: T): void => {
      diffStats.lookedUp++;
      if (this.#byName.has(o.name)) present++;
      if (!this.current(o)) changed.push(o);
    };
    const last = this.#lastApplied();
    this.#diffing = true;
    if (last === undefined) for (const o of wanted) check(o);
    else {
      // why the walk is sound: every object of `last` is what is applied under its name now
      let j = 0;
      for (let i = 0; i < wanted.length; i++) {
        const o = wanted[i] as T;
        if (o === last[j]) {
          present++;
          j++;
        } else if (o === last[j + 1]) {
          present++; // last[j] is no longer wanted
          j += 2;
        } else {
          check(o);
          // a new object before last[j] (inserted) keeps j; one in its place (replaced) moves on
          if (wanted[i + 1] !== last[j]) j++;
        }
      }
    }
    this.#diffing = false;
    const stale = present === this.#byName.size ? [] : this.stale(wanted);
    this.#last = { wanted, changed: new Set(changed), stale: new Set(stale) };
    return { changed, stale };
  }

  /**
   * The last diff's wanted list while every object of it is what is applied: the objects that
   * diff found changed were applied since (a failure or any other change forgot the list).
   */
  #lastApplied(): readonly T[] | undefined {
    const last = this.#last;
    if (last === undefined) return undefined;
    for (const o of last.changed) {
      const a = this.#byName.get(o.name);
      if (a?.obj !== o || a.fp === FAILED) {
        this.#last = undefined;
        return undefined;
      }
    }
    return last.wanted;
  }

  set(obj: T): void {
    // a changed object of the last diff, applied now: its list holds
    if (this.#last && !this.#last.changed.has(obj)) this.#last = undefined;
    this.#byName.set(obj.name, { obj, fp: fingerprint(obj) });
  }

  /** the object last applied under `name` */
  get(name: string): T | undefined {
    return this.#byName.get(name)?.obj;
  }

  delete(name: string): void {
    // a stale name of the last diff is not in its list
    if (this.#last && !this.#last.stale.has(name)) this.#last = undefined;
    this.#byName.delete(name);
  }

  /**
   * `obj`'s ensure failed: it may be half made (a veth created, then a later step failed). It
   * stays known, never current (the next pass ensures it again), and stale once not wanted, so
   * its removal runs even when nothing was applied (remove* treats "already gone" as success).
   */
  failed(obj: T): void {
    this.#last = undefined;
    this.#byName.set(obj.name, { obj, fp: FAILED });
  }

  /** the fingerprint applied under `name`: FAILED when it failed, undefined when unknown */
  fingerprintOf(name: string): string | undefined {
    return this.#byName.get(name)?.fp;
  }

  /** records `fp` (a whole object's fingerprint, or ABSENT) under `name` */
  setFingerprint(obj: T, fp: string): void {
    this.#last = undefined;
    this.#byName.set(obj.name, { obj, fp });
  }

  isFailed(name: string): boolean {
    return this.#byName.get(name)?.fp === FAILED;
  }

  get size(): number {
    return this.#byName.size;
  }

  names(): string[] {
    return [...this.#byName.keys()];
  }

  /** names applied but not among `wanted` */
  stale(wanted: readonly T[]): string[] {
    if (this.#byName.size === 0) return [];
    const keep = new Set(wanted.map((o) => o.name));
    return this.names().filter((n) => !keep.has(n));
  }
}

/**
 * The one record of what the engine applied: one AppliedSet per kind (a whole kind keeps a
 * single entry, named '').
 */
export class Applied {
  readonly #kinds = new Map<string, AppliedSet<{ readonly name: string }>>();

  of<T extends { readonly name: string }>(kind: string): AppliedSet<T> {
    let set = this.#kinds.get(kind);
    if (!set) {
      set = new AppliedSet();
      this.#kinds.set(kind, set);
    }
    return set as unknown as AppliedSet<T>;
  }
}
