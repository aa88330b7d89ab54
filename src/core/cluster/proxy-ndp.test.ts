import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NetworkSpec } from '../model.ts';
import { ipamData, networkSpec } from '../testing.ts';
import { computeProxyNdp, inSubnets } from './proxy-ndp.ts';

const dual = (over: Partial<NetworkSpec> = {}): NetworkSpec =>
  networkSpec({
    id: 'd'.repeat(64),
    ipv4: [ipamData('198.18.96.0/20')],
    ipv6: [ipamData('fd00:96::/64')],
    cluster: { name: 'green', encrypt: false },
    ...over,
  });

const routes = [
  { dst: '198.18.96.64/26', dev: 'trvx0' },
  { dst: 'fd00:96::40/122', dev: 'trvx0' },
  { dst: 'fd00:64::80/122', dev: 'trwg0' },
];

describe('computeProxyNdp', () => {
  it('every address of each IPv6 peer block inside the network, on its bridge, ascending', () => {
    const [o, ...rest] = computeProxyNdp([dual()], routes);
    assert.deepEqual(rest, []);
    assert.equal(o?.name, dual().bridge);
    assert.equal(o?.networkId, 'd'.repeat(64));
    assert.deepEqual(o?.subnets, ['fd00:96::/64']);
    assert.equal(o?.addresses.length, 64);
    assert.equal(o?.addresses[0], 'fd00:96::40');
    assert.equal(o?.addresses[63], 'fd00:96::7f');
  });

  it('no entries for IPv4-only or non-cluster networks; a dual-stack one without peers gets an empty list', () => {
    assert.deepEqual(
      computeProxyNdp([dual({ ipv6: [] }), networkSpec({ ipv6: [ipamData('fd00:96::/64')] })], routes),
      [],
    );
    const [o] = computeProxyNdp([dual()], []);
    assert.deepEqual(o?.addresses, []);
  });

  it('leaves out the gateway, the aux addresses and the subnet-router anycast address', () => {
    const n = dual({ ipv6: [{ pool: 'fd00:96::/64', gateway: 'fd00:96::1/64', auxAddresses: { r: 'fd00:96::3' } }] });
    const [o] = computeProxyNdp([n], [{ dst: 'fd00:96::/122' }]);
    assert.equal(o?.addresses.length, 61);
    for (const a of ['fd00:96::', 'fd00:96::1', 'fd00:96::3']) assert.ok(!o?.addresses.includes(a), a);
    assert.equal(o?.addresses[0], 'fd00:96::2');
  });

  it('a subnet smaller than a block is one block; a route far wider than a block is never expanded', () => {
    const small = dual({ ipv6: [ipamData('fd00:96::100/124')] });
    assert.equal(computeProxyNdp([small], [{ dst: 'fd00:96::100/124' }])[0]?.addresses.length, 14);
    assert.deepEqual(computeProxyNdp([dual()], [{ dst: 'fd00:96::/96' }])[0]?.addresses, []);
  });

  it('sorted by bridge; each network only its own subnets', () => {
    const blue = dual({
      id: 'b'.repeat(64),
      bridge: 'trb-blue',
      ipv6: [ipamData('fd00:64::/64')],
      cluster: { name: 'blue', encrypt: true },
    });
    const got = computeProxyNdp([dual({ bridge: 'trb-green' }), blue], routes);
    assert.deepEqual(
      got.map((o) => [o.name, o.addresses[0], o.addresses.length]),
      [
        ['trb-blue', 'fd00:64::80', 64],
        ['trb-green', 'fd00:96::40', 64],
      ],
    );
  });

  it('inSubnets tells truss entries from others', () => {
    assert.equal(inSubnets('fd00:96::42', ['fd00:96::/64']), true);
    assert.equal(inSubnets('fd00:97::42', ['fd00:96::/64']), false);
    assert.equal(inSubnets('198.18.96.1', ['fd00:96::/64']), false);
    assert.equal(inSubnets('garbage', ['fd00:96::/64']), false);
  });
});
