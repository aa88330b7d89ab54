import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { clusterKeys, type NodeRecord } from '../core/cluster/model.ts';
import { formatIp, type Ip, type Prefix, parseIp, parsePrefix } from '../core/ip.ts';
import { silentLogger } from '../obs/logger.ts';
import { openEtcdStore } from '../store/etcd.ts';
import { type EtcdServer, startEtcd } from '../store/etcd-testutil.ts';
import { MemoryStore } from '../store/memory.ts';
import type { Store } from '../store/store.ts';
import { ClusterIpam } from './cluster-ipam.ts';
import { deleteUnchanged, forgetNode, listHeld, releaseHeld } from './reclaim.ts';

const subnet = parsePrefix('198.18.64.0/20') as Prefix;
const ip = (s: string): Ip => parseIp(s) as Ip;
const node = (name: string): NodeRecord => ({ name, address: '198.18.255.1', wgPublicKey: 'k', wgPort: 51820 });
const put = (store: Store, key: string, value: unknown) =>
  store.txn([], [{ type: 'put', key, value: JSON.stringify(value) }]);

/** a and b hold addresses in blue (and a in green); the gateway is shared. */
async function cluster(store: Store) {
  const a = new ClusterIpam({ store, node: 'a', log: silentLogger });
  const b = new ClusterIpam({ store, node: 'b', log: silentLogger });
  await a.reserveShared('blue', subnet, ip('198.18.64.1'));
  await b.reserveShared('blue', subnet, ip('198.18.64.1'));
  const mine = [await a.allocate('blue', subnet), await a.allocate('blue', subnet)];
  const theirs = await b.allocate('blue', subnet);
  await a.allocate('green', subnet);
  await put(store, clusterKeys.member('blue', 'a'), { cluster: 'blue', node: 'a' });
  await put(store, clusterKeys.member('green', 'a'), { cluster: 'green', node: 'a' });
  return { a, b, mine, theirs };
}

function suite(name: string, make: () => Promise<Store>) {
  describe(`cluster reclaim (${name})`, () => {
    it('releaseHeld frees one host’s claims and blocks of one cluster, nothing else', async () => {
      const store = await make();
      const { a, b, mine, theirs } = await cluster(store);
      const r = await releaseHeld(store, 'blue', 'a');
      assert.deepEqual([...r.claims].sort(), mine.map(formatIp).sort());
      assert.deepEqual(r.blocks, ['198.18.64.0/26']);
      assert.deepEqual(await listHeld(store, 'blue', 'a'), { claims: [], blocks: [], shared: [] });
      assert.equal((await listHeld(store, 'green', 'a')).claims.length, 1, 'other clusters untouched');
      assert.equal((await listHeld(store, 'blue', 'b')).claims.length, 1, 'other hosts untouched');
      assert.ok(
        await store.get(clusterKeys.shared('blue', '198.18.64.1', 'b')),
        "b's record of the shared gateway stays",
      );
      // the space is back in the pool: b can take an address of a's former block
      assert.equal(formatIp(await b.allocate('blue', subnet, mine[0])), formatIp(mine[0] as Ip));
      assert.notEqual(formatIp(theirs), formatIp(mine[0] as Ip));
      await a.allocate('blue', subnet); // and a can come back
    });

    it('never deletes a record written again since it was read', async () => {
      const store = await make();
      const { a, mine } = await cluster(store);
      const { claims } = await listHeld(store, 'blue', 'a');
      // one of them is released and allocated again (new revision) before the delete
      await a.release('blue', mine[0] as Ip);
      await a.allocate('blue', subnet, mine[0]);
      const done = await deleteUnchanged(store, claims);
      assert.deepEqual(done, [clusterKeys.addr('blue', formatIp(mine[1] as Ip), 'a')]);
      assert.ok(await store.get(clusterKeys.addr('blue', formatIp(mine[0] as Ip), 'a')), 're-allocation kept');
    });

    it('stops when the guard fails (the host joined again)', async () => {
      const store = await make();
      await cluster(store);
      const guard = [{ key: clusterKeys.member('blue', 'a'), version: 0 }];
      const r = await releaseHeld(store, 'blue', 'a', { guard });
      assert.deepEqual(r, { cluster: 'blue', claims: [], blocks: [] });
      assert.equal((await listHeld(store, 'blue', 'a')).claims.length, 2);
    });

    it('forget refuses this host and a registered host; --force and a dead host work', async () => {
      const store = await make();
      await cluster(store);
      await assert.rejects(forgetNode(store, 'b', 'b', true), {
        code: 'TRUSS_ERR_NETWORK_CONFLICT',
        message: /is this host/,
      });
      await put(store, clusterKeys.node('a'), node('a'));
      await assert.rejects(forgetNode(store, 'a', 'b', false), {
        code: 'TRUSS_ERR_NETWORK_CONFLICT',
        message: /host a is registered .*--force/,
      });
      assert.equal((await listHeld(store, 'blue', 'a')).claims.length, 2, 'nothing freed when refused');
      const r = await forgetNode(store, 'a', 'b', true);
      assert.equal(r.wasRegistered, true);
      assert.deepEqual(
        r.clusters.map((c) => [c.cluster, c.claims.length, c.blocks.length, c.member]),
        [
          ['blue', 2, 1, true],
          ['green', 1, 1, true],
        ],
      );
      assert.equal(await store.get(clusterKeys.node('a')), undefined);
      assert.equal(await store.get(clusterKeys.member('blue', 'a')), undefined);
      assert.equal((await listHeld(store, 'blue', 'b')).claims.length, 1);
      // again: nothing left, and no lease means no --force needed
      assert.deepEqual(await forgetNode(store, 'a', 'b', false), { node: 'a', wasRegistered: false, clusters: [] });
    });

    it('forget by a display name points at the node id', async () => {
      const store = await make();
      await put(store, clusterKeys.node('0f0f'), { ...node('twin'), id: '0f0f' });
      await assert.rejects(forgetNode(store, 'twin', 'b', true), {
        code: 'TRUSS_ERR_REQUEST_INVALID',
        message:
          'twin is the name of host 0f0f (address 198.18.255.1); truss cluster forget takes its node id ' +
          '(the NODE ID column of truss status): truss cluster forget 0f0f',
      });
    });
  });
}

suite('memory store', async () => new MemoryStore());

describe('cluster reclaim against a real etcd', () => {
  let server: EtcdServer;
  const stores: Store[] = [];
  before(async () => {
    server = await startEtcd();
  });
  after(async () => {
    for (const s of stores) await s.close();
    await server?.stop();
  });
  let n = 0;
  suite('etcd', async () => {
    const store = await openEtcdStore({ endpoints: [server.endpoint], log: silentLogger, prefix: `/t${n++}` });
    stores.push(store);
    return store;
  });
});
