import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EndpointSpec, NetworkSpec } from '../model.ts';
import { parseNetworkOptions } from '../options.ts';
import { endpointSpec, networkSpec } from '../testing.ts';
import {
  assignPorts,
  type ContainerFacts,
  DNS_PORT_BASE,
  localCatalog,
  onDnsNetworks,
  planDns,
  visibleFrom,
} from './catalog.ts';
import { globMatch, selectorText, selects } from './model.ts';

const N1 = 'a'.repeat(64);
const N2 = 'b'.repeat(64);
const E1 = '1'.repeat(64);
const E2 = '2'.repeat(64);
const C1 = 'c'.repeat(64);

const net = (id: string, bridge: string, o: Partial<NetworkSpec> = {}): NetworkSpec =>
  networkSpec({ id, bridge, ipv4: [{ pool: '198.18.1.0/24', gateway: '198.18.1.1/24', auxAddresses: {} }], ...o });
const ep = (id: string, networkId: string, ipv4: string, ipv6?: string): EndpointSpec =>
  endpointSpec({ id, networkId, ipv4, ...(ipv6 ? { ipv6 } : {}) });
const facts = (o: Partial<ContainerFacts> = {}): ContainerFacts => ({
  id: C1,
  name: 'db',
  labels: { role: 'db' },
  dns: [],
  endpoints: [{ endpointId: E1, networkId: N1, networkName: 'blue', aliases: ['db', 'database', 'cccccccccccc'] }],
  ...o,
});

describe('localCatalog', () => {
  it('joins truss endpoints with what Docker says of their containers', () => {
    const nets = [net(N1, 'trb1', { cluster: { name: 'blue', encrypt: true } })];
    const got = localCatalog(nets, [ep(E1, N1, '198.18.1.5/24', 'fd00:1::5/64')], [facts()], 'node-a');
    assert.deepEqual(got, [
      {
        endpointId: E1,
        node: 'node-a',
        networkName: 'blue',
        networkId: N1,
        cluster: 'blue',
        containerId: C1,
        name: 'db',
        aliases: ['database', 'cccccccccccc'],
        labels: { role: 'db' },
        addresses: ['198.18.1.5', 'fd00:1::5'],
      },
    ]);
  });

  it('leaves out endpoints truss does not own and facts of endpoints that are gone', () => {
    const f = facts({
      endpoints: [
        { endpointId: E2, networkId: N2, networkName: 'bridge', aliases: [] },
        { endpointId: E1, networkId: N1, networkName: 'blue', aliases: [] },
      ],
    });
    assert.equal(localCatalog([net(N1, 'trb1')], [], [f], 'a').length, 0);
    assert.equal(localCatalog([net(N1, 'trb1')], [ep(E1, N1, '198.18.1.5/24')], [f], 'a').length, 1);
  });
});

describe('visibleFrom', () => {
  it('sees the same network here and the same cluster anywhere', () => {
    const here = { endpointId: E1, node: 'a', networkName: 'x', networkId: N1, containerId: C1, name: 'a' };
    const other = { ...here, endpointId: E2, networkId: N2, name: 'b' };
    const { networkId: _, ...elsewhere } = here;
    const remote = { ...elsewhere, endpointId: E2, node: 'b', networkName: 'blue', cluster: 'blue', name: 'r' };
    const cat = [here, other, remote].map((e) => ({ ...e, aliases: [], labels: {}, addresses: [] }));
    assert.deepEqual(
      visibleFrom(cat, [{ networkId: N1 }]).map((e) => e.name),
      ['a'],
    );
    assert.deepEqual(
      visibleFrom(cat, [{ networkId: N2, cluster: 'blue' }]).map((e) => e.name),
      ['b', 'r'],
    );
  });
});

describe('truss.dns', () => {
  it('is a boolean network option, refused when not one', () => {
    assert.doesNotThrow(() => parseNetworkOptions({ 'truss.dns': 'true' }, false));
    assert.throws(() => parseNetworkOptions({ 'truss.dns': 'yes' }, false), /truss\.dns="yes": expected true or false/);
  });
});

describe('planDns', () => {
  const dnsNet = net(N1, 'trb1', {
    options: { 'truss.dns': 'true' },
    ipv6: [{ pool: 'fd00:1::/64', gateway: 'fd00:1::1/64', auxAddresses: {} }],
  });
  it('is empty without a dns network', () => {
    const { plan } = planDns([net(N1, 'trb1')], ['198.18.9.53'], new Map());
    assert.deepEqual(plan, { bridges: [], upstreams: [], listeners: [] });
  });
  it('redirects the upstreams on each gateway of its family', () => {
    const upstreams = ['198.18.9.53', 'fd00:9::53', '198.18.9.99', 'not-an-ip', '198.18.9.53'];
    const { plan, ports } = planDns([dnsNet, net(N2, 'trb2')], upstreams, new Map());
    assert.deepEqual(plan.bridges, [{ bridge: 'trb1', gateway4: '198.18.1.1', gateway6: 'fd00:1::1' }]);
    assert.deepEqual(
      plan.upstreams.map((u) => u.address),
      ['198.18.9.53', '198.18.9.99', 'fd00:9::53'],
    );
    assert.deepEqual(
      plan.listeners.map((l) => `${l.address}:${l.port}>${l.upstream}`),
      [
        `198.18.1.1:${DNS_PORT_BASE}>198.18.9.53`,
        `198.18.1.1:${DNS_PORT_BASE + 1}>198.18.9.99`,
        `fd00:1::1:${DNS_PORT_BASE + 2}>fd00:9::53`,
      ],
    );
    assert.equal(ports.size, 3);
  });
  it('knows the containers on dns networks', () => {
    const c = facts();
    const outsider = facts({ id: 'd'.repeat(64), endpoints: [] });
    assert.deepEqual(
      onDnsNetworks([dnsNet], [c, outsider]).map((x) => x.id),
      [C1],
    );
  });
  it('keeps an upstream on its port as others come and go', () => {
    const first = assignPorts(new Map(), ['198.18.9.1', '198.18.9.2']);
    const second = assignPorts(first, ['198.18.9.0', '198.18.9.2']);
    assert.equal(second.get('198.18.9.2'), first.get('198.18.9.2'));
    assert.equal(second.get('198.18.9.0'), DNS_PORT_BASE);
  });
});

describe('selectors', () => {
  it('match names by glob and containers by label', () => {
    assert.ok(globMatch('api-*', 'api-1'));
    assert.ok(!globMatch('api-*', 'web-1'));
    assert.ok(globMatch('web-?', 'web-1'));
    assert.ok(!globMatch('web-?', 'web-10'));
    assert.ok(globMatch('a.b', 'a.b') && !globMatch('a.b', 'axb'));
    const e = { name: 'api-1', labels: { role: 'api', tier: '' } };
    assert.ok(selects({ by: 'name', glob: 'api-*' }, e));
    assert.ok(selects({ by: 'label', key: 'role', value: 'api' }, e));
    assert.ok(!selects({ by: 'label', key: 'role', value: 'db' }, e));
    assert.ok(selects({ by: 'label', key: 'tier' }, e));
    assert.ok(!selects({ by: 'label', key: 'constructor' }, e));
    assert.equal(selectorText({ by: 'label', key: 'role', value: 'api' }), 'label=role=api');
  });
});
