import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FirewallNetwork, FirewallObject } from '../../core/desired.ts';
import { renderNftRuleset, renderNftTransaction } from './nft.ts';
import { diffNft, normaliseNft } from './nft-read.ts';

const A = `${'a'.repeat(12)}${'0'.repeat(52)}`;
const B = `${'b'.repeat(12)}${'1'.repeat(52)}`;
const netA: FirewallNetwork = {
  networkId: A,
  bridge: 'trbaaaaaaaaaaaa',
  subnets4: ['198.18.1.0/24'],
  subnets6: ['fd00:1::/64'],
  nat: true,
  internal: false,
};
const netB: FirewallNetwork = {
  networkId: B,
  bridge: 'trbbbbbbbbbbbbb',
  subnets4: ['198.18.2.0/24'],
  subnets6: [],
  nat: false,
  internal: true,
};
const two: FirewallObject = { networks: [netA, netB] };

// Golden: one NAT network with v4+v6, one internal network.
const GOLDEN_TWO = `table inet truss {
	comment "truss: Docker network isolation and NAT; replaced whole by truss"
	set bridges {
		type ifname
		elements = { "trbaaaaaaaaaaaa" comment "net aaaaaaaaaaaa", "trbbbbbbbbbbbbb" comment "net bbbbbbbbbbbb" }
	}

	set uplinks {
		type ifname
	}

	map egress {
		type ifname : verdict
		elements = { "trbaaaaaaaaaaaa" : jump net_aaaaaaaaaaaa, "trbbbbbbbbbbbbb" : jump net_bbbbbbbbbbbb }
	}

	set peer_ingress {
		type ifname . ifname
	}

	chain forward {
		type filter hook forward priority filter - 10; policy accept;
		ct state established,related accept comment "truss: replies of allowed flows"
		iifname != @bridges oifname != @bridges accept comment "truss: not truss traffic"
		iifname vmap @egress comment "truss: from a truss network: its own chain"
		iifname . oifname @peer_ingress accept comment "truss: from other hosts of a cluster network"
		ct status dnat accept comment "truss: to a published port (table truss_ports)"
		oifname @bridges drop comment "truss: new flows into a truss network from elsewhere"
	}

	chain net_aaaaaaaaaaaa {
		oifname "trbaaaaaaaaaaaa" accept comment "net aaaaaaaaaaaa: same network"
		oifname "trwg0" drop comment "net aaaaaaaaaaaa: to another network on other hosts"
		oifname "trvx0" drop comment "net aaaaaaaaaaaa: to another network on other hosts"
		ct status dnat accept comment "net aaaaaaaaaaaa: to a published port (table truss_ports)"
		oifname @bridges drop comment "net aaaaaaaaaaaa: to another truss network"
		meta oifkind "bridge" oifname != @uplinks drop comment "net aaaaaaaaaaaa: to a foreign bridge"
		accept comment "net aaaaaaaaaaaa: outbound"
	}

	chain net_bbbbbbbbbbbb {
		oifname "trbbbbbbbbbbbbb" accept comment "net bbbbbbbbbbbb: same network"
		oifname "trwg0" drop comment "net bbbbbbbbbbbb: to another network on other hosts"
		oifname "trvx0" drop comment "net bbbbbbbbbbbb: to another network on other hosts"
		drop comment "net bbbbbbbbbbbb: internal network"
	}

	chain postrouting {
		type nat hook postrouting priority srcnat + 10; policy accept;
		ip saddr 198.18.1.0/24 oifname != "trbaaaaaaaaaaaa" masquerade comment "net aaaaaaaaaaaa"
		ip6 saddr fd00:1::/64 oifname != "trbaaaaaaaaaaaa" masquerade comment "net aaaaaaaaaaaa"
	}
}
`;

describe('renderNftRuleset', () => {
  it('renders two networks (golden)', () => assert.equal(renderNftRuleset(two), GOLDEN_TWO));

  it('is deterministic and pure', () => assert.equal(renderNftRuleset(two), renderNftRuleset(structuredClone(two))));

  it('renders an empty firewall: sets without elements, chains without per-network rules', () => {
    const text = renderNftRuleset({ networks: [] });
    assert.doesNotMatch(text, /elements/);
    assert.doesNotMatch(text, /chain net_/);
    assert.match(text, /chain forward \{/);
    assert.match(
      text,
      /chain postrouting \{\n\t\ttype nat hook postrouting priority srcnat \+ 10; policy accept;\n\t\}/,
    );
  });

  it('exempts uplink bridges from the foreign-bridge drop', () => {
    const text = renderNftRuleset(two, { uplinks: ['br0', 'br0', 'lan'] });
    assert.match(text, /set uplinks \{\n\t\ttype ifname\n\t\telements = \{ "br0", "lan" \}\n\t\}/);
  });

  it('masquerades every v4 and v6 subnet of a NAT network (network address, canonical), none of a non-NAT one', () => {
    const text = renderNftRuleset({
      networks: [
        { ...netA, subnets4: ['198.18.4.0/24', '198.18.5.0/24'] },
        { ...netB, internal: false },
      ],
    });
    const nat = text.split('\n').filter((l) => l.includes('masquerade'));
    assert.deepEqual(nat, [
      '\t\tip saddr 198.18.4.0/24 oifname != "trbaaaaaaaaaaaa" masquerade comment "net aaaaaaaaaaaa"',
      '\t\tip saddr 198.18.5.0/24 oifname != "trbaaaaaaaaaaaa" masquerade comment "net aaaaaaaaaaaa"',
      '\t\tip6 saddr fd00:1::/64 oifname != "trbaaaaaaaaaaaa" masquerade comment "net aaaaaaaaaaaa"',
    ]);
  });

  it('an IPv6-only network (Docker 28, no IPv4 pool) gets only the v6 masquerade, no ip rule', () => {
    const v6only = { ...netA, subnets4: [], subnets6: ['fd00:c4:0:0::/64'] };
    const text = renderNftRuleset({ networks: [v6only] });
    assert.doesNotMatch(text, /\bip saddr/);
    assert.deepEqual(
      text.split('\n').filter((l) => l.includes('masquerade')),
      ['\t\tip6 saddr fd00:c4::/64 oifname != "trbaaaaaaaaaaaa" masquerade comment "net aaaaaaaaaaaa"'],
    );
  });

  it('a v6 subnet of a non-NAT or internal network is not masqueraded', () => {
    for (const n of [
      { ...netA, nat: false },
      { ...netA, internal: true },
    ]) {
      assert.doesNotMatch(renderNftRuleset({ networks: [n] }), /masquerade/);
    }
  });

  it('refuses names and ids that could break out of the ruleset text', () => {
    assert.throws(() => renderNftRuleset({ networks: [{ ...netA, bridge: 'x" accept #' }] }), {
      code: 'TRUSS_ERR_OPTION_INVALID',
    });
    assert.throws(() => renderNftRuleset({ networks: [{ ...netA, networkId: 'n1' }] }), {
      code: 'TRUSS_ERR_ID_INVALID',
    });
    assert.throws(() => renderNftRuleset({ networks: [{ ...netA, subnets4: ['198.18.1.0/24 accept'] }] }), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
    });
  });

  it('lets other hosts of a cluster network in through its peer link, and does not NAT to them', () => {
    const text = renderNftRuleset({ networks: [{ ...netA, peerLinks: ['trwg0'] }] });
    assert.match(
      text,
      /set peer_ingress \{\n\t\ttype ifname \. ifname\n\t\telements = \{ "trwg0" \. "trbaaaaaaaaaaaa" \}/,
    );
    assert.match(text, /oifname "trwg0" ip daddr [0-9./]+ accept comment "net aaaaaaaaaaaa: to other hosts"/);
    assert.match(text, /oifname "trvx0" drop comment "net aaaaaaaaaaaa: to another network on other hosts"/);
    assert.match(text, /oifname != "trbaaaaaaaaaaaa" oifname != "trwg0" masquerade/);
  });

  it('guards VXLAN: only current peers may send truss VNI to the VXLAN port (golden part)', () => {
    const f: FirewallObject = {
      networks: [{ ...netA, peerLinks: ['trvx0'] }],
      vxlan: { port: 4789, vni: 0x747275, peers: ['198.18.255.3', '198.18.255.2', 'fd00:0::2'] },
    };
    const text = renderNftRuleset(f);
    assert.ok(
      text.includes(`	set vxlan_peers4 {
		type ipv4_addr
		elements = { 198.18.255.3, 198.18.255.2 }
	}

	set vxlan_peers6 {
		type ipv6_addr
		elements = { fd00::2 }
	}

	chain forward {`),
      text,
    );
    assert.ok(
      text.endsWith(`	chain input {
		type filter hook input priority filter - 10; policy accept;
		udp dport 4789 @th,96,24 0x747275 ip saddr != @vxlan_peers4 drop comment "truss: VXLAN only from cluster peers"
		udp dport 4789 @th,96,24 0x747275 ip6 saddr != @vxlan_peers6 drop comment "truss: VXLAN only from cluster peers"
	}
}
`),
      text,
    );
    assert.match(text, /oifname != "trbaaaaaaaaaaaa" oifname != "trvx0" masquerade/);
  });

  it('has no input chain and no VXLAN sets without a VXLAN device', () => {
    const text = renderNftRuleset({ networks: [{ ...netA, peerLinks: ['trwg0'] }] });
    assert.doesNotMatch(text, /vxlan_peers|chain input/);
  });

  it('refuses VXLAN guard values that could break out of the ruleset text', () => {
    const g = { port: 4789, vni: 0x747275, peers: ['198.18.255.2'] };
    for (const vxlan of [
      { ...g, peers: ['198.18.255.2 } drop'] },
      { ...g, peers: ['x'] },
      { ...g, vni: 0x1000000 },
      { ...g, port: 0 },
    ]) {
      assert.throws(() => renderNftRuleset({ networks: [netA], vxlan }), JSON.stringify(vxlan));
    }
  });

  it('wraps the table in a create-delete-create transaction', () => {
    assert.ok(renderNftTransaction('X').startsWith('table inet truss {}\ndelete table inet truss\nX'));
  });
});

describe('normaliseNft / diffNft', () => {
  // What nft 1.0.6 prints back: wrapped element lists in kernel order, handles with -a, counters.
  const listed = GOLDEN_TWO.replace(
    '{ "trbaaaaaaaaaaaa" comment "net aaaaaaaaaaaa", "trbbbbbbbbbbbbb" comment "net bbbbbbbbbbbb" }',
    '{ "trbbbbbbbbbbbbb" comment "net bbbbbbbbbbbb",\n\t\t\t     "trbaaaaaaaaaaaa" comment "net aaaaaaaaaaaa" }',
  )
    .replace('table inet truss {', 'table inet truss { # handle 12')
    .replace(
      'drop comment "net bbbbbbbbbbbb: internal network"',
      'counter packets 3 bytes 252 drop comment "net bbbbbbbbbbbb: internal network" # handle 9',
    );

  it('ignores wrapping, element order, handles and counters', () => {
    assert.deepEqual(normaliseNft(listed), normaliseNft(GOLDEN_TWO));
    assert.deepEqual(diffNft(GOLDEN_TWO, listed), []);
  });

  it('joins a set wrapped over thousands of lines into one line (5,000 endpoints of guard elements)', () => {
    const els = Array.from(
      { length: 5000 },
      (_, i) => `"trv${String(i).padStart(12, '0')}" . 198.19.${i >> 8}.${i & 255}`,
    );
    const wrapped = [
      'set g {',
      `elements = { ${els[0]},`,
      ...els.slice(1, -1).map((e) => `\t\t     ${e},`),
      `${els.at(-1)} }`,
      '}',
    ];
    const oneLine = ['set g {', `elements = { ${[...els].reverse().join(', ')} }`, '}'];
    assert.deepEqual(normaliseNft(wrapped.join('\n')), normaliseNft(oneLine.join('\n')));
    assert.equal(normaliseNft(wrapped.join('\n')).length, 3);
  });

  it('reports the first differing line', () => {
    const tampered = GOLDEN_TWO.replace(
      '\t\toifname @bridges drop comment "truss: new flows into a truss network from elsewhere"\n',
      '',
    );
    const problems = diffNft(GOLDEN_TWO, tampered);
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? '', /differs .* at line \d+: expected "oifname @bridges drop/);
  });

  it('notices a missing set element', () => {
    const fewer = renderNftRuleset({ networks: [netA] });
    assert.equal(diffNft(GOLDEN_TWO, fewer).length, 1);
  });
});
