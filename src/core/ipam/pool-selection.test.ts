import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatPrefix, type Prefix, parsePrefix, prefixesOverlap, prefixWithin } from '../ip.ts';
import { compileDefaultPools } from './default-pools.ts';
import { findOverlap, pickDynamicPool } from './pool-selection.ts';

const p = (s: string): Prefix => parsePrefix(s)!;
const defaults = compileDefaultPools([
  { base: '198.18.0.0/22', size: 24 },
  { base: '198.19.0.0/16', size: 25 },
  { base: 'fd00:1::/48', size: 64 },
]);
const pick = (family: 4 | 6, held: string[]): string | undefined => {
  const r = pickDynamicPool(defaults, family, held.map(p));
  return r && formatPrefix(r);
};

describe('pickDynamicPool', () => {
  it('takes the first free block, skipping held pools of any size', () => {
    assert.equal(pick(4, []), '198.18.0.0/24');
    assert.equal(pick(4, ['198.18.0.0/24']), '198.18.1.0/24');
    assert.equal(pick(4, ['198.18.0.0/23']), '198.18.2.0/24');
    assert.equal(pick(4, ['198.18.0.128/25', '198.18.1.7/32']), '198.18.2.0/24');
    assert.equal(pick(4, ['198.18.0.0/16']), '198.19.0.0/25', 'moves on to the next base');
    assert.equal(pick(4, ['198.18.0.0/22', '198.19.0.0/25', '198.19.0.128/25']), '198.19.1.0/25');
    assert.equal(pick(4, ['198.18.0.0/15']), undefined);
    assert.equal(pick(4, ['fd00:1::/64']), '198.18.0.0/24', 'other families do not matter');
  });

  it('works on a /48 cut into /64s without walking 65536 blocks', () => {
    assert.equal(pick(6, []), 'fd00:1::/64');
    assert.equal(pick(6, ['fd00:1::/56']), 'fd00:1:0:100::/64');
    assert.equal(pick(6, ['fd00:1::/49']), 'fd00:1:0:8000::/64');
    assert.equal(pick(6, ['fd00:1::/48']), undefined);
    const t0 = performance.now();
    assert.equal(pick(6, ['fd00:1::/49', 'fd00:1:0:8000::/50', 'fd00:1:0:c000::/51']), 'fd00:1:0:e000::/64');
    assert.ok(performance.now() - t0 < 50);
  });

  it('never returns a block that overlaps a held pool or leaves its base (property)', () => {
    const base = p('198.18.0.0/22');
    const held = fc.array(
      fc
        .record({ off: fc.integer({ min: 0, max: 1023 }), len: fc.integer({ min: 20, max: 32 }) })
        .map(({ off, len }) => {
          const v = base.value + BigInt(off);
          const mask = (1n << BigInt(32 - len)) - 1n;
          return { family: 4 as const, value: v & ~mask, length: len };
        }),
      { maxLength: 8 },
    );
    fc.assert(
      fc.property(held, (hs) => {
        const r = pickDynamicPool(defaults.slice(0, 1), 4, hs);
        if (!r) {
          // then every /24 of the base overlaps something
          for (let i = 0n; i < 4n; i++) {
            const block = { family: 4 as const, value: base.value + i * 256n, length: 24 };
            assert.ok(hs.some((h) => prefixesOverlap(h, block)));
          }
          return;
        }
        assert.equal(r.length, 24);
        assert.ok(prefixWithin(r, base));
        assert.ok(!hs.some((h) => prefixesOverlap(h, r)));
      }),
    );
  });
});

describe('findOverlap', () => {
  it('names the held pool that overlaps, in any direction', () => {
    const held = [
      { id: 'TrussLocal/198.18.1.0/24', prefix: p('198.18.1.0/24') },
      { id: 'TrussGlobal/fd00::/64', prefix: p('fd00::/64') },
    ];
    assert.equal(findOverlap(p('198.18.0.0/16'), held)?.id, 'TrussLocal/198.18.1.0/24');
    assert.equal(findOverlap(p('198.18.1.128/25'), held)?.id, 'TrussLocal/198.18.1.0/24');
    assert.equal(findOverlap(p('198.18.2.0/24'), held), undefined);
    assert.equal(findOverlap(p('fd00::/48'), held)?.id, 'TrussGlobal/fd00::/64');
  });
});
