/**
 * Work per key, coalesced: a key marked again while it waits runs once; marked while it runs, it
 * runs once more afterwards (the run in flight may have read the state before the change). At
 * most `max` keys run at once. Used for container inspects, so a burst of events about one
 * container costs one or two requests and a burst about many never floods Docker.
 */
export class CoalescingQueue {
  readonly #run: (key: string) => Promise<void>;
  readonly #max: number;
  readonly #waiting = new Set<string>();
  readonly #running = new Set<string>();
  #idleWaiters: (() => void)[] = [];
  #stopped = false;

  /** `run` must not throw (its rejection is ignored) */
  constructor(run: (key: string) => Promise<void>, max: number) {
    this.#run = run;
    this.#max = Math.max(1, max);
  }

  mark(key: string): void {
    if (this.#stopped) return;
    this.#waiting.add(key);
    this.#pump();
  }

  /** whether `key` waits or runs */
  has(key: string): boolean {
    return this.#waiting.has(key) || this.#running.has(key);
  }

  /** Resolves when nothing waits or runs (at once when stopped). */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      this.#idleWaiters.push(resolve);
      this.#settle();
    });
  }

  /** Nothing new starts; idle() waiters are released. Runs in flight end on their own. */
  stop(): void {
    this.#stopped = true;
    this.#waiting.clear();
    this.#settle();
  }

  #pump(): void {
    for (const key of this.#waiting) {
      if (this.#stopped || this.#running.size >= this.#max) break;
      if (this.#running.has(key)) continue;
      this.#waiting.delete(key);
      this.#running.add(key);
      this.#run(key)
        .catch(() => {})
        .finally(() => {
          this.#running.delete(key);
          this.#pump();
        });
    }
    this.#settle();
  }

  #settle(): void {
    if (!this.#stopped && (this.#waiting.size > 0 || this.#running.size > 0)) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}
