/** Bandwidth limits through the real services and reconciler, on the fake dataplane. */

import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { tbfFor } from '../core/bandwidth.ts';
import type { CreateEndpointInput } from '../core/contracts.ts';
import type { EndpointId } from '../core/ids.ts';
import { endpointInput, networkInput } from '../core/testing.ts';
import { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import { KernelError } from '../dataplane/linux/exec.ts';
import type { NetworkService } from '../service/network-service.ts';
import { stopTestServices, testEid, testId, testNid, testService } from '../service/testing.ts';
import { MemoryStore } from '../store/memory.ts';
import { shaperKey } from './reconciler.ts';

const _id = testId;
const NID = testNid('a');
const EID = testEid('b');
const EID2 = testEid('b', 1);
const VETH = 'trv0000bbbbbbbb';
const VETH2 = 'trv0001bbbbbbbb';

const setup = (store = new MemoryStore(), dp = new FakeDataplane()) => testService({ store, dp });
afterEach(stopTestServices);

const createNet = (svc: NetworkService, generic: Record<string, string>) =>
  svc.createNetwork(networkInput({ networkId: NID, generic }));
const ep = (endpointId: EndpointId, n: number, options: CreateEndpointInput['options'] = {}): CreateEndpointInput =>
  endpointInput({ networkId: NID, endpointId, address: `198.18.1.${n}/24`, options });

describe('bandwidth limits (reconciler + services, fake dataplane)', () => {
  it('network default per container, endpoint override per direction; removed with the endpoint', async () => {
    const { dp, svc } = setup();
    await createNet(svc, { 'truss.bandwidth': '50mbit', 'truss.bandwidth.ingress': '30mbit' });
    await svc.createEndpoint(ep(EID, 2));
    await svc.createEndpoint(ep(EID2, 3, { 'truss.bandwidth': '10mbit' }));
    assert.deepEqual(dp.shapers.get(VETH)?.egress, tbfFor(50_000_000, 1500));
    assert.deepEqual(dp.shapers.get(VETH)?.ingress, tbfFor(30_000_000, 1500));
    assert.deepEqual(dp.shapers.get(VETH2)?.egress, tbfFor(10_000_000, 1500), 'the endpoint override wins');
    assert.deepEqual(dp.shapers.get(VETH2)?.ingress, tbfFor(30_000_000, 1500), 'the other direction keeps the default');
    await svc.join({ networkId: NID, endpointId: EID, sandboxKey: '/var/run/docker/netns/x', options: {} });
    assert.equal(dp.callsOf('ensureShaper').length, 2, 'Join programs nothing new');
    await svc.leave(NID, EID);
    await svc.deleteEndpoint(NID, EID);
    assert.equal(dp.shapers.has(VETH), false);
    assert.equal(dp.links.has(VETH), false);
    assert.ok(dp.shapers.has(VETH2));
  });
  it('no limit: no shaper and no shaping call on attach', async () => {
    const { dp, svc } = setup();
    await createNet(svc, {});
    await svc.createEndpoint(ep(EID, 2));
    assert.equal(dp.shapers.size, 0);
    assert.equal(dp.callsOf('ensureShaper').length, 0);
  });
  it('a failing bandwidth check (no tc) with no limit anywhere fails nothing', async () => {
    const { dp, svc, reconciler } = setup();
    dp.failAlways('checkShapers', new KernelError('ENOENT', ['tc'], 127, 'tc: not found'));
    await createNet(svc, {});
    await svc.createEndpoint(ep(EID, 2));
    const pass = await reconciler.reconcileNow();
    assert.equal(pass?.failures, 0);
    assert.deepEqual(await reconciler.check(), []);
  });
  it('a bad rate is refused and nothing is stored', async () => {
    const { dp, svc, repo } = setup();
    await assert.rejects(createNet(svc, { 'truss.bandwidth': '100mbps' }), /megabytes/);
    assert.deepEqual(await repo.listNetworks(), []);
    await createNet(svc, {});
    await assert.rejects(svc.createEndpoint(ep(EID, 2, { 'truss.bandwidth.ingress': '1' })), /between/);
    assert.equal(dp.links.has(VETH), false);
  });
  it('a failing tc fails CreateEndpoint (the container never runs unshaped) and is undone', async () => {
    const { dp, svc, repo } = setup();
    await createNet(svc, { 'truss.bandwidth': '50mbit' });
    dp.failAlways('ensureShaper', new KernelError('EPERM', ['tc'], 2, 'Operation not permitted'));
    await assert.rejects(svc.createEndpoint(ep(EID, 2)));
    assert.equal(await repo.getEndpoint(NID, EID), undefined);
  });
  it('full passes repair a shaper removed by hand and prune one not wanted; a restart rebuilds', async () => {
    const store = new MemoryStore();
    const dp = new FakeDataplane();
    const { svc, reconciler } = setup(store, dp);
    await createNet(svc, { 'truss.bandwidth.ingress': '30mbit' });
    await svc.createEndpoint(ep(EID, 2));
    const want = dp.shapers.get(VETH);
    dp.shapers.delete(VETH);
    dp.shapers.set('trv0000cccccccc', { ...(want as NonNullable<typeof want>), name: 'trv0000cccccccc' });
    await reconciler.reconcileNow();
    assert.deepEqual(dp.shapers.get(VETH), want);
    assert.equal(dp.shapers.has('trv0000cccccccc'), false);
    assert.equal(reconciler.status().objects[shaperKey(VETH)]?.state, 'ok');
    // restart: a new reconciler over the same store and kernel; the shaping was lost meanwhile
    await reconciler.stop();
    dp.shapers.clear();
    const again = setup(store, dp);
    await again.reconciler.reconcileNow();
    assert.deepEqual(dp.shapers.get(VETH), want);
    assert.deepEqual(await again.reconciler.check(), []);
  });
});
