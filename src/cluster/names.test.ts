/**
 * Names across hosts (issue 16): the publisher against a fake lease (diffs, coalescing, never
 * throwing, replace after registration), the watched copy's names (lapsed peers), and two agents
 * on a real etcd: one publishes, the other sees; changes are single writes; a lost lease
 * republishes; malformed and copied records are skipped and reported.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { clusterKeys } from '../core/cluster/model.ts';
import type { NamedEndpoint } from '../core/names/model.ts';
import { silentLogger } from '../obs/logger.ts';
import { openEtcdStore } from '../store/etcd.ts';
import { type EtcdServer, startEtcd } from '../store/etcd-testutil.ts';
import { MemoryStore } from '../store/memory.ts';
import { ClusterAgent, type ClusterStore, type LeaseLike } from './agent.ts';
import { ClusterIpam } from './cluster-ipam.ts';
import { type NamesLease, NamesPublisher } from './names.ts';
import { SwitchableStore } from './testing.ts';

const hex = (c: string) => c.repeat(64);
const entry = (ep: string, name: string, over: Partial<NamedEndpoint> = {}): NamedEndpoint => ({
  endpointId: hex(ep),
  node: 'a',
  networkName: 'blue-net',
  networkId: hex('9'),
  cluster: 'blue',
  containerId: hex('c'),
  name,
  aliases: [name.split('-')[0] ?? name],
  labels: { role: 'api' },
  addresses: ['198.18.64.2'],
  ...over,
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('NamesPublisher (fake lease)', () => {
  function setup() {
    const inner = new MemoryStore();
    const store = new SwitchableStore(inner);
    const ops: string[] = [];
    let gate: Promise<void> | undefined;
    const lease: NamesLease & { state: 'alive' | 'lost' } = {
      state: 'alive',
      put: async (key, value) => {
        await gate;
        if (store.down) throw new Error('etcd down (test)');
        ops.push(`put ${key.split('/').at(-1)?.slice(0, 1)}`);
        await inner.txn([], [{ type: 'put', key, value }]);
      },
      delete: async (key) => {
        if (store.down) throw new Error('etcd down (test)');
        ops.push(`del ${key.split('/').at(-1)?.slice(0, 1)}`);
        await inner.txn([], [{ type: 'delete', key }]);
      },
    };
    let registered: NamesLease | undefined = lease;
    const p = new NamesPublisher({
      store,
      log: silentLogger,
      self: () => 'a',
      lease: () => registered,
      retryMs: 60_000,
    });
    const keys = async () =>
      (await inner.list(clusterKeys.ownerPrefix('names', 'a'))).items.map((kv) => kv.key.split('/').at(-1)?.[0]);
    return {
      p,
      store,
      inner,
      lease,
      ops,
      keys,
      hold: () => {
        let open = () => {};
        gate = new Promise((r) => {
          open = r;
        });
        return () => {
          gate = undefined;
          open();
        };
      },
      unregister: () => {
        registered = undefined;
      },
      register: () => {
        registered = lease;
      },
    };
  }

  it('writes only the changes: one PUT for a changed label, one DELETE for a removed entry', async () => {
    const t = setup();
    await t.p.publish([entry('1', 'api-1'), entry('2', 'db-1')]);
    assert.deepEqual(t.ops.splice(0), ['put 1', 'put 2']);
    await t.p.publish([entry('1', 'api-1'), entry('2', 'db-1')]);
    assert.deepEqual(t.ops.splice(0), [], 'nothing changed: nothing written');
    await t.p.publish([entry('1', 'api-1', { labels: { role: 'api', v: '2' } }), entry('2', 'db-1')]);
    assert.deepEqual(t.ops.splice(0), ['put 1']);
    await t.p.publish([entry('1', 'api-1', { labels: { v: '2', role: 'api' } })]);
    assert.deepEqual(t.ops.splice(0), ['del 2'], 'label order is no change');
    assert.deepEqual(await t.keys(), ['1']);
  });

  it('leaves out entries without a cluster and entries peers would refuse', async () => {
    const t = setup();
    const { cluster: _, ...local } = entry('3', 'local-1');
    await t.p.publish([
      local,
      entry('1', '/bad name'),
      entry('2', 'ok-1', { aliases: ['bad alias'] }),
      entry('4', 'ok'),
    ]);
    assert.deepEqual(await t.keys(), ['4']);
  });

  it('a call during a write coalesces to the latest list', async () => {
    const t = setup();
    const release = t.hold();
    const first = t.p.publish([entry('1', 'api-1')]);
    const second = t.p.publish([entry('1', 'api-1'), entry('2', 'db-1')]);
    const third = t.p.publish([entry('2', 'db-1')]);
    release();
    await Promise.all([first, second, third]);
    assert.deepEqual(await t.keys(), ['2']);
    assert.deepEqual(t.ops, ['put 1', 'put 2', 'del 1'], 'the middle list was never written on its own');
  });

  it('never throws; a failed write is retried by the next call', async () => {
    const t = setup();
    t.store.down = true;
    await t.p.publish([entry('1', 'api-1')]); // resolves
    t.store.down = false;
    await t.p.publish([entry('1', 'api-1'), entry('2', 'db-1')]);
    assert.deepEqual(await t.keys(), ['1', '2']);
    t.p.stop();
  });

  it('before registration nothing is written; after it the own prefix is replaced whole (stale records go)', async () => {
    const t = setup();
    const stale = clusterKeys.name('blue', hex('7'), 'a');
    const kept = clusterKeys.name('blue', hex('1'), 'a');
    await t.inner.txn(
      [],
      [
        { type: 'put', key: stale, value: '{}' },
        { type: 'put', key: kept, value: '{}' },
      ],
    );
    t.unregister();
    await t.p.registered(); // no list yet: nothing pruned
    await t.p.publish([entry('1', 'api-1')]);
    assert.deepEqual(t.ops.splice(0), []);
    t.register();
    await t.p.registered();
    assert.deepEqual(t.ops.splice(0), ['put 1', 'del 7'], 'the kept one is PUT again under this lease');
    assert.deepEqual(await t.keys(), ['1']);
  });

  it('while the lease is lost nothing is written; registered() after the re-grant republishes', async () => {
    const t = setup();
    await t.p.publish([entry('1', 'api-1')]);
    t.lease.state = 'lost';
    await t.inner.txn([], [{ type: 'delete', key: clusterKeys.name('blue', hex('1'), 'a') }]); // expired
    await t.p.publish([entry('1', 'api-1'), entry('2', 'db-1')]);
    assert.deepEqual(await t.keys(), []);
    t.lease.state = 'alive';
    await t.p.registered();
    assert.deepEqual(await t.keys(), ['1', '2']);
  });

  it('leave() deletes the cluster prefix, and a list made before the leave does not bring it back', async () => {
    const t = setup();
    await t.p.publish([entry('1', 'api-1'), entry('2', 'db-1', { cluster: 'red' })]);
    await t.inner.txn([], [{ type: 'put', key: clusterKeys.name('blue', hex('5'), 'a'), value: '{}' }]);
    await t.p.leave('blue');
    assert.deepEqual(await t.keys(), ['2']);
    await t.p.publish([entry('1', 'api-1'), entry('2', 'db-1', { cluster: 'red' })]);
    assert.deepEqual(await t.keys(), ['2']);
    t.p.rejoined('blue');
    await t.p.publish([entry('1', 'api-1'), entry('2', 'db-1', { cluster: 'red' })]);
    assert.deepEqual((await t.keys()).sort(), ['1', '2']);
  });
});

describe("the watched copy's names: a peer whose lease lapsed", () => {
  type Handlers = Parameters<ClusterStore['watchPrefix']>[2];
  class WatchedStore extends SwitchableStore {
    handlers: Handlers | undefined;
    override watchPrefix(_p?: string, _r?: number, h?: Handlers): { close(): Promise<void> } {
      this.handlers = h;
      return { close: async () => {} };
    }
  }
  const rec = (ep: string, name: string) =>
    JSON.stringify({
      cluster: 'blue',
      node: 'b',
      endpoint: hex(ep),
      network: 'blue-net',
      container: hex('c'),
      name,
      aliases: [],
      labels: {},
      addresses: ['198.18.64.66'],
    });
  const K = {
    node: clusterKeys.node('b'),
    block: clusterKeys.block('blue', '198.18.64.64/26', 'b'),
    n1: clusterKeys.name('blue', hex('1'), 'b'),
    n2: clusterKeys.name('blue', hex('2'), 'b'),
  };
  const nodeValue = JSON.stringify({ id: 'b', name: 'b', address: '198.18.255.2', wgPublicKey: 'kb', wgPort: 51820 });
  const block = JSON.stringify({ cluster: 'blue', node: 'b', block: '198.18.64.64/26' });

  async function setup() {
    const store = new WatchedStore(new MemoryStore());
    let now = 1_000_000;
    const calls = { change: 0, names: 0 };
    const a = new ClusterAgent({
      store,
      node: { id: 'a', name: 'a', address: '198.18.255.1', wgPublicKey: 'k', wgPort: 51820 },
      mtu: { wireguard: 1440, vxlan: 1450 },
      ipam: new ClusterIpam({ store, node: 'a', log: silentLogger }),
      log: silentLogger,
      onChange: () => calls.change++,
      onNamesChange: () => calls.names++,
      localClusters: async () => [],
      retryMs: 10,
      lapsedGraceMs: 60_000,
      now: () => now,
    });
    assert.equal(a.namesSynced(), false);
    a.start();
    await a.connected();
    assert.equal(a.namesSynced(), true);
    const h = store.handlers;
    assert.ok(h);
    const put = (key: string, value: string) => h.onEvents([{ type: 'put', key, value }], 0);
    const del = (...keys: string[]) =>
      h.onEvents(
        keys.map((key) => ({ type: 'delete' as const, key })),
        0,
      );
    return { a, put, del, calls, advance: (ms: number) => (now += ms) };
  }
  const names = (a: ClusterAgent) =>
    a
      .names()
      .map((n) => n.name)
      .sort();

  it('names-only changes call onNamesChange, not onChange', async () => {
    const { a, put, del, calls } = await setup();
    const before = { ...calls };
    put(K.n1, rec('1', 'api-1'));
    del(K.n1);
    assert.deepEqual(calls, { change: before.change, names: before.names + 2 });
    put(K.node, nodeValue);
    assert.equal(calls.change, before.change + 1);
    await a.stop();
  });

  it("keeps a lapsed peer's names with its node record, for the grace; a name its live host deleted goes at once", async () => {
    const { a, put, del, advance } = await setup();
    put(K.node, nodeValue);
    put(K.block, block);
    put(K.n1, rec('1', 'api-1'));
    put(K.n2, rec('2', 'db-1'));
    assert.deepEqual(names(a), ['api-1', 'db-1']);
    del(K.n2); // the container went; its host is live
    assert.deepEqual(names(a), ['api-1']);
    advance(1000);
    del(K.n1, K.node); // the lease expired: one revision
    assert.deepEqual(a.lapsedPeers(), ['b']);
    assert.deepEqual(names(a), ['api-1'], 'kept with the node record, and db-1 does not come back');
    advance(59_000);
    assert.deepEqual(names(a), ['api-1']);
    advance(2_000);
    assert.deepEqual(names(a), [], 'past the grace: gone with the node record');
    assert.deepEqual(a.lapsedPeers(), []);
    await a.stop();
  });

  it('a lapsed peer that comes back replaces its kept names with its fresh ones', async () => {
    const { a, put, del } = await setup();
    put(K.node, nodeValue);
    put(K.block, block);
    put(K.n1, rec('1', 'api-1'));
    del(K.node, K.n1);
    assert.deepEqual(names(a), ['api-1']);
    put(K.node, nodeValue);
    assert.deepEqual(names(a), [], 'back: only what it publishes now');
    put(K.n2, rec('2', 'db-1'));
    assert.deepEqual(names(a), ['db-1']);
    await a.stop();
  });
});

describe('names across two agents on a real etcd', () => {
  let server: EtcdServer;
  let raw: Etcd3;
  const closers: (() => Promise<void>)[] = [];
  before(async () => {
    server = await startEtcd();
    raw = new Etcd3({ hosts: [server.endpoint] });
  });
  after(async () => {
    for (const c of closers.reverse()) await c();
    raw?.close();
    await server?.stop();
  });

  /** an agent on its own etcd client; counts the PUTs of names and remembers its lease */
  async function agent(id: string) {
    const store = await openEtcdStore({ endpoints: [server.endpoint], log: silentLogger, prefix: '' });
    const seen = { puts: [] as string[], lease: undefined as (LeaseLike & { id?: string }) | undefined };
    const grant = store.grantLease.bind(store);
    store.grantLease = async (ttl: number) => {
      const lease = await grant(ttl);
      const put = lease.put.bind(lease);
      lease.put = async (key: string, value: string) => {
        if (key.startsWith(clusterKeys.kindPrefix('names'))) seen.puts.push(key);
        return put(key, value);
      };
      seen.lease = lease;
      return lease;
    };
    const a = new ClusterAgent({
      store,
      node: { id, name: id, address: `198.18.255.${id === 'a' ? 1 : 2}`, wgPublicKey: 'k', wgPort: 51820 },
      mtu: { wireguard: 1440, vxlan: 1450 },
      ipam: new ClusterIpam({ store, node: id, log: silentLogger }),
      log: silentLogger,
      onChange: () => {},
      localClusters: async () => [],
      leaseTtlSeconds: 3,
      retryMs: 50,
    });
    closers.push(async () => {
      await a.stop();
      await store.close();
    });
    a.start();
    await a.connected();
    return { a, store, seen };
  }
  const namesOf = (x: ClusterAgent) =>
    x
      .names()
      .map((n) => `${n.node}:${n.name}:${JSON.stringify(n.labels)}`)
      .sort();

  it('publish, change one label, remove, lose the lease; malformed and copied records are skipped', async () => {
    const a = await agent('a');
    const b = await agent('b');
    await a.a.joinNetwork({ name: 'blue', subnets: ['198.18.64.0/20'], encrypt: true, fingerprint: 'f', shared: [] });
    await waitFor('b to sync', () => b.a.namesSynced());

    await a.a.publishNames([entry('1', 'api-1'), entry('2', 'db-1')]);
    await waitFor('b to see both', () => b.a.names().length === 2);
    const seen = b.a.names().find((n) => n.name === 'api-1');
    assert.deepEqual(seen, {
      endpointId: hex('1'),
      node: 'a',
      networkName: 'blue-net',
      cluster: 'blue',
      containerId: hex('c'),
      name: 'api-1',
      aliases: ['api'],
      labels: { role: 'api' },
      addresses: ['198.18.64.2'],
    });
    assert.deepEqual(a.a.names(), [], "a's own names are not among names()");

    a.seen.puts.length = 0;
    await a.a.publishNames([entry('1', 'api-1', { labels: { role: 'web' } }), entry('2', 'db-1')]);
    assert.deepEqual(a.seen.puts, [clusterKeys.name('blue', hex('1'), 'a')], 'one PUT');
    await waitFor('b to see the label', () => namesOf(b.a).includes('a:api-1:{"role":"web"}'));

    await a.a.publishNames([entry('1', 'api-1', { labels: { role: 'web' } })]);
    await waitFor('db-1 gone on b', () => namesOf(b.a).join() === 'a:api-1:{"role":"web"}');

    // the lease is revoked behind the agent's back: its names go with it, and come back
    const old = a.seen.lease?.id;
    assert.ok(old);
    a.seen.puts.length = 0;
    await raw.leaseClient.leaseRevoke({ ID: old });
    await waitFor('the lease re-granted', () => a.seen.lease?.id !== old && a.seen.lease?.state === 'alive');
    await waitFor(
      'the name republished',
      async () => (await raw.get(clusterKeys.name('blue', hex('1'), 'a'))) !== null,
    );
    const kv = await raw.kv.range({ key: Buffer.from(clusterKeys.name('blue', hex('1'), 'a')) });
    assert.equal(kv.kvs[0]?.lease, a.seen.lease?.id, 'under the new lease');
    await waitFor('b to see it again', () => namesOf(b.a).join() === 'a:api-1:{"role":"web"}');

    // garbage under another host's key, and a's record copied under host c's key
    const good = await raw.get(clusterKeys.name('blue', hex('1'), 'a'));
    assert.ok(good);
    const garbage = clusterKeys.name('blue', hex('d'), 'c');
    const copied = clusterKeys.name('blue', hex('1'), 'c');
    await raw.put(garbage).value('{"cluster":"blue","node":"c"');
    await raw.put(copied).value(good);
    await waitFor('b to report both', () => {
      b.a.names();
      const bad = b.a.malformed().map((m) => m.key);
      return bad.includes(garbage) && bad.includes(copied);
    });
    assert.deepEqual(namesOf(b.a), ['a:api-1:{"role":"web"}']);
    assert.match(b.a.malformed().find((m) => m.key === copied)?.why ?? '', /node is not c/);
    await raw.delete().key(garbage);
    await raw.delete().key(copied);

    // leaving the cluster network takes its names, whatever the last list said
    await a.a.leaveNetwork('blue');
    assert.equal((await raw.getAll().prefix(clusterKeys.ownerPrefix('names', 'a')).keys()).length, 0);
    await waitFor('b to see none', () => b.a.names().length === 0);
  });

  it("a restarted host's first publish replaces the stale names of its previous process", async () => {
    const stale = clusterKeys.name('blue', hex('8'), 'r');
    await raw.put(stale).value('{}');
    const r = await agent('r');
    await r.a.publishNames([entry('1', 'api-1', { node: 'r' })]);
    assert.deepEqual(await raw.getAll().prefix(clusterKeys.ownerPrefix('names', 'r')).keys(), [
      clusterKeys.name('blue', hex('1'), 'r'),
    ]);
  });
});
