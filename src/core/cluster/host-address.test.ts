import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VXLAN_DEVICE } from '../naming.ts';
import { type ClusterView, computeClusterDesired, WG_DEVICE } from './desired.ts';
import { HOST_OWNER, planHostAddresses, withHostSources } from './host-address.ts';

const key = (c: string): string => `${c.repeat(42)}A=`;
const nodes = [
  { name: 'a', address: '198.18.255.1', wgPublicKey: key('A'), wgPort: 51820 },
  { name: 'b', address: '198.18.255.2', wgPublicKey: key('B'), wgPort: 51820 },
];
const host = (cluster: string, address: string, node = 'a', owner: string | undefined = HOST_OWNER) => ({
  cluster,
  address,
  node,
  ...(owner !== undefined ? { owner } : {}),
});
const view: ClusterView = {
  self: 'a',
  nodes,
  members: ['blue', 'green'].flatMap((cluster) => ['a', 'b'].map((node) => ({ cluster, node }))),
  blocks: [
    { cluster: 'blue', block: '198.18.64.0/26', node: 'a' },
    { cluster: 'blue', block: '198.18.64.64/26', node: 'b' },
    { cluster: 'blue', block: 'fd00:64::/122', node: 'a' },
    { cluster: 'blue', block: 'fd00:64::40/122', node: 'b' },
    { cluster: 'green', block: '198.18.96.0/26', node: 'a' },
    { cluster: 'green', block: '198.18.96.64/26', node: 'b' },
  ],
  hostClaims: [host('blue', '198.18.64.2'), host('blue', 'fd00:64::2'), host('green', '198.18.96.2')],
};
const blue = { cluster: 'blue', subnets: ['198.18.64.0/20', 'fd00:64::/64'], encrypt: true };
const green = { cluster: 'green', subnets: ['198.18.96.0/20'], encrypt: false };
const opts = { wireguard: { listenPort: 51820, mtu: 1440 }, vxlan: { mtu: 1450, local: '198.18.255.1' } };
const devices = { wireguard: WG_DEVICE, vxlan: VXLAN_DEVICE };

function plan(v: ClusterView, local = [blue, green], d: { wireguard?: string; vxlan?: string } = devices) {
  const rejected: string[] = [];
  return { addrs: planHostAddresses(v, local, d, (why) => rejected.push(why)), rejected };
}

describe('planHostAddresses', () => {
  it("one address per network and family, on the device of the network's mode", () => {
    assert.deepEqual(plan(view).addrs, [
      { cluster: 'blue', dev: 'trwg0', address: '198.18.64.2' },
      { cluster: 'blue', dev: 'trwg0', address: 'fd00:64::2' },
      { cluster: 'green', dev: 'trvx0', address: '198.18.96.2' },
    ]);
  });

  it("only this host's claims with the host owner, inside the network and one of this host's blocks", () => {
    const v: ClusterView = {
      ...view,
      hostClaims: [
        host('blue', '198.18.64.70', 'b'), // another host's: never ours
        host('blue', '198.18.64.3', 'a', 'web-1'), // a container's
        host('blue', '198.18.64.70'), // in b's block: refused
        host('blue', '198.18.200.1'), // outside the subnets: ignored
        host('green', '198.18.96.9'),
        host('green', '198.18.96.5'), // two: the lowest
      ],
    };
    const r = plan(v);
    assert.deepEqual(r.addrs, [{ cluster: 'green', dev: 'trvx0', address: '198.18.96.5' }]);
    assert.deepEqual(r.rejected, [
      "host address 198.18.64.70 of cluster network blue is in none of this host's blocks: not used",
    ]);
  });

  it('none without the device of its mode (VXLAN without an underlay address), none without a claim', () => {
    assert.deepEqual(
      plan(view, [blue, green], { wireguard: WG_DEVICE }).addrs.map((a) => a.cluster),
      ['blue', 'blue'],
    );
    const { hostClaims: _, ...bare } = view;
    assert.deepEqual(plan(bare).addrs, []);
  });
});

describe('withHostSources', () => {
  it("gives each route its network's host address of the same family and device", () => {
    const addrs = plan(view).addrs;
    const routes = [
      { dst: '198.18.64.64/26', dev: 'trwg0' },
      { dst: 'fd00:64::40/122', dev: 'trwg0' },
      { dst: '198.18.96.64/26', dev: 'trvx0', via: '198.18.255.2' },
      { dst: '198.18.112.0/26', dev: 'trwg0' }, // another network's block: no source
    ];
    assert.deepEqual(withHostSources(routes, addrs, [blue, green]), [
      { dst: '198.18.64.64/26', dev: 'trwg0', src: '198.18.64.2' },
      { dst: 'fd00:64::40/122', dev: 'trwg0', src: 'fd00:64::2' },
      { dst: '198.18.96.64/26', dev: 'trvx0', via: '198.18.255.2', src: '198.18.96.2' },
      { dst: '198.18.112.0/26', dev: 'trwg0' },
    ]);
  });
});

describe('computeClusterDesired with host addresses', () => {
  it('routes to peer blocks carry the host address as source, in both modes', () => {
    const d = computeClusterDesired(view, [blue, green], opts);
    assert.deepEqual(d.hostAddresses, plan(view).addrs);
    assert.deepEqual(
      d.routes.map((r) => [r.dst, r.dev, r.src]),
      [
        ['198.18.64.64/26', 'trwg0', '198.18.64.2'],
        ['198.18.96.64/26', 'trvx0', '198.18.96.2'],
        ['fd00:64::40/122', 'trwg0', 'fd00:64::2'],
      ],
    );
    // peers need nothing new: the host address is inside this host's block
    assert.deepEqual(
      d.wireguard?.peers.map((p) => p.allowedIps),
      [['198.18.64.64/26', 'fd00:64::40/122']],
    );
  });

  it('without a host claim: no host addresses, routes without a source (as before)', () => {
    const { hostClaims: _, ...bare } = view;
    const d = computeClusterDesired(bare, [blue], opts);
    assert.equal(d.hostAddresses, undefined);
    assert.ok(d.routes.every((r) => r.src === undefined));
  });
});
