import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BridgeObject, PolicyObject, VethObject } from '../../core/desired.ts';
import { isTrussError } from '../../core/errors.ts';
import { isKernelError, KernelError } from '../linux/exec.ts';
import { createFakeDataplane } from './fake-dataplane.ts';

const N = 'a'.repeat(64);
const E = 'e'.repeat(64);
const br: BridgeObject = {
  name: 'trbaaaaaaaaaaaa',
  networkId: N,
  mtu: 1500,
  mac: '02:00:00:00:00:01',
  addresses: ['198.18.1.1/24'],
};
const ve: VethObject = {
  name: 'trveeeeeeeeeeee',
  peer: 'trceeeeeeeeeeee',
  networkId: N,
  endpointId: E,
  bridge: br.name,
  mtu: 1500,
  peerMac: '02:5e:ee:ee:ee:ee',
  joined: false,
};

describe('FakeDataplane', () => {
  it('creates and converges bridges idempotently, keeping the ifindex', async () => {
    const dp = createFakeDataplane();
    await dp.ensureBridge(br);
    const first = (await dp.listLinks())[0];
    await dp.ensureBridge({ ...br, mtu: 1400 });
    const second = (await dp.listLinks())[0];
    assert.equal(second?.ifindex, first?.ifindex);
    assert.equal(second?.mtu, 1400);
    assert.equal(dp.callsOf('ensureBridge').length, 2);
  });

  it('refuses a foreign link with our name and leaves it', async () => {
    const dp = createFakeDataplane();
    dp.addForeignLink(br.name);
    await assert.rejects(dp.ensureBridge(br), { code: 'TRUSS_ERR_KERNEL_OBJECT_FOREIGN' });
    await dp.removeBridge(br.name);
    assert.equal(dp.links.has(br.name), true);
  });

  it('creates veth pairs, removes both ends, and never re-creates a joined endpoint', async () => {
    const dp = createFakeDataplane();
    await dp.ensureBridge(br);
    await dp.ensureVeth(ve);
    assert.deepEqual(
      (await dp.listLinks()).map((l) => l.name),
      [br.name, ve.peer, ve.name],
    );
    dp.movePeerToContainer(ve.peer);
    dp.deleteBehindBack(ve.name);
    const err = await dp.ensureVeth({ ...ve, joined: true }).catch((e: unknown) => e);
    assert.ok(isTrussError(err));
    assert.equal(err.code, 'TRUSS_ERR_ENDPOINT_DISCONNECTED');
    await dp.ensureVeth(ve);
    await dp.removeVeth(ve.name);
    await dp.removeVeth(ve.name);
    assert.deepEqual(
      (await dp.listLinks()).map((l) => l.name),
      [br.name],
    );
  });

  it('fails a veth without its bridge like the kernel does', async () => {
    const err = await createFakeDataplane()
      .ensureVeth(ve)
      .catch((e: unknown) => e);
    assert.ok(isKernelError(err, 'ENODEV'));
  });

  it('injects faults once (failNext) or until cleared (failAlways)', async () => {
    const dp = createFakeDataplane();
    dp.failNext('ensureBridge', new KernelError('EBUSY', ['ip'], 2, 'RTNETLINK answers: Device or resource busy'));
    await assert.rejects(dp.ensureBridge(br), { code: 'EBUSY' });
    await dp.ensureBridge(br);
    dp.failAlways('ensureFirewall', new Error('nft down'));
    await assert.rejects(dp.ensureFirewall({ networks: [] }), /nft down/);
    await assert.rejects(dp.ensureFirewall({ networks: [] }), /nft down/);
    dp.clearFaults();
    await dp.ensureFirewall({ networks: [] });
  });

  it('checks, applies and removes the firewall; raises ip_forward only for non-internal networks', async () => {
    const dp = createFakeDataplane();
    const f = {
      networks: [
        { networkId: N, bridge: br.name, subnets4: ['198.18.1.0/24'], subnets6: [], nat: true, internal: false },
      ],
    };
    assert.deepEqual(await dp.checkFirewall(f), ['nft table inet truss is missing']);
    await dp.ensureFirewall(f);
    assert.deepEqual(await dp.checkFirewall(f), []);
    assert.equal((await dp.checkFirewall({ networks: [] })).length, 1);
    await dp.removeFirewall();
    await dp.removeFirewall();
    assert.equal(dp.firewall, undefined);
    await dp.ensureSysctls({ networks: [{ ...(f.networks[0] as (typeof f.networks)[0]), internal: true }] });
    assert.equal(dp.sysctls.get('net/ipv4/ip_forward'), '0');
    await dp.ensureSysctls(f);
    assert.equal(dp.sysctls.get('net/ipv4/ip_forward'), '1');
  });
});

describe('FakeDataplane port policy', () => {
  const pol = (name: string, addresses: string[], port: number): PolicyObject => ({
    name,
    endpointId: `${name.slice(3)}${'0'.repeat(52)}`,
    networkId: N,
    addresses,
    rules: [{ proto: 'tcp', ports: { from: port, to: port } }],
  });
  const a = pol('ep_aaaaaaaaaaaa', ['198.18.1.2'], 80);
  const b = pol('ep_bbbbbbbbbbbb', ['198.18.1.3', 'fd00:1::3'], 443);

  it('checks, ensures and removes policies; extra and drifted as the kernel would report them', async () => {
    const dp = createFakeDataplane();
    assert.deepEqual(await dp.checkPolicies([a]), {
      drifted: [a.name],
      extra: [],
      problems: ['table inet truss_policy is missing'],
      tablePresent: false,
    });
    await dp.ensurePolicy(a);
    await dp.ensurePolicy(b);
    await dp.ensurePolicy(b);
    assert.deepEqual(await dp.checkPolicies([a, b]), { drifted: [], extra: [], problems: [], tablePresent: true });
    const moved = await dp.checkPolicies([{ ...a, rules: [] }]);
    assert.deepEqual([moved.drifted, moved.extra], [[a.name], [b.name]]);
    await dp.removePolicy(b.name);
    await dp.removePolicy(b.name);
    assert.deepEqual([...dp.policies.keys()], [a.name]);
    await dp.removePolicyTable();
    await dp.removePolicyTable();
    assert.equal(dp.policyTable, false);
    assert.equal(dp.policies.size, 0);
  });

  it('an address ensured for one chain leaves the other, which then drifts', async () => {
    const dp = createFakeDataplane();
    await dp.ensurePolicy(a);
    await dp.ensurePolicy({ ...b, addresses: ['198.18.1.2'] });
    assert.deepEqual(dp.policies.get(a.name)?.addresses, []);
    assert.deepEqual((await dp.checkPolicies([a])).drifted, [a.name]);
  });

  it('validates like the kernel dataplane, fails on demand, and sees the table deleted behind its back', async () => {
    const dp = createFakeDataplane();
    await assert.rejects(dp.ensurePolicy({ ...a, name: 'ep_x' }), { code: 'TRUSS_ERR_ID_INVALID' });
    await assert.rejects(dp.removePolicy('drop table'), { code: 'TRUSS_ERR_ID_INVALID' });
    dp.failNext('ensurePolicy', new KernelError('EPERM', ['nft'], 1, 'Operation not permitted'));
    await assert.rejects(dp.ensurePolicy(a), { code: 'EPERM' });
    await dp.ensurePolicy(a);
    dp.deletePolicyTableBehindBack();
    assert.deepEqual((await dp.checkPolicies([a])).problems, ['table inet truss_policy is missing']);
  });

  it('keeps denied counters across updates and drops them with the policy', async () => {
    const dp = createFakeDataplane();
    assert.deepEqual(await dp.readPolicyCounters(), {});
    await dp.ensurePolicy(a);
    dp.policyCounters[a.name] = { packets: 3, bytes: 180 };
    await dp.ensurePolicy({ ...a, rules: [] });
    assert.deepEqual(await dp.readPolicyCounters(), { [a.name]: { packets: 3, bytes: 180 } });
    await dp.removePolicy(a.name);
    assert.deepEqual(await dp.readPolicyCounters(), {});
  });
});
