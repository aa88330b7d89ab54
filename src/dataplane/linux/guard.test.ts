import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GuardObject } from '../../core/guard.ts';
import {
  diffGuards,
  GUARD_COUNTERS,
  GUARD_HOOK,
  GUARD_RULES,
  guardElements,
  parseElement,
  parseGuardListing,
  renderGuard,
  renderGuardElements,
  renderGuardRemoval,
} from './guard.ts';

const A: GuardObject = {
  name: 'trv0123456789ab',
  endpointId: 'e'.repeat(64),
  networkId: 'n'.repeat(64),
  mac: '02:5e:c6:12:00:02',
  ipv4: ['198.18.0.2'],
  ipv6: ['fd00::2', 'fe80::5e:c6ff:fe12:2'],
};
const B: GuardObject = { ...A, name: 'trv0123456789ac', mac: '02:5e:c6:12:00:03', ipv4: ['198.18.0.3'], ipv6: [] };

/** `nft list table bridge truss_guard` as nft 1.0.6 prints it (wrapped elements, counters, kernel order). */
function listing(opts: { extraAddr4?: string; chain?: readonly string[]; counters?: readonly string[] } = {}): string {
  const rules = (opts.chain ?? GUARD_RULES).map((r) => `\t\t${r}`);
  const counters = (opts.counters ?? GUARD_COUNTERS).map((c) => `\tcounter ${c} {\n\t\tpackets 7 bytes 420\n\t}\n`);
  return `table bridge truss_guard {
	comment "truss: anti-spoofing"
${counters.join('\n')}
	set ports {
		type ifname
		elements = { "trv0123456789ac", "trv0123456789ab" }
	}

	set macs {
		type ifname . ether_addr
		elements = { "trv0123456789ab" . 02:5e:c6:12:00:02,
			     "trv0123456789ac" . 02:5e:c6:12:00:03 }
	}

	set addr4 {
		type ifname . ipv4_addr
		elements = { "trv0123456789ab" . 198.18.0.2, "trv0123456789ac" . 198.18.0.3${opts.extraAddr4 ? `, ${opts.extraAddr4}` : ''} }
	}

	set addr6 {
		type ifname . ipv6_addr
		elements = { "trv0123456789ab" . fd00::2,
			     "trv0123456789ab" . fe80::5e:c6ff:fe12:2 }
	}

	set nd6 {
		typeof iifname . @th,64,128
		elements = { "trv0123456789ab" . 0xfe80000000000000005ec6fffe120002,
			     "trv0123456789ab" . 0xfd000000000000000000000000000002 }
	}

	chain prerouting {
		${GUARD_HOOK}
${rules.join('\n')}
	}
}
`;
}

describe('guardElements', () => {
  it('keys every element on the port; IPv6 twice (address and 128-bit ND target)', () => {
    assert.deepEqual(guardElements(A), {
      ports: ['"trv0123456789ab"'],
      macs: ['"trv0123456789ab" . 02:5e:c6:12:00:02'],
      addr4: ['"trv0123456789ab" . 198.18.0.2'],
      addr6: ['"trv0123456789ab" . fd00::2', '"trv0123456789ab" . fe80::5e:c6ff:fe12:2'],
      nd6: [
        '"trv0123456789ab" . 0xfd000000000000000000000000000002',
        '"trv0123456789ab" . 0xfe80000000000000005ec6fffe120002',
      ],
    });
  });

  it('validates every value before it reaches nft', () => {
    assert.throws(() => guardElements({ ...A, name: 'trv"; flush ruleset' }), /invalid interface name/);
    assert.throws(() => guardElements({ ...A, mac: '02:5e:c6:12:00' }), /invalid MAC/);
    assert.throws(() => guardElements({ ...A, ipv4: ['fd00::2'] }), /not an IPv4 address/);
    assert.throws(() => guardElements({ ...A, ipv6: ['198.18.0.2'] }), /not an IPv6 address/);
    assert.throws(() => guardElements({ ...A, ipv4: ['198.18.0.2 }; flush ruleset; #'] }), /not an IPv4/);
  });
});

describe('renderGuard', () => {
  it('is one transaction: table/sets/chain if missing, the chain rewritten, then only this port’s elements', () => {
    const t = renderGuard(A);
    assert.match(t, /^table bridge truss_guard \{\n/);
    assert.match(t, /\tchain prerouting \{\n\t\ttype filter hook prerouting priority filter; policy accept;\n\t\}/);
    assert.match(t, /flush chain bridge truss_guard prerouting\n/);
    for (const c of GUARD_COUNTERS) assert.ok(t.includes(`\tcounter ${c} {\n\t}\n`), `named counter ${c}`);
    for (const r of GUARD_RULES) assert.ok(t.includes(`\t\t${r}\n`), r);
    const adds = t.split('\n').filter((l) => l.startsWith('add '));
    assert.deepEqual(adds, [
      'add set bridge truss_guard ports { type ifname; elements = { "trv0123456789ab" } }',
      'add set bridge truss_guard macs { type ifname . ether_addr; elements = { "trv0123456789ab" . 02:5e:c6:12:00:02 } }',
      'add set bridge truss_guard addr4 { type ifname . ipv4_addr; elements = { "trv0123456789ab" . 198.18.0.2 } }',
      'add set bridge truss_guard addr6 { type ifname . ipv6_addr; elements = { "trv0123456789ab" . fd00::2, "trv0123456789ab" . fe80::5e:c6ff:fe12:2 } }',
      'add set bridge truss_guard nd6 { typeof iifname . @th,64,128; elements = { "trv0123456789ab" . 0xfd000000000000000000000000000002, "trv0123456789ab" . 0xfe80000000000000005ec6fffe120002 } }',
    ]);
    assert.ok(!t.includes('delete'), 'an attach deletes nothing');
  });

  it('an attach alone sends only its elements (the chain is made or repaired by renderGuard)', () => {
    const t = renderGuardElements(A).trim().split('\n');
    assert.equal(t.length, 5);
    assert.ok(t.every((l) => l.startsWith('add set bridge truss_guard ')));
    assert.deepEqual(t, renderGuard(A).trim().split('\n').slice(-5));
  });

  it('with unwanted elements: deletes them in the same transaction, before the adds (the port stays guarded)', () => {
    const t = renderGuard(B, { ports: [], macs: [], addr4: ['"trv0123456789ac" . 198.18.0.9'], addr6: [], nd6: [] });
    const lines = t.split('\n');
    const del = lines.indexOf('delete element bridge truss_guard addr4 { "trv0123456789ac" . 198.18.0.9 }');
    assert.ok(del > 0);
    assert.ok(lines[del - 1]?.startsWith('add set bridge truss_guard addr4 {'), 'add-then-delete: absent is no error');
    assert.ok(del < lines.findIndex((l) => l.startsWith('add set bridge truss_guard ports')));
  });

  it('removal: first line fails only without the table; every element add-then-deleted', () => {
    const t = renderGuardRemoval(guardElements(B)).trim().split('\n');
    assert.equal(t[0], 'add set bridge truss_guard ports { type ifname; }');
    assert.ok(t.includes('delete element bridge truss_guard ports { "trv0123456789ac" }'));
    assert.ok(t.includes('delete element bridge truss_guard macs { "trv0123456789ac" . 02:5e:c6:12:00:03 }'));
    assert.ok(!t.some((l) => l.includes('addr6') || l.includes('nd6')), 'no lines for empty sets');
  });

  it('removal refuses element texts it cannot re-validate (they may come from a listing)', () => {
    const bad = { ports: ['"trv0123456789ac" } ; flush ruleset'], macs: [], addr4: [], addr6: [], nd6: [] };
    assert.throws(() => renderGuardRemoval(bad), /cannot handle element/);
  });
});

describe('parseElement', () => {
  it('canonicalises values as rendered and rejects what is not an element of that set', () => {
    assert.deepEqual(parseElement('nd6', '"trv0123456789ab" . 0x2'), {
      link: 'trv0123456789ab',
      text: '"trv0123456789ab" . 0x00000000000000000000000000000002',
    });
    assert.deepEqual(parseElement('addr6', '"p" . FD00:0:0::2')?.text, '"p" . fd00::2');
    assert.equal(parseElement('ports', '"p" . 1.2.3.4'), undefined);
    assert.equal(parseElement('ports', '"a b"'), undefined);
    assert.equal(parseElement('macs', '"p"'), undefined);
    assert.equal(parseElement('addr4', '"p" . 300.1.1.1'), undefined);
  });
});

describe('parseGuardListing / diffGuards', () => {
  it('a listing of exactly what was rendered has no drift (counters, wrapping and element order aside)', () => {
    const l = parseGuardListing(listing());
    assert.deepEqual(l.byLink.get('trv0123456789ab'), guardElements(A));
    assert.deepEqual(diffGuards([A, B], listing()), { drifted: [], exact: [], extra: [], problems: [] });
  });

  it('no table: every desired guard drifted; none desired: nothing to say', () => {
    assert.deepEqual(diffGuards([A], undefined), {
      drifted: [A.name],
      exact: [],
      extra: [],
      problems: ['table bridge truss_guard is missing'],
    });
    assert.deepEqual(diffGuards([], undefined), { drifted: [], exact: [], extra: [], problems: [] });
  });

  it('an element deleted by hand, a foreign element on a port, a port not desired', () => {
    const noA = listing().replace('"trv0123456789ab" . 198.18.0.2, ', '');
    assert.deepEqual(diffGuards([A, B], noA).drifted, [A.name]);
    assert.deepEqual(diffGuards([A, B], noA).exact, [], 'missing elements are re-added, nothing to read');
    assert.match(diffGuards([A, B], noA).problems.join('\n'), /guard trv0123456789ab: 1 element\(s\) missing/);
    const foreign = diffGuards([A, B], listing({ extraAddr4: '"trv0123456789ac" . 198.18.0.2' }));
    assert.deepEqual(foreign.drifted, [B.name]);
    assert.deepEqual(foreign.exact, [B.name], 'an element not its own must be deleted: exact');
    assert.match(foreign.problems.join('\n'), /not its own/);
    assert.deepEqual(diffGuards([A], listing()).extra, [B.name]);
  });

  it('a missing counter is a problem of the table (the first guard is repaired exactly, which re-adds it)', () => {
    const c = diffGuards([A], listing({ counters: GUARD_COUNTERS.filter((x) => x !== 'drop_nd') }));
    assert.deepEqual([c.drifted, c.exact], [[A.name], [A.name]]);
    assert.match(c.problems.join('\n'), /counter drop_nd is missing/);
  });

  it('a changed chain is rewritten once, with the first guard (not 1,000 times, each reading the table)', () => {
    const c = diffGuards([A, B], listing({ chain: GUARD_RULES.slice(1) }));
    assert.deepEqual([c.drifted, c.exact], [[A.name], [A.name]]);
    assert.match(c.problems[0] ?? '', /chain prerouting differs/);
  });
});
