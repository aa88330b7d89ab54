import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { probeEtcd } from './cluster-status.ts';

describe('probeEtcd: how etcd answers now (status)', () => {
  it('reachable with its latency; a frozen etcd is unreachable after the timeout; an error is named', async () => {
    const ok = await probeEtcd({ revision: async () => 42 });
    assert.equal(ok.reachable, true);
    assert.equal(typeof ok.latencyMs, 'number');
    const started = Date.now();
    const frozen = await probeEtcd({ revision: () => new Promise<number>(() => {}) }, 50);
    assert.deepEqual(frozen, { reachable: false, error: 'no answer within 50 ms' });
    assert.ok(Date.now() - started < 1000);
    const refused = await probeEtcd({
      revision: async () => {
        throw new Error('etcd at 198.18.255.254:2379 is unavailable: ECONNREFUSED\nmore');
      },
    });
    assert.deepEqual(refused, { reachable: false, error: 'etcd at 198.18.255.254:2379 is unavailable: ECONNREFUSED' });
  });
});
