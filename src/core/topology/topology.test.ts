import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClusterBody, StatusBody } from '../admin-api.ts';
import { healthy } from '../status-testutil.ts';
import { computeTopology, type TopologyNames } from './model.ts';
import { renderTopologyPage } from './page.ts';
import { escapeXml, fit, renderTopologySvg, wrap } from './svg.ts';
import { renderTopologyText } from './text.ts';
import { findAll, hasClass, parseXml, textOf, type XmlElement, XmlError } from './xml-testutil.ts';

const NOW = Date.parse('2026-03-01T12:00:00.000Z');
const hex = (c: string): string => c.repeat(64);
const NET_A = hex('a');
const NET_B = hex('b');
const EP = [hex('1'), hex('2'), hex('3')] as const;

const ipam = (pool: string) => ({ pool, auxAddresses: {} });
function network(id: string, pool: string, over: Partial<StatusBody['networks'][number]> = {}) {
  return {
    id,
    bridge: `trb${id.slice(0, 12)}`,
    bridgeNamed: false,
    mtu: 1500,
    internal: false,
    nat: true,
    ipv4: [ipam(pool)],
    ipv6: [],
    options: {},
    ...over,
  };
}
function endpoint(id: string, networkId: string, ipv4: string, over: Partial<StatusBody['endpoints'][number]> = {}) {
  return {
    networkId,
    id,
    hostVeth: `trv${id.slice(0, 12)}`,
    peerVeth: `trp${id.slice(0, 12)}`,
    mac: '02:42:00:00:00:01',
    ipv4,
    options: {},
    sandboxKey: '/var/run/docker/netns/x',
    ...over,
  };
}

function status(over: Partial<StatusBody> = {}): StatusBody {
  return healthy({
    startedAt: new Date(NOW - 3_600_000).toISOString(),
    networks: [
      network(NET_A, '198.18.1.0/24', { ingress: [{ proto: 'tcp', ports: { from: 80, to: 80 } }] }),
      network(NET_B, '198.18.2.0/24'),
    ],
    endpoints: [
      endpoint(EP[0], NET_A, '198.18.1.2'),
      endpoint(EP[1], NET_A, '198.18.1.3', { ingress: [{ proto: 'tcp', ports: { from: 5432, to: 5432 } }] }),
      endpoint(EP[2], NET_B, '198.18.2.2', { sandboxKey: undefined }),
    ],
    ...over,
  });
}

const NAMES: TopologyNames = {
  networks: new Map([
    [NET_A, 'web'],
    [NET_B, 'back'],
  ]),
  endpoints: new Map([
    [EP[0], 'nginx'],
    [EP[1], 'db'],
  ]),
};

const CLUSTER: ClusterBody = {
  node: 'c1',
  nodeId: 'n1',
  synced: true,
  mtu: 1420,
  vxlanMtu: 1450,
  wgPort: 51820,
  peers: [
    { node: 'n2', name: 'c2', endpoint: '198.19.0.2:51820', allowedIps: [], latestHandshake: NOW / 1000 - 10 },
    { node: 'n3', name: 'c3', endpoint: '198.19.0.3:51820', allowedIps: [], latestHandshake: 0 },
  ],
  vxlanPeers: [],
  names: { n1: 'c1', n2: 'c2', n3: 'c3' },
  rejected: [],
  alarms: [],
  malformed: [],
  etcd: { tls: false, auth: 'none', reachable: true, lease: 'alive', watch: 'connected' },
  allocations: {
    blue: {
      n1: { blocks: 1, claims: 2, member: true },
      n2: { blocks: 1, claims: 3, member: true },
      n3: { blocks: 1, claims: 1, member: true },
    },
  },
};

const clusterStatus = (c: Partial<ClusterBody> = {}) =>
  status({
    networks: [network(NET_A, '198.18.64.0/20', { cluster: { name: 'blue', encrypt: true } })],
    endpoints: [endpoint(EP[0], NET_A, '198.18.64.2'), endpoint(EP[1], NET_A, '198.18.64.3')],
    cluster: { ...CLUSTER, ...c },
  });

const svgOf = (s: StatusBody, names?: TopologyNames): XmlElement =>
  parseXml(renderTopologySvg(computeTopology(s, { now: NOW, ...(names ? { names } : {}) })));
const byClass = (root: XmlElement, c: string) => findAll(root, hasClass(c));

describe('topology: the SVG', () => {
  it('one host: its networks, containers (names when known) and the policy in force', () => {
    const root = svgOf(status(), NAMES);
    assert.equal(root.name, 'svg');
    assert.equal(root.attrs.xmlns, 'http://www.w3.org/2000/svg');
    assert.equal(byClass(root, 'host').length, 1);
    assert.equal(byClass(root, 'self').length, 1);
    assert.equal(byClass(root, 'network').length, 2);
    assert.equal(byClass(root, 'container').length, 3);
    assert.equal(byClass(root, 'tunnel').length, 0);
    assert.equal(byClass(root, 'error').length, 0);
    const web = byClass(root, 'network').find((n) => n.attrs['data-network'] === NET_A);
    assert.ok(web);
    const text = textOf(web);
    assert.match(text, /^web/);
    assert.match(text, /ingress: tcp\/80/);
    assert.match(text, /nginx {2}198\.18\.1\.2/);
    assert.match(text, /db {2}198\.18\.1\.3.*ingress: tcp\/5432/s, "db's own policy overrides the network's");
    const back = textOf(byClass(root, 'network').find((n) => n.attrs['data-network'] === NET_B) as XmlElement);
    assert.match(back, /ingress: open/);
    assert.match(back, new RegExp(`○ ${EP[2].slice(0, 12)}`), 'no name: the short id; not joined: ○');
  });

  it('without names: short ids only', () => {
    const root = svgOf(status());
    const labels = byClass(root, 'network-label').map(textOf);
    assert.deepEqual(labels.sort(), [NET_A.slice(0, 12), NET_B.slice(0, 12)]);
  });

  it('a run-time policy wins over the one from creation', () => {
    const root = svgOf(status({ policies: [{ networkId: NET_A, ingress: [] }] }), NAMES);
    const web = byClass(root, 'network').find((n) => n.attrs['data-network'] === NET_A) as XmlElement;
    assert.equal(textOf(byClass(web, 'policy')[0] as XmlElement), 'ingress: none');
  });

  it('escapes every text, drops what XML cannot hold, and still parses', () => {
    const evil = `<script>alert("x")</script> & 'q' \u0001\u0000\uD800`;
    const names: TopologyNames = {
      networks: new Map([[NET_A, evil]]),
      endpoints: new Map([[EP[0], '</text></g></svg><x a="']]),
    };
    const svg = renderTopologySvg(computeTopology(status(), { now: NOW, names }));
    assert.ok(!svg.includes('<script>'));
    assert.ok(!svg.includes('</svg><x'));
    const root = parseXml(svg);
    const text = textOf(root);
    assert.ok(text.includes(`<script>alert("x")</script> & 'q' `), 'the name reads as given (decoded)');
    assert.ok(!text.includes('\u0000') && !text.includes('\u0001'));
    assert.ok(text.includes('</text></g></svg><x a="'));
    assert.equal(escapeXml(`a<b>&"'`), 'a&lt;b&gt;&amp;&quot;&apos;');
  });

  it('shortens long names to fit, with the whole name as a tooltip', () => {
    const long = 'n'.repeat(120);
    const root = svgOf(status(), { networks: new Map([[NET_A, long]]), endpoints: new Map() });
    const label = byClass(root, 'network-label').find((l) => textOf(l).includes('nnn')) as XmlElement;
    const title = findAll(label, (e) => e.name === 'title')[0];
    assert.equal(title && textOf(title), long);
    assert.ok(textOf(label).length < 120);
  });

  it('an object in error and drift: the network, container or host has the class', () => {
    const bridge = `trb${NET_A.slice(0, 12)}`;
    const veth = `trv${EP[2].slice(0, 12)}`;
    const s = status({
      kernel: { inSync: false, problems: [`veth ${veth} missing`, 'nft table truss differs'] },
      reconciler: {
        reconciledRevision: 7,
        objects: {
          [`bridge:${bridge}`]: { state: 'error', lastError: 'RTNETLINK answers: File exists', updatedAt: 'x' },
          'wireguard:trwg0': { state: 'error', lastError: 'no wireguard-go', updatedAt: 'x' },
          [`veth:trv${EP[0].slice(0, 12)}`]: { state: 'ok', updatedAt: 'x' },
        },
      },
    });
    const root = svgOf(s, NAMES);
    const errors = byClass(root, 'error').filter((e) => e.name === 'g');
    assert.deepEqual(errors.map((e) => e.attrs['data-network'] ?? e.attrs['data-host']).sort(), [NET_A, 'this host']);
    const drift = byClass(root, 'drift').filter((e) => e.name === 'g');
    assert.deepEqual(
      drift.map((e) => e.attrs['data-container']),
      [EP[2]],
    );
    assert.match(textOf(root), /error: bridge:trb.*File exists/);
    assert.match(textOf(root), /drift: nft table truss differs/);
  });

  it('a cluster: every host, the tunnels with their state, a tunnel without handshake in error', () => {
    const root = svgOf(clusterStatus(), NAMES);
    const hosts = byClass(root, 'host');
    assert.deepEqual(
      hosts.map((h) => h.attrs['data-host']),
      ['c1', 'c2', 'c3'],
    );
    const tunnels = byClass(root, 'tunnel');
    assert.equal(tunnels.length, 2);
    const to = (n: string) => tunnels.find((t) => t.attrs['data-to'] === n) as XmlElement;
    assert.ok(hasClass('ok')(to('n2')));
    assert.ok(!hasClass('error')(to('n2')));
    assert.ok(hasClass('error')(to('n3')), 'no handshake: error');
    assert.equal(to('n3').attrs['data-state'], 'never');
    assert.match(textOf(to('n3')), /c3: no handshake/);
    assert.match(textOf(to('n2')), /c2: handshake 10 s ago/);
    // another host's share of blue: its claims
    const c2 = hosts[1] as XmlElement;
    assert.match(textOf(c2), /web {2}cluster blue \(wireguard\)/);
    assert.match(textOf(c2), /3 address\(es\) claimed/);
    assert.equal(byClass(c2, 'container').length, 0);
  });

  it("a cluster network named after its cluster (the daemon's page: no Docker names) says so once", () => {
    const root = svgOf(clusterStatus());
    const labels = byClass(root, 'network-label').map(textOf);
    assert.deepEqual(labels, [
      `${NET_A.slice(0, 12)}  cluster blue (wireguard)`,
      'blue  cluster (wireguard)',
      'blue  cluster (wireguard)',
    ]);
  });

  it('a stale handshake is in error; a lapsed host is marked', () => {
    const root = svgOf(
      clusterStatus({
        peers: [
          { node: 'n2', name: 'c2', endpoint: '198.19.0.2:51820', allowedIps: [], latestHandshake: NOW / 1000 - 400 },
        ],
        lapsed: ['n3'],
      }),
    );
    const [tunnel] = byClass(root, 'tunnel');
    assert.ok(tunnel && hasClass('stale')(tunnel) && hasClass('error')(tunnel));
    assert.match(textOf(tunnel), /stale: handshake 7 min ago/);
    const c3 = byClass(root, 'host').find((h) => h.attrs['data-host'] === 'c3') as XmlElement;
    assert.ok(hasClass('error')(c3));
    assert.match(textOf(c3), /lease lapsed/);
  });

  it('etcd unreachable marks this host', () => {
    const root = svgOf(
      clusterStatus({ etcd: { ...CLUSTER.etcd, reachable: false, error: 'no answer within 2000 ms' } }),
    );
    const self = byClass(root, 'self')[0] as XmlElement;
    assert.ok(hasClass('error')(self));
    assert.match(textOf(self), /etcd unreachable: no answer within 2000 ms/);
  });

  it('is deterministic: the same picture whatever the order of the reply', () => {
    const a = clusterStatus();
    const b: StatusBody = {
      ...a,
      endpoints: [...a.endpoints].reverse(),
      cluster: {
        ...(a.cluster as ClusterBody),
        peers: [...CLUSTER.peers].reverse(),
        names: { n3: 'c3', n2: 'c2', n1: 'c1' },
      },
    };
    const render = (s: StatusBody) => renderTopologySvg(computeTopology(s, { now: NOW, names: NAMES }));
    assert.equal(render(a), render(b));
    assert.equal(render(a), render(a));
  });
});

describe('topology: the text tree and the page', () => {
  it('the tree lists hosts, tunnels, networks, policy and containers, errors marked', () => {
    const text = renderTopologyText(computeTopology(clusterStatus(), { now: NOW, names: NAMES }));
    assert.equal(
      text,
      [
        'truss topology (truss 0.1.0): 3 host(s), 2 tunnel(s), 1 in error',
        '',
        'host c1  (this host, node id n1)',
        '  network web  cluster blue (wireguard)  198.18.64.0/20',
        '    ingress: open',
        '    container db  198.18.64.3',
        '    container nginx  198.18.64.2',
        '',
        'host c2  (node id n2, 198.19.0.2)',
        '  tunnel from this host: wireguard to 198.19.0.2:51820, handshake 10 s ago',
        '  network web  cluster blue (wireguard)  198.18.64.0/20',
        '    3 address(es) claimed',
        '',
        'host c3  (node id n3, 198.19.0.3)',
        '  tunnel from this host: wireguard to 198.19.0.3:51820, no handshake  [ERROR]',
        '  network web  cluster blue (wireguard)  198.18.64.0/20',
        '    1 address(es) claimed',
        '',
      ].join('\n'),
    );
  });

  it('the page inlines the SVG, reloads itself and links the SVG', () => {
    const svg = renderTopologySvg(computeTopology(status(), { now: NOW }));
    const page = renderTopologyPage(svg);
    assert.match(page, /^<!DOCTYPE html>/);
    assert.match(page, /<meta http-equiv="refresh" content="10">/);
    assert.ok(page.includes(svg));
    assert.match(page, /href="\/topology.svg"/);
  });
});

describe('topology: fitting text', () => {
  it('wraps after spaces, keeps them (joined lines read as the text), and cuts past the last line', () => {
    assert.deepEqual(wrap('aaa bbb ccc', 5, 3), ['aaa ', 'bbb ', 'ccc']);
    assert.deepEqual(wrap('abcdefghij', 4, 2), ['abcd', 'efg…']);
    assert.deepEqual(wrap('short', 10, 3), ['short']);
    assert.equal(fit('ααααα', 3), 'αα…');
  });
});

describe('topology: the XML check of the tests', () => {
  it('accepts a well-formed document and rejects what is not', () => {
    assert.equal(parseXml('<?xml version="1.0"?>\n<a x="1"><b/>t&amp;&#x41;<!-- c --></a>\n').children.length, 2);
    for (const bad of [
      '<a><b></a></b>',
      '<a x="1" x="2"/>',
      '<a x=1/>',
      '<a>&nbsp;</a>',
      '<a>a & b</a>',
      '<a>1 < 2</a>',
      '<a/><b/>',
      '<a>',
      'text<a/>',
      '<a>\u0001</a>',
      '<a x="<"/>',
    ]) {
      assert.throws(() => parseXml(bad), XmlError, bad);
    }
  });
});
