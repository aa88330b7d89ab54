import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diffRaGuard, renderRaGuard, renderRaGuardTransaction } from './ra-guard.ts';

const GOLDEN = `table bridge truss {
	comment "truss: containers may not send IPv6 router advertisements or redirects; replaced whole by truss"
	chain prerouting {
		type filter hook prerouting priority filter; policy accept;
		iifname "trv*" icmpv6 type { nd-router-advert, nd-redirect } drop comment "truss: RA guard"
	}
}
`;

describe('renderRaGuard', () => {
  it('drops RAs and redirects entering through any truss host veth (golden)', () => {
    assert.equal(renderRaGuard(), GOLDEN);
  });

  it('wraps the table in a create-delete-create transaction', () => {
    assert.match(renderRaGuardTransaction('X\n'), /^table bridge truss \{\}\ndelete table bridge truss\nX\n$/);
  });
});

describe('diffRaGuard', () => {
  it('equal modulo handles and blank lines; reports a missing table and a missing rule', () => {
    const listed = `${renderRaGuard()
      .replace('comment "truss: RA guard"', 'comment "truss: RA guard" # handle 4')
      .replace('\tchain prerouting', '\n\tchain prerouting')}`;
    assert.deepEqual(diffRaGuard(renderRaGuard(), listed), []);
    assert.match(diffRaGuard(renderRaGuard(), undefined)[0] ?? '', /bridge truss is missing/);
    const flushed = renderRaGuard().replace(/\t\tiifname.*\n/, '');
    assert.match(diffRaGuard(renderRaGuard(), flushed)[0] ?? '', /differs .* line 5/);
  });
});
