import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clusterKeys } from '../core/cluster/model.ts';
import { formatIp, type Ip, type Prefix, parseIp, parsePrefix } from '../core/ip.ts';
import { silentLogger } from '../obs/logger.ts';
import { MemoryStore } from '../store/memory.ts';
import { ClusterAgent, type ClusterStore } from './agent.ts';
import { ClusterIpam } from './cluster-ipam.ts';
import { listHeld } from './reclaim.ts';
import { SwitchableStore } from './testing.ts';

const SUBNET = '198.18.64.0/20';
const subnet = parsePrefix(SUBNET) as Prefix;
const join = { name: 'blue', subnets: [SUBNET], encrypt: true, fingerprint: 'f', shared: ['198.18.64.1/20'] };

async function agent(store: SwitchableStore, name: string) {
  const ipam = new ClusterIpam({ store, node: name, log: silentLogger });
  const a = new ClusterAgent({
    store,
    node: { name, address: '198.18.255.1', wgPublicKey: 'k', wgPort: 51820 },
    mtu: { wireguard: 1440, vxlan: 1450 },
    ipam,
    log: silentLogger,
    onChange: () => {},
    localClusters: async () => [],
    retryMs: 10,
  });
  a.start();
  await a.connected();
  return { agent: a, ipam };
}

describe('ClusterAgent leave', () => {
  it('releases membership, claims and blocks; the shared gateway and other hosts stay', async () => {
    const store = new SwitchableStore(new MemoryStore());
    const a = await agent(store, 'a');
    const b = await agent(store, 'b');
    await a.agent.joinNetwork(join);
    await b.agent.joinNetwork(join);
    for (let i = 0; i < 70; i++) await a.ipam.allocate('blue', subnet); // two blocks
    await b.ipam.allocate('blue', subnet);
    assert.ok(a.agent.joined('blue'));
    const r = await a.agent.leaveNetwork('blue');
    assert.equal(r.claims.length, 70);
    assert.deepEqual(r.blocks, ['198.18.64.0/26', '198.18.64.64/26']);
    assert.equal(a.agent.joined('blue'), false);
    assert.equal(await store.get(clusterKeys.member('blue', 'a')), undefined);
    assert.deepEqual(await listHeld(store, 'blue', 'a'), { claims: [], blocks: [], shared: [] });
    assert.ok(await store.get(clusterKeys.member('blue', 'b')));
    assert.ok(await store.get(clusterKeys.shared('blue', '198.18.64.1', 'b')));
    assert.equal((await listHeld(store, 'blue', 'b')).claims.length, 1);
    // the space is back in the pool: b may now take an address of a's former block
    assert.equal(formatIp(await b.ipam.allocate('blue', subnet, parseIp('198.18.64.2') as Ip)), '198.18.64.2');
    await a.agent.stop();
    await b.agent.stop();
  });

  it('a leave while etcd is down fails and keeps everything (a crash or outage is not a leave)', async () => {
    const store = new SwitchableStore(new MemoryStore());
    const a = await agent(store, 'a');
    await a.agent.joinNetwork(join);
    await a.ipam.allocate('blue', subnet);
    store.down = true;
    await assert.rejects(a.agent.leaveNetwork('blue'), { code: 'TRUSS_ERR_STORE_UNAVAILABLE' });
    store.down = false;
    assert.equal((await listHeld(store, 'blue', 'a')).claims.length, 1);
    await a.agent.stop();
  });

  it('a join during the release stops it', async () => {
    const store = new SwitchableStore(new MemoryStore());
    const a = await agent(store, 'a');
    await a.agent.joinNetwork(join);
    for (let i = 0; i < 120; i++) await a.ipam.allocate('blue', subnet);
    const leaving = a.agent.leaveNetwork('blue');
    await a.agent.joinNetwork(join); // the network is created again meanwhile
    const r = await leaving;
    assert.ok(r.claims.length < 120, `released ${r.claims.length} of 120 claims`);
    assert.deepEqual(r.blocks, [], 'no block released while claims remain');
    assert.ok(await store.get(clusterKeys.member('blue', 'a')));
    await a.agent.stop();
  });

  it('a refused join does not leave the cluster marked joined (the claim GC may look at it)', async () => {
    const store = new SwitchableStore(new MemoryStore());
    const a = await agent(store, 'a');
    const b = await agent(store, 'b');
    await a.agent.joinNetwork(join);
    await assert.rejects(b.agent.joinNetwork({ ...join, fingerprint: 'other' }), {
      code: 'TRUSS_ERR_NETWORK_CONFLICT',
      message: /other settings/,
    });
    assert.equal(b.agent.joined('blue'), false);
    assert.equal(a.agent.joined('blue'), true);
    await a.agent.stop();
    await b.agent.stop();
  });
});

describe('ClusterAgent identity', () => {
  const nodeRec = (id: string, name: string, instance: string, address = '198.18.255.1') => ({
    id,
    name,
    instance,
    address,
    wgPublicKey: 'k',
    wgPort: 51820,
  });
  function identityAgent(
    store: SwitchableStore,
    node: ReturnType<typeof nodeRec>,
    opts: { previousInstance?: string; ttl?: number; fatal?: (e: Error) => void } = {},
  ) {
    return new ClusterAgent({
      store,
      node,
      ...(opts.previousInstance ? { previousInstance: opts.previousInstance } : {}),
      nodeIdFile: '/var/lib/truss/node-id',
      mtu: { wireguard: 1440, vxlan: 1450 },
      ipam: new ClusterIpam({ store, node: node.id, log: silentLogger }),
      log: silentLogger,
      onChange: () => {},
      onFatal: opts.fatal ?? (() => {}),
      localClusters: async () => [],
      retryMs: 10,
      leaseTtlSeconds: opts.ttl ?? 0.05,
      conflictSlackMs: 10,
    });
  }
  const put = (store: SwitchableStore, r: ReturnType<typeof nodeRec>) =>
    store.txn([], [{ type: 'put', key: clusterKeys.node(r.id), value: JSON.stringify(r) }]);

  it('a live host with the same name: onFatal with both addresses, and no registration', async () => {
    const store = new SwitchableStore(new MemoryStore());
    await put(store, nodeRec('ida', 'twin', 'x1', '198.18.255.1'));
    const fatal = new Promise<Error>((resolve) => {
      identityAgent(store, nodeRec('idb', 'twin', 'y1', '198.18.255.2'), { fatal: resolve }).start();
    });
    const e = (await fatal) as Error & { code: string };
    assert.equal(e.code, 'TRUSS_ERR_NODE_CONFLICT');
    assert.match(
      e.message,
      /198\.18\.255\.1 .*198\.18\.255\.2.*give this host its own --node-name, or a unique hostname/,
    );
    assert.equal(await store.get(clusterKeys.node('idb')), undefined);
  });

  it('a copied state dir (same id, another instance and address): onFatal naming the node-id file', async () => {
    const store = new SwitchableStore(new MemoryStore());
    await put(store, nodeRec('ida', 'twin', 'x1', '198.18.255.1'));
    const fatal = new Promise<Error>((resolve) => {
      identityAgent(store, nodeRec('ida', 'twin', 'y1', '198.18.255.2'), {
        previousInstance: 'x1',
        fatal: resolve,
      }).start();
    });
    assert.match((await fatal).message, /node id ida is already used .* remove \/var\/lib\/truss\/node-id/);
  });

  it('a record that expires within the lease TTL (a crashed host) is no conflict', async () => {
    const store = new SwitchableStore(new MemoryStore());
    await put(store, nodeRec('old', 'twin', 'x1'));
    let fatal: Error | undefined;
    const a = identityAgent(store, nodeRec('new', 'twin', 'y1', '198.18.255.2'), {
      ttl: 0.3,
      fatal: (e) => {
        fatal = e;
      },
    });
    a.start();
    await new Promise((r) => setTimeout(r, 50));
    await store.txn([], [{ type: 'delete', key: clusterKeys.node('old') }]); // its lease expired
    await a.connected();
    assert.equal(fatal, undefined);
    assert.ok(await store.get(clusterKeys.node('new')));
    await a.stop();
  });

  it("its own previous process's record (a restart) registers at once, keeping its id", async () => {
    const store = new SwitchableStore(new MemoryStore());
    await put(store, nodeRec('ida', 'twin', 'x1', '198.18.255.1'));
    const a = identityAgent(store, nodeRec('ida', 'twin', 'x2', '198.18.255.1'), { previousInstance: 'x1', ttl: 15 });
    const t0 = performance.now();
    a.start();
    await a.connected();
    assert.ok(performance.now() - t0 < 1000, 'no wait for the lease TTL');
    const rec = JSON.parse((await store.get(clusterKeys.node('ida')))?.value ?? '{}') as { instance: string };
    assert.equal(rec.instance, 'x2');
    assert.equal(a.self, 'ida');
    assert.equal(a.name, 'twin');
    await a.stop();
  });
});

describe('ClusterAgent identity: two hosts of one name registering at the same moment', () => {
  it('the later registration steps back, and is refused while the earlier one lives', async () => {
    const store = new SwitchableStore(new MemoryStore());
    const rec = (id: string, address: string) => ({
      id,
      name: 'twin',
      instance: id,
      address,
      wgPublicKey: 'k',
      wgPort: 51820,
    });
    // both listed the nodes before either wrote: simulate by writing the earlier one while the
    // later one's list (of its identity check) is already done
    const inner = store.list.bind(store);
    let calls = 0;
    store.list = async (prefix: string) => {
      const r = await inner(prefix);
      if (prefix === clusterKeys.nodesPrefix && calls++ === 0) {
        await store.txn(
          [],
          [{ type: 'put', key: clusterKeys.node('early'), value: JSON.stringify(rec('early', '198.18.255.1')) }],
        );
      }
      return r;
    };
    const fatal = new Promise<Error>((resolve) => {
      new ClusterAgent({
        store,
        node: rec('late', '198.18.255.2'),
        mtu: { wireguard: 1440, vxlan: 1450 },
        ipam: new ClusterIpam({ store, node: 'late', log: silentLogger }),
        log: silentLogger,
        onChange: () => {},
        onFatal: resolve,
        localClusters: async () => [],
        retryMs: 10,
        leaseTtlSeconds: 0.05,
        conflictSlackMs: 10,
      }).start();
    });
    assert.match((await fatal).message, /node name twin is already taken .* 198\.18\.255\.1 .* 198\.18\.255\.2/);
    assert.equal(await store.get(clusterKeys.node('late')), undefined, 'the later record was withdrawn');
    assert.ok(await store.get(clusterKeys.node('early')));
  });
});

describe('ClusterAgent: a peer whose lease lapsed', () => {
  /** a SwitchableStore whose watch hands its handlers to the test */
  type Handlers = Parameters<ClusterStore['watchPrefix']>[2];
  class WatchedStore extends SwitchableStore {
    handlers: Handlers | undefined;
    override watchPrefix(_p?: string, _r?: number, h?: Handlers): { close(): Promise<void> } {
      this.handlers = h;
      return { close: async () => {} };
    }
  }
  const node = JSON.stringify({ id: 'b', name: 'b', address: '198.18.255.2', wgPublicKey: 'kb', wgPort: 51820 });
  const member = JSON.stringify({ cluster: 'blue', node: 'b' });
  const block = JSON.stringify({ cluster: 'blue', node: 'b', block: '198.18.64.64/26' });
  const K = {
    node: clusterKeys.node('b'),
    member: clusterKeys.member('blue', 'b'),
    block: clusterKeys.block('blue', '198.18.64.64/26', 'b'),
  };

  async function setup() {
    const store = new WatchedStore(new MemoryStore());
    let now = 1_000_000;
    const a = new ClusterAgent({
      store,
      node: { id: 'a', name: 'a', address: '198.18.255.1', wgPublicKey: 'k', wgPort: 51820 },
      mtu: { wireguard: 1440, vxlan: 1450 },
      ipam: new ClusterIpam({ store, node: 'a', log: silentLogger }),
      log: silentLogger,
      onChange: () => {},
      localClusters: async () => [],
      retryMs: 10,
      lapsedGraceMs: 60_000,
      now: () => now,
    });
    a.start();
    await a.connected();
    const h = store.handlers;
    assert.ok(h, 'the agent watches');
    const put = (key: string, value: string) => h.onEvents([{ type: 'put', key, value }], 0);
    const del = (key: string) => h.onEvents([{ type: 'delete', key }], 0);
    return { a, put, del, advance: (ms: number) => (now += ms), handlers: h };
  }
  const peers = (a: ClusterAgent) => (a.view()?.nodes ?? []).map((n) => n.name).filter((n) => n !== 'a');

  it('stays in the view (node and member) while it holds blocks, for the grace; then it goes', async () => {
    const { a, put, del, advance } = await setup();
    put(K.node, node);
    put(K.member, member);
    put(K.block, block);
    del(K.node);
    del(K.member); // the lease expired: etcd deleted both
    assert.deepEqual(peers(a), ['b']);
    assert.deepEqual(a.view()?.members, [{ cluster: 'blue', node: 'b' }]);
    assert.deepEqual(a.lapsedPeers(), ['b']);
    advance(59_000);
    assert.deepEqual(peers(a), ['b']);
    advance(2_000);
    assert.deepEqual(peers(a), []);
    assert.deepEqual(a.view()?.members, []);
    await a.stop();
  });

  it('is not kept without blocks (a deliberate leave releases them), and a re-registration replaces it', async () => {
    const { a, put, del } = await setup();
    put(K.node, node);
    put(K.member, member);
    del(K.member);
    del(K.node);
    assert.deepEqual(peers(a), []);
    put(K.block, block);
    put(K.node, node);
    del(K.node);
    assert.deepEqual(a.lapsedPeers(), ['b']);
    put(K.node, node.replace('kb', 'kb2'));
    assert.deepEqual(a.lapsedPeers(), []);
    assert.deepEqual(
      a
        .view()
        ?.nodes.filter((n) => n.name === 'b')
        .map((n) => n.wgPublicKey),
      ['kb2'],
    );
    await a.stop();
  });

  it("this host's own record is in the view while etcd has lost it (its own lease lapsed)", async () => {
    const { a, del } = await setup();
    del(clusterKeys.node('a'));
    const own = (a.view()?.nodes ?? []).filter((n) => n.id === 'a');
    assert.equal(own.length, 1, 'exactly once');
    assert.equal(own[0]?.address, '198.18.255.1');
    await a.stop();
  });

  it('a resync (watch relisted) that lacks the records keeps them the same way', async () => {
    const { a, put, handlers } = await setup();
    put(K.node, node);
    put(K.member, member);
    put(K.block, block);
    handlers.onResync([{ key: K.block, value: block, createRevision: 1, modRevision: 1, version: 1 }], 5);
    assert.deepEqual(peers(a), ['b']);
    await a.stop();
  });
});

describe('ClusterAgent view (records checked for shape and owner)', () => {
  it('leaves out records under another host key and garbage; hands createRevision to the view', async () => {
    const store = new SwitchableStore(new MemoryStore());
    const put = (key: string, v: unknown) => store.txn([], [{ type: 'put', key, value: JSON.stringify(v) }]);
    const K = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
    await put(clusterKeys.node('v'), { id: 'v', name: 'v', address: '198.18.251.20', wgPublicKey: K, wgPort: 51820 });
    await put(clusterKeys.node('zzz'), { id: 'v', name: 'v', address: '198.18.251.66', wgPublicKey: K, wgPort: 1 });
    await put(clusterKeys.member('blue', 'v'), { cluster: 'blue', node: 'v' });
    await put(clusterKeys.block('blue', '198.18.64.64/26', 'v'), {
      cluster: 'blue',
      block: '198.18.64.64/26',
      node: 'v',
    });
    await put(clusterKeys.block('blue', '198.18.64.0/27', 'm'), {
      cluster: 'blue',
      block: '198.18.64.0/27',
      node: 'v',
    });
    await store.txn([], [{ type: 'put', key: clusterKeys.block('blue', '198.18.64.128/26', 'm'), value: 'null' }]);
    const { agent: a } = await agent(store, 'a');
    const view = a.view();
    assert.deepEqual(view?.nodes.map((n) => [n.name, n.address, typeof n.createRevision]).sort(), [
      ['a', '198.18.255.1', 'number'],
      ['v', '198.18.251.20', 'number'],
    ]);
    assert.deepEqual(
      view?.blocks.map((b) => [b.block, b.node, typeof b.createRevision]),
      [['198.18.64.64/26', 'v', 'number']],
    );
    assert.equal(view?.members[0]?.createRevision, 3);
    assert.deepEqual(
      a
        .malformed()
        .map((m) => m.key)
        .sort(),
      ['/truss/v2/blocks/m/blue/198.18.64.0_27', '/truss/v2/blocks/m/blue/198.18.64.128_26', '/truss/v2/nodes/zzz'],
    );
    await a.stop();
  });

  it('two hosts creating one cluster network with other settings: the older copy wins, the other fails', async () => {
    const store = new SwitchableStore(new MemoryStore());
    const a = await agent(store, 'a');
    const b = await agent(store, 'b');
    await a.agent.joinNetwork(join);
    await assert.rejects(b.agent.joinNetwork({ ...join, fingerprint: 'other', encrypt: false }), {
      code: 'TRUSS_ERR_NETWORK_CONFLICT',
      message: /cluster network blue already exists with other settings \(subnets 198\.18\.64\.0\/20, encrypt true\)/,
    });
    assert.equal(await store.get(clusterKeys.network('blue', 'b')), undefined, "b's copy is withdrawn");
    await b.agent.joinNetwork(join);
    assert.ok(await store.get(clusterKeys.network('blue', 'b')));
    await a.agent.stop();
    await b.agent.stop();
  });
});
