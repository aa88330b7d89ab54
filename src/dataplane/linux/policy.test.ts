import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PolicyObject } from '../../core/desired.ts';
import type { IngressRule } from '../../core/policy/model.ts';
import { parseCounters } from './nft-read.ts';
import { parseMapJson, planMapDeletes, renderPolicy, renderPolicyBase, renderPolicyRemoval } from './policy.ts';
import { diffPolicies } from './policy-check.ts';
import { checkPolicyObject } from './policy-sets.ts';

const tcp = (from: number, to = from, source?: string): IngressRule => ({
  proto: 'tcp',
  ports: { from, to },
  ...(source ? { source } : {}),
});

const B: PolicyObject = {
  name: 'ep_0123456789ab',
  endpointId: `0123456789ab${'0'.repeat(52)}`,
  networkId: 'f'.repeat(64),
  addresses: ['198.18.40.3', 'fd00:40::3'],
  rules: [
    tcp(80),
    tcp(8000, 8100),
    tcp(5432, 5432, '198.18.7.0/24'),
    tcp(22, 22, '198.18.1.2/32'),
    { proto: 'udp', ports: { from: 53, to: 53 }, source: 'fd00:7::/64' },
    { proto: 'icmp' },
  ],
};
const C: PolicyObject = {
  ...B,
  name: 'ep_ba9876543210',
  endpointId: `ba9876543210${'0'.repeat(52)}`,
  addresses: ['198.18.40.4'],
  rules: [],
};

const GOLDEN_BASE = `table inet truss_policy {
	comment "truss: port policy (ingress allow-list per endpoint); updated per endpoint by truss"
	map policy4 {
		type ipv4_addr : verdict
	}
	map policy6 {
		type ipv6_addr : verdict
	}
	chain forward {
		type filter hook forward priority filter - 20; policy accept;
	}
	chain output {
		type filter hook output priority filter - 20; policy accept;
	}
}
flush chain inet truss_policy forward
flush chain inet truss_policy output
table inet truss_policy {
	chain forward {
		ct state established,related accept comment "truss: replies and flows already admitted"
		ip daddr vmap @policy4 comment "truss: to an endpoint with a policy: its chain"
		ip6 daddr vmap @policy6 comment "truss: to an endpoint with a policy: its chain"
	}
	chain output {
		ct state established,related accept comment "truss: replies and flows already admitted"
		ip daddr vmap @policy4 comment "truss: to an endpoint with a policy: its chain"
		ip6 daddr vmap @policy6 comment "truss: to an endpoint with a policy: its chain"
	}
}
`;

// Golden: B's transaction after the base, with one stale v4 address to drop first.
const GOLDEN_B = `add counter inet truss_policy ep_0123456789ab_denied
add chain inet truss_policy ep_0123456789ab
flush chain inet truss_policy ep_0123456789ab
add set inet truss_policy ep_0123456789ab_tcp { type inet_service; flags interval; }
flush set inet truss_policy ep_0123456789ab_tcp
add set inet truss_policy ep_0123456789ab_tcp { type inet_service; flags interval; elements = { 80, 8000-8100 } }
add set inet truss_policy ep_0123456789ab_udp { type inet_service; flags interval; }
delete set inet truss_policy ep_0123456789ab_udp
add set inet truss_policy ep_0123456789ab_tcp4 { type ipv4_addr . inet_service; flags interval; }
flush set inet truss_policy ep_0123456789ab_tcp4
add set inet truss_policy ep_0123456789ab_tcp4 { type ipv4_addr . inet_service; flags interval; elements = { 198.18.1.2 . 22, 198.18.7.0/24 . 5432 } }
add set inet truss_policy ep_0123456789ab_tcp6 { type ipv6_addr . inet_service; flags interval; }
delete set inet truss_policy ep_0123456789ab_tcp6
add set inet truss_policy ep_0123456789ab_udp4 { type ipv4_addr . inet_service; flags interval; }
delete set inet truss_policy ep_0123456789ab_udp4
add set inet truss_policy ep_0123456789ab_udp6 { type ipv6_addr . inet_service; flags interval; }
flush set inet truss_policy ep_0123456789ab_udp6
add set inet truss_policy ep_0123456789ab_udp6 { type ipv6_addr . inet_service; flags interval; elements = { fd00:7::/64 . 53 } }
add set inet truss_policy ep_0123456789ab_icmp4 { type ipv4_addr; flags interval; }
delete set inet truss_policy ep_0123456789ab_icmp4
add set inet truss_policy ep_0123456789ab_icmp6 { type ipv6_addr; flags interval; }
delete set inet truss_policy ep_0123456789ab_icmp6
add rule inet truss_policy ep_0123456789ab tcp dport @ep_0123456789ab_tcp accept
add rule inet truss_policy ep_0123456789ab ip saddr . tcp dport @ep_0123456789ab_tcp4 accept
add rule inet truss_policy ep_0123456789ab ip6 saddr . udp dport @ep_0123456789ab_udp6 accept
add rule inet truss_policy ep_0123456789ab icmp type echo-request accept
add rule inet truss_policy ep_0123456789ab icmpv6 type echo-request accept
add rule inet truss_policy ep_0123456789ab icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
add rule inet truss_policy ep_0123456789ab counter name "ep_0123456789ab_denied" drop
delete element inet truss_policy policy4 { 198.18.40.9 }
add map inet truss_policy policy4 { type ipv4_addr : verdict; elements = { 198.18.40.3 : jump ep_0123456789ab } }
add map inet truss_policy policy6 { type ipv6_addr : verdict; elements = { fd00:40::3 : jump ep_0123456789ab } }
`;

const SET_IDIOM = (suffix: string, type: string): string =>
  `add set inet truss_policy ep_0123456789ab_${suffix} { type ${type}; flags interval; }\n` +
  `delete set inet truss_policy ep_0123456789ab_${suffix}\n`;

const GOLDEN_REMOVAL = `add chain inet truss_policy ep_0123456789ab
delete element inet truss_policy policy4 { 198.18.40.3 }
delete element inet truss_policy policy6 { fd00:40::3 }
flush chain inet truss_policy ep_0123456789ab
delete chain inet truss_policy ep_0123456789ab
${SET_IDIOM('tcp', 'inet_service')}${SET_IDIOM('udp', 'inet_service')}${SET_IDIOM('tcp4', 'ipv4_addr . inet_service')}${SET_IDIOM('tcp6', 'ipv6_addr . inet_service')}${SET_IDIOM('udp4', 'ipv4_addr . inet_service')}${SET_IDIOM('udp6', 'ipv6_addr . inet_service')}${SET_IDIOM('icmp4', 'ipv4_addr')}${SET_IDIOM('icmp6', 'ipv6_addr')}add counter inet truss_policy ep_0123456789ab_denied
delete counter inet truss_policy ep_0123456789ab_denied
`;

/** `nft list table inet truss_policy` (nft 1.0.6, kernel 6.18) after ensurePolicy(B) and ensurePolicy(C). */
const LISTING = `table inet truss_policy {
	comment "truss: port policy (ingress allow-list per endpoint); updated per endpoint by truss"
	counter ep_0123456789ab_denied {
		packets 0 bytes 0
	}

	counter ep_ba9876543210_denied {
		packets 0 bytes 0
	}

	map policy4 {
		type ipv4_addr : verdict
		elements = { 198.18.40.3 : jump ep_0123456789ab, 198.18.40.4 : jump ep_ba9876543210 }
	}

	map policy6 {
		type ipv6_addr : verdict
		elements = { fd00:40::3 : jump ep_0123456789ab }
	}

	set ep_0123456789ab_tcp {
		type inet_service
		flags interval
		elements = { 80, 8000-8100 }
	}

	set ep_0123456789ab_tcp4 {
		type ipv4_addr . inet_service
		flags interval
		elements = { 198.18.1.2 . 22,
			     198.18.7.0/24 . 5432 }
	}

	set ep_0123456789ab_udp6 {
		type ipv6_addr . inet_service
		flags interval
		elements = { fd00:7::/64 . 53 }
	}

	chain forward {
		type filter hook forward priority -20; policy accept;
		ct state established,related accept comment "truss: replies and flows already admitted"
		ip daddr vmap @policy4 comment "truss: to an endpoint with a policy: its chain"
		ip6 daddr vmap @policy6 comment "truss: to an endpoint with a policy: its chain"
	}

	chain output {
		type filter hook output priority -20; policy accept;
		ct state established,related accept comment "truss: replies and flows already admitted"
		ip daddr vmap @policy4 comment "truss: to an endpoint with a policy: its chain"
		ip6 daddr vmap @policy6 comment "truss: to an endpoint with a policy: its chain"
	}

	chain ep_0123456789ab {
		tcp dport @ep_0123456789ab_tcp accept
		ip saddr . tcp dport @ep_0123456789ab_tcp4 accept
		ip6 saddr . udp dport @ep_0123456789ab_udp6 accept
		icmp type echo-request accept
		icmpv6 type echo-request accept
		icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
		counter name "ep_0123456789ab_denied" drop
	}

	chain ep_ba9876543210 {
		icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
		counter name "ep_ba9876543210_denied" drop
	}
}
`;

describe('renderPolicyBase', () => {
  it('renders the table, maps and hooked chains (golden)', () => assert.equal(renderPolicyBase(), GOLDEN_BASE));
});

describe('renderPolicy', () => {
  it('renders one endpoint after the base (golden)', () => {
    const text = renderPolicy(B, { v4: ['198.18.40.9'], v6: [] });
    assert.ok(text.startsWith(GOLDEN_BASE));
    assert.equal(text.slice(GOLDEN_BASE.length), GOLDEN_B);
  });

  it('is deterministic whatever the order of rules and addresses', () => {
    const shuffled = { ...B, rules: [...B.rules].reverse(), addresses: [...B.addresses].reverse() };
    assert.equal(renderPolicy(shuffled), renderPolicy(B));
  });

  it('`none`: no sets, only ND and the counted drop', () => {
    const text = renderPolicy(C);
    assert.doesNotMatch(text, /^flush set/m);
    assert.deepEqual(
      text.split('\n').filter((l) => l.startsWith('add rule')),
      [
        'add rule inet truss_policy ep_ba9876543210 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept',
        'add rule inet truss_policy ep_ba9876543210 counter name "ep_ba9876543210_denied" drop',
      ],
    );
  });

  it('never writes add/delete element for its sets (nft 1.0.6 would dump every interval set first)', () => {
    assert.doesNotMatch(renderPolicy(B), /^(add|delete) element/m);
  });

  it('keeps the chain at most 10 rules however many ports and sources', () => {
    const rules: IngressRule[] = [
      { proto: 'icmp', source: '198.18.0.0/16' },
      { proto: 'icmp', source: 'fd00::/8' },
    ];
    const udp = (i: number, source?: string): IngressRule => ({
      proto: 'udp',
      ports: { from: i, to: i },
      ...(source ? { source } : {}),
    });
    for (let i = 1; i <= 2500; i++) {
      rules.push(
        tcp(i),
        udp(i),
        tcp(10_000 + i, 10_000 + i, `198.18.${i % 250}.0/24`),
        udp(20_000 + i, `fd00:${i}::/64`),
      );
      rules.push(udp(30_000 + i, `198.18.${i % 250}.0/24`), tcp(40_000 + i, 40_000 + i, `fd00:${i}::/64`));
    }
    const text = renderPolicy({ ...B, rules });
    const chain = text.split('\n').filter((l) => l.startsWith('add rule'));
    assert.equal(chain.length, 10, chain.join('\n'));
    const longest = Math.max(...text.split('\n').map((l) => (l.match(/, /g) ?? []).length));
    assert.ok(longest < 1000, 'elements are sent in chunks of at most 1000');
  });

  it('refuses anything that is not validated before it reaches nft text', () => {
    assert.throws(() => renderPolicy({ ...B, name: 'ep_x; flush ruleset' }), { code: 'TRUSS_ERR_ID_INVALID' });
    assert.throws(() => renderPolicy(B, { v4: ['198.18.40.9 }'], v6: [] }), { code: 'TRUSS_ERR_ADDRESS_INVALID' });
    assert.throws(() => renderPolicy(B, { v4: ['fd00::9'], v6: [] }), { code: 'TRUSS_ERR_ADDRESS_INVALID' });
  });
});

describe('renderPolicyRemoval', () => {
  it('removes map elements, chain, sets and counter; absent objects are no error (golden)', () => {
    assert.equal(renderPolicyRemoval(B.name, { v4: ['198.18.40.3'], v6: ['fd00:40::3'] }), GOLDEN_REMOVAL);
  });
});

describe('planMapDeletes', () => {
  it('drops addresses pointing elsewhere and stale ones pointing here; keeps the rest', () => {
    const c = checkPolicyObject(B);
    const maps = {
      v4: new Map([
        ['198.18.40.3', 'ep_ba9876543210'],
        ['198.18.40.9', B.name],
        ['198.18.40.4', 'ep_ba9876543210'],
      ]),
      v6: new Map([['fd00:40::3', B.name]]),
    };
    assert.deepEqual(planMapDeletes(c, maps), { v4: ['198.18.40.3', '198.18.40.9'], v6: [] });
  });
});

describe('reading nft JSON', () => {
  it('parses `list map` and `list counters`', () => {
    const map =
      '{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"map": {"family": "inet", "name": "policy4", "table": "truss_policy", "type": "ipv4_addr", "handle": 3, "map": "verdict", "elem": [["198.18.40.3", {"jump": {"target": "ep_0123456789ab"}}], ["198.18.40.4", {"jump": {"target": "ep_ba9876543210"}}]]}}]}';
    assert.deepEqual(
      [...parseMapJson(map)],
      [
        ['198.18.40.3', 'ep_0123456789ab'],
        ['198.18.40.4', 'ep_ba9876543210'],
      ],
    );
    // as `nft -f -` prints `list counters table inet truss_policy` (nft 1.0.6)
    const counters = [
      'table inet truss_policy {',
      '\tcounter ep_0123456789ab_denied {',
      '\t\tpackets 3 bytes 180',
      '\t}',
      '\tcounter someone_else {',
      '\t\tpackets 1 bytes 1',
      '\t}',
      '}',
      '',
    ].join('\n');
    const key = (name: string) => /^(ep_[0-9a-f]{12})_denied$/.exec(name)?.[1];
    assert.deepEqual(parseCounters(counters, key), { ep_0123456789ab: { packets: 3, bytes: 180 } });
  });
});

describe('diffPolicies', () => {
  it('finds nothing when the listing is what ensure installed (counters, wrapping, element order aside)', () => {
    assert.deepEqual(diffPolicies([B, C], LISTING), { drifted: [], extra: [], problems: [] });
    const counted = LISTING.replace('packets 0 bytes 0', 'packets 12 bytes 720').replace(
      '198.18.1.2 . 22,\n\t\t\t     198.18.7.0/24 . 5432',
      '198.18.7.0/24 . 5432, 198.18.1.2 . 22',
    );
    assert.deepEqual(diffPolicies([B, C], counted).problems, []);
  });

  it('reports a missing table only when some policy is desired', () => {
    assert.deepEqual(diffPolicies([B], undefined), {
      drifted: [B.name],
      extra: [],
      problems: ['table inet truss_policy is missing'],
    });
    assert.deepEqual(diffPolicies([], undefined).problems, []);
  });

  const cases: [string, string, string[]][] = [
    [
      'a set element',
      LISTING.replace('80, 8000-8100', '80, 8000-8101'),
      ['policy ep_0123456789ab: set ep_0123456789ab_tcp differs'],
    ],
    [
      'a set',
      LISTING.replace(/\tset ep_0123456789ab_udp6 \{[^}]*\}\n/, ''),
      ['policy ep_0123456789ab: set ep_0123456789ab_udp6 is missing'],
    ],
    [
      'a rule',
      LISTING.replace('\t\ticmp type echo-request accept\n', ''),
      ['policy ep_0123456789ab: chain ep_0123456789ab differs'],
    ],
    [
      'a counter',
      LISTING.replace(/\tcounter ep_0123456789ab_denied \{[^}]*\}\n/, ''),
      ['policy ep_0123456789ab: counter is missing'],
    ],
    [
      'a re-pointed address',
      LISTING.replace('198.18.40.3 : jump ep_0123456789ab', '198.18.40.3 : jump ep_ba9876543210'),
      [
        'policy ep_0123456789ab: 198.18.40.3 jumps to ep_ba9876543210',
        'policy ep_ba9876543210: 198.18.40.3 still jumps to it',
      ],
    ],
    [
      'a missing v6 address',
      LISTING.replace('elements = { fd00:40::3 : jump ep_0123456789ab }', ''),
      ['policy ep_0123456789ab: fd00:40::3 is not in map policy6'],
    ],
  ];
  for (const [what, listing, problems] of cases) {
    it(`notices ${what} changed behind its back`, () => {
      const r = diffPolicies([B, C], listing);
      assert.deepEqual(r.problems, problems);
      assert.ok(r.drifted.length > 0);
      assert.deepEqual(r.extra, []);
    });
  }

  it('a broken base chain drifts every desired policy', () => {
    const r = diffPolicies([B, C], LISTING.replace(/(chain output \{\n[^\n]*\n)[^\n]*\n/, '$1'));
    assert.deepEqual(r.problems, ['table inet truss_policy: chain output differs']);
    assert.deepEqual(r.drifted, [B.name, C.name]);
  });

  it('names installed policies that are not desired, by any of their objects', () => {
    const r = diffPolicies([B], LISTING);
    assert.deepEqual(r.extra, [C.name]);
    assert.deepEqual(r.drifted, []);
    assert.deepEqual(r.problems, ['policy ep_ba9876543210: installed but not desired']);
    const orphanSet = `${LISTING.slice(0, -2)}\n\tset ep_ffffffffffff_tcp {\n\t\ttype inet_service\n\t\tflags interval\n\t}\n}\n`;
    assert.deepEqual(diffPolicies([B, C], orphanSet).extra, ['ep_ffffffffffff']);
  });

  it('a set that should not exist any more drifts its policy', () => {
    const r = diffPolicies([{ ...B, rules: B.rules.filter((x) => x.proto !== 'udp') }, C], LISTING);
    assert.deepEqual(r.problems, [
      'policy ep_0123456789ab: chain ep_0123456789ab differs',
      'policy ep_0123456789ab: set ep_0123456789ab_udp6 should not exist',
    ]);
    assert.deepEqual(r.drifted, [B.name]);
  });
});
