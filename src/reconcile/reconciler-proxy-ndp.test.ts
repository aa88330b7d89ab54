/**
 * The proxy NDP kind over the fake dataplane: each dual-stack cluster network's bridge answers
 * for the addresses of the IPv6 blocks routed to its peers, in both modes, and follows the view.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { ClusterView } from '../core/cluster/desired.ts';
import { vtepLinkLocal } from '../core/cluster/desired.ts';
import type { NetworkSpec } from '../core/model.ts';
import { vtepMac } from '../core/naming.ts';
import { ipamData, networkSpec } from '../core/testing.ts';
import type { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import { KernelError } from '../dataplane/linux/exec.ts';
import { clusterRig } from './cluster-testutil.ts';
import { proxyNdpKey } from './kinds/cluster.ts';

const key = (c: string): string => `${c.repeat(42)}A=`;
const net = (c: string, n: number, cluster: string, encrypt: boolean, v6 = true): NetworkSpec =>
  networkSpec({
    id: c.repeat(64),
    mtu: encrypt ? 1440 : 1450,
    ipv4: [ipamData(`198.18.${n}.0/20`)],
    ipv6: v6 ? [ipamData(`fd00:${n}::/64`)] : [],
    cluster: { name: cluster, encrypt },
  });
const BLUE = net('b', 64, 'blue', true);
const GREEN = net('e', 96, 'green', false);
const PLAIN4 = net('f', 112, 'red', false, false);
const view: ClusterView = {
  self: 'a',
  nodes: ['a', 'b', 'c'].map((n, i) => ({
    name: n,
    address: `198.18.255.${i + 1}`,
    wgPublicKey: key(n.toUpperCase()),
    wgPort: 51820,
  })),
  members: ['a', 'b', 'c'].flatMap((node) => ['blue', 'green', 'red'].map((cluster) => ({ cluster, node }))),
  blocks: [
    { cluster: 'blue', block: '198.18.64.64/26', node: 'b' },
    { cluster: 'blue', block: 'fd00:64::40/122', node: 'b' },
    { cluster: 'green', block: 'fd00:96::80/122', node: 'c' },
    { cluster: 'green', block: '198.18.96.128/26', node: 'c' },
    { cluster: 'red', block: '198.18.112.64/26', node: 'b' },
  ],
};

const rig = clusterRig();
afterEach(rig.stopAll);
const setup = rig.setup;

const summary = (dp: FakeDataplane) =>
  [...dp.proxyNdp.values()].map((o) => [o.name, o.addresses.length, o.addresses[0]]).sort();

describe('reconciler: proxy NDP for other hosts on dual-stack cluster networks', () => {
  it('each dual-stack bridge answers for its peers IPv6 blocks, in both modes; IPv6 blocks route over both devices', async () => {
    const { dp, r } = setup([BLUE, GREEN, PLAIN4], view);
    await r.reconcileNow();
    assert.deepEqual(summary(dp), [
      [BLUE.bridge, 64, 'fd00:64::40'],
      [GREEN.bridge, 64, 'fd00:96::80'],
    ]);
    assert.deepEqual(
      dp.routes.filter((x) => x.dst.includes(':')),
      [
        { dst: 'fd00:64::40/122', dev: 'trwg0' },
        { dst: 'fd00:96::80/122', dev: 'trvx0', via: vtepLinkLocal(vtepMac('c')) },
      ],
    );
    assert.deepEqual(await r.check(), []);
    const keys = r.status().objects;
    assert.equal(keys[proxyNdpKey(BLUE.bridge)]?.state, 'ok');
    assert.equal(keys[proxyNdpKey(PLAIN4.bridge)], undefined, 'an IPv4-only network has none');
  });

  it('follows the view: a peer block gone empties the list; the network gone removes its entries', async () => {
    const { dp, r, state } = setup([BLUE, GREEN], view);
    await r.reconcileNow();
    state.cluster = { ...view, blocks: view.blocks.filter((b) => b.block !== 'fd00:96::80/122') };
    await r.reconcileNow();
    assert.deepEqual(summary(dp), [
      [BLUE.bridge, 64, 'fd00:64::40'],
      [GREEN.bridge, 0, undefined],
    ]);
    state.networks = [GREEN];
    await r.reconcileNow();
    assert.deepEqual(
      dp.callsOf('removeProxyNdp').map((c) => c.arg),
      [BLUE.bridge],
    );
    assert.deepEqual(summary(dp), [[GREEN.bridge, 0, undefined]]);
  });

  it('a network waits for its bridge entries; before the first sync they are left alone', async () => {
    const { dp, r, state } = setup([BLUE], view);
    await r.reconcileNow();
    await r.waitFor(1, { network: BLUE.id }, 2000);
    state.cluster = 'pending';
    dp.proxyNdp.clear();
    const calls = dp.calls.length;
    await r.reconcileNow();
    const after = dp.calls.slice(calls).map((c) => c.method);
    assert.ok(!after.includes('ensureProxyNdp') && !after.includes('removeProxyNdp'), after.join(' '));
  });

  it('a bridge that fails is not given entries in that pass; a full pass repairs drift', async () => {
    const { dp, r } = setup([BLUE], view);
    dp.failNext('ensureBridge', new KernelError('EBUSY', ['ip'], 2, 'busy'));
    await r.reconcileNow();
    assert.equal(dp.callsOf('ensureProxyNdp').length, 0);
    assert.match(r.status().objects[proxyNdpKey(BLUE.bridge)]?.lastError ?? '', /bridge .* could not be programmed/);
    await r.reconcileNow();
    assert.equal(dp.proxyNdp.get(BLUE.bridge)?.addresses.length, 64);
    dp.proxyNdp.delete(BLUE.bridge);
    assert.match((await r.check()).join('\n'), /proxy NDP on .*: missing or different/);
    await r.reconcileNow();
    assert.equal(dp.proxyNdp.get(BLUE.bridge)?.addresses.length, 64);
  });
});
