import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { CreateNetworkInput } from '../core/contracts.ts';
import type { NamedEndpoint } from '../core/names/model.ts';
import { networkInput } from '../core/testing.ts';
import type { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import { silentLogger } from '../obs/logger.ts';
import { PolicyService } from './policy-service.ts';
import { testEid, testNid, testService } from './testing.ts';

const _id = (c: string, n = 0): string => (n.toString(16).padStart(4, '0') + c.repeat(64)).slice(0, 64);
const NID = testNid('a');
const netInput = (generic: Record<string, string> = {}): CreateNetworkInput =>
  networkInput({ networkId: NID, generic });

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

function setup() {
  // the daemon's wiring (testing.ts: src/daemon.ts over the memory store and the fake kernel)
  const { dp, repo, reconciler, svc: net, policy } = testService();
  stops.push(() => reconciler.stop());
  const join = async (n: number, options: Record<string, unknown> = {}) => {
    const endpointId = testEid('b', n);
    await net.createEndpoint({ networkId: NID, endpointId, address: `198.18.1.${10 + n}/24`, options });
    await net.join({ networkId: NID, endpointId, sandboxKey: `/var/run/docker/netns/${n}`, options: {} });
    return endpointId;
  };
  return { dp, repo, reconciler, net, policy, join };
}

const chains = (dp: FakeDataplane) => [...dp.policies.keys()].sort();

describe('port policy through the services', () => {
  it('an open network programs no policy; truss.ingress programs one per joined endpoint', async () => {
    const t = setup();
    await t.net.createNetwork(netInput());
    await t.join(1);
    assert.deepEqual(chains(t.dp), []);
    const u = setup();
    await u.net.createNetwork(netInput({ 'truss.ingress': 'tcp/80' }));
    const e = await u.join(1);
    assert.deepEqual(chains(u.dp), [`ep_${e.slice(0, 12)}`]);
    // its link-local address (EUI-64 of its MAC 02:5e:c6:12:01:0b) is policed too
    assert.deepEqual(u.dp.policies.get(`ep_${e.slice(0, 12)}`)?.addresses, ['198.18.1.11', 'fe80::5e:c6ff:fe12:10b']);
  });

  it('a per-container driver-opt replaces the network policy', async () => {
    const t = setup();
    await t.net.createNetwork(netInput({ 'truss.ingress': 'tcp/80' }));
    const e = await t.join(2, { 'truss.ingress': 'tcp/8080' });
    const view = await t.policy.show(NID);
    assert.equal(view.ingress, 'tcp/80');
    assert.equal(view.source, 'created');
    assert.deepEqual(
      view.endpoints.map((x) => [x.endpointId, x.ingress, x.override]),
      [[e, 'tcp/8080', true]],
    );
  });

  it('policy set reaches running endpoints (not overrides) before it answers; clear reopens', async () => {
    const t = setup();
    await t.net.createNetwork(netInput());
    const plain = await t.join(1);
    const own = await t.join(2, { 'truss.ingress': 'udp/53' });
    const view = await t.policy.set(NID, 'tcp/80,tcp/8080');
    assert.equal(view.source, 'runtime');
    assert.deepEqual(t.dp.policies.get(`ep_${plain.slice(0, 12)}`)?.rules, [
      { proto: 'tcp', ports: { from: 80, to: 80 } },
      { proto: 'tcp', ports: { from: 8080, to: 8080 } },
    ]);
    assert.deepEqual(t.dp.policies.get(`ep_${own.slice(0, 12)}`)?.rules, [
      { proto: 'udp', ports: { from: 53, to: 53 } },
    ]);
    const cleared = await t.policy.set(NID, null);
    assert.equal(cleared.ingress, null);
    assert.deepEqual(chains(t.dp), [`ep_${own.slice(0, 12)}`]);
  });

  it('refuses a bad spec or an unknown network without changing anything', async () => {
    const t = setup();
    await t.net.createNetwork(netInput({ 'truss.ingress': 'tcp/80' }));
    await t.join(1);
    await assert.rejects(t.policy.set(NID, 'tcp/80;reboot'), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /truss\.ingress/,
    });
    await assert.rejects(t.policy.set(testNid('f'), 'tcp/80'), {
      code: 'TRUSS_ERR_NETWORK_NOT_FOUND',
      message: /not a truss network/,
    });
    assert.equal((await t.policy.show(NID)).ingress, 'tcp/80');
    await assert.rejects(t.net.createNetwork({ ...netInput({ 'truss.ingress': 'tcp/0' }), networkId: testNid('c') }), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /tcp\/0/,
    });
  });

  it('leave removes the policy; deleting the network removes the table and the run-time record', async () => {
    const t = setup();
    await t.net.createNetwork(netInput({ 'truss.ingress': 'tcp/80' }));
    const e = await t.join(1);
    await t.policy.set(NID, 'tcp/443');
    await t.net.leave(NID, e);
    assert.deepEqual(chains(t.dp), []);
    await t.net.deleteEndpoint(NID, e);
    await t.net.deleteNetwork(NID);
    assert.equal(await t.repo.getPolicy(NID), undefined);
    assert.equal(t.dp.policyTable, false);
  });

  it('a failed policy makes Join fail (fail closed) and undoes the join', async () => {
    const t = setup();
    await t.net.createNetwork(netInput({ 'truss.ingress': 'tcp/80' }));
    const endpointId = testEid('b', 7);
    await t.net.createEndpoint({ networkId: NID, endpointId, address: '198.18.1.30/24', options: {} });
    t.dp.failNext('ensurePolicy', new Error('nft said no'));
    await assert.rejects(
      t.net.join({ networkId: NID, endpointId, sandboxKey: '/var/run/docker/netns/7', options: {} }),
    );
    assert.equal((await t.repo.getEndpoint(NID, endpointId))?.sandboxKey, undefined);
  });

  it('a full pass repairs a policy deleted behind truss', async () => {
    const t = setup();
    await t.net.createNetwork(netInput({ 'truss.ingress': 'tcp/80' }));
    const e = await t.join(1);
    t.dp.policies.delete(`ep_${e.slice(0, 12)}`);
    assert.notDeepEqual(await t.reconciler.check(), []);
    await t.reconciler.reconcileNow();
    assert.deepEqual(chains(t.dp), [`ep_${e.slice(0, 12)}`]);
    assert.deepEqual(await t.reconciler.check(), []);
  });
});

describe('port policy by name/label: truss policy show', () => {
  const named = (
    name: string,
    node: string,
    addresses: string[],
    labels: Record<string, string> = {},
  ): NamedEndpoint => ({
    endpointId: testEid('f'),
    node,
    networkName: 'web',
    containerId: 'c'.repeat(64),
    name,
    aliases: [],
    labels,
    addresses,
  });

  it('says which containers each name=/label= rule matches now, from the catalog it is given', async () => {
    const t = setup();
    await t.net.createNetwork(netInput({ 'truss.ingress': 'tcp/5432@name=api-*,tcp/80' }));
    await t.join(1, { 'truss.ingress': 'icmp@label=role=ops,tcp/5432@name=api-*' });
    let catalog = [
      named('api-2', 'n2', ['198.18.9.7']),
      named('api-1', 'n1', ['198.18.1.20']),
      named('db', 'n1', ['198.18.1.21']),
    ];
    const svc = new PolicyService({ repo: t.repo, reconciler: t.reconciler, log: silentLogger, names: () => catalog });
    assert.deepEqual((await svc.show(NID)).selectorRules, [
      {
        rule: 'tcp/5432@name=api-*',
        matches: [
          { name: 'api-1', node: 'n1', addresses: ['198.18.1.20'] },
          { name: 'api-2', node: 'n2', addresses: ['198.18.9.7'] },
        ],
      },
      { rule: 'icmp@label=role=ops', matches: [] },
    ]);
    catalog = [named('tool', 'n3', ['fd00::9'], { role: 'ops' })];
    assert.deepEqual((await svc.show(NID)).selectorRules?.[1], {
      rule: 'icmp@label=role=ops',
      matches: [{ name: 'tool', node: 'n3', addresses: ['fd00::9'] }],
    });
    // no such rule in force: no field
    await t.policy.set(NID, 'tcp/80');
    const plain = new PolicyService({
      repo: t.repo,
      reconciler: t.reconciler,
      log: silentLogger,
      names: () => catalog,
    });
    const view = await plain.show(NID);
    assert.equal('selectorRules' in view, true, 'the endpoint override still names selectors');
    assert.deepEqual(
      view.selectorRules?.map((r) => r.rule),
      ['icmp@label=role=ops', 'tcp/5432@name=api-*'],
    );
  });
});
