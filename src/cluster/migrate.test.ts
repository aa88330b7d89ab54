import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clusterKeys } from '../core/cluster/model.ts';
import { silentLogger } from '../obs/logger.ts';
import { MemoryStore } from '../store/memory.ts';
import type { Store } from '../store/store.ts';
import { ClusterAgent } from './agent.ts';
import { ClusterIpam } from './cluster-ipam.ts';
import { migrateLegacy } from './migrate.ts';
import { SwitchableStore } from './testing.ts';

const V1 = '/truss/v1/cluster/';
const put = (s: Store, key: string, v: unknown) => s.txn([], [{ type: 'put', key, value: JSON.stringify(v) }]);

/** The v1 layout as truss before owner prefixes left it: hosts a and b in cluster blue. */
async function legacy(store: Store) {
  await put(store, `${V1}networks/blue`, {
    name: 'blue',
    subnets: ['198.18.64.0/20'],
    encrypt: true,
    fingerprint: 'f',
  });
  await put(store, `${V1}blocks/blue/198.18.64.0_26`, { cluster: 'blue', block: '198.18.64.0/26', node: 'a' });
  await put(store, `${V1}blocks/blue/198.18.64.64_26`, { cluster: 'blue', block: '198.18.64.64/26', node: 'b' });
  await put(store, `${V1}addrs/blue/198.18.64.1`, { cluster: 'blue', address: '198.18.64.1', node: '*' });
  await put(store, `${V1}addrs/blue/198.18.64.2`, { cluster: 'blue', address: '198.18.64.2', node: 'a', owner: 'c1' });
  await put(store, `${V1}addrs/blue/198.18.64.65`, { cluster: 'blue', address: '198.18.64.65', node: 'b' });
  await store.txn([], [{ type: 'put', key: `${V1}addrs/blue/198.18.64.3`, value: 'null' }]);
}

describe('migrateLegacy (v1 cluster layout -> owner layout)', () => {
  it("moves this host's blocks and claims, copies the shared gateway and the network record; idempotent", async () => {
    const store = new MemoryStore();
    await legacy(store);
    assert.deepEqual(await migrateLegacy(store, 'a', ['blue']), { moved: 4, dropped: 0 });
    const keys = (await store.list('/truss/')).items.map((kv) => kv.key);
    assert.deepEqual(keys, [
      `${V1}addrs/blue/198.18.64.1`, // shared: left for hosts not upgraded yet
      `${V1}addrs/blue/198.18.64.3`, // malformed: nobody's
      `${V1}addrs/blue/198.18.64.65`, // b's: b moves it itself
      `${V1}blocks/blue/198.18.64.64_26`,
      `${V1}networks/blue`,
      clusterKeys.addr('blue', '198.18.64.2', 'a'),
      clusterKeys.block('blue', '198.18.64.0/26', 'a'),
      clusterKeys.network('blue', 'a'),
      clusterKeys.shared('blue', '198.18.64.1', 'a'),
    ]);
    const claim = JSON.parse((await store.get(clusterKeys.addr('blue', '198.18.64.2', 'a')))?.value ?? '');
    assert.deepEqual(claim, { cluster: 'blue', address: '198.18.64.2', node: 'a', owner: 'c1' });
    assert.deepEqual(await migrateLegacy(store, 'a', ['blue']), { moved: 0, dropped: 0 });
  });

  it('a move cut short (new key written, old one not deleted) finishes by deleting the old key', async () => {
    const store = new MemoryStore();
    await legacy(store);
    await put(store, clusterKeys.block('blue', '198.18.64.0/26', 'a'), {
      cluster: 'blue',
      block: '198.18.64.0/26',
      node: 'a',
    });
    assert.deepEqual(await migrateLegacy(store, 'a', []), { moved: 1, dropped: 1 });
    assert.equal(await store.get(`${V1}blocks/blue/198.18.64.0_26`), undefined);
  });

  it('a host not upgraded yet keeps its blocks: upgraded hosts never claim over them', async () => {
    const store = new MemoryStore();
    await legacy(store);
    const c = new ClusterIpam({ store, node: 'c', log: silentLogger });
    const sub = { family: 4 as const, value: (198n << 24n) | (18n << 16n) | (64n << 8n), length: 20 };
    const got = await c.allocate('blue', sub);
    assert.equal(got.value & 0xffffffc0n, (198n << 24n) | (18n << 16n) | (64n << 8n) | 128n, 'the third block');
  });

  it('the agent moves its records at start and then works on the new layout', async () => {
    const store = new SwitchableStore(new MemoryStore());
    await legacy(store);
    const ipam = new ClusterIpam({ store, node: 'a', log: silentLogger });
    const agent = new ClusterAgent({
      store,
      node: { name: 'a', address: '198.18.255.1', wgPublicKey: 'k', wgPort: 51820 },
      mtu: { wireguard: 1440, vxlan: 1450 },
      ipam,
      log: silentLogger,
      onChange: () => {},
      localClusters: async () => ['blue'],
      retryMs: 10,
    });
    agent.start();
    await agent.connected();
    assert.equal(await store.get(`${V1}blocks/blue/198.18.64.0_26`), undefined);
    assert.deepEqual([...(await ipam.blocks('blue'))].sort(), [
      ['198.18.64.0/26', 'a'],
      ['198.18.64.64/26', 'b'],
    ]);
    await agent.joinNetwork({ name: 'blue', subnets: ['198.18.64.0/20'], encrypt: true, fingerprint: 'f', shared: [] });
    const view = agent.view();
    assert.deepEqual(
      view?.blocks.map((b) => [b.block, b.node]),
      [['198.18.64.0/26', 'a']],
    );
    await agent.stop();
  });
});
