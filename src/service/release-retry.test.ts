import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { IpamDriver } from '../core/contracts.ts';
import { errors } from '../core/errors.ts';
import { silentLogger } from '../obs/logger.ts';
import { ReleaseRetry } from './release-retry.ts';

function fakeIpam(full: () => boolean) {
  const calls: string[] = [];
  const fail = (what: string) => {
    calls.push(what);
    if (full()) throw errors.storeFull('state database txn failed on /s/state.db: the disk is full');
  };
  const ipam: IpamDriver = {
    capabilities: () => ({ requiresMacAddress: false, requiresRequestReplay: false }),
    defaultAddressSpaces: () => ({ local: 'L', global: 'G' }),
    requestPool: async () => ({ poolId: 'P1', pool: '198.18.0.0/24', data: {} }),
    releasePool: async (id) => fail(`pool ${id}`),
    requestAddress: async () => ({ address: '198.18.0.5/24', data: {} }),
    releaseAddress: async (id, a) => fail(`addr ${id} ${a}`),
  };
  return { ipam, calls };
}

describe('ReleaseRetry (M1: failed releases on a full disk)', () => {
  it('answers Err, remembers the release, and retries it until the disk has space', async () => {
    let full = true;
    const f = fakeIpam(() => full);
    const r = new ReleaseRetry(f.ipam, silentLogger);
    await assert.rejects(r.releaseAddress('P1', '198.18.0.5'), { code: 'TRUSS_ERR_STORE_FULL' });
    await assert.rejects(r.releasePool('P2'), { code: 'TRUSS_ERR_STORE_FULL' });
    assert.equal(r.pending(), 2);
    assert.equal(await r.retry(), 0);
    assert.equal(r.pending(), 2);
    full = false;
    assert.equal(await r.retry(), 2);
    assert.equal(r.pending(), 0);
    assert.deepEqual(f.calls.slice(-2), ['addr P1 198.18.0.5', 'pool P2']);
  });

  it('drops a queued release when the address is handed out or the pool requested again', async () => {
    const f = fakeIpam(() => true);
    const r = new ReleaseRetry(f.ipam, silentLogger);
    await assert.rejects(r.releaseAddress('P1', '198.18.0.5'));
    await r.requestAddress({ poolId: 'P1', options: {} } as never);
    assert.equal(r.pending(), 0);
    await assert.rejects(r.releasePool('P1'));
    await r.requestPool({} as never);
    assert.equal(r.pending(), 0);
  });

  it('does not retry other store errors (their outcome is unknown)', async () => {
    const ipam = {
      ...fakeIpam(() => false).ipam,
      releasePool: async () => Promise.reject(errors.storeUnavailable('I/O error')),
    };
    const r = new ReleaseRetry(ipam, silentLogger);
    await assert.rejects(r.releasePool('P1'));
    assert.equal(r.pending(), 0);
  });
});
