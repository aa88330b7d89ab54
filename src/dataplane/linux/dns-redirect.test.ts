import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DnsRedirectObject } from '../../core/desired.ts';
import {
  DNS_RULES,
  diffDnsRedirect,
  dnsElements,
  parseDnsTableJson,
  renderDnsRedirect,
  renderDnsRemoval,
  renderDnsReplacement,
  renderDnsTransaction,
} from './dns-redirect.ts';

const commentOf = (rule: string): string => /comment "([^"]*)"$/.exec(rule)?.[1] ?? '';

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

/** `nft -j list table inet truss_dns` after ensuring OBJ and a query to each seen set (nft 1.0.6; the rules' expr trimmed). */
const LISTED = JSON.stringify({
  nftables: [
    { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
    { table: { family: 'inet', name: 'truss_dns', handle: 4 } },
    {
      set: {
        family: 'inet',
        name: 'seen4',
        table: 'truss_dns',
        type: 'ipv4_addr',
        handle: 2,
        size: 256,
        flags: ['timeout'],
        timeout: 3600,
        elem: [{ elem: { val: '1.2.3.4', expires: 3599 } }],
      },
    },
    {
      set: {
        family: 'inet',
        name: 'seen6',
        table: 'truss_dns',
        type: 'ipv6_addr',
        handle: 3,
        size: 256,
        flags: ['timeout'],
        timeout: 3600,
        elem: [{ elem: { val: '2001:DB8:0::1', expires: 3599 } }],
      },
    },
    {
      set: {
        family: 'inet',
        name: 'bridges4',
        table: 'truss_dns',
        type: 'ifname',
        handle: 35,
        elem: ['trbaaaaaaaaaaaa', 'trb0123456789ab'],
      },
    },
    {
      set: {
        family: 'inet',
        name: 'bridges6',
        table: 'truss_dns',
        type: 'ifname',
        handle: 36,
        elem: ['trb0123456789ab'],
      },
    },
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
        handle: 40,
        comment: 'truss: DNS from a dns-enabled network to a server truss does not know: learn it',
        expr: [],
      },
    },
    {
      rule: {
        family: 'inet',
        table: 'truss_dns',
        chain: 'prerouting',
        handle: 42,
        comment: 'truss: DNS from a dns-enabled network to a server truss does not know: learn it (IPv6)',
        expr: [],
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
    ...DNS_RULES.slice(4).map((r, i) => ({
      rule: {
        family: 'inet',
        table: 'truss_dns',
        chain: 'prerouting',
        handle: 50 + i,
        comment: commentOf(r),
        expr: [],
      },
    })),
  ],
});

describe('dns-redirect rendering', () => {
  it('a routed network is keyed on its interface group, in maps and sets of its own', () => {
    const o: DnsRedirectObject = {
      bridges: [{ bridge: 'trbaaaaaaaaaaaa', group: 0x74aaaaaa, gateway4: '198.18.1.1' }],
      upstreams: [{ address: '8.8.8.8', port: 35301 }],
    };
    const text = renderDnsRedirect(o);
    assert.ok(text.includes(`elements = { ${0x74aaaaaa} . 8.8.8.8 : 198.18.1.1 . 35301 }`), text);
    assert.ok(text.includes(`\t\ttype devgroup\n\t\telements = { ${0x74aaaaaa} }`), text);
    assert.deepEqual(
      dnsElements(o).map((e) => e.map),
      ['gdns4'],
    );
    const json = JSON.stringify({
      nftables: [
        { set: { name: 'groups4', elem: [0x74aaaaaa] } },
        { map: { name: 'gdns4', elem: [[{ concat: [0x74aaaaaa, '8.8.8.8'] }, { concat: ['198.18.1.1', 35301] }]] } },
        { chain: { name: 'prerouting', hook: 'prerouting', prio: -115 } },
        ...DNS_RULES.map((r) => ({ rule: { chain: 'prerouting', comment: commentOf(r) } })),
      ],
    });
    assert.deepEqual(diffDnsRedirect(o, parseDnsTableJson(json)), []);
  });

  it('renders bridges × upstreams of the families a bridge has a gateway in; four rules whatever their number', () => {
    assert.equal(
      renderDnsRedirect(OBJ),
      `table inet truss_dns {
\tcomment "truss: DNS of dns-enabled networks to truss's responder; rewritten by truss"
\tset seen4 {
\t\ttype ipv4_addr
\t\tsize 256
\t\tflags dynamic,timeout
\t\ttimeout 1h
\t}

\tset seen6 {
\t\ttype ipv6_addr
\t\tsize 256
\t\tflags dynamic,timeout
\t\ttimeout 1h
\t}

\tset bridges4 {
\t\ttype ifname
\t\telements = { "trb0123456789ab", "trbaaaaaaaaaaaa" }
\t}

\tset bridges6 {
\t\ttype ifname
\t\telements = { "trb0123456789ab" }
\t}

\tset groups4 {
\t\ttype devgroup
\t}

\tset groups6 {
\t\ttype devgroup
\t}

\tmap dns4 {
\t\ttype ifname . ipv4_addr : ipv4_addr . inet_service
\t\telements = { "trb0123456789ab" . 8.8.8.8 : 198.18.0.1 . 35301, "trbaaaaaaaaaaaa" . 8.8.8.8 : 198.18.1.1 . 35301 }
\t}

\tmap dns6 {
\t\ttype ifname . ipv6_addr : ipv6_addr . inet_service
\t\telements = { "trb0123456789ab" . 2001:4860:4860::8888 : fd00::1 . 35302 }
\t}

\tmap gdns4 {
\t\ttype devgroup . ipv4_addr : ipv4_addr . inet_service
\t}

\tmap gdns6 {
\t\ttype devgroup . ipv6_addr : ipv6_addr . inet_service
\t}

\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat - 15; policy accept;
\t\tmeta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 iifname @bridges4 iifname . ip daddr != @dns4 update @seen4 { ip daddr } comment "truss: DNS from a dns-enabled network to a server truss does not know: learn it"
\t\tmeta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 iifname @bridges6 iifname . ip6 daddr != @dns6 update @seen6 { ip6 daddr } comment "truss: DNS from a dns-enabled network to a server truss does not know: learn it (IPv6)"
\t\tmeta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 dnat ip to iifname . ip daddr map @dns4 comment "truss: DNS from a dns-enabled network to an upstream: to the responder"
\t\tmeta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 dnat ip6 to iifname . ip6 daddr map @dns6 comment "truss: DNS from a dns-enabled network to an upstream: to the responder (IPv6)"
\t\tmeta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 iifgroup @groups4 iifgroup . ip daddr != @gdns4 update @seen4 { ip daddr } comment "truss: DNS from a dns-enabled routed network to a server truss does not know: learn it"
\t\tmeta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 iifgroup @groups6 iifgroup . ip6 daddr != @gdns6 update @seen6 { ip6 daddr } comment "truss: DNS from a dns-enabled routed network to a server truss does not know: learn it (IPv6)"
\t\tmeta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 dnat ip to iifgroup . ip daddr map @gdns4 comment "truss: DNS from a dns-enabled routed network to an upstream: to the responder"
\t\tmeta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 dnat ip6 to iifgroup . ip6 daddr map @gdns6 comment "truss: DNS from a dns-enabled routed network to an upstream: to the responder (IPv6)"
\t}
}
`,
    );
  });

  it('rewrites all but the seen sets in one transaction, or replaces the table whole; removal tolerates its absence', () => {
    const tx = renderDnsTransaction(OBJ);
    const dels = tx.split('\n').filter((l) => l.startsWith('delete '));
    assert.deepEqual(dels, [
      'delete chain inet truss_dns prerouting',
      'delete map inet truss_dns dns4',
      'delete map inet truss_dns dns6',
      'delete map inet truss_dns gdns4',
      'delete map inet truss_dns gdns6',
      'delete set inet truss_dns bridges4',
      'delete set inet truss_dns bridges6',
      'delete set inet truss_dns groups4',
      'delete set inet truss_dns groups6',
    ]);
    // every deleted object is declared first (the deletes never fail on absence), the seen sets too
    const declared = tx.slice(0, tx.indexOf('\ndelete '));
    for (const x of ['set seen4 {', 'set seen6 {', 'set bridges4 {', 'set bridges6 {', 'map dns4 {', 'map dns6 {'])
      assert.ok(declared.includes(x), x);
    assert.match(declared, /\tchain prerouting \{\n\t\}/, 'the chain declared without a hook');
    assert.ok(tx.endsWith(renderDnsRedirect(OBJ)));
    assert.equal(
      renderDnsReplacement(OBJ),
      `table inet truss_dns {}\ndelete table inet truss_dns\n${renderDnsRedirect(OBJ)}`,
    );
    assert.equal(renderDnsRemoval(), 'table inet truss_dns {}\ndelete table inet truss_dns\n');
  });

  it('empty maps and sets have no elements line (nft refuses `elements = { }`)', () => {
    const text = renderDnsRedirect({ bridges: [{ bridge: 'trb0123456789ab' }], upstreams: [] });
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

  it('reads back what was rendered: no problem; what was learnt is read, canonical, and ignored', () => {
    assert.equal(table.priority, -115);
    assert.equal(table.elements.length, 3);
    assert.deepEqual(table.bridges, [
      'bridges4 "trbaaaaaaaaaaaa"',
      'bridges4 "trb0123456789ab"',
      'bridges6 "trb0123456789ab"',
    ]);
    assert.deepEqual(table.seen, ['1.2.3.4', '2001:db8::1']);
    assert.deepEqual(diffDnsRedirect(OBJ, table), []);
    assert.deepEqual(diffDnsRedirect(OBJ, { ...table, seen: [] }), []);
  });

  it('a bridge missing from its set is drift; so is one too many', () => {
    assert.deepEqual(diffDnsRedirect(OBJ, { ...table, bridges: table.bridges.slice(1) }), [
      'nft table inet truss_dns: 1 element(s) missing: bridges4 "trbaaaaaaaaaaaa"',
    ]);
    const v4only: DnsRedirectObject = {
      ...OBJ,
      bridges: OBJ.bridges.map((b) => ({ bridge: b.bridge, ...(b.gateway4 ? { gateway4: b.gateway4 } : {}) })),
    };
    assert.deepEqual(diffDnsRedirect({ ...v4only, upstreams: OBJ.upstreams.slice(0, 1) }, table), [
      'nft table inet truss_dns: 2 element(s) not desired: bridges6 "trb0123456789ab", dns6 "trb0123456789ab" . 2001:4860:4860::8888 : fd00::1 . 35302',
    ]);
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
    const doc = JSON.parse(LISTED) as {
      nftables: { map?: { name: string; elem: unknown[] }; set?: { name: string; elem: unknown[] } }[];
    };
    for (const i of doc.nftables) {
      if (i.map)
        i.map.elem = i.map.name === 'dns4' ? [[{ concat: ['1.2.3.4', '8.8.8.8'] }, { concat: ['198.18.0.1', 9] }]] : [];
      if (i.set?.name === 'bridges4') i.set.elem = ['1.2.3.4'];
      if (i.set?.name === 'bridges6') i.set.elem = [];
    }
    assert.deepEqual(diffDnsRedirect(o, parseDnsTableJson(JSON.stringify(doc))), []);
  });
});
