import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DnsRedirectObject } from '../../core/desired.ts';
import {
  diffDnsRedirect,
  dnsElements,
  parseDnsTableJson,
  renderDnsRedirect,
  renderDnsRemoval,
  renderDnsTransaction,
} from './dns-redirect.ts';

const OBJ: DnsRedirectObject = {
  bridges: [
    { bridge: 'trb0123456789ab', gateway4: '198.18.0.1', gateway6: 'fd00:0::1' },
    { bridge: 'trbaaaaaaaaaaaa', gateway4: '198.18.1.1' },
  ],
  upstreams: [
    { address: '8.8.8.8', port: 35301 },
    { address: '2001:4860:4860::8888', port: 35302 },
  ],
};

/** `nft -j list table inet truss_dns` after ensuring OBJ (nft 1.0.6; the rules' expr trimmed). */
const LISTED = JSON.stringify({
  nftables: [
    { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
    { table: { family: 'inet', name: 'truss_dns', handle: 4 } },
    {
      map: {
        family: 'inet',
        name: 'dns4',
        table: 'truss_dns',
        type: ['ifname', 'ipv4_addr'],
        handle: 2,
        map: 'ipv4_addr . inet_service',
        elem: [
          [{ concat: ['trbaaaaaaaaaaaa', '8.8.8.8'] }, { concat: ['198.18.1.1', 35301] }],
          [{ concat: ['trb0123456789ab', '8.8.8.8'] }, { concat: ['198.18.0.1', 35301] }],
        ],
      },
    },
    {
      map: {
        family: 'inet',
        name: 'dns6',
        table: 'truss_dns',
        type: ['ifname', 'ipv6_addr'],
        handle: 3,
        map: 'ipv6_addr . inet_service',
        elem: [[{ concat: ['trb0123456789ab', '2001:4860:4860::8888'] }, { concat: ['fd00::1', 35302] }]],
      },
    },
    {
      chain: {
        family: 'inet',
        table: 'truss_dns',
        name: 'prerouting',
        handle: 1,
        type: 'nat',
        hook: 'prerouting',
        prio: -115,
        policy: 'accept',
      },
    },
    {
      rule: {
        family: 'inet',
        table: 'truss_dns',
        chain: 'prerouting',
        handle: 5,
        comment: 'truss: DNS from a dns-enabled network to an upstream: to the responder',
        expr: [],
      },
    },
    {
      rule: {
        family: 'inet',
        table: 'truss_dns',
        chain: 'prerouting',
        handle: 7,
        comment: 'truss: DNS from a dns-enabled network to an upstream: to the responder (IPv6)',
        expr: [],
      },
    },
  ],
});

describe('dns-redirect rendering', () => {
  it('renders bridges × upstreams of the families a bridge has a gateway in; two rules whatever their number', () => {
    assert.equal(
      renderDnsRedirect(OBJ),
      `table inet truss_dns {
\tcomment "truss: DNS of dns-enabled networks to truss's responder; replaced whole by truss"
\tmap dns4 {
\t\ttype ifname . ipv4_addr : ipv4_addr . inet_service
\t\telements = { "trb0123456789ab" . 8.8.8.8 : 198.18.0.1 . 35301, "trbaaaaaaaaaaaa" . 8.8.8.8 : 198.18.1.1 . 35301 }
\t}

\tmap dns6 {
\t\ttype ifname . ipv6_addr : ipv6_addr . inet_service
\t\telements = { "trb0123456789ab" . 2001:4860:4860::8888 : fd00::1 . 35302 }
\t}

\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat - 15; policy accept;
\t\tmeta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 dnat ip to iifname . ip daddr map @dns4 comment "truss: DNS from a dns-enabled network to an upstream: to the responder"
\t\tmeta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 dnat ip6 to iifname . ip6 daddr map @dns6 comment "truss: DNS from a dns-enabled network to an upstream: to the responder (IPv6)"
\t}
}
`,
    );
  });

  it('replaces the table whole in one transaction; removal tolerates its absence', () => {
    assert.ok(renderDnsTransaction(OBJ).startsWith('table inet truss_dns {}\ndelete table inet truss_dns\ntable inet'));
    assert.equal(renderDnsRemoval(), 'table inet truss_dns {}\ndelete table inet truss_dns\n');
  });

  it('empty maps have no elements line (nft refuses `elements = { }`)', () => {
    const text = renderDnsRedirect({ bridges: [{ bridge: 'trb0123456789ab', gateway4: '198.18.0.1' }], upstreams: [] });
    assert.doesNotMatch(text, /elements/);
  });

  it('canonicalises addresses', () => {
    const els = dnsElements({
      bridges: [{ bridge: 'br-x', gateway6: 'FD00:0:0::1' }],
      upstreams: [{ address: '2001:db8:0:0::53', port: 1 }],
    });
    assert.deepEqual(els, [{ map: 'dns6', key: '"br-x" . 2001:db8::53', value: 'fd00::1 . 1' }]);
  });
});

describe('dns-redirect validation (before anything reaches nft text)', () => {
  const bad: [string, DnsRedirectObject, RegExp][] = [
    ['interface name', { bridges: [{ bridge: 'trb"; flush ruleset' }], upstreams: [] }, /invalid interface name/],
    ['too long a name', { bridges: [{ bridge: 'trb0123456789abc' }], upstreams: [] }, /invalid interface name/],
    ['v6 gateway as v4', { bridges: [{ bridge: 'trb1', gateway4: 'fd00::1' }], upstreams: [] }, /not an IPv4/],
    ['v4 gateway as v6', { bridges: [{ bridge: 'trb1', gateway6: '198.18.0.1' }], upstreams: [] }, /not an IPv6/],
    ['gateway in CIDR form', { bridges: [{ bridge: 'trb1', gateway4: '198.18.0.1/24' }], upstreams: [] }, /IPv4/],
    ['upstream not an IP', { bridges: [], upstreams: [{ address: 'dns.google', port: 1 }] }, /not an IP/],
    ['upstream with nft text', { bridges: [], upstreams: [{ address: '8.8.8.8 }', port: 1 }] }, /not an IP/],
    ['port 0', { bridges: [], upstreams: [{ address: '8.8.8.8', port: 0 }] }, /1-65535/],
    ['port 65536', { bridges: [], upstreams: [{ address: '8.8.8.8', port: 65536 }] }, /1-65535/],
    ['fractional port', { bridges: [], upstreams: [{ address: '8.8.8.8', port: 1.5 }] }, /1-65535/],
    [
      'one upstream twice',
      {
        bridges: [],
        upstreams: [
          { address: '8.8.8.8', port: 1 },
          { address: '8.8.8.8', port: 2 },
        ],
      },
      /upstream "8.8.8.8" appears twice/,
    ],
    [
      'one port for two upstreams',
      {
        bridges: [],
        upstreams: [
          { address: '8.8.8.8', port: 1 },
          { address: '2001:db8::1', port: 1 },
        ],
      },
      /responder port "1" appears twice/,
    ],
    ['one bridge twice', { bridges: [{ bridge: 'trb1' }, { bridge: 'trb1' }], upstreams: [] }, /bridge "trb1"/],
  ];
  for (const [what, o, re] of bad) {
    it(`refuses ${what}`, () => {
      assert.throws(() => renderDnsRedirect(o), re);
    });
  }
});

describe('dns-redirect check', () => {
  const table = parseDnsTableJson(LISTED);

  it('reads back what was rendered: no problem', () => {
    assert.equal(table.priority, -115);
    assert.equal(table.elements.length, 3);
    assert.deepEqual(diffDnsRedirect(OBJ, table), []);
  });

  it('an element deleted by hand is drift; so is one too many', () => {
    const lost = { ...table, elements: table.elements.slice(1) };
    assert.deepEqual(diffDnsRedirect(OBJ, lost), [
      'nft table inet truss_dns: 1 element(s) missing: dns4 "trbaaaaaaaaaaaa" . 8.8.8.8 : 198.18.1.1 . 35301',
    ]);
    const fewer: DnsRedirectObject = { ...OBJ, upstreams: OBJ.upstreams.slice(0, 1) };
    assert.deepEqual(diffDnsRedirect(fewer, table), [
      'nft table inet truss_dns: 1 element(s) not desired: dns6 "trb0123456789ab" . 2001:4860:4860::8888 : fd00::1 . 35302',
    ]);
  });

  it('another priority or a rule gone is drift', () => {
    assert.equal(diffDnsRedirect(OBJ, { ...table, priority: -100 }).length, 1);
    assert.match(diffDnsRedirect(OBJ, { ...table, rules: table.rules.slice(1) })[0] ?? '', /chain prerouting differs/);
  });

  it('a missing table is a problem when wanted; a present one when not', () => {
    assert.deepEqual(diffDnsRedirect(OBJ, undefined), ['nft table inet truss_dns is missing']);
    assert.deepEqual(diffDnsRedirect(undefined, undefined), []);
    assert.deepEqual(diffDnsRedirect(undefined, table), [
      'nft table inet truss_dns exists but no network wants DNS redirection',
    ]);
  });

  it('a bridge named like an address reads back as the name it is', () => {
    const o: DnsRedirectObject = {
      bridges: [{ bridge: '1.2.3.4', gateway4: '198.18.0.1' }],
      upstreams: [{ address: '8.8.8.8', port: 9 }],
    };
    const doc = JSON.parse(LISTED) as { nftables: { map?: { name: string; elem: unknown[] } }[] };
    for (const i of doc.nftables)
      if (i.map)
        i.map.elem = i.map.name === 'dns4' ? [[{ concat: ['1.2.3.4', '8.8.8.8'] }, { concat: ['198.18.0.1', 9] }]] : [];
    assert.deepEqual(diffDnsRedirect(o, parseDnsTableJson(JSON.stringify(doc))), []);
  });
});
