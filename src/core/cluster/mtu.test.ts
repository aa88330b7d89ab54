import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { computeVxlanMtu, computeWireguardMtu } from './mtu.ts';

describe('computeWireguardMtu', () => {
  it('is floor16(M − outer IP − 8 − 32)', () => {
    assert.equal(computeWireguardMtu(1500, 4), 1440);
    assert.equal(computeWireguardMtu(1500, 6), 1408);
    assert.equal(computeWireguardMtu(1450, 4), 1376);
    assert.equal(computeWireguardMtu(9000, 4), 8928);
    assert.equal(computeWireguardMtu(9000, 6), 8912);
    assert.equal(computeWireguardMtu(1280, 6), 1200);
  });
  it('always fits: a padded full-size inner packet plus overhead never exceeds the underlay', () => {
    fc.assert(
      fc.property(fc.integer({ min: 576, max: 65535 }), fc.constantFrom(4 as const, 6 as const), (m, f) => {
        const inner = computeWireguardMtu(m, f);
        const outer = (f === 4 ? 20 : 40) + 8 + 32;
        return inner % 16 === 0 && inner + outer <= m && inner + 16 + outer > m;
      }),
    );
  });
  it('refuses nonsense', () => {
    assert.throws(() => computeWireguardMtu(100, 4), { code: 'TRUSS_ERR_OPTION_INVALID' });
    assert.throws(() => computeWireguardMtu(1500.5, 4), { code: 'TRUSS_ERR_OPTION_INVALID' });
  });
});

describe('computeVxlanMtu', () => {
  it('is the underlay MTU less 50 (IPv4) or 70 (IPv6)', () => {
    assert.equal(computeVxlanMtu(1500, 4), 1450);
    assert.equal(computeVxlanMtu(1500, 6), 1430);
    assert.equal(computeVxlanMtu(9000, 4), 8950);
    assert.throws(() => computeVxlanMtu(100, 4), { code: 'TRUSS_ERR_OPTION_INVALID', message: /underlay MTU/ });
  });
});
