/** A promise-chain mutex: run() calls execute one at a time, in order. */
export class Mutex {
  #tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(fn, fn);
    this.#tail = next.catch(() => {});
    return next;
  }
}

/** Serialises async work per key; idle keys are forgotten. */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const gate = Promise.withResolvers<void>();
    const tail = prev.then(() => gate.promise);
    this.#tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      gate.resolve();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
