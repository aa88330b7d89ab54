/**
 * What the engine (engine.ts) need not list again (issue 18), and why that leaves nothing unseen.
 *
 * Idle kinds: a kind with nothing wanted costs a full pass a kernel listing (qdiscs, rules, tables
 * of features nobody uses). Such a kind is not looked at while it is idle: nothing wanted now, and
 * a full pass of this daemon found nothing of it (or removed all it found: no failure, no
 * unreadable listing) within idleLookMs (10 min), with nothing wanted in any pass since. Why that
 * leaves no leak: truss puts an object in the kernel only for what is wanted, so an idle kind
 * changes only behind the daemon's back; the start-up pass looks at every kind (a crash's
 * leftovers), a kind that wanted something is looked at by every full pass until one finds nothing
 * of it, and any kind is looked at again at least every idleLookMs (an old ruleset restored over
 * truss's). While objects of another state are present (shareFree false) no kind is idle: what
 * they hold is theirs, and when they go the next pass looks at everything.
 *
 * Remembered looks: a check answers for a watched kind (kind.ts) with what the last look found
 * (a check's, or that of a full pass that changed nothing) while the kernel announced no change
 * (the generation is the same: dataplane/linux/kernel-watch.ts) and no pass began since (a pass
 * may change what is wanted). A generation read before the listings makes a change announced
 * during them stale for the next check.
 */
import type { Kind } from './kind.ts';

/** an idle kind is looked at again after this long */
const IDLE_LOOK_MS = 10 * 60_000;

/** whether a pass over `desired` wants any object of `kind` */
export function wantsAny<D>(kind: Kind<D>, desired: D): boolean {
  return kind.shape === 'set' ? kind.wanted(desired).length > 0 : kind.wanted(desired) !== undefined;
}

/** What a pass's ledger (ledger.ts) tells about its looks. */
interface PassLooks {
  readonly failed: ReadonlyMap<string, unknown>;
  readonly unread: ReadonlySet<string>;
  readonly seen: ReadonlyMap<string, readonly string[]>;
}

interface Remembered {
  readonly gen: number;
  readonly passes: number;
  /** when the oldest of these looks was made */
  readonly at: string;
  readonly byKind: ReadonlyMap<string, readonly string[]>;
}

/** One check's use of the remembered looks (Looks.recall). */
export interface Recall<D> {
  /** what the last look at `kind` found, when it still holds */
  get(kind: Kind<D>): readonly string[] | undefined;
  /** this check's own look at `kind` */
  saw(kind: Kind<D>, problems: readonly string[]): void;
  done(): void;
}

export class Looks<D> {
  readonly #kinds: readonly Kind<D>[];
  readonly #idleLookMs: number;
  readonly #shareFree: () => boolean;
  /** idle kinds: when a full pass last found nothing of each (performance.now()) */
  readonly #idleSince = new Map<string, number>();
  /** passes begun: a look remembered before one is stale */
  #passes = 0;
  #remembered: Remembered | undefined;
  #checkLookedAt: string | undefined;

  constructor(kinds: readonly Kind<D>[], opts: { readonly idleLookMs?: number; shareFree?(): boolean } = {}) {
    this.#kinds = kinds;
    this.#idleLookMs = opts.idleLookMs ?? IDLE_LOOK_MS;
    this.#shareFree = () => opts.shareFree?.() ?? true;
  }

  /** when the oldest look the last check answered with was made (undefined: it listed every kind itself) */
  get checkLookedAt(): string | undefined {
    return this.#checkLookedAt;
  }

  /** whether `kind` is idle now: nothing wanted, and a full pass found nothing of it lately */
  idle(kind: Kind<D>, desired: D): boolean {
    const since = this.#idleSince.get(kind.name);
    if (since === undefined) return false;
    if (wantsAny(kind, desired) || !this.#shareFree()) {
      this.#idleSince.delete(kind.name);
      return false;
    }
    if (performance.now() - since < this.#idleLookMs) return true;
    this.#idleSince.delete(kind.name);
    return false;
  }

  /** A pass begins (with the kernel generation before its listings): what was remembered is stale. */
  passBegins(gen: number | undefined): { readonly gen: number | undefined; readonly at: string } {
    this.#passes++;
    return { gen, at: new Date().toISOString() };
  }

  /**
   * After a pass: a kind wanting something is not idle; one a full pass looked at (`looked`) with
   * nothing wanted, no failure and a readable kernel has nothing left in it now (found nothing, or
   * removed all it found), unless objects of another state held it back. A full pass that changed
   * nothing left the kernel as its looks found it: those are what a check would see.
   */
  passEnded(
    begun: { readonly gen: number | undefined; readonly at: string },
    p: {
      readonly looked: readonly Kind<D>[];
      readonly desired: D;
      readonly ledger: PassLooks;
      readonly unchanged: boolean;
    },
  ): void {
    for (const kind of this.#kinds) if (wantsAny(kind, p.desired)) this.#idleSince.delete(kind.name);
    const shareFree = this.#shareFree();
    if (!shareFree) this.#idleSince.clear();
    const failed = [...p.ledger.failed.keys()];
    const now = performance.now();
    for (const kind of shareFree ? p.looked : []) {
      if (wantsAny(kind, p.desired) || p.ledger.unread.has(kind.name)) continue;
      const table = kind.shape === 'set' ? kind.table?.key : undefined;
      if (failed.some((k) => k === kind.name || k === table || k.startsWith(`${kind.name}:`))) continue;
      this.#idleSince.set(kind.name, now);
    }
    const clean = p.unchanged && failed.length === 0 && p.ledger.unread.size === 0 && shareFree;
    if (begun.gen === undefined || !clean) {
      this.#remembered = undefined;
      return;
    }
    const byKind = new Map<string, readonly string[]>();
    for (const kind of p.looked) {
      const seen = p.ledger.seen.get(kind.name);
      if (kind.watched && seen) byKind.set(kind.name, seen);
    }
    this.#remembered = { gen: begun.gen, passes: this.#passes, at: begun.at, byKind };
  }

  /** A check begins, with the kernel generation read before its listings (undefined: not watching). */
  recall(gen: number | undefined): Recall<D> {
    const passes = this.#passes;
    const now = new Date().toISOString();
    const prev = this.#remembered;
    const usable = gen !== undefined && prev?.gen === gen && prev.passes === passes ? prev : undefined;
    const byKind = new Map<string, readonly string[]>();
    let usedOld = false;
    return {
      get: (kind) => {
        const old = kind.watched ? usable?.byKind.get(kind.name) : undefined;
        if (old) {
          usedOld = true;
          byKind.set(kind.name, old);
        }
        return old;
      },
      saw: (kind, problems) => {
        if (kind.watched) byKind.set(kind.name, problems);
      },
      done: () => {
        const at = usedOld ? usable?.at : undefined;
        this.#checkLookedAt = at;
        // the fresh looks are as old as this check's start, the remembered ones keep their time
        if (gen !== undefined && this.#passes === passes) {
          this.#remembered = { gen, passes, at: at ?? now, byKind };
        }
      },
    };
  }
}
