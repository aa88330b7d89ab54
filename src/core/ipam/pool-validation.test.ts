import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatPrefix } from '../ip.ts';
import { planPoolRequest } from './pool-validation.ts';

const plan = (pool: string, subPool = '', v6 = false) => planPoolRequest({ pool, subPool, v6 });
const refuses = (pool: string, re: RegExp, subPool = '', v6 = false): void => {
  assert.throws(
    () => plan(pool, subPool, v6),
    (e: Error & { code?: string }) => {
      assert.match(e.message, re);
      assert.match(e.code ?? '', /^TRUSS_ERR_/);
      return true;
    },
  );
};

describe('planPoolRequest', () => {
  it('accepts network addresses and reports dynamic requests by family', () => {
    const p = plan('198.18.1.0/24');
    assert.equal(p.kind, 'explicit');
    assert.equal(p.kind === 'explicit' && formatPrefix(p.pool), '198.18.1.0/24');
    assert.deepEqual(plan(''), { kind: 'dynamic', family: 4 });
    assert.deepEqual(plan('', '', true), { kind: 'dynamic', family: 6 });
    const v6 = plan('fd00:1::/64', 'fd00:1::8000:0:0:0/65', true);
    assert.equal(v6.kind === 'explicit' && v6.subPool && formatPrefix(v6.subPool), 'fd00:1:0:0:8000::/65');
  });

  it('refuses host bits and says which network address to use', () => {
    refuses('198.18.1.1/24', /198\.18\.1\.1\/24 has host bits set.*use 198\.18\.1\.0\/24/);
    refuses('198.18.1.0/24', /not a network address; use 198\.18\.1\.128\/25/, '198.18.1.129/25');
  });

  it('refuses garbage, special-purpose ranges and too-small pools', () => {
    refuses('198.18.1.0', /not a CIDR/);
    refuses('198.18.1.0/33', /not a CIDR/);
    refuses('010.0.0.0/8', /not a CIDR/);
    refuses('224.1.0.0/16', /multicast range 224\.0\.0\.0\/4/);
    refuses('127.0.0.0/16', /loopback/);
    refuses('169.254.0.0/16', /link-local/);
    refuses('0.0.0.0/0', /covers every IPv4 address/);
    refuses('0.0.0.0/8', /unspecified/);
    refuses('0.0.0.0/1', /unspecified/);
    refuses('198.18.1.0/31', /too small.*30 or less/);
    refuses('fe80::/64', /link-local/, '', true);
    refuses('ff02::/64', /multicast/, '', true);
    refuses('::/64', /unspecified/, '', true);
    refuses('fd00::/127', /too small.*126 or less/, '', true);
    assert.equal(plan('198.18.1.0/30').kind, 'explicit');
    assert.equal(plan('fd00::/126', '', true).kind, 'explicit');
  });

  it('checks the family against V6', () => {
    refuses('fd00::/64', /is IPv6 but the request is for IPv4/);
    refuses('198.18.0.0/24', /is IPv4 but the request is for IPv6/, '', true);
  });

  it('checks the sub-pool', () => {
    refuses('', /needs an explicit Pool/, '198.18.1.0/25');
    refuses('198.18.1.0/24', /not inside pool/, '198.18.2.0/25');
    refuses('198.18.1.0/24', /not inside pool/, '198.18.0.0/16');
    refuses('198.18.1.0/24', /no usable host address/, '198.18.1.0/32');
    refuses('198.18.1.0/24', /no usable host address/, '198.18.1.255/32');
    assert.equal(plan('198.18.1.0/24', '198.18.1.7/32').kind, 'explicit');
  });

  it('never throws anything but a TrussError (property)', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.boolean(), (pool, sub, v6) => {
        try {
          planPoolRequest({ pool, subPool: sub, v6 });
        } catch (e) {
          assert.match((e as { code?: string }).code ?? '', /^TRUSS_ERR_/);
        }
      }),
    );
  });
});
