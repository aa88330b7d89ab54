import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FirewallNetwork } from '../../core/desired.ts';
import { diffRaGuard, renderRaGuard, renderRaGuardTransaction } from './ra-guard.ts';

const net = (bridge: string, over: Partial<FirewallNetwork> = {}): FirewallNetwork => ({
  networkId: 'a'.repeat(64),
  bridge,
  subnets4: ['198.18.1.0/24'],
  subnets6: [],
  nat: true,
  internal: false,
  ...over,
});

const GOLDEN = `table bridge truss {
	comment "truss: containers may not send IPv6 router advertisements or redirects; replaced whole by truss"
	set bridges {
		type ifname
		elements = { "trbaaaaaaaaaaaa", "trbbbbbbbbbbbbb" }
	}

	chain prerouting {
		type filter hook prerouting priority filter; policy accept;
		meta ibrname @bridges icmpv6 type { nd-router-advert, nd-redirect } drop comment "truss: RA guard"
	}
}
`;

describe('renderRaGuard', () => {
  it('guards every truss bridge, v4-only and internal ones too (golden, sorted, unique)', () => {
    const text = renderRaGuard({
      networks: [net('trbbbbbbbbbbbbb', { internal: true }), net('trbaaaaaaaaaaaa', { subnets6: ['fd00:1::/64'] })],
    });
    assert.equal(text, GOLDEN);
  });

  it('renders an empty set without networks', () => {
    assert.doesNotMatch(renderRaGuard({ networks: [] }), /elements/);
  });

  it('refuses a bridge name that could break out of the ruleset text', () => {
    assert.throws(() => renderRaGuard({ networks: [net('x" accept #')] }), { code: 'TRUSS_ERR_OPTION_INVALID' });
  });

  it('wraps the table in a create-delete-create transaction', () => {
    assert.match(renderRaGuardTransaction('X\n'), /^table bridge truss \{\}\ndelete table bridge truss\nX\n$/);
  });
});

describe('diffRaGuard', () => {
  it('equal modulo handles and element order; reports a missing table and a missing bridge', () => {
    const two = { networks: [net('trbaaaaaaaaaaaa'), net('trbbbbbbbbbbbbb')] };
    const listed = renderRaGuard(two)
      .replace('"trbaaaaaaaaaaaa", "trbbbbbbbbbbbbb"', '"trbbbbbbbbbbbbb", "trbaaaaaaaaaaaa"')
      .replace('comment "truss: RA guard"', 'comment "truss: RA guard" # handle 4');
    assert.deepEqual(diffRaGuard(renderRaGuard(two), listed), []);
    assert.match(diffRaGuard(renderRaGuard(two), undefined)[0] ?? '', /bridge truss is missing/);
    const one = renderRaGuard({ networks: [net('trbaaaaaaaaaaaa')] });
    assert.match(diffRaGuard(renderRaGuard(two), one)[0] ?? '', /differs .* line 5/);
  });
});
