import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkEgressVia,
  computeEgress,
  EGRESS_EXEMPT_PRIORITY,
  EGRESS_PROTO,
  EGRESS_RULE_PRIORITY,
  egressTable,
  egressTableClash,
  isEgressTable,
  parseEgressVia,
  UNREACHABLE_METRIC,
} from './egress.ts';
import type { NetworkSpec } from './model.ts';
import { bridgeName } from './naming.ts';
import { parseNetworkOptions } from './options.ts';
import { ipamData, networkSpec } from './testing.ts';

const ID = `ab12cd${'0'.repeat(58)}`;
const net = (over: Partial<NetworkSpec> = {}): NetworkSpec =>
  networkSpec({ id: ID, ipv4: [ipamData('198.18.40.0/24')], ...over });
const V6 = [{ pool: 'fd00:40::/64', gateway: 'fd00:40::1/64', auxAddresses: {} }];

describe('parseEgressVia', () => {
  it('takes one address, or one per family, canonical and IPv4 first', () => {
    assert.deepEqual(parseEgressVia('198.18.40.5'), ['198.18.40.5']);
    assert.deepEqual(parseEgressVia('FD00:40:0::5, 198.19.251.2'), ['198.19.251.2', 'fd00:40::5']);
  });
  it('refuses non-addresses, lists, two of one family and non-unicast, naming key and value', () => {
    const bad: [string, RegExp][] = [
      ['', /next-hop address/],
      ['198.18.40.5,', /next-hop address/],
      ['a,b,c', /next-hop address/],
      ['gw.example', /not an IP address/],
      ['198.18.40.05', /not an IP address/],
      ['198.18.40.0/24', /not an IP address/],
      ['198.18.40.5,198.18.40.6', /two IPv4 next hops/],
      ['0.0.0.0', /this network/],
      ['127.0.0.1', /loopback/],
      ['169.254.1.1', /link-local/],
      ['224.0.0.1', /multicast/],
      ['255.255.255.255', /broadcast/],
      ['::', /unspecified/],
      ['::1', /loopback/],
      ['fe80::1', /link-local/],
      ['ff02::1', /multicast/],
      ['fe80::1%eth0', /not an IP address/],
    ];
    for (const [value, why] of bad) {
      assert.throws(
        () => parseEgressVia(value),
        (e: Error & { code?: string }) =>
          e.code === 'TRUSS_ERR_OPTION_INVALID' && e.message.includes('truss.egress.via=') && why.test(e.message),
        value,
      );
    }
  });
  it('is a known network option', () => {
    assert.deepEqual(parseNetworkOptions({ 'truss.egress.via': '198.18.40.5' }, false).egressVia, ['198.18.40.5']);
    assert.equal(parseNetworkOptions({}, false).egressVia, undefined);
    assert.throws(() => parseNetworkOptions({ 'truss.egress.via': 'x' }, false), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /truss\.egress\.via="x"/,
    });
  });
});

describe('checkEgressVia', () => {
  const n = net({ ipv6: V6 });
  it('accepts a host of the subnet (a gateway container) or an address elsewhere', () => {
    assert.doesNotThrow(() => checkEgressVia(['198.18.40.5'], n, false));
    assert.doesNotThrow(() => checkEgressVia(['198.19.251.2', 'fd00:40::5'], n, false));
  });
  it('refuses the gateway, network and broadcast addresses and a family the network lacks', () => {
    assert.throws(() => checkEgressVia(['198.18.40.1'], n, false), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /gateway, this host itself/,
    });
    assert.throws(() => checkEgressVia(['198.18.40.0'], n, false), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /network or broadcast/,
    });
    assert.throws(() => checkEgressVia(['198.18.40.255'], n, false), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /network or broadcast/,
    });
    assert.throws(() => checkEgressVia(['fd00:40::1'], n, false), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /gateway/,
    });
    assert.throws(() => checkEgressVia(['fd00:40::'], n, false), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /network or broadcast/,
    });
    assert.throws(() => checkEgressVia(['fd00:99::5'], net(), false), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /no IPv6 subnet/,
    });
  });
  it('refuses --internal and cluster networks', () => {
    assert.throws(() => checkEgressVia(['198.18.40.5'], net({ internal: true }), false), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /--internal/,
    });
    assert.throws(() => checkEgressVia(['198.18.40.5'], n, true), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /truss\.cluster/,
    });
  });
});

describe('egress tables', () => {
  it('derive from the network id, inside the reserved range', () => {
    assert.equal(egressTable(ID), 0x74000000 + 0xab12cd);
    assert.ok(isEgressTable(egressTable(ID)));
    assert.ok(isEgressTable(egressTable('f'.repeat(64))));
    assert.ok(isEgressTable(egressTable('0'.repeat(64))));
    for (const t of [253, 254, 255, 0x73ffffff, 0x75000000]) assert.equal(isEgressTable(t), false);
    assert.equal(EGRESS_PROTO, 116);
  });
  it('a clash between two networks with the option is reported, without it there is none', () => {
    const other = net({ id: `ab12cd${'f'.repeat(58)}`, egressVia: ['198.18.41.5'] });
    assert.match(egressTableClash(net({ egressVia: ['198.18.40.5'] }), other) ?? '', /already used/);
    assert.equal(egressTableClash(net(), other), undefined);
    assert.equal(egressTableClash(net({ egressVia: ['198.18.40.5'] }), { ...other, id: 'cd'.repeat(32) }), undefined);
  });
});

describe('computeEgress', () => {
  it('nothing without the option', () => {
    assert.deepEqual(computeEgress([net()]), { networks: [] });
  });
  it('next hop elsewhere: subnet on the bridge, fail-closed fallback, default via, rule from the subnet', () => {
    const t = egressTable(ID);
    const e = computeEgress([net({ egressVia: ['198.19.251.2'] })]);
    assert.deepEqual(e.networks[0]?.routes, [
      { family: 4, table: t, dst: '198.18.40.0/24', dev: bridgeName(ID) },
      { family: 4, table: t, dst: '0.0.0.0/0', unreachable: true, metric: UNREACHABLE_METRIC },
      { family: 4, table: t, dst: '0.0.0.0/0', via: '198.19.251.2' },
    ]);
    assert.deepEqual(e.networks[0]?.rules, [
      { family: 4, priority: EGRESS_RULE_PRIORITY, from: '198.18.40.0/24', table: t },
    ]);
  });
  it('next hop inside the network: via on the bridge, and the gateway itself exempt (lookup main)', () => {
    const t = egressTable(ID);
    const e = computeEgress([net({ ipv6: V6, egressVia: ['198.18.40.5', 'fd00:40::5'] })]);
    const n = e.networks[0];
    assert.deepEqual(
      n?.routes.filter((r) => r.via),
      [
        { family: 4, table: t, dst: '0.0.0.0/0', via: '198.18.40.5', dev: bridgeName(ID) },
        { family: 6, table: t, dst: '::/0', via: 'fd00:40::5', dev: bridgeName(ID) },
      ],
    );
    assert.deepEqual(n?.rules, [
      { family: 4, priority: EGRESS_EXEMPT_PRIORITY, from: '198.18.40.5/32', table: 'main' },
      { family: 4, priority: EGRESS_RULE_PRIORITY, from: '198.18.40.0/24', table: t },
      { family: 6, priority: EGRESS_EXEMPT_PRIORITY, from: 'fd00:40::5/128', table: 'main' },
      { family: 6, priority: EGRESS_RULE_PRIORITY, from: 'fd00:40::/64', table: t },
    ]);
    assert.ok(EGRESS_EXEMPT_PRIORITY < EGRESS_RULE_PRIORITY && EGRESS_RULE_PRIORITY < 32766);
  });
  it('routed mode: the subnets are thrown to the main table (its host routes); a next hop inside is refused', () => {
    const t = egressTable(ID);
    const e = computeEgress([net({ ipv6: V6, mode: 'routed', egressVia: ['198.19.251.2', 'fd00:41::2'] })]);
    assert.deepEqual(
      e.networks[0]?.routes.filter((r) => r.throw),
      [
        { family: 4, table: t, dst: '198.18.40.0/24', throw: true },
        { family: 6, table: t, dst: 'fd00:40::/64', throw: true },
      ],
    );
    assert.ok(e.networks[0]?.routes.every((r) => r.dev === undefined));
    assert.throws(
      () => checkEgressVia(['198.18.40.5'], net({ mode: 'routed' }), false),
      /inside the network; in truss.mode=routed the next hop must be outside it/,
    );
    assert.doesNotThrow(() => checkEgressVia(['198.19.251.2'], net({ mode: 'routed' }), false));
  });
  it('a dual-stack network with only an IPv4 next hop leaves IPv6 alone', () => {
    const n = computeEgress([net({ ipv6: V6, egressVia: ['198.19.251.2'] })]).networks[0];
    assert.ok(n?.routes.every((r) => r.family === 4) && n.rules.every((r) => r.family === 4));
  });
  it('sorted by table and memoised on the record', () => {
    const a = net({ id: `ff${'0'.repeat(62)}`, egressVia: ['198.19.251.2'] });
    const b = net({ id: `01${'0'.repeat(62)}`, egressVia: ['198.19.251.2'] });
    const first = computeEgress([a, b]);
    assert.deepEqual(
      first.networks.map((n) => n.networkId),
      [b.id, a.id],
    );
    assert.equal(computeEgress([a]).networks[0], first.networks[1]);
  });
});
