import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeClusterDesired } from './desired.ts';

const key = (c: string): string => `${c.repeat(42)}A=`;
const view = {
  self: 'a',
  nodes: [
    { name: 'a', address: '198.18.255.1', wgPublicKey: key('A'), wgPort: 51820 },
    { name: 'b', address: '198.18.255.2', wgPublicKey: key('B'), wgPort: 51820 },
    { name: 'c', address: 'fd00:255::3', wgPublicKey: key('C'), wgPort: 51821 },
  ],
  members: [
    { cluster: 'blue', node: 'a' },
    { cluster: 'blue', node: 'b' },
    { cluster: 'blue', node: 'c' },
  ],
  blocks: [
    { cluster: 'blue', block: '198.18.64.0/26', node: 'a' },
    { cluster: 'blue', block: '198.18.64.64/26', node: 'b' },
    { cluster: 'blue', block: '198.18.64.128/26', node: 'c' },
    { cluster: 'blue', block: '198.18.99.0/26', node: 'c' },
  ],
};
const local = [{ cluster: 'blue', subnets: ['198.18.64.0/20'], encrypt: true }];

describe('computeClusterDesired', () => {
  it('peers are the other members, each allowed only its own blocks in the network', () => {
    const d = computeClusterDesired(view, local, { listenPort: 51820, mtu: 1440 });
    assert.deepEqual(
      d.wireguard?.peers.map((p) => [p.node, p.endpoint, p.allowedIps]),
      [
        ['b', '198.18.255.2:51820', ['198.18.64.64/26']],
        ['c', '[fd00:255::3]:51821', ['198.18.64.128/26']],
      ],
    );
    assert.deepEqual(
      d.routes.map((r) => r.dst),
      ['198.18.64.128/26', '198.18.64.64/26'],
    );
    assert.match(d.rejected.join('\n'), /198\.18\.99\.0\/26 of node c is outside/);
    assert.equal(d.wireguard?.publicKey, key('A'), 'own key as published: a rotation re-programs the device');
  });

  it('no encrypted cluster network: no device', () => {
    assert.equal(computeClusterDesired(view, [], { listenPort: 51820, mtu: 1440 }).wireguard, undefined);
  });

  it('refuses duplicate or invalid keys', () => {
    const dup = { ...view, nodes: view.nodes.map((n) => (n.name === 'c' ? { ...n, wgPublicKey: key('B') } : n)) };
    const d = computeClusterDesired(dup, local, { listenPort: 51820, mtu: 1440 });
    assert.deepEqual(d.wireguard?.peers, []);
    const bad = { ...view, nodes: view.nodes.map((n) => (n.name === 'b' ? { ...n, wgPublicKey: 'x' } : n)) };
    assert.deepEqual(
      computeClusterDesired(bad, local, { listenPort: 51820, mtu: 1440 }).wireguard?.peers.map((p) => p.node),
      ['c'],
    );
  });
});
