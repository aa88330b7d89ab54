/**
 * name=/label= sources through the reconciler (fake dataplane): a selector's sets are ensured
 * before the chains that name them, follow the catalog, and go only after those chains.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { NamedEndpoint } from '../core/names/model.ts';
import { selectorSetName } from '../core/naming.ts';
import { networkInput } from '../core/testing.ts';
import { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import { silentLogger } from '../obs/logger.ts';
import { stopTestServices, testEid, testNid, testService } from '../service/testing.ts';
import { Reconciler } from './reconciler.ts';

const NID = testNid('a');
const DB = testEid('b');
const WEB = testEid('c');
const SEL = selectorSetName({ by: 'name', glob: 'api-*' });

afterEach(stopTestServices);

const named = (name: string, address: string): NamedEndpoint => ({
  endpointId: testEid('f'),
  node: 'n2',
  networkName: 'web',
  containerId: 'c'.repeat(64),
  name,
  aliases: [],
  labels: {},
  addresses: [address],
});

/** db (tcp/5432 from api-*) and web (tcp/80) joined, then a reconciler reading `catalog` and dropping db when told. */
async function setup(dp: FakeDataplane) {
  const { repo, reconciler: first, svc } = testService({ dp });
  await svc.createNetwork(networkInput({ networkId: NID }));
  for (const [eid, address, ingress] of [
    [DB, '198.18.1.2/24', 'tcp/5432@name=api-*'],
    [WEB, '198.18.1.3/24', 'tcp/80'],
  ] as const) {
    const options = { 'truss.ingress': ingress };
    await svc.createEndpoint({ networkId: NID, endpointId: eid, address, options });
    await svc.join({ networkId: NID, endpointId: eid, sandboxKey: '/var/run/docker/netns/x', options });
  }
  await first.stop();
  const state = { catalog: [named('api-1', '198.18.9.1')] as NamedEndpoint[] | 'pending', dropDb: false };
  const r = new Reconciler({
    loadIntent: async () => {
      const i = await repo.snapshot();
      const endpoints = state.dropDb ? i.endpoints.filter((e) => e.id !== DB) : i.endpoints;
      return { ...i, endpoints, names: state.catalog };
    },
    dataplane: dp,
    log: silentLogger,
    resyncMs: 3_600_000,
  });
  return { r, state };
}

describe('selector sets (reconciler)', () => {
  it('a chain that names a selector finds its set; the members follow the catalog; converged = no drift', async () => {
    const dp = new FakeDataplane();
    const { r, state } = await setup(dp);
    await r.reconcileNow();
    assert.deepEqual(dp.selectors.get(SEL)?.addresses4, ['198.18.9.1']);
    assert.deepEqual(await r.check(), []);
    state.catalog = [named('api-1', '198.18.9.1'), named('api-2', '198.18.9.2'), named('web-1', '198.18.9.3')];
    await r.reconcileNow();
    assert.deepEqual(dp.selectors.get(SEL)?.addresses4, ['198.18.9.1', '198.18.9.2']);
    assert.deepEqual(await r.check(), []);
    await r.stop();
  });

  it('while the catalog is pending the sets are left exactly as they are (a restart flips no verdict)', async () => {
    const dp = new FakeDataplane();
    const { r, state } = await setup(dp);
    await r.reconcileNow();
    state.catalog = 'pending';
    const mark = dp.calls.length;
    await r.reconcileNow();
    assert.deepEqual(dp.selectors.get(SEL)?.addresses4, ['198.18.9.1']);
    assert.deepEqual(
      dp.calls.slice(mark).filter((c) => /Selector/.test(c.method)),
      [],
      'not even looked at',
    );
    assert.deepEqual(await r.check(), ['name/label policy sets: container names not known yet (left as they are)']);
    state.catalog = [];
    await r.reconcileNow();
    assert.deepEqual(dp.selectors.get(SEL)?.addresses4, [], 'known and empty: emptied');
    await r.stop();
  });

  it('ensures a new selector before the chain that names it', async () => {
    const dp = new FakeDataplane();
    const { r } = await setup(dp);
    dp.deletePolicyTableBehindBack();
    const mark = dp.calls.length;
    await r.reconcileNow();
    const order = dp.calls
      .slice(mark)
      .map((c) => c.method)
      .filter((m) => /^ensure(Selector|Policy)$/.test(m));
    assert.deepEqual(order, ['ensureSelector', 'ensurePolicy', 'ensurePolicy']);
    await r.stop();
  });

  it('removes an unused selector only after the chain that named it', async () => {
    const dp = new FakeDataplane();
    const { r, state } = await setup(dp);
    await r.reconcileNow();
    state.dropDb = true;
    const mark = dp.calls.length;
    await r.reconcileNow();
    const order = dp.calls
      .slice(mark)
      .map((c) => c.method)
      .filter((m) => /^remove(Selector|Policy)$/.test(m));
    assert.deepEqual(order, ['removePolicy', 'removeSelector']);
    assert.equal(dp.selectors.size, 0);
    assert.deepEqual(r.status().objects[`selector:${SEL}`], undefined);
    assert.deepEqual(await r.check(), []);
    await r.stop();
  });
});
