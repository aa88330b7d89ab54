/**
 * The four per-endpoint kinds (policy chains, guards, shapers, published ports) share one
 * step in the reconciler: after a restart a full pass adopts what checks clean without a
 * write, and still repairs drift and prunes leftovers of every kind. Fake dataplane.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { PORTMAP_OPTION } from '../core/portmap.ts';
import { networkInput } from '../core/testing.ts';
import { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import type { IntentRepo } from '../service/intent.ts';
import { stopTestServices, testEid, testId, testNid, testReconciler, testService } from '../service/testing.ts';

const _id = testId;
const NID = testNid('a');
const EID = testEid('b');
const VETH = 'trv0000bbbbbbbb';
const OTHER_VETH = 'trv0001bbbbbbbb';
const OTHER_CHAIN = 'ep_0001bbbbbbbb';
const NET = networkInput({ networkId: NID });
const WRITES = ['ensurePolicy', 'ensureGuard', 'ensureShaper', 'ensurePorts'] as const;
const options = {
  'truss.ingress': 'tcp/80',
  'truss.bandwidth': '10mbit',
  [PORTMAP_OPTION]: [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 18080, HostPortEnd: 18080 }],
};

afterEach(stopTestServices);
const writes = (dp: FakeDataplane): Record<string, number> =>
  Object.fromEntries(WRITES.map((m) => [m, dp.calls.filter((c) => c.method === m).length]));

/** A network and one joined endpoint with all four kinds, programmed by a first reconciler. */
async function attached(dp: FakeDataplane): Promise<IntentRepo> {
  const { repo, reconciler: first, svc } = testService({ dp });
  await svc.createNetwork(NET);
  await svc.createEndpoint({ networkId: NID, endpointId: EID, address: '198.18.1.2/24', options });
  await svc.join({ networkId: NID, endpointId: EID, sandboxKey: '/var/run/docker/netns/x', options });
  await svc.programExternalConnectivity(NID, EID, options);
  await first.stop();
  return repo;
}

describe('per-endpoint kinds (reconciler)', () => {
  it('after a restart a full pass adopts every kind that checks clean, writing nothing', async () => {
    const dp = new FakeDataplane();
    const repo = await attached(dp);
    assert.deepEqual(
      Object.values(writes(dp)).map((n) => n > 0),
      [true, true, true, true],
      'the first reconciler programmed all four kinds',
    );
    const before = writes(dp);
    const second = testReconciler(repo, dp);
    await second.reconcileNow();
    assert.deepEqual(writes(dp), before);
    assert.deepEqual(await second.check(), []);
    assert.equal(second.status().firstPass?.changes, 0, 'the start-up pass changed nothing');
  });

  it('after a restart with no policy, published port or limit anywhere, the start-up pass writes nothing', async () => {
    const dp = new FakeDataplane();
    const { repo, reconciler: first, svc } = testService({ dp });
    await svc.createNetwork(NET);
    await svc.createEndpoint({ networkId: NID, endpointId: EID, address: '198.18.1.2/24', options: {} });
    await svc.join({ networkId: NID, endpointId: EID, sandboxKey: '/var/run/docker/netns/x', options: {} });
    await first.stop();
    const mark = dp.calls.length;
    const second = testReconciler(repo, dp);
    await second.reconcileNow();
    const after = dp.calls.slice(mark).map((c) => c.method);
    assert.deepEqual(
      after.filter((m) => !/^(check|list|read)/.test(m)),
      [],
      'only reads: no table removed that was never there, nothing re-applied',
    );
    assert.equal(second.status().firstPass?.changes, 0);
  });

  it('after a restart drift in each kind is repaired, and leftovers of each kind are pruned', async () => {
    const dp = new FakeDataplane();
    const repo = await attached(dp);
    const second = testReconciler(repo, dp);
    await second.reconcileNow();
    // a leftover of each kind for an endpoint nobody wants, then the wanted ones lost
    const [policy] = [...dp.policies.values()];
    const [guard] = [...dp.guards.values()];
    const [shaper] = [...dp.shapers.values()];
    assert.ok(policy && guard && shaper && dp.portsTable);
    dp.policies.set(OTHER_CHAIN, { ...policy, name: OTHER_CHAIN });
    dp.guards.set(OTHER_VETH, { ...guard, name: OTHER_VETH });
    dp.shapers.set(OTHER_VETH, { ...shaper, name: OTHER_VETH });
    dp.portsTable.elements = dp.portsTable.elements.map((e) => ({ ...e, owner: OTHER_CHAIN }));
    dp.policies.delete(policy.name);
    dp.guards.delete(VETH);
    dp.shapers.delete(VETH);
    const before = writes(dp);
    await second.reconcileNow();
    const after = writes(dp);
    for (const m of WRITES) assert.equal(after[m], (before[m] ?? 0) + 1, `${m} repairs the drift`);
    assert.deepEqual(await second.check(), []);
    assert.deepEqual([...dp.policies.keys()], [policy.name]);
    assert.deepEqual([...dp.guards.keys()], [VETH]);
    assert.deepEqual([...dp.shapers.keys()], [VETH]);
    assert.ok(dp.portsTable.elements.every((e) => e.owner !== OTHER_CHAIN));
  });
});
