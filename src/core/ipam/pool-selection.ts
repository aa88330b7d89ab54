/**
 * Which pool a dynamic RequestPool gets, and which held pool an explicit one collides with.
 * Pure. Dynamic selection is "first free block": walk each default base in order, in
 * blocks of its size, and jump past any held pool in the way, so the walk costs one step
 * per held pool, never one per block (a /48 cut into /64s has 65536 of them).
 */
import { type Family, lastAddress, networkOf, type Prefix, prefixesOverlap } from '../ip.ts';
import type { CompiledDefaultPool } from './default-pools.ts';

export interface HeldPool {
  readonly id: string;
  readonly prefix: Prefix;
}

/** A held pool overlapping `candidate` (any address space), if any. */
export function findOverlap(candidate: Prefix, held: readonly HeldPool[]): HeldPool | undefined {
  return held.find((h) => prefixesOverlap(candidate, h.prefix));
}

/** The first block of the default pools of `family` that overlaps no held pool. */
export function pickDynamicPool(
  defaults: readonly CompiledDefaultPool[],
  family: Family,
  held: readonly Prefix[],
): Prefix | undefined {
  const bits = BigInt(family === 4 ? 32 : 128);
  for (const d of defaults) {
    if (d.base.family !== family) continue;
    const step = 1n << (bits - BigInt(d.size));
    const end = lastAddress(d.base);
    const inBase = held.filter((h) => prefixesOverlap(h, d.base));
    let at = networkOf(d.base).value;
    while (at + step - 1n <= end) {
      const candidate: Prefix = { family, value: at, length: d.size };
      const blocker = inBase.find((h) => prefixesOverlap(candidate, h));
      if (!blocker) return candidate;
      // Jump to the first block boundary after the blocker (it may be larger than a block).
      const after = lastAddress(blocker) + 1n;
      const aligned = ((after + step - 1n) / step) * step;
      at = aligned > at ? aligned : at + step;
    }
  }
  return undefined;
}
