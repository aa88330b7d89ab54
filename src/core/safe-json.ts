/**
 * JSON for logs and error messages that never throws: nesting deeper than MAX_JSON_DEPTH is
 * cut ("[nested too deep]"), bigints become strings, cycles become "[circular]".
 * why: JSON.stringify recurses; a 100k-level array from a request body overflows the stack
 * (RangeError) in the logger or in an error message.
 */
export const MAX_JSON_DEPTH = 64;

const TOO_DEEP = '[nested too deep]';

/** A copy of `value` that JSON.stringify can always serialise, at most `maxDepth` levels deep. */
export function capDepth(value: unknown, maxDepth = MAX_JSON_DEPTH): unknown {
  const seen = new Set<object>();
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === 'bigint') return v.toString();
    if (v === null || typeof v !== 'object') return v;
    if (depth >= maxDepth) return TOO_DEEP;
    if (seen.has(v)) return '[circular]';
    const json = (v as { toJSON?: unknown }).toJSON;
    if (typeof json === 'function') return walk((json as () => unknown).call(v), depth);
    seen.add(v);
    try {
      if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = walk(x, depth + 1);
      return out;
    } finally {
      seen.delete(v);
    }
  };
  return walk(value, 0);
}

/** JSON.stringify(capDepth(value)); undefined for values JSON has no text for (undefined, functions). */
export function safeStringify(value: unknown, maxDepth = MAX_JSON_DEPTH): string | undefined {
  return JSON.stringify(capDepth(value, maxDepth));
}

/**
 * How deep `value` nests (a scalar is 0, `[]` is 1), counted without recursion, stopping as
 * soon as `limit` is exceeded (returns limit + 1).
 */
export function jsonDepth(value: unknown, limit = MAX_JSON_DEPTH): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop() as [unknown, number];
    if (v === null || typeof v !== 'object') continue;
    const depth = d + 1;
    if (depth > max) max = depth;
    if (max > limit) return limit + 1;
    for (const x of Object.values(v)) if (x !== null && typeof x === 'object') stack.push([x, depth]);
  }
  return max;
}

/** A value as it appears in an error message: JSON, at most 80 characters ("..." when cut). */
export function showValue(v: unknown): string {
  const s = v === undefined ? 'nothing' : (safeStringify(v, 8) ?? String(v));
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
