import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { CreateNetworkInput, RequestContext } from '../core/contracts.ts';
import { describeHolder } from '../core/ipam/address-selection.ts';
import { ipamData, networkInput } from '../core/testing.ts';
import { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import { silentLogger } from '../obs/logger.ts';
import { MemoryStore } from '../store/memory.ts';
import type { Store } from '../store/store.ts';
import { IntentRepo } from './intent.ts';
import { DEFAULT_POOLS, IpamService } from './ipam-service.ts';
import { JOURNAL_PREFIX, Journal } from './journal.ts';
import { NetworkService } from './network-service.ts';
import { createSettler } from './settle.ts';
import { stopTestServices, testEid, testNid, testReconciler } from './testing.ts';

const GW = { RequestAddressType: 'com.docker.network.gateway' };
const SUBNET = '198.18.40.0/24';
const NID = testNid('a');

/** A request context whose reply is decided by the test; `never` stays pending (a crash). */
function reply(): RequestContext & { sent(): Promise<void>; failed(): Promise<void> } {
  const r = Promise.withResolvers<boolean>();
  const settle = async (ok: boolean): Promise<void> => {
    r.resolve(ok);
    await new Promise((res) => setTimeout(res, 20)); // the journal's follow-up runs
  };
  return { replied: r.promise, sent: () => settle(true), failed: () => settle(false) };
}
const never: RequestContext = { replied: new Promise<boolean>(() => {}) };

/** One truss "process" over `store`: the services, the journal and its settler, like main.ts. */
function daemon(store: Store, dp = new FakeDataplane()) {
  const repo = new IntentRepo(store);
  const reconciler = testReconciler(repo, dp);
  reconciler.start();
  const journal = new Journal({ store, log: silentLogger });
  const ipam = new IpamService({ store, log: silentLogger, defaultPools: DEFAULT_POOLS, journal });
  const net = new NetworkService({ repo, reconciler, log: silentLogger, programTimeoutMs: 2000, journal });
  journal.settleWith(createSettler({ repo, ipam, trigger: () => reconciler.trigger(), log: silentLogger }));
  const pool = async (ctx?: RequestContext) =>
    ipam.requestPool({ addressSpace: 'TrussLocal', pool: SUBNET, subPool: '', options: {}, v6: false }, ctx);
  const addr = async (poolId: string, address: string, ctx?: RequestContext, options = {}) =>
    ipam.requestAddress({ poolId, address, options }, ctx);
  return { dp, repo, reconciler, journal, ipam, net, pool, addr };
}

const entries = async (store: Store) => (await store.list(JOURNAL_PREFIX)).items.length;
const held = async (store: Store) => (await store.list('/truss/v1/ipam/addrs/')).items.map((kv) => kv.key);
const pools = async (store: Store) => (await store.list('/truss/v1/ipam/pools/')).items.length;

const netInput = (gateway: string): CreateNetworkInput =>
  networkInput({ networkId: NID, ipv4: [ipamData(SUBNET, gateway)] });

describe('request journal', () => {
  afterEach(() => stopTestServices());

  it('a success reply clears the entry and keeps the allocation', async () => {
    const store = new MemoryStore();
    const d = daemon(store);
    const p = await d.pool();
    const ctx = reply();
    await d.addr(p.poolId, '198.18.40.10', ctx);
    assert.equal(await entries(store), 1, 'journalled with the address, before the reply');
    await ctx.sent();
    assert.equal(await entries(store), 0);
    assert.equal((await held(store)).length, 1);
  });

  it('a reply that never left rolls RequestAddress and RequestPool back at once', async () => {
    const store = new MemoryStore();
    const d = daemon(store);
    const pctx = reply();
    const p = await d.pool(pctx);
    await pctx.sent();
    const ctx = reply();
    await d.addr(p.poolId, '198.18.40.10', ctx);
    await ctx.failed();
    assert.deepEqual(await held(store), []);
    assert.equal(await entries(store), 0);
    const lost = reply();
    const q = await d.ipam.requestPool(
      { addressSpace: 'TrussLocal', pool: '198.18.41.0/24', subPool: '', options: {}, v6: false },
      lost,
    );
    await lost.failed();
    assert.equal(await pools(store), 1, `pool ${q.poolId} released`);
    // the same --ip works again
    await d.addr(p.poolId, '198.18.40.10');
  });

  it('entries a crash left are settled at start-up, once (idempotent)', async () => {
    const store = new MemoryStore();
    const d = daemon(store);
    const p = await d.pool();
    await d.addr(p.poolId, '198.18.40.10', never); // crash: the reply never resolves
    await d.addr(p.poolId, '198.18.40.11');
    assert.equal(await entries(store), 1);
    const after = daemon(store); // the restart
    assert.equal(await after.journal.settleLeftovers(), 1);
    assert.deepEqual(await held(store), [`/truss/v1/ipam/addrs/${encodeURIComponent(p.poolId)}/198.18.40.11`]);
    assert.equal(await after.journal.settleLeftovers(), 0);
  });

  it('never takes back an address handed out again after the request', async () => {
    const store = new MemoryStore();
    const d = daemon(store);
    const p = await d.pool();
    await d.addr(p.poolId, '198.18.40.10', never);
    // dockerd released it meanwhile and another container got it
    await d.ipam.releaseAddress(p.poolId, '198.18.40.10');
    await d.addr(p.poolId, '198.18.40.10');
    await daemon(store).journal.settleLeftovers();
    assert.equal((await held(store)).length, 1, 'the new holder keeps it');
  });

  it('a ReleaseAddress whose reply never reached dockerd is completed (a crash before the store write)', async () => {
    const store = new MemoryStore();
    const d = daemon(store);
    const p = await d.pool();
    await d.addr(p.poolId, '198.18.40.10');
    // what releaseAddress journals before it touches the store; the crash came next
    await d.journal.record({ kind: 'release-address', poolId: p.poolId, address: '198.18.40.10' });
    assert.equal((await held(store)).length, 1);
    assert.equal(await daemon(store).journal.settleLeftovers(), 1);
    assert.deepEqual(await held(store), []);
    assert.equal(await entries(store), 0);
  });

  it('a redone release never takes an address allocated after the release was asked', async () => {
    const store = new MemoryStore();
    const d = daemon(store);
    const p = await d.pool();
    await d.journal.record({ kind: 'release-address', poolId: p.poolId, address: '198.18.40.10' });
    await d.addr(p.poolId, '198.18.40.10');
    await daemon(store).journal.settleLeftovers();
    assert.equal((await held(store)).length, 1);
  });

  it('a release with a failed reply is redone, and a ReleasePool journals the same way', async () => {
    const store = new MemoryStore();
    const d = daemon(store);
    const p = await d.pool();
    const ctx = reply();
    await d.ipam.releasePool(p.poolId, ctx);
    assert.equal(await entries(store), 1, 'recorded before the release');
    await ctx.sent();
    assert.equal(await entries(store), 0);
    assert.equal(await pools(store), 0);
  });

  it('a crashed CreateNetwork is undone: intent, kernel objects and the pool it was given', async () => {
    const store = new MemoryStore();
    const d = daemon(store);
    const p = await d.pool();
    const gw = await d.addr(p.poolId, '', undefined, GW);
    await d.net.createNetwork(netInput(gw.address), never);
    assert.ok(d.dp.links.has('trb0000aaaaaaaa'));
    const after = daemon(store, d.dp); // the same host
    assert.equal(await after.journal.settleLeftovers(), 1);
    assert.deepEqual(await after.repo.listNetworks(), []);
    assert.equal(await pools(store), 0, 'the pool (and its gateway) released');
    await after.reconciler.reconcileNow();
    assert.ok(!after.dp.links.has('trb0000aaaaaaaa'), 'the bridge is gone');
    // the same --subnet works again
    const again = await after.pool();
    await after.net.createNetwork(netInput((await after.addr(again.poolId, '', undefined, GW)).address));
  });

  it('keeps a network that has endpoints, and a pool requested after the create', async () => {
    const store = new MemoryStore();
    const d = daemon(store);
    const p = await d.pool();
    const gw = await d.addr(p.poolId, '', undefined, GW);
    await d.net.createNetwork(netInput(gw.address), never);
    await d.net.createEndpoint({ networkId: NID, endpointId: testEid('b'), address: '198.18.40.5/24', options: {} });
    await daemon(store).journal.settleLeftovers();
    assert.equal((await d.repo.listNetworks()).length, 1);
    assert.equal(await pools(store), 1);
  });

  it('a CreateNetwork that failed with an error reply is settled too (nothing left)', async () => {
    const store = new MemoryStore();
    const d = daemon(store);
    const p = await d.pool();
    const gw = await d.addr(p.poolId, '', undefined, GW);
    const ctx = reply();
    await d.net.createNetwork(netInput(gw.address), ctx);
    await ctx.failed();
    assert.deepEqual(await d.repo.listNetworks(), []);
    assert.equal(await pools(store), 0);
    assert.equal(await entries(store), 0);
  });
});

describe('address conflict wording', () => {
  it('says what holds an address requested without an endpoint name', () => {
    assert.equal(describeHolder({ kind: 'aux' }, true), 'an aux address (--aux-address) of the network');
    assert.equal(describeHolder({ kind: 'aux' }, false), "a container's fixed address (--ip)");
    assert.match(describeHolder({ kind: 'aux' }), /--ip or an --aux-address/);
  });

  it('an --ip held by a container is not called an aux address', async () => {
    const store = new MemoryStore();
    const ipam = new IpamService({
      store,
      log: silentLogger,
      defaultPools: DEFAULT_POOLS,
      auxAddresses: async () => ['198.18.40.200'],
    });
    const p = await ipam.requestPool({ addressSpace: 'TrussLocal', pool: SUBNET, subPool: '', options: {}, v6: false });
    await ipam.requestAddress({ poolId: p.poolId, address: '198.18.40.10', options: {} });
    await ipam.requestAddress({ poolId: p.poolId, address: '198.18.40.200', options: {} });
    await assert.rejects(ipam.requestAddress({ poolId: p.poolId, address: '198.18.40.10', options: {} }), {
      code: 'TRUSS_ERR_ADDRESS_IN_USE',
      message: /already allocated to a container's fixed address \(--ip\)/,
    });
    await assert.rejects(ipam.requestAddress({ poolId: p.poolId, address: '198.18.40.200', options: {} }), {
      code: 'TRUSS_ERR_ADDRESS_IN_USE',
      message: /already allocated to an aux address \(--aux-address\)/,
    });
  });
});
