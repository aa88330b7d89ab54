import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { ClusterView } from '../core/cluster/desired.ts';
import { HOST_OWNER } from '../core/cluster/host-address.ts';
import type { ClusterMembership } from '../core/contracts.ts';
import { networkId } from '../core/ids.ts';
import type { NetworkSpec } from '../core/model.ts';
import { VXLAN_DEVICE, vtepMac } from '../core/naming.ts';
import { ipamData, networkInput, networkSpec } from '../core/testing.ts';
import { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import { silentLogger } from '../obs/logger.ts';
import { IntentRepo } from '../service/intent.ts';
import { NetworkService } from '../service/network-service.ts';
import { MemoryStore } from '../store/memory.ts';
import { clusterRig } from './cluster-testutil.ts';
import { Reconciler } from './reconciler.ts';

const key = (c: string): string => `${c.repeat(42)}A=`;
const net = (c: string, n: number, cluster: string, encrypt: boolean): NetworkSpec =>
  networkSpec({
    id: c.repeat(64),
    mtu: encrypt ? 1440 : 1450,
    ipv4: [ipamData(`198.18.${n}.0/20`)],
    cluster: { name: cluster, encrypt },
  });
const BLUE = net('b', 64, 'blue', true);
const GREEN = net('e', 96, 'green', false);
const view: ClusterView = {
  self: 'a',
  nodes: ['a', 'b', 'c'].map((n, i) => ({
    name: n,
    address: `198.18.255.${i + 1}`,
    wgPublicKey: key(n.toUpperCase()),
    wgPort: 51820,
  })),
  members: ['a', 'b', 'c'].flatMap((node) => [
    { cluster: 'blue', node },
    { cluster: 'green', node },
  ]),
  blocks: [
    { cluster: 'blue', block: '198.18.64.64/26', node: 'b' },
    { cluster: 'green', block: '198.18.96.64/26', node: 'b' },
    { cluster: 'green', block: '198.18.96.128/26', node: 'c' },
  ],
};

const rig = clusterRig();
afterEach(rig.stopAll);
const setup = rig.setup;

describe('reconciler: encrypted and unencrypted cluster networks side by side', () => {
  it('programs trwg0 for blue, trvx0 for green, routes for both, the guard for green peers', async () => {
    const { dp, r } = setup([BLUE, GREEN], view);
    await r.reconcileNow();
    assert.deepEqual(
      dp.wireguard?.peers.map((p) => p.node),
      ['b'],
    );
    assert.deepEqual(dp.vxlan?.peers, [
      { node: 'b', address: '198.18.255.2', mac: vtepMac('b') },
      { node: 'c', address: '198.18.255.3', mac: vtepMac('c') },
    ]);
    assert.deepEqual(dp.routes, [
      { dst: '198.18.64.64/26', dev: 'trwg0' },
      { dst: '198.18.96.128/26', dev: 'trvx0', via: '198.18.255.3' },
      { dst: '198.18.96.64/26', dev: 'trvx0', via: '198.18.255.2' },
    ]);
    assert.deepEqual(dp.firewall?.vxlan, { port: 4789, vni: 0x747275, peers: ['198.18.255.2', '198.18.255.3'] });
    assert.deepEqual(
      dp.firewall?.networks.map((n) => [n.bridge, n.peerLinks]),
      [
        [BLUE.bridge, ['trwg0']],
        [GREEN.bridge, ['trvx0']],
      ],
    );
    assert.deepEqual(await r.check(), []);
  });

  it('the last unencrypted network gone: no VXLAN device, no guard, only WireGuard routes', async () => {
    const { dp, r, state } = setup([BLUE, GREEN], view);
    await r.reconcileNow();
    state.networks = [BLUE];
    await r.reconcileNow();
    assert.equal(dp.vxlan, undefined);
    assert.equal(dp.firewall?.vxlan, undefined);
    assert.ok(dp.wireguard);
    assert.deepEqual(
      dp.routes.map((x) => x.dev),
      ['trwg0'],
    );
    state.networks = [GREEN];
    await r.reconcileNow();
    assert.equal(dp.wireguard, undefined, 'and the other way round');
    assert.ok(dp.vxlan);
  });

  it('a peer gone from the view leaves the FDB, the routes and the guard', async () => {
    const { dp, r, state } = setup([GREEN], view);
    await r.reconcileNow();
    state.cluster = { ...view, members: view.members.filter((m) => m.node !== 'c') };
    await r.reconcileNow();
    assert.deepEqual(
      dp.vxlan?.peers.map((p) => p.node),
      ['b'],
    );
    assert.deepEqual(
      dp.routes.map((x) => x.dst),
      ['198.18.96.64/26'],
    );
    assert.deepEqual(dp.firewall?.vxlan?.peers, ['198.18.255.2']);
  });

  it('an incremental pass touches no link for the cluster, firewall or policy keys', async () => {
    const { dp, r } = setup([BLUE, GREEN], view);
    await r.reconcileNow();
    const n = dp.calls.length;
    await r.waitFor(1, [], 2000);
    const methods = dp.calls.slice(n).map((c) => c.method);
    assert.deepEqual(
      methods.filter((m) => m.startsWith('remove')),
      [],
      `an incremental pass with nothing changed removes nothing: ${methods}`,
    );
  });

  it('a full pass repairs a deleted device', async () => {
    const { dp, r } = setup([GREEN], view);
    await r.reconcileNow();
    const want = dp.vxlan;
    dp.vxlan = undefined;
    assert.match((await r.check()).join('\n'), /VXLAN device trvx0 is missing/);
    await r.reconcileNow();
    assert.deepEqual(dp.vxlan, want);
  });

  it('before the first sync: the device is left alone and the guard admits the peers it has', async () => {
    const { dp, r, state } = setup([GREEN], view);
    await r.reconcileNow();
    state.cluster = 'pending';
    dp.vxlan = dp.vxlan && { ...dp.vxlan, peers: dp.vxlan.peers.slice(0, 1) };
    const calls = dp.calls.length;
    await r.reconcileNow();
    const after = dp.calls.slice(calls).map((c) => c.method);
    assert.ok(!after.includes('ensureVxlan') && !after.includes('removeVxlan') && !after.includes('ensureRoutes'));
    assert.deepEqual(dp.firewall?.vxlan?.peers, ['198.18.255.2']);
    assert.equal(dp.vxlan?.name, VXLAN_DEVICE);
  });
});

describe('reconciler: the host address on each cluster network', () => {
  const withHost: ClusterView = {
    ...view,
    blocks: [
      ...view.blocks,
      { cluster: 'blue', block: '198.18.64.0/26', node: 'a' },
      { cluster: 'green', block: '198.18.96.0/26', node: 'a' },
    ],
    hostClaims: [
      { cluster: 'blue', address: '198.18.64.2', node: 'a', owner: HOST_OWNER },
      { cluster: 'green', address: '198.18.96.2', node: 'a', owner: HOST_OWNER },
    ],
  };

  it('goes on the device of the mode before the routes, which name it as their source', async () => {
    const { dp, r } = setup([BLUE, GREEN], withHost);
    await r.reconcileNow();
    assert.deepEqual(
      dp.hostAddresses.map((a) => `${a.address} ${a.dev}`),
      ['198.18.64.2 trwg0', '198.18.96.2 trvx0'],
    );
    assert.deepEqual(
      dp.routes.map((x) => `${x.dst} ${x.src}`),
      ['198.18.64.64/26 198.18.64.2', '198.18.96.128/26 198.18.96.2', '198.18.96.64/26 198.18.96.2'],
    );
    const order = dp.calls.map((c) => c.method);
    assert.ok(order.indexOf('ensureHostAddresses') < order.indexOf('ensureRoutes'), `${order}`);
  });

  it('a full pass puts it back on a device made again; a network gone takes its address along', async () => {
    const { dp, r, state } = setup([BLUE, GREEN], withHost);
    await r.reconcileNow();
    dp.hostAddresses = dp.hostAddresses.filter((a) => a.dev !== 'trwg0');
    assert.match((await r.check()).join('\n'), /host address trwg0 198\.18\.64\.2 is missing/);
    await r.reconcileNow();
    assert.equal(dp.hostAddresses.length, 2);
    state.networks = [BLUE];
    await r.reconcileNow();
    assert.deepEqual(
      dp.hostAddresses.map((a) => a.address),
      ['198.18.64.2'],
    );
  });

  it('a failed address holds the routes back (the kernel would refuse their source)', async () => {
    const { dp, r } = setup([BLUE], withHost);
    dp.failNext('ensureHostAddresses', new Error('boom'));
    await r.reconcileNow();
    assert.deepEqual(dp.routes, []);
    assert.match(String(r.status().objects.routes?.lastError), /host-addresses could not be programmed/);
  });
});

describe('network service: the container MTU follows the mode', () => {
  it('WireGuard MTU for truss.encrypt (default), VXLAN MTU for truss.encrypt=false', async () => {
    const repo = new IntentRepo(new MemoryStore());
    const dp = new FakeDataplane();
    const r = rig.track(new Reconciler({ loadIntent: () => repo.snapshot(), dataplane: dp, log: silentLogger }));
    r.start();
    const joined: string[] = [];
    const cluster: ClusterMembership = {
      enabled: () => true,
      mtu: (encrypt) => (encrypt ? 1440 : 1450),
      joinNetwork: async (j) => {
        joined.push(`${j.name}:${j.encrypt}`);
      },
      leaveNetwork: async () => {},
    };
    const svc = new NetworkService({ repo, reconciler: r, log: silentLogger, cluster, programTimeoutMs: 2000 });
    const input = (id: string, n: number, generic: Record<string, string>) =>
      networkInput({ networkId: networkId(id.repeat(64)), ipv4: [ipamData(`198.18.${n}.0/20`)], generic });
    await svc.createNetwork(input('b', 64, { 'truss.cluster': 'blue' }));
    await svc.createNetwork(input('e', 96, { 'truss.cluster': 'green', 'truss.encrypt': 'false' }));
    const mtus = (await repo.listNetworks()).map((n) => [n.cluster?.name, n.mtu]).sort();
    assert.deepEqual(mtus, [
      ['blue', 1440],
      ['green', 1450],
    ]);
    assert.deepEqual(joined, ['blue:true', 'green:false']);
    await assert.rejects(
      svc.createNetwork(
        input('f', 112, { 'truss.cluster': 'red', 'truss.encrypt': 'false', 'com.docker.network.driver.mtu': '1500' }),
      ),
      /larger than the VXLAN tunnel allows between hosts \(1450\)/,
    );
  });
});
