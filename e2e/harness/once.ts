/**
 * once(key, fn): run fn the first time a key is asked for; later callers get the same promise
 * (and the same failure). Suites use it to create shared fixtures lazily, so each test can
 * ask for what it needs and one failure does not hide the rest.
 */
export function memoOnce(): (key: string, fn: () => Promise<void>) => Promise<void> {
  const memo = new Map<string, Promise<void>>();
  return (key, fn) => {
    let p = memo.get(key);
    if (!p) {
      p = fn();
      memo.set(key, p);
    }
    return p;
  };
}
