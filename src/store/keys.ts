/**
 * Rules every store shares: which keys are valid, the one key order (Unicode code point
 * order, which is also SQLite's BINARY order over UTF-8 and etcd's byte order), and the
 * checks on a transaction's ops before anything is written.
 */
import { errors } from '../core/errors.ts';
import type { Op } from './store.ts';

/** A key must be a non-empty, well-formed (no lone surrogates) string of at most 4096 chars. */
export function assertKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > 4096 || !key.isWellFormed()) {
    throw errors.internal(`store key ${JSON.stringify(key)} is invalid: keys are non-empty well-formed strings`);
  }
}

/** Put values must be strings; a key may appear at most once per branch (as etcd requires). */
export function assertOps(ops: readonly Op[]): void {
  const seen = new Set<string>();
  for (const op of ops) {
    assertKey(op.key);
    if (op.type === 'put' && typeof op.value !== 'string') {
      throw errors.internal(`store put of ${op.key} has a non-string value`);
    }
    if (seen.has(op.key)) throw errors.internal(`store txn names key ${op.key} twice in one branch`);
    seen.add(op.key);
  }
}

// UTF-16 code units sort surrogates (0xd800-0xdfff) below 0xe000-0xffff; code points sort them above.
const rank = (u: number): number => (u >= 0xd800 && u <= 0xdfff ? u + 0x2000 : u >= 0xe000 ? u - 0x800 : u);

/** Compare two keys in code point order (= UTF-8 byte order). */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return rank(x) - rank(y);
  }
  return a.length - b.length;
}

/**
 * The smallest key above every key starting with `prefix`, when one is easy to write:
 * the prefix with its last character incremented (a BMP character that stays outside the
 * surrogate range). undefined for "", or a prefix ending in U+D7FF, U+FFFF or a surrogate.
 */
export function prefixUpperBound(prefix: string): string | undefined {
  const last = prefix.charCodeAt(prefix.length - 1);
  if (Number.isNaN(last) || last === 0xd7ff || last === 0xffff || (last >= 0xd800 && last <= 0xdfff)) return undefined;
  return prefix.slice(0, -1) + String.fromCharCode(last + 1);
}
