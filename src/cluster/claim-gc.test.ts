import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { clusterKeys } from '../core/cluster/model.ts';
import { type Ip, type Prefix, parseIp, parsePrefix } from '../core/ip.ts';
import { silentLogger } from '../obs/logger.ts';
import { IpamService } from '../service/ipam-service.ts';
import { openEtcdStore } from '../store/etcd.ts';
import { type EtcdServer, startEtcd } from '../store/etcd-testutil.ts';
import { MemoryStore } from '../store/memory.ts';
import type { Store } from '../store/store.ts';
import { ClaimGc } from './claim-gc.ts';
import { ClusterIpam } from './cluster-ipam.ts';
import { forgetNode, listHeld, releaseHeld } from './reclaim.ts';
import { SwitchableStore } from './testing.ts';

const SUBNET = '198.18.64.0/20';
const subnet = parsePrefix(SUBNET) as Prefix;
const GRACE = 60_000;
const ip = (s: string): Ip => parseIp(s) as Ip;

/** Host a: its local IPAM (with the cluster network blue on SUBNET), the shared store, a GC. */
async function setup<S extends Store = SwitchableStore>(shared: S = new SwitchableStore(new MemoryStore()) as never) {
  const cluster = new ClusterIpam({ store: shared, node: 'a', log: silentLogger });
  let hasNetwork = true;
  const joined = new Set<string>();
  const left: string[] = [];
  const local = new MemoryStore();
  const ipam = new IpamService({
    store: local,
    log: silentLogger,
    defaultPools: [],
    cluster: { ipam: cluster, clusterForPool: async (p) => (hasNetwork && p === SUBNET ? 'blue' : undefined) },
  });
  const pool = (
    await ipam.requestPool({ addressSpace: 'TrussLocal', pool: SUBNET, subPool: '', options: {}, v6: false })
  ).poolId;
  await cluster.reserveShared('blue', subnet, ip('198.18.64.1'));
  await ipam.requestAddress({
    poolId: pool,
    address: '198.18.64.1',
    options: { RequestAddressType: 'com.docker.network.gateway' },
  });
  let clock = 1_000_000;
  const gc = new ClaimGc({
    store: shared,
    node: 'a',
    localUse: async () => {
      if (!hasNetwork) return new Map();
      return new Map([['blue', (await ipam.addressesByPool()).get(SUBNET) ?? new Set<string>()]]);
    },
    joined: (c) => joined.has(c),
    leave: async (c) => {
      left.push(c);
      return releaseHeld(shared, c, 'a');
    },
    log: silentLogger,
    graceMs: GRACE,
    now: () => clock,
  });
  const request = async (address = '') =>
    (await ipam.requestAddress({ poolId: pool, address, options: {} })).address.split('/')[0] as string;
  const claimed = async (a: string) => (await shared.get(clusterKeys.addr('blue', a, 'a')))?.modRevision;
  return {
    shared,
    local,
    cluster,
    ipam,
    pool,
    gc,
    left,
    joined,
    request,
    claimed,
    advance: (ms: number) => {
      clock += ms;
    },
    dropNetwork: () => {
      hasNetwork = false;
    },
  };
}

describe('ClaimGc', () => {
  it('reclaims an own claim nothing local backs, only after two sightings a grace period apart', async () => {
    const t = await setup();
    const used = await t.request();
    const crashed = await t.cluster.allocate('blue', subnet); // claimed, then "crash" before the local write
    assert.equal(await t.gc.observe(), 0);
    assert.deepEqual(
      t.gc.status().orphans.map((o) => o.address),
      ['198.18.64.3'],
    );
    t.advance(GRACE - 1);
    assert.equal(await t.gc.observe(), 0, 'not before the grace period');
    t.advance(1);
    assert.equal(await t.gc.observe(), 1);
    assert.equal(await t.claimed('198.18.64.3'), undefined, `${crashed.value} reclaimed`);
    assert.ok(await t.claimed(used), 'the claim backed by a local record stays');
    assert.ok(await t.shared.get(clusterKeys.shared('blue', '198.18.64.1', 'a')), 'the shared gateway stays');
    assert.equal(t.gc.status().reclaimedClaims, 1);
    assert.deepEqual(t.gc.status().orphans, []);
  });

  it('never frees a claim that was released and allocated again between the sightings', async () => {
    const t = await setup();
    const x = await t.cluster.allocate('blue', subnet);
    await t.gc.observe();
    t.advance(GRACE / 2);
    await t.cluster.release('blue', x);
    await t.cluster.allocate('blue', subnet, x); // same address, new claim: the clock starts again
    t.advance(GRACE / 2);
    assert.equal(await t.gc.observe(), 0);
    t.advance(GRACE - 1);
    assert.equal(await t.gc.observe(), 0);
    assert.ok(await t.claimed('198.18.64.2'));
  });

  it('keeps a claim whose local write landed between the sightings (a slow allocation)', async () => {
    const t = await setup();
    const x = await t.cluster.allocate('blue', subnet); // the claim ...
    await t.gc.observe();
    t.advance(GRACE / 2);
    // ... and, late, the local record (what RequestAddress writes after the claim)
    const localOnly = new IpamService({ store: t.local, log: silentLogger, defaultPools: [] });
    await localOnly.requestAddress({ poolId: t.pool, address: '198.18.64.2', options: {} });
    t.advance(GRACE);
    assert.equal(await t.gc.observe(), 0);
    assert.ok(await t.claimed('198.18.64.2'), `${x.value} kept`);
    assert.deepEqual(t.gc.status().orphans, []);
  });

  it('a failed ReleaseAddress (etcd down) succeeds locally; the claim is reclaimed once etcd is back', async () => {
    const t = await setup();
    const a = await t.request();
    t.shared.down = true;
    await t.ipam.releaseAddress(t.pool, a); // no error: dockerd would only log it and never retry
    await t.ipam.releaseAddress(t.pool, a); // idempotent
    await assert.rejects(t.request(), { code: 'TRUSS_ERR_STORE_UNAVAILABLE' }, 'allocation fails fast');
    assert.equal(await t.gc.observe(), 0);
    assert.match(t.gc.status().lastError ?? '', /unavailable/);
    t.shared.down = false;
    assert.ok(await t.claimed(a), 'the claim outlived the release');
    await t.gc.observe();
    t.advance(GRACE);
    t.shared.down = true;
    assert.equal(await t.gc.observe(), 0, 'an outage pass changes nothing');
    t.shared.down = false;
    assert.equal(t.gc.status().orphans.length, 1, 'the sighting survived the outage');
    assert.equal(await t.gc.observe(), 1);
    assert.equal(await t.claimed(a), undefined);
    assert.equal(await t.request(), a, 'the address is free again');
  });

  it('never touches the claims local records back, pass after pass (a restarted host keeps them)', async () => {
    const t = await setup();
    const got = [await t.request(), await t.request(), await t.request()];
    for (let i = 0; i < 3; i++) {
      await t.gc.observe();
      t.advance(GRACE);
    }
    for (const a of got) assert.ok(await t.claimed(a), `${a} kept`);
    assert.deepEqual(t.gc.status().orphans, []);
  });

  it('reports (never repairs) a local address whose claim is gone, after two passes in a row', async () => {
    const t = await setup();
    const a = await t.request();
    const b = new ClusterIpam({ store: t.shared, node: 'b', log: silentLogger });
    await b.reserveShared('blue', subnet, ip('198.18.64.1')); // b is a member too: the gateway stays shared
    await forgetNode(t.shared, 'a', 'b', true); // another host forgot this one
    await t.gc.observe();
    assert.deepEqual(t.gc.status().unclaimed, [], 'one sighting is not enough');
    await t.gc.observe();
    assert.deepEqual(t.gc.status().unclaimed, [{ cluster: 'blue', address: a }]);
    assert.equal(await t.claimed(a), undefined, 'not claimed again behind the operator’s back');
    // another host takes it meanwhile: reported with the holder
    await b.allocate('blue', subnet, ip(a));
    await t.gc.observe();
    await t.gc.observe();
    assert.deepEqual(t.gc.status().unclaimed, [{ cluster: 'blue', address: a, holder: 'b' }]);
  });

  it('releases a cluster this host left (no local network, not joined) after the grace period', async () => {
    const t = await setup();
    await t.request();
    t.dropNetwork();
    t.joined.add('blue'); // a create under way: left alone
    await t.gc.observe();
    t.advance(GRACE);
    await t.gc.observe();
    assert.deepEqual(t.left, []);
    t.joined.delete('blue');
    await t.gc.observe();
    t.advance(GRACE);
    await t.gc.observe();
    assert.deepEqual(t.left, ['blue']);
    assert.deepEqual(await listHeld(t.shared, 'blue', 'a'), { claims: [], blocks: [], shared: [] });
    assert.equal(t.gc.status().reclaimedClusters, 1);
  });

  it('never frees the host address while the network is here (not even before its local record); a leave does', async () => {
    const t = await setup();
    const host = await t.cluster.claimHost('blue', subnet); // claimed; the local record not written yet
    await t.gc.observe();
    t.advance(GRACE);
    assert.equal(await t.gc.observe(), 0);
    assert.deepEqual(t.gc.status().orphans, []);
    assert.ok(await t.claimed('198.18.64.2'), `${host.value}: kept`);
    t.dropNetwork(); // the network is gone and the leave failed: the left cluster goes, host address too
    await t.gc.observe();
    t.advance(GRACE);
    await t.gc.observe();
    assert.deepEqual(t.left, ['blue']);
    assert.equal(await t.claimed('198.18.64.2'), undefined);
  });
});

describe('ClaimGc against a real etcd that goes down', () => {
  let server: EtcdServer;
  before(async () => {
    server = await startEtcd();
  });
  after(async () => {
    await server?.stop();
  });

  it('release succeeds while etcd is down; the pass is skipped; the claim goes once etcd is back', async () => {
    const store = await openEtcdStore({ endpoints: [server.endpoint], log: silentLogger, prefix: '/gc' });
    try {
      const t = await setup(store);
      const a = await t.request();
      await server.kill();
      const t0 = performance.now();
      await t.ipam.releaseAddress(t.pool, a);
      const releaseMs = performance.now() - t0;
      assert.ok(releaseMs < 6000, `ReleaseAddress took ${releaseMs} ms while etcd was down`);
      await t.ipam.releaseAddress(t.pool, a);
      assert.equal(await t.gc.observe(), 0);
      assert.match(t.gc.status().lastError ?? '', /unavailable/);
      assert.deepEqual(t.gc.status().orphans, []);
      await server.restart();
      await t.gc.observe();
      assert.equal(t.gc.status().orphans.length, 1);
      t.advance(GRACE);
      assert.equal(await t.gc.observe(), 1);
      assert.equal(await t.claimed(a), undefined);
      assert.equal(await t.request(), a);
    } finally {
      await store.close();
    }
  });
});
