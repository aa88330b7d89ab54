import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clusterOfPool, localUseByCluster } from './local-use.ts';

const nets = [
  { ipv4: [{ pool: '198.18.1.0/24' }], ipv6: [] },
  { cluster: { name: 'blue' }, ipv4: [{ pool: '198.18.2.0/24' }], ipv6: [{ pool: 'fd00:2::/64' }] },
  { cluster: { name: 'blue' }, ipv4: [{ pool: '198.18.3.0/24' }], ipv6: [] },
  { cluster: { name: 'red' }, ipv4: [{ pool: '198.18.4.0/24' }], ipv6: [] },
];

describe('cluster local use', () => {
  it('finds the cluster of a pool, none for a local network', () => {
    assert.equal(clusterOfPool(nets, 'fd00:2::/64'), 'blue');
    assert.equal(clusterOfPool(nets, '198.18.4.0/24'), 'red');
    assert.equal(clusterOfPool(nets, '198.18.1.0/24'), undefined);
    assert.equal(clusterOfPool(nets, '198.18.9.0/24'), undefined);
  });
  it('collects the addresses per cluster, a cluster without addresses included', () => {
    const byPool = new Map([
      ['198.18.1.0/24', new Set(['198.18.1.2'])],
      ['198.18.2.0/24', new Set(['198.18.2.2'])],
      ['fd00:2::/64', new Set(['fd00:2::2'])],
      ['198.18.3.0/24', new Set(['198.18.3.2', '198.18.3.3'])],
    ]);
    const use = localUseByCluster(nets, byPool);
    assert.deepEqual(
      [...use].map(([c, s]) => [c, [...s].sort()]),
      [
        ['blue', ['198.18.2.2', '198.18.3.2', '198.18.3.3', 'fd00:2::2']],
        ['red', []],
      ],
    );
  });
});
