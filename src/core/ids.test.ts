import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { endpointId, networkId } from './ids.ts';

describe('ids', () => {
  it('a 64-character hex id becomes a NetworkId or EndpointId unchanged', () => {
    const hex = `0123456789abcdef${'a'.repeat(48)}`;
    assert.equal(networkId(hex), hex);
    assert.equal(endpointId(hex), hex);
  });

  it('anything else is refused with TRUSS_ERR_ID_INVALID naming the field', () => {
    for (const bad of ['', 'xyz', 'A'.repeat(64), 'a'.repeat(63), 'a'.repeat(65), `${'a'.repeat(63)}g`]) {
      assert.throws(() => networkId(bad), {
        code: 'TRUSS_ERR_ID_INVALID',
        message: /^NetworkID must be a 64-character hex id/,
      });
      assert.throws(() => endpointId(bad), { code: 'TRUSS_ERR_ID_INVALID', message: /^EndpointID must be/ });
    }
    assert.throws(() => networkId('x', 'network id'), { message: /^network id must be/ });
  });
});
