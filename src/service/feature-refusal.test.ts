import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { ClusterMembership, CreateNetworkInput } from '../core/contracts.ts';
import type { Capabilities, Feature, MissingPiece } from '../core/preflight.ts';
import { networkInput } from '../core/testing.ts';
import { silentLogger } from '../obs/logger.ts';
import { NetworkService } from './network-service.ts';
import { PolicyService } from './policy-service.ts';
import { stopTestServices, testEid, testNid, testService } from './testing.ts';

const NID = testNid('a');
const EID = testEid('b');
const CONNTRACK: MissingPiece = {
  what: "the program 'conntrack'",
  state: 'is not installed',
  fix: 'apt-get install conntrack',
  restart: true,
};
const WG: MissingPiece = {
  what: "the program 'wg'",
  state: 'is not installed',
  fix: 'apt-get install wireguard-tools',
  restart: true,
};
const lacking = (m: Partial<Record<Feature, MissingPiece>>): Capabilities => ({ missing: (f) => m[f] });

const netInput = (generic: Record<string, string> = {}, over: Partial<CreateNetworkInput> = {}): CreateNetworkInput =>
  networkInput({ networkId: NID, generic, ...over });

const CONNTRACK_MSG =
  "needs the program 'conntrack', which is not installed: apt-get install conntrack (then restart truss)";

function setup(capabilities: Capabilities, cluster?: ClusterMembership) {
  const t = testService();
  const svc = new NetworkService({
    repo: t.repo,
    reconciler: t.reconciler,
    log: silentLogger,
    programTimeoutMs: 2000,
    capabilities,
    ...(cluster ? { cluster } : {}),
  });
  const policy = new PolicyService({ repo: t.repo, reconciler: t.reconciler, log: silentLogger, capabilities });
  return { ...t, svc, policy };
}
afterEach(stopTestServices);

describe('features refused when the host lacks a piece', () => {
  it('truss.ingress on a network without conntrack: refused, nothing stored, nothing programmed', async () => {
    const { svc, repo, dp } = setup(lacking({ 'port-policy': CONNTRACK }));
    await assert.rejects(svc.createNetwork(netInput({ 'truss.ingress': 'tcp/80' })), {
      code: 'TRUSS_ERR_FEATURE_UNSUPPORTED',
      message: `truss.ingress ${CONNTRACK_MSG}`,
    });
    assert.deepEqual(await repo.listNetworks(), []);
    assert.equal(dp.links.size, 0);
    await svc.createNetwork(netInput()); // without a policy: fine
  });

  it('truss.ingress on an endpoint (docker network connect --driver-opt): refused before it exists', async () => {
    const { svc, repo } = setup(lacking({ 'port-policy': CONNTRACK }));
    await svc.createNetwork(netInput());
    await assert.rejects(
      svc.createEndpoint({
        networkId: NID,
        endpointId: EID,
        address: '198.18.1.2/24',
        options: { 'truss.ingress': 'tcp/80' },
      }),
      { message: `truss.ingress ${CONNTRACK_MSG}` },
    );
    assert.deepEqual(await repo.listEndpoints(NID), []);
  });

  it('an endpoint of a network whose policy was set before conntrack went missing: refused, not Join', async () => {
    const full = setup(lacking({}));
    await full.svc.createNetwork(netInput({ 'truss.ingress': 'tcp/80' }));
    const svc = new NetworkService({
      repo: full.repo,
      reconciler: full.reconciler,
      log: silentLogger,
      capabilities: lacking({ 'port-policy': CONNTRACK }),
    });
    await assert.rejects(
      svc.createEndpoint({ networkId: NID, endpointId: EID, address: '198.18.1.2/24', options: {} }),
      {
        message: `the port policy of network 0000aaaaaaaa (truss.ingress) ${CONNTRACK_MSG}`,
      },
    );
    assert.deepEqual(await full.repo.listEndpoints(NID), []);
  });

  it('truss policy set --ingress without conntrack: refused, nothing stored; clear is allowed', async () => {
    const { svc, policy, repo } = setup(lacking({ 'port-policy': CONNTRACK }));
    await svc.createNetwork(netInput());
    await assert.rejects(policy.set(NID, 'tcp/80'), { message: `truss policy set --ingress ${CONNTRACK_MSG}` });
    assert.equal(await repo.getPolicy(NID), undefined);
    await policy.set(NID, null);
  });

  it('an encrypted cluster network without wg: refused before the cluster is joined', async () => {
    const calls: string[] = [];
    const cluster: ClusterMembership = {
      enabled: () => true,
      mtu: () => 1420,
      joinNetwork: async (j) => void calls.push(`join ${j.name}`),
      leaveNetwork: async (n) => void calls.push(`leave ${n}`),
    };
    const { svc, repo } = setup(lacking({ 'encrypted-cluster': WG }), cluster);
    await assert.rejects(svc.createNetwork(netInput({ 'truss.cluster': 'blue' })), {
      message:
        "truss.cluster=blue with truss.encrypt=true (the default) needs the program 'wg', which is not installed: " +
        'apt-get install wireguard-tools (then restart truss)',
    });
    assert.deepEqual(calls, []);
    assert.deepEqual(await repo.listNetworks(), []);
    await svc.createNetwork(netInput({ 'truss.cluster': 'blue', 'truss.encrypt': 'false' })); // VXLAN: fine
    assert.deepEqual(calls, ['join blue']);
  });

  it('an IPv6 pool on a host with IPv6 off: refused', async () => {
    const off: MissingPiece = {
      what: 'IPv6 on the host',
      state: 'is off',
      fix: 'boot without ipv6.disable=1',
      restart: false,
    };
    const { svc, repo } = setup(lacking({ ipv6: off }));
    const v6 = [{ pool: 'fd00:1::/64', gateway: 'fd00:1::1/64', auxAddresses: {} }];
    await assert.rejects(svc.createNetwork(netInput({}, { ipv6: v6, enableIpv6: true })), {
      message: 'the IPv6 pool fd00:1::/64 needs IPv6 on the host, which is off: boot without ipv6.disable=1',
    });
    assert.deepEqual(await repo.listNetworks(), []);
  });
});
