/** Anti-spoofing through the service and the reconciler, on the fake dataplane. */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { CreateEndpointInput, CreateNetworkInput } from '../core/contracts.ts';
import { endpointInput, ipamData, networkInput } from '../core/testing.ts';
import { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import { KernelError } from '../dataplane/linux/exec.ts';
import { stopTestServices, testEid, testId, testNid, testReconciler, testService } from '../service/testing.ts';

const _id = testId;
const NID = testNid('a');
const EID = testEid('b');
const EID2 = testEid('b', 1);
const VETH = 'trv0000bbbbbbbb';
const PORT2 = 'trv0001bbbbbbbb';

const netInput = (generic: Record<string, string> = {}): CreateNetworkInput =>
  networkInput({ networkId: NID, ipv6: [ipamData('fd00:1::/64')], generic });
const epInput = (over: Partial<CreateEndpointInput> = {}): CreateEndpointInput =>
  endpointInput({ networkId: NID, endpointId: EID, addressIpv6: 'fd00:1::2/64', ...over });

const setup = (dp = new FakeDataplane()) => testService({ dp });
afterEach(stopTestServices);
const calls = (dp: FakeDataplane, m: string): number => dp.calls.filter((c) => c.method === m).length;

describe('anti-spoofing (reconciler)', () => {
  it('CreateEndpoint returns once the port is guarded; Join costs nothing; the last delete drops the table', async () => {
    const { dp, svc } = setup();
    await svc.createNetwork(netInput());
    const { macAddress } = await svc.createEndpoint(epInput());
    assert.deepEqual(dp.guards.get(VETH), {
      name: VETH,
      endpointId: EID,
      networkId: NID,
      mac: macAddress,
      ipv4: ['198.18.1.2'],
      ipv6: ['fd00:1::2', dp.guards.get(VETH)?.ipv6[1]],
    });
    assert.match(dp.guards.get(VETH)?.ipv6[1] ?? '', /^fe80::5e:/);
    const { addressIpv6: _v6, ...v4only } = epInput({ endpointId: EID2, address: '198.18.1.3/24' });
    await svc.createEndpoint(v4only);
    const ensures = calls(dp, 'ensureGuard');
    assert.equal(ensures, 2, 'one ensure per endpoint, none for the others');
    await svc.join({ networkId: NID, endpointId: EID, sandboxKey: '/var/run/docker/netns/1', options: {} });
    assert.equal(calls(dp, 'ensureGuard'), ensures, 'Join changes no guard');
    await svc.deleteEndpoint(NID, EID);
    assert.deepEqual([...dp.guards.keys()], [PORT2]);
    const rm = dp.calls.find((c) => c.method === 'removeGuard');
    assert.deepEqual(rm?.arg, { link: VETH, applied: true }, 'removal knows the elements: no table read');
    await svc.deleteEndpoint(NID, EID2);
    assert.equal(dp.guardTable, false);
    await svc.deleteNetwork(NID);
  });

  it('a full pass restores a guard deleted by hand (exactly) and prunes a guarded veth nobody wants', async () => {
    const { dp, svc, reconciler } = setup();
    await svc.createNetwork(netInput());
    await svc.createEndpoint(epInput());
    const want = dp.guards.get(VETH);
    dp.guards.delete(VETH);
    dp.guards.set('trv0000ffffffff', { ...(want as NonNullable<typeof want>), name: 'trv0000ffffffff' });
    await reconciler.reconcileNow();
    assert.deepEqual(dp.guards.get(VETH), want);
    assert.deepEqual([...dp.guards.keys()], [VETH]);
    assert.deepEqual(dp.calls.filter((c) => c.method === 'ensureGuard').at(-1)?.arg, { g: want, exact: false });
    // changed behind truss's back (an element not its own): repaired exactly
    dp.guards.set(VETH, { ...(want as NonNullable<typeof want>), ipv4: ['198.18.1.99'] });
    await reconciler.reconcileNow();
    assert.deepEqual(dp.guards.get(VETH), want);
    assert.deepEqual(dp.calls.filter((c) => c.method === 'ensureGuard').at(-1)?.arg, { g: want, exact: true });
    assert.deepEqual(dp.calls.filter((c) => c.method === 'removeGuard').at(-1)?.arg, {
      link: 'trv0000ffffffff',
      applied: false,
    });
    assert.deepEqual(await reconciler.check(), []);
  });

  it('after a restart a full pass adopts guards that check clean, writing nothing', async () => {
    const dp = new FakeDataplane();
    const first = setup(dp);
    await first.svc.createNetwork(netInput());
    await first.svc.createEndpoint(epInput());
    await first.reconciler.stop();
    const second = testReconciler(first.repo, dp);
    const before = calls(dp, 'ensureGuard');
    await second.reconcileNow();
    assert.equal(calls(dp, 'ensureGuard'), before);
    dp.guards.delete(VETH);
    await second.reconcileNow();
    assert.equal(calls(dp, 'ensureGuard'), before + 1, 'drift is still repaired');
  });

  it('a guard that cannot be programmed fails CreateEndpoint and undoes it (never an unguarded container)', async () => {
    const { dp, svc, repo } = setup();
    await svc.createNetwork(netInput());
    dp.failNext('ensureGuard', new KernelError('EINVAL', ['nft'], 1, 'Error: Could not process rule'));
    await assert.rejects(svc.createEndpoint(epInput()), /Could not process rule/);
    assert.equal((await repo.listEndpoints()).length, 0);
    await svc.createEndpoint(epInput());
    assert.ok(dp.guards.get(VETH));
  });

  it('truss.antispoof=false leaves the network unguarded; an endpoint may still ask for it', async () => {
    const { dp, svc } = setup();
    await svc.createNetwork(netInput({ 'truss.antispoof': 'false' }));
    await svc.createEndpoint(epInput());
    assert.equal(dp.guards.size, 0);
    await svc.createEndpoint(
      epInput({
        endpointId: EID2,
        address: '198.18.1.3/24',
        addressIpv6: 'fd00:1::3/64',
        options: { 'truss.antispoof': 'true' },
      }),
    );
    assert.deepEqual([...dp.guards.keys()], [PORT2]);
    await assert.rejects(
      svc.createNetwork({ ...netInput({ 'truss.antispoof': 'maybe' }), networkId: testNid('c') }),
      /expected true or false/,
    );
  });
});
