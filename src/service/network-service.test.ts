import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { ClusterMembership, CreateEndpointInput, CreateNetworkInput } from '../core/contracts.ts';
import { type NetworkId, networkId } from '../core/ids.ts';
import { endpointInput, networkInput } from '../core/testing.ts';
import { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import { KernelError } from '../dataplane/linux/exec.ts';
import { createLogger, silentLogger } from '../obs/logger.ts';
import { MemoryStore } from '../store/memory.ts';
import { NetworkService } from './network-service.ts';
import { stopTestServices, testEid, testId, testNid, testService } from './testing.ts';

/** a Docker-like id whose first 12 hex (the short id, used in kernel names) differ per (c, n) */
const id = testId;
const NID = testNid('a');
const NID2 = testNid('c');
const EID = testEid('b');
const BRIDGE = 'trb0000aaaaaaaa';
const EP_VETH = 'trv0000bbbbbbbb';
const EP_PEER = 'trc0000bbbbbbbb';

const netInput = (over: Partial<CreateNetworkInput> = {}): CreateNetworkInput =>
  networkInput({ networkId: NID, ...over });
const epInput = (over: Partial<CreateEndpointInput> = {}): CreateEndpointInput =>
  endpointInput({ networkId: NID, endpointId: EID, ...over });

const setup = (store = new MemoryStore(), dp = new FakeDataplane()) => testService({ store, dp });
afterEach(stopTestServices);

describe('NetworkService', () => {
  it('creates a network: bridge with the gateway, firewall, replay is a no-op', async () => {
    const { dp, svc, repo } = setup();
    await svc.createNetwork(netInput());
    const br = dp.links.get(BRIDGE);
    assert.ok(br);
    assert.deepEqual(br.addresses, ['198.18.1.1/24']);
    assert.equal(dp.firewall?.networks.length, 1);
    await svc.createNetwork(netInput());
    assert.equal((await repo.listNetworks()).length, 1);
  });

  it('refuses the same id with other settings, overlapping subnets, and a bridge name in use', async () => {
    const { svc, repo } = setup();
    await svc.createNetwork(netInput());
    await assert.rejects(svc.createNetwork(netInput({ generic: { 'truss.nat': 'false' } })), {
      code: 'TRUSS_ERR_NETWORK_CONFLICT',
      message: /other settings/,
    });
    await assert.rejects(
      svc.createNetwork(netInput({ networkId: NID2, ipv4: [{ pool: '198.18.1.128/25', auxAddresses: {} }] })),
      { code: 'TRUSS_ERR_POOL_OVERLAP', message: /overlaps/ },
    );
    await assert.rejects(
      svc.createNetwork(
        netInput({
          networkId: NID2,
          ipv4: [{ pool: '198.18.2.0/24', auxAddresses: {} }],
          generic: { 'com.docker.network.bridge.name': BRIDGE },
        }),
      ),
      { code: 'TRUSS_ERR_OPTION_INVALID', message: /truss's own; choose another bridge name/ },
    );
    const named = (networkId: NetworkId, pool: string) =>
      netInput({
        networkId,
        ipv4: [{ pool, auxAddresses: {} }],
        generic: { 'com.docker.network.bridge.name': 'brtest0' },
      });
    await svc.createNetwork(named(testNid('d'), '198.18.3.0/24'));
    await assert.rejects(svc.createNetwork(named(NID2, '198.18.2.0/24')), {
      code: 'TRUSS_ERR_NETWORK_CONFLICT',
      message: /already used/,
    });
    assert.equal((await repo.listNetworks()).length, 2);
  });

  it('refuses bad input before touching anything', async () => {
    const { svc, dp, repo } = setup();
    await assert.rejects(svc.createNetwork(netInput({ generic: { 'truss.bogus': '1' } })), {
      code: 'TRUSS_ERR_OPTION_UNKNOWN',
      message: /truss\.bogus/,
    });
    // a malformed id cannot become a NetworkId (the protocol's decoder makes them: core/ids.ts)
    await assert.rejects(async () => svc.createNetwork(netInput({ networkId: networkId('xyz') })), {
      code: 'TRUSS_ERR_ID_INVALID',
      message: /NetworkID/,
    });
    await assert.rejects(
      svc.createNetwork(netInput({ ipv4: [{ pool: '198.18.1.0/24', gateway: '198.18.9.1/24', auxAddresses: {} }] })),
      { code: 'TRUSS_ERR_ADDRESS_INVALID', message: /gateway/ },
    );
    assert.equal((await repo.listNetworks()).length, 0);
    assert.equal(dp.callsOf('ensureBridge').length, 0);
  });

  it('a create whose programming fails undoes itself', async () => {
    const { svc, dp, repo } = setup();
    dp.addForeignLink(BRIDGE);
    await assert.rejects(svc.createNetwork(netInput()), {
      code: 'TRUSS_ERR_KERNEL_OBJECT_FOREIGN',
      message: /already exists and is not truss's/,
    });
    assert.equal((await repo.listNetworks()).length, 0);
    assert.equal(dp.firewall, undefined);
    assert.ok(dp.links.get(BRIDGE), 'the foreign link is untouched');
  });

  it('endpoint lifecycle: create, join, leave, delete; deletes are idempotent', async () => {
    const { svc, dp } = setup();
    await svc.createNetwork(netInput());
    const res = await svc.createEndpoint(epInput());
    assert.match(res.macAddress ?? '', /^02:5e:/);
    assert.deepEqual(
      await svc.createEndpoint(
        epInput({ endpointId: testEid('b', 1), address: '198.18.1.3/24', macAddress: '02:42:c6:12:01:03' }),
      ),
      {},
    );
    assert.equal(dp.links.get(EP_VETH)?.master, BRIDGE);
    const join = await svc.join({
      networkId: NID,
      endpointId: EID,
      sandboxKey: '/var/run/docker/netns/1',
      options: {},
    });
    assert.deepEqual(join, {
      srcName: EP_PEER,
      dstPrefix: 'eth',
      gateway: '198.18.1.1',
      staticRoutes: [],
      disableGatewayService: false,
    });
    dp.movePeerToContainer(EP_PEER);
    await svc.leave(NID, EID);
    await svc.deleteEndpoint(NID, EID);
    assert.equal(dp.links.get(EP_VETH), undefined);
    await svc.deleteEndpoint(NID, EID);
    await svc.leave(NID, EID);
    await svc.deleteNetwork(NID);
    await svc.deleteNetwork(NID);
    assert.deepEqual([...dp.links.keys()], []);
    assert.equal(dp.firewall, undefined);
  });

  it('each endpoint join and leave is one info line: network and endpoint short ids, the interfaces', async () => {
    const lines: Record<string, unknown>[] = [];
    const log = createLogger('info', (l) => lines.push(JSON.parse(l) as Record<string, unknown>));
    const { svc } = testService({ log });
    await svc.createNetwork(netInput());
    await svc.createEndpoint(epInput());
    await svc.join({ networkId: NID, endpointId: EID, sandboxKey: '/var/run/docker/netns/1', options: {} });
    await svc.leave(NID, EID);
    const mine = lines.filter((l) => l.msg === 'endpoint joined' || l.msg === 'endpoint left');
    const ids = { nid: NID.slice(0, 12), eid: EID.slice(0, 12) };
    assert.deepEqual(
      mine.map(({ level, msg, nid, eid, hostVeth, containerVeth }) => ({
        level,
        msg,
        nid,
        eid,
        hostVeth,
        containerVeth,
      })),
      [
        { level: 'info', msg: 'endpoint joined', ...ids, hostVeth: EP_VETH, containerVeth: EP_PEER },
        { level: 'info', msg: 'endpoint left', ...ids, hostVeth: EP_VETH, containerVeth: undefined },
      ],
    );
  });

  it('an endpoint on an unknown network is refused; a failed endpoint create undoes itself', async () => {
    const { svc, dp, repo } = setup();
    await assert.rejects(svc.createEndpoint(epInput()), {
      code: 'TRUSS_ERR_NETWORK_NOT_FOUND',
      message: /not known to truss/,
    });
    await svc.createNetwork(netInput());
    dp.failNext('ensureVeth', new KernelError('EBUSY', ['ip'], 2, 'busy'));
    await assert.rejects(svc.createEndpoint(epInput()));
    assert.equal((await repo.listEndpoints()).length, 0);
    await svc.createEndpoint(epInput()); // and works the next time
    assert.ok(dp.links.get(EP_VETH));
  });

  it('F2: a veth made before its ensure failed is removed by the failed CreateEndpoint itself', async () => {
    // the kernel made the pair, then a later step of ensureVeth failed (accept_ra, a busy device...)
    class HalfMade extends FakeDataplane {
      override async ensureVeth(v: Parameters<FakeDataplane['ensureVeth']>[0]): Promise<void> {
        await super.ensureVeth(v);
        throw new KernelError('EBUSY', ['ip'], 2, 'busy');
      }
    }
    const { dp, svc, repo } = setup(new MemoryStore(), new HalfMade());
    await svc.createNetwork(netInput());
    await assert.rejects(svc.createEndpoint(epInput()), /busy/);
    assert.equal((await repo.listEndpoints(NID)).length, 0);
    assert.equal(dp.links.has(EP_VETH), false, 'no half-made veth left for a GC to find');
    assert.equal(dp.links.has(EP_PEER), false);
  });

  it('internal networks give no gateway and disable the gateway service', async () => {
    const { svc } = setup();
    await svc.createNetwork(netInput({ internal: true }));
    await svc.createEndpoint(epInput());
    const join = await svc.join({
      networkId: NID,
      endpointId: EID,
      sandboxKey: '/var/run/docker/netns/1',
      options: {},
    });
    assert.equal(join.gateway, undefined);
    assert.equal(join.disableGatewayService, true);
  });

  it('20 concurrent endpoints are all programmed', async () => {
    const { svc, dp } = setup();
    await svc.createNetwork(netInput());
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        svc.createEndpoint(epInput({ endpointId: testEid('d', i), address: `198.18.1.${10 + i}/24` })),
      ),
    );
    assert.equal([...dp.links.keys()].filter((n) => n.startsWith('trv')).length, 20);
  });

  it('a restart reconciles: drift repaired, leftovers pruned, foreign links untouched', async () => {
    const store = new MemoryStore();
    const dp = new FakeDataplane();
    const first = setup(store, dp);
    await first.svc.createNetwork(netInput());
    await first.svc.createEndpoint(epInput());
    await first.reconciler.stop();
    // behind truss's back: the bridge goes, a stale truss veth appears, and an admin's link
    dp.deleteBehindBack(BRIDGE);
    const { peer: _peer, ...stale } = dp.links.get(EP_VETH)!;
    dp.links.set('trv999999999999', { ...stale, name: 'trv999999999999', mark: { kind: 'ep', id: id('9') } });
    dp.addForeignLink('eth-admin');
    const second = setup(store, dp);
    await second.reconciler.reconcileNow();
    assert.ok(dp.links.get(BRIDGE), 'bridge restored');
    assert.equal(dp.links.get('trv999999999999'), undefined, 'leftover pruned');
    assert.ok(dp.links.get('eth-admin'), 'foreign link untouched');
    assert.deepEqual(await second.reconciler.check(), []);
  });

  it('leaves a cluster network when its last local network is deleted, not before', async () => {
    const { repo, reconciler } = setup();
    const calls: string[] = [];
    const cluster: ClusterMembership = {
      enabled: () => true,
      mtu: () => 1440,
      joinNetwork: async (j) => void calls.push(`join ${j.name}`),
      leaveNetwork: async (n) => void calls.push(`leave ${n}`),
    };
    const svc = new NetworkService({ repo, reconciler, log: silentLogger, programTimeoutMs: 2000, cluster });
    const blue = netInput({ generic: { 'truss.cluster': 'blue' } });
    await svc.createNetwork(blue);
    // another network of the same cluster overlaps the first: refused, and the host stays a member
    await assert.rejects(svc.createNetwork({ ...blue, networkId: NID2 }), {
      code: 'TRUSS_ERR_POOL_OVERLAP',
      message: /overlaps/,
    });
    assert.deepEqual(calls, ['join blue', 'join blue']);
    await svc.deleteNetwork(NID);
    assert.deepEqual(calls, ['join blue', 'join blue', 'leave blue']);
    await svc.deleteNetwork(NID); // unknown now: nothing more
    assert.equal(calls.length, 3);
  });
});
