import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeDesired } from './desired.ts';
import type { EndpointSpec, NetworkSpec } from './model.ts';
import { parseNetworkOptions } from './options.ts';
import { halves, parseMode, routedGroup, routedStaticRoutes } from './routed.ts';

const id = (c: string): string => c.repeat(64);
const net = (mode?: 'routed'): NetworkSpec => ({
  id: id('a'),
  bridge: 'trbaaaaaaaaaaaa',
  bridgeNamed: false,
  mtu: 1500,
  internal: false,
  nat: true,
  ipv4: [{ pool: '198.18.5.0/24', gateway: '198.18.5.1/24', auxAddresses: {} }],
  ipv6: [{ pool: 'fd00:5::/64', gateway: 'fd00:5::1/64', auxAddresses: {} }],
  options: mode ? { 'truss.mode': mode } : {},
  ...(mode ? { mode } : {}),
});
const ep: EndpointSpec = {
  networkId: id('a'),
  id: id('b'),
  hostVeth: 'trvbbbbbbbbbbbb',
  peerVeth: 'trcbbbbbbbbbbbb',
  mac: '02:00:00:00:00:02',
  ipv4: '198.18.5.2/24',
  ipv6: 'fd00:5::2/64',
  options: {},
  sandboxKey: '/var/run/docker/netns/x',
};

describe('routed mode (core)', () => {
  it('truss.mode: bridge by default, routed, anything else refused naming the fix', () => {
    assert.equal(parseMode(undefined), 'bridge');
    assert.equal(parseMode('bridge'), 'bridge');
    assert.equal(parseMode('routed'), 'routed');
    assert.throws(() => parseMode('route'), /expected bridge \(the default\) or routed, e.g. -o truss.mode=routed/);
    assert.equal(parseNetworkOptions({ 'truss.mode': 'routed' }, false).routed, true);
    assert.equal(parseNetworkOptions({}, false).routed, undefined);
  });

  it('refuses a bridge name at create; egress.via and dns are taken', () => {
    assert.equal(parseNetworkOptions({ 'truss.mode': 'routed', 'truss.egress.via': '198.19.0.2' }, false).routed, true);
    assert.equal(parseNetworkOptions({ 'truss.mode': 'routed', 'truss.dns': 'true' }, false).routed, true);
    const refused: Record<string, string>[] = [{ 'com.docker.network.bridge.name': 'br-x' }];
    for (const o of refused) {
      assert.throws(
        () => parseNetworkOptions({ 'truss.mode': 'routed', ...o }, false),
        (e: Error & { code?: string }) =>
          e.code === 'TRUSS_ERR_FEATURE_UNSUPPORTED' && /truss\.mode=bridge/.test(e.message),
      );
    }
  });

  it('halves: one prefix length longer, both families; none for a host prefix', () => {
    assert.deepEqual(halves('198.18.5.0/24'), ['198.18.5.0/25', '198.18.5.128/25']);
    assert.deepEqual(halves('fd00:5::/64'), ['fd00:5::/65', 'fd00:5:0:0:8000::/65']);
    assert.deepEqual(halves('198.18.5.7/32'), []);
  });

  it('Join static routes: the gateway connected first, then the halves via it; none in bridge mode', () => {
    assert.deepEqual(routedStaticRoutes(net()), []);
    assert.deepEqual(routedStaticRoutes(net('routed')), [
      { destination: '198.18.5.1/32', routeType: 1 },
      { destination: '198.18.5.0/25', routeType: 0, nextHop: '198.18.5.1' },
      { destination: '198.18.5.128/25', routeType: 0, nextHop: '198.18.5.1' },
      { destination: 'fd00:5::1/128', routeType: 1 },
      { destination: 'fd00:5::/65', routeType: 0, nextHop: 'fd00:5::1' },
      { destination: 'fd00:5:0:0:8000::/65', routeType: 0, nextHop: 'fd00:5::1' },
    ]);
  });

  it('desired: no bridge, no guard; a veth in the group with the gateway; host and subnet routes; firewall by group', () => {
    const d = computeDesired([net('routed')], [ep]);
    assert.deepEqual(d.bridges, []);
    assert.deepEqual(d.guards, []);
    assert.deepEqual(d.veths[0]?.routed, {
      group: routedGroup(id('a')),
      addresses: ['198.18.5.1/32', 'fd00:5::1/128'],
      routes: ['198.18.5.2/32', 'fd00:5::2/128'],
    });
    // the host routes are the veth's (one batch per attach); the routes kind holds the subnets only
    assert.deepEqual(
      d.routes.map((r) => [r.name, r.dsts]),
      [
        ['198.18.5.0/24', ['198.18.5.0/24']],
        ['fd00:5::/64', ['fd00:5::/64']],
      ],
    );
    assert.deepEqual(d.firewall.networks[0]?.routed, { group: routedGroup(id('a')), rpf: true });
    const bridged = computeDesired([net()], [ep]);
    assert.equal(bridged.bridges.length, 1);
    assert.deepEqual(bridged.routes, []);
    assert.equal(bridged.veths[0]?.routed, undefined);
  });

  it('the group: 24 bits of the id above 0x74000000', () => {
    assert.equal(routedGroup(`abcdef${'0'.repeat(58)}`), 0x74abcdef);
  });
});
