import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { PolicyObject } from '../../core/desired.ts';
import {
  type Family,
  formatPrefix,
  hostMask,
  type Prefix,
  parseIp,
  parsePrefix,
  prefixContains,
} from '../../core/ip.ts';
import type { IngressRule } from '../../core/policy/model.ts';
import { admits } from '../../core/policy/parse.ts';
import {
  checkPolicyObject,
  computePolicySets,
  disjointElements,
  formatSetPrefix,
  formatSourced,
  mergeRanges,
  outermostPrefixes,
  type PolicySets,
  type Range,
  type SourcedRange,
  subtractRanges,
} from './policy-sets.ts';

const P = (s: string): Prefix => parsePrefix(s) as Prefix;
const policy = (over: Partial<PolicyObject>): PolicyObject => ({
  name: 'ep_0123456789ab',
  endpointId: `0123456789ab${'0'.repeat(52)}`,
  networkId: 'f'.repeat(64),
  addresses: ['198.18.1.5'],
  rules: [],
  ...over,
});

describe('ranges', () => {
  it('merges overlapping and adjacent ranges, sorted', () => {
    assert.deepEqual(
      mergeRanges([
        [8000, 8100],
        [80, 80],
        [81, 85],
        [8050, 9000],
        [10, 10],
      ]),
      [
        [10, 10],
        [80, 85],
        [8000, 9000],
      ],
    );
  });

  it('subtracts', () => {
    assert.deepEqual(subtractRanges([[1, 100]], [[10, 20]]), [
      [1, 9],
      [21, 100],
    ]);
    assert.deepEqual(subtractRanges([[1, 100]], [[0, 65535]]), []);
    assert.deepEqual(
      subtractRanges(
        [
          [1, 5],
          [50, 60],
        ],
        [
          [3, 52],
          [60, 60],
        ],
      ),
      [
        [1, 2],
        [53, 59],
      ],
    );
  });
});

describe('disjointElements', () => {
  it('nested prefixes keep only ports their ancestors and `any` do not admit', () => {
    const els = disjointElements(
      [[80, 80]],
      [
        [P('198.18.7.0/24'), [80, 90]],
        [P('198.18.0.0/16'), [5400, 5500]],
        [P('198.18.7.0/24'), [5432, 5432]],
        [P('198.18.7.0/25'), [0, 65535]],
      ],
    );
    assert.deepEqual(els.map(formatSourced), [
      '198.18.0.0/16 . 5400-5500',
      '198.18.7.0/24 . 81-90',
      '198.18.7.0/25 . 0-79',
      '198.18.7.0/25 . 91-5399',
      '198.18.7.0/25 . 5501-65535',
    ]);
  });

  it('keeps host prefixes and prints them bare, as nft does', () => {
    const els = disjointElements([], [[P('fd00:7::1/128'), [53, 53]]]);
    assert.deepEqual(els.map(formatSourced), ['fd00:7::1 . 53']);
    assert.equal(formatSetPrefix(P('198.18.1.2/32')), '198.18.1.2');
  });
});

describe('outermostPrefixes', () => {
  it('drops prefixes inside others and duplicates', () => {
    const out = outermostPrefixes([P('198.18.7.0/24'), P('198.18.0.0/16'), P('198.19.0.0/24'), P('198.18.0.0/16')]);
    assert.deepEqual(out.map(formatPrefix), ['198.18.0.0/16', '198.19.0.0/24']);
  });
});

describe('checkPolicyObject', () => {
  it('canonicalises, sorts and splits the addresses by family', () => {
    const c = checkPolicyObject(policy({ addresses: ['FD00:1::5', '198.18.1.5', '198.18.1.4', '198.18.1.5'] }));
    assert.deepEqual([c.addresses4, c.addresses6], [['198.18.1.4', '198.18.1.5'], ['fd00:1::5']]);
  });

  const bad: [string, Partial<PolicyObject>][] = [
    ['chain name', { name: 'ep_0123456789AB' }],
    ['chain name with nft text', { name: 'ep_0123456789ab; flush ruleset' }],
    ['address', { addresses: ['198.18.1.5 } ; flush ruleset ; {'] }],
    ['address with leading zero', { addresses: ['198.18.1.05'] }],
    ['port 0', { rules: [{ proto: 'tcp', ports: { from: 0, to: 80 } }] }],
    ['port range reversed', { rules: [{ proto: 'tcp', ports: { from: 90, to: 80 } }] }],
    ['port beyond 65535', { rules: [{ proto: 'udp', ports: { from: 1, to: 65536 } }] }],
    ['icmp with ports', { rules: [{ proto: 'icmp', ports: { from: 1, to: 2 } }] }],
    ['unknown proto', { rules: [{ proto: 'sctp', ports: { from: 1, to: 2 } } as unknown as IngressRule] }],
    ['source with host bits', { rules: [{ proto: 'tcp', ports: { from: 1, to: 2 }, source: '198.18.7.1/24' }] }],
    ['source not canonical', { rules: [{ proto: 'tcp', ports: { from: 1, to: 2 }, source: 'FD00::/8' }] }],
    ['source with text', { rules: [{ proto: 'icmp', source: '198.18.0.0/16 } accept' }] }],
  ];
  for (const [what, over] of bad) {
    it(`refuses a bad ${what}`, () => {
      assert.throws(() => checkPolicyObject(policy(over)), { name: 'TrussError' });
    });
  }
});

// ---------- property: what the sets admit is exactly what admits() admits ----------

function inSets(s: PolicySets, proto: 'tcp' | 'udp' | 'icmp', src: string, port: number): boolean {
  const ip = parseIp(src);
  if (!ip) return false;
  if (proto === 'icmp') return s.icmpAny || s[`icmp${ip.family}`].some((p) => prefixContains(p, ip));
  const inRange = ([a, b]: Range): boolean => port >= a && port <= b;
  return s[proto].some(inRange) || s[`${proto}${ip.family}`].some(([p, r]) => prefixContains(p, ip) && inRange(r));
}

const boxesMeet = ([pa, ra]: SourcedRange, [pb, rb]: SourcedRange): boolean => {
  const outer = pa.length <= pb.length ? pa : pb;
  const inner = outer === pa ? pb : pa;
  const nested = (inner.value & ~hostMask(outer.family, outer.length)) === outer.value;
  return nested && ra[0] <= rb[1] && rb[0] <= ra[1];
};

// A small address space (198.18.0.0/22, fd00::/126-ish) so random sources and flows collide often.
const v4Prefix = fc
  .tuple(fc.integer({ min: 0, max: 1023 }), fc.integer({ min: 22, max: 32 }))
  .map(([n, len]) => formatPrefix({ family: 4, value: (0xc6120000n + BigInt(n)) & ~hostMask(4, len), length: len }));
const v6Prefix = fc
  .tuple(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 124, max: 128 }))
  .map(([n, len]) =>
    formatPrefix({ family: 6, value: (0xfdn << 120n) + (BigInt(n) & ~hostMask(6, len)), length: len }),
  );
const port = fc.integer({ min: 1, max: 40 });
const ruleArb: fc.Arbitrary<IngressRule> = fc.oneof(
  fc
    .tuple(fc.constantFrom('tcp' as const, 'udp' as const), port, port, fc.option(fc.oneof(v4Prefix, v6Prefix)))
    .map(([proto, a, b, source]) => ({
      proto,
      ports: { from: Math.min(a, b), to: Math.max(a, b) },
      ...(source === null ? {} : { source }),
    })),
  fc.option(fc.oneof(v4Prefix, v6Prefix)).map((source) => ({ proto: 'icmp' as const, ...(source ? { source } : {}) })),
);
const srcArb = fc.oneof(
  fc.integer({ min: 0, max: 1023 }).map((n) => formatPrefix({ family: 4, value: 0xc6120000n + BigInt(n), length: 32 })),
  fc
    .integer({ min: 0, max: 15 })
    .map((n) => formatPrefix({ family: 6, value: (0xfdn << 120n) + BigInt(n), length: 128 })),
);

describe('computePolicySets (property)', () => {
  it('admits exactly what admits() admits, with pairwise disjoint concatenation elements', () => {
    fc.assert(
      fc.property(
        fc.array(ruleArb, { maxLength: 12 }),
        fc.array(fc.tuple(fc.constantFrom('tcp' as const, 'udp' as const, 'icmp' as const), srcArb, port), {
          maxLength: 30,
        }),
        (rules, flows) => {
          const s = computePolicySets(rules);
          for (const [proto, src, p] of flows) {
            const bare = src.split('/')[0] as string;
            const flow = proto === 'icmp' ? { proto, source: bare } : { proto, port: p, source: bare };
            assert.equal(inSets(s, proto, bare, p), admits(rules, flow), JSON.stringify({ rules, flow }));
          }
          for (const key of ['tcp4', 'tcp6', 'udp4', 'udp6'] as const) {
            const els = s[key];
            els.forEach((a, i) => {
              for (const b of els.slice(i + 1)) assert.equal(boxesMeet(a, b), false, `${key}: ${formatSourced(a)}`);
            });
          }
          for (const fam of [4, 6] as Family[]) {
            const ps = s[`icmp${fam}`];
            ps.forEach((a, i) => {
              for (const b of ps.slice(i + 1)) assert.equal(boxesMeet([a, [0, 0]], [b, [0, 0]]), false);
            });
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('handles a 10,000-rule allow-list quickly', () => {
    const rules: IngressRule[] = [];
    for (let i = 0; i < 10_000; i++) {
      rules.push({ proto: 'tcp', ports: { from: 10_000 + i * 2, to: 10_000 + i * 2 } });
      if (i % 10 === 0) {
        rules.push({ proto: 'udp', ports: { from: 1000 + i, to: 1000 + i }, source: `198.18.${i % 256}.0/24` });
      }
    }
    const t0 = performance.now();
    const s = computePolicySets(rules);
    assert.equal(s.tcp.length, 10_000);
    assert.equal(s.udp4.length, 1000);
    assert.ok(performance.now() - t0 < 1000);
  });
});
