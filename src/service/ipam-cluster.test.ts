import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterIpam } from '../cluster/cluster-ipam.ts';
import { type Ip, type Prefix, parseIp, parsePrefix } from '../core/ip.ts';
import { silentLogger } from '../obs/logger.ts';
import { MemoryStore } from '../store/memory.ts';
import { IntentRepo } from './intent.ts';
import { IpamService } from './ipam-service.ts';
import { Journal } from './journal.ts';
import { createSettler } from './settle.ts';

const SUBNET = '198.18.64.0/20';

/** One host: its own local store, the shared cluster store, and a cluster network on SUBNET once attached. */
function host(node: string, shared: MemoryStore) {
  let attached = false;
  const cluster = new ClusterIpam({ store: shared, node, log: silentLogger });
  const store = new MemoryStore();
  const journal = new Journal({ store, log: silentLogger });
  const ipam = new IpamService({
    store,
    log: silentLogger,
    defaultPools: [],
    journal,
    cluster: {
      ipam: cluster,
      clusterForPool: async (pool) => (attached && pool === SUBNET ? 'blue' : undefined),
    },
  });
  // what CreateNetwork with truss.cluster does (ClusterMembership.joinNetwork): the gateway is shared
  const attach = async () => {
    await cluster.reserveShared('blue', parsePrefix(SUBNET) as Prefix, parseIp('198.18.64.1') as Ip);
    attached = true;
  };
  journal.settleWith(createSettler({ repo: new IntentRepo(store), ipam, trigger: () => {}, log: silentLogger }));
  return { ipam, attach, journal, store, cluster };
}

describe('IPAM of cluster networks', () => {
  it('every host gets the same gateway locally; endpoint addresses are unique across hosts', async () => {
    const shared = new MemoryStore();
    const hs = [host('a', shared), host('b', shared), host('c', shared)];
    const pools: string[] = [];
    for (const h of hs) {
      const p = await h.ipam.requestPool({
        addressSpace: 'TrussLocal',
        pool: SUBNET,
        subPool: '',
        options: {},
        v6: false,
      });
      const gw = await h.ipam.requestAddress({
        poolId: p.poolId,
        address: '',
        options: { RequestAddressType: 'com.docker.network.gateway' },
      });
      assert.equal(gw.address, '198.18.64.1/20');
      await h.attach();
      pools.push(p.poolId);
    }
    const got = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        hs[i % 3]!.ipam.requestAddress({ poolId: pools[i % 3]!, address: '', options: {} }).then((r) => r.address),
      ),
    );
    assert.equal(new Set(got).size, 30, `duplicates: ${got}`);
    assert.ok(!got.includes('198.18.64.1/20'));
  });

  it('release frees the cluster claim too', async () => {
    const shared = new MemoryStore();
    const a = host('a', shared);
    const b = host('b', shared);
    const pa = await a.ipam.requestPool({
      addressSpace: 'TrussLocal',
      pool: SUBNET,
      subPool: '',
      options: {},
      v6: false,
    });
    const pb = await b.ipam.requestPool({
      addressSpace: 'TrussLocal',
      pool: SUBNET,
      subPool: '',
      options: {},
      v6: false,
    });
    await a.attach();
    await b.attach();
    const x = await a.ipam.requestAddress({ poolId: pa.poolId, address: '', options: {} });
    const ip = x.address.split('/')[0]!;
    await assert.rejects(b.ipam.requestAddress({ poolId: pb.poolId, address: ip, options: {} }), {
      code: 'TRUSS_ERR_ADDRESS_IN_USE',
      message: /block .* of host a/,
    });
    await a.ipam.releaseAddress(pa.poolId, ip);
    const again = await a.ipam.requestAddress({ poolId: pa.poolId, address: ip, options: {} });
    assert.equal(again.address, x.address);
  });

  it('a RequestAddress whose reply was lost frees its cluster claim; a settle frees no claim it does not back', async () => {
    const shared = new MemoryStore();
    const a = host('a', shared);
    const req = { addressSpace: 'TrussLocal', pool: SUBNET, subPool: '', options: {}, v6: false };
    const pa = await a.ipam.requestPool(req);
    await a.attach();
    const ask = (address: string, replied?: Promise<boolean>) =>
      a.ipam.requestAddress({ poolId: pa.poolId, address, options: {} }, replied ? { replied } : undefined);
    const lost = Promise.withResolvers<boolean>();
    await ask('198.18.64.9', lost.promise);
    lost.resolve(false);
    await new Promise((r) => setTimeout(r, 20));
    await ask('198.18.64.9'); // local record and claim both gone: the address can be claimed again
    // crash-left entries (the reply never resolves); then dockerd released both addresses, and a
    // newer request claimed .11 in the cluster but crashed before its local record
    await ask('198.18.64.10', new Promise(() => {}));
    await ask('198.18.64.11', new Promise(() => {}));
    await a.ipam.releaseAddress(pa.poolId, '198.18.64.10');
    await a.ipam.releaseAddress(pa.poolId, '198.18.64.11');
    await ask('198.18.64.10'); // handed out again
    await a.cluster.allocate('blue', parsePrefix(SUBNET) as Prefix, parseIp('198.18.64.11') as Ip);
    // the restart: a new journal over the same local store settles both entries
    const again = new Journal({ store: a.store, log: silentLogger });
    again.settleWith(
      createSettler({ repo: new IntentRepo(a.store), ipam: a.ipam, trigger: () => {}, log: silentLogger }),
    );
    assert.equal(await again.settleLeftovers(), 2);
    await assert.rejects(
      ask('198.18.64.10'),
      { code: 'TRUSS_ERR_ADDRESS_IN_USE', message: /already used \(host a\)/ },
      'the new holder of .10 keeps its claim',
    );
    const local = (await a.store.list('/truss/v1/ipam/addrs/')).items.map((kv) => kv.key.split('/').pop());
    assert.deepEqual(local, ['198.18.64.10', '198.18.64.9'], 'and its local record');
    await assert.rejects(
      ask('198.18.64.11'),
      { code: 'TRUSS_ERR_ADDRESS_IN_USE', message: /already used \(host a\)/ },
      'the newer claim on .11 stays',
    );
  });
});
