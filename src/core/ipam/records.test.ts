import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AddressRecord, PoolRecord } from '../model.ts';
import { decodeAddressRecord, decodePoolRecord, encodeRecord } from './records.ts';

describe('IPAM records', () => {
  it('round-trip pools and addresses', () => {
    const pool: PoolRecord = {
      id: 'TrussLocal/198.18.1.0/24/198.18.1.128/25',
      addressSpace: 'TrussLocal',
      family: 4,
      pool: '198.18.1.0/24',
      subPool: '198.18.1.128/25',
      dynamic: false,
      cursor: '3323068800',
    };
    const d = decodePoolRecord('k', encodeRecord(pool));
    assert.deepEqual(d.record, pool);
    assert.equal(d.cursor, 3323068800n);
    assert.equal(d.subPrefix?.length, 25);
    const addr: AddressRecord = { poolId: pool.id, address: '198.18.1.130', kind: 'endpoint', owner: 'web' };
    assert.deepEqual(decodeAddressRecord('k', encodeRecord(addr)).record, addr);
  });

  it('report corrupt records with their key', () => {
    assert.throws(() => decodePoolRecord('/truss/v1/ipam/pools/x', '{'), /\/truss\/v1\/ipam\/pools\/x is not a JSON/);
    assert.throws(
      () => decodePoolRecord('k', '{"id":"a","addressSpace":"s","family":6,"pool":"198.18.0.0/15"}'),
      /pool/,
    );
    assert.throws(
      () => decodePoolRecord('k', '{"id":"a","addressSpace":"s","family":4,"pool":"198.18.0.0/15","cursor":"-1"}'),
      /cursor/,
    );
    assert.throws(() => decodeAddressRecord('k', '{"poolId":"a","address":"198.18.0.1","kind":"x"}'), /kind/);
    assert.throws(() => decodeAddressRecord('k', '[]'), { code: 'TRUSS_ERR_INTERNAL' });
  });
});
