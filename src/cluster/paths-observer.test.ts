import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClusterView } from '../core/cluster/desired.ts';
import type { NodeRecord } from '../core/cluster/model.ts';
import type { WireguardPeerStatus } from '../core/contracts.ts';
import { silentLogger } from '../obs/logger.ts';
import { PathsObserver } from './paths-observer.ts';

const key = (c: string): string => `${c.repeat(42)}A=`;
const rec = (id: string, address: string, more: Partial<NodeRecord> = {}): NodeRecord => ({
  id,
  name: id,
  address,
  wgPublicKey: key(id.toUpperCase()),
  wgPort: 51820,
  ...more,
});
const log = silentLogger;

function setup(self: NodeRecord, others: NodeRecord[]) {
  let now = 1_000_000_000;
  let own = self;
  let peers: WireguardPeerStatus[] = [];
  const published: Pick<NodeRecord, 'seen' | 'nat'>[] = [];
  let changes = 0;
  const view = (): ClusterView => ({ self: self.id as string, nodes: [own, ...others], members: [], blocks: [] });
  const o = new PathsObserver({
    readPeers: async () => peers,
    view,
    own: () => own,
    publish: async (patch) => {
      published.push(patch);
      const { seen: _s, nat: _n, ...rest } = own;
      own = { ...rest, ...patch };
    },
    onChange: () => changes++,
    log,
    now: () => now,
  });
  return {
    o,
    published,
    changes: () => changes,
    set(p: WireguardPeerStatus[]) {
      peers = p;
    },
    advance(ms: number) {
      now += ms;
    },
    nowS: () => now / 1000,
    own: () => own,
  };
}

/** c and d behind NATs, from c's side; d(rx, tx, hsAgo) is d's peer entry on c's device now. */
function natPair() {
  const t = setup(rec('c', '198.18.241.2', { nat: 'independent' }), [rec('d', '198.18.242.2', { nat: 'independent' })]);
  const d = (rx: number, tx: number, hsAgo = 1): WireguardPeerStatus[] => [
    {
      publicKey: key('D'),
      endpoint: '198.18.255.202:51820',
      allowedIps: [],
      latestHandshake: t.nowS() - hsAgo,
      rxBytes: rx,
      txBytes: tx,
    },
  ];
  return { t, d };
}

describe('PathsObserver', () => {
  it('a public host publishes where its peers are seen, and only changes', async () => {
    const t = setup(rec('a', '198.18.255.1'), [rec('b', '198.18.255.2'), rec('c', '198.18.241.2')]);
    t.set([
      {
        publicKey: key('B'),
        endpoint: '198.18.255.2:51820',
        allowedIps: [],
        latestHandshake: t.nowS() - 5,
        rxBytes: 10,
        txBytes: 1,
      },
      {
        publicKey: key('C'),
        endpoint: '198.18.255.201:51820',
        allowedIps: [],
        latestHandshake: t.nowS() - 5,
        rxBytes: 10,
        txBytes: 1,
      },
    ]);
    await t.o.tick();
    assert.deepEqual(t.published, [{ seen: { b: '198.18.255.2:51820', c: '198.18.255.201:51820' }, punched: [] }]);
    await t.o.tick();
    assert.equal(t.published.length, 1, 'nothing new: nothing written');
    assert.deepEqual(t.o.direct(), ['b', 'c']);
  });

  it('a host seen elsewhere learns its NAT and stops publishing sightings', async () => {
    const a = rec('a', '198.18.255.1', { seen: { c: '198.18.255.201:51820' } });
    const b = rec('b', '198.18.255.2', { seen: { c: '198.18.255.201:51820' } });
    const t = setup(rec('c', '198.18.241.2'), [a, b]);
    t.set([
      {
        publicKey: key('A'),
        endpoint: '198.18.255.1:51820',
        allowedIps: [],
        latestHandshake: t.nowS() - 1,
        rxBytes: 5,
        txBytes: 1,
      },
    ]);
    await t.o.tick();
    assert.deepEqual(t.published, [{ nat: 'independent', seen: {}, punched: [] }], 'a public peer is not punched');
    assert.equal(t.own().nat, 'independent');
  });

  it('a direct session dies when no packet came for 40 s, or its handshake is older than 180 s', async () => {
    const { t, d } = natPair();
    const peer = (rx: number, hsAgo: number) => d(rx, 1, hsAgo);
    t.set(peer(100, 1));
    await t.o.tick();
    assert.deepEqual(t.o.direct(), ['d']);
    assert.equal(t.changes(), 1);
    assert.deepEqual(t.own().punched, ['d'], 'behind a NAT: the live session to a NATed peer is published');
    t.advance(30_000);
    t.set(peer(100, 31));
    await t.o.tick();
    assert.deepEqual(t.o.direct(), ['d'], 'silent for 30 s: still on');
    t.advance(11_000);
    t.set(peer(100, 42));
    await t.o.tick();
    assert.deepEqual(t.o.direct(), [], 'silent for 41 s: off');
    assert.equal(t.changes(), 2);
    t.set(peer(200, 181));
    await t.o.tick();
    assert.deepEqual(t.o.direct(), [], 'packets but no session: off');
    t.set(peer(300, 2));
    await t.o.tick();
    assert.deepEqual(t.o.direct(), ['d']);
  });

  it('sending for 15 s with nothing back ends a direct session sooner', async () => {
    const { t, d: peer } = natPair();
    t.set(peer(100, 100));
    await t.o.tick();
    for (const [ms, tx, live] of [
      [2_000, 200, ['d']],
      [10_000, 300, ['d']],
      [4_000, 400, ['d']],
      [2_000, 500, []],
    ] as const) {
      t.advance(ms);
      t.set(peer(100, tx));
      await t.o.tick();
      assert.deepEqual(t.o.direct(), live, `tx ${tx}`);
    }
    t.set(peer(101, 600));
    await t.o.tick();
    assert.deepEqual(t.o.direct(), ['d'], 'an answer: on again');
  });

  it("keepalives alone are not sending: each end's own keepalive every 25 s keeps a quiet session on", async () => {
    const { t, d: peer } = natPair();
    // c's keepalives at 0 s and 25 s, d's at 12 s and 37 s
    for (const [at, rx, tx] of [
      [0, 92, 148],
      [2_000, 92, 180],
      [12_000, 124, 180],
      [27_000, 124, 212],
      [37_000, 156, 212],
      [39_000, 156, 212],
    ] as const) {
      t.advance(at === 0 ? 0 : at - (t.nowS() * 1000 - 1_000_000_000));
      t.set(peer(rx, tx));
      await t.o.tick();
      assert.deepEqual(t.o.direct(), ['d'], `at ${at} ms`);
    }
  });

  it('a device that cannot be read changes nothing', async () => {
    const t = setup(rec('a', '198.18.255.1'), []);
    const o = new PathsObserver({
      readPeers: async () => {
        throw new Error('wg: not found');
      },
      view: () => undefined,
      own: () => t.own(),
      publish: async () => assert.fail('nothing to publish'),
      onChange: () => assert.fail('no change'),
      log,
    });
    await o.tick();
    assert.deepEqual(o.direct(), []);
  });

  it('without an encrypted cluster network the device is not read (no process every 2 s)', async () => {
    const t = setup(rec('a', '198.18.255.1'), [rec('b', '198.18.255.2')]);
    let reads = 0;
    let inUse = false;
    const o = new PathsObserver({
      readPeers: async () => {
        reads++;
        return [];
      },
      inUse: async () => inUse,
      view: () => ({ self: 'a', nodes: [t.own(), rec('b', '198.18.255.2')], members: [], blocks: [] }),
      own: () => t.own(),
      publish: async () => {},
      onChange: () => {},
      log,
    });
    await o.tick();
    await o.tick();
    assert.equal(reads, 0);
    inUse = true;
    await o.tick();
    assert.equal(reads, 1);
  });
});
