import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type Prefix, parseIp, parsePrefix } from '../ip.ts';
import {
  type AddressRange,
  allocationRange,
  checkRequestedAddress,
  classifyAddressRequest,
  parseRequestedAddress,
  pickNextFree as pickNextFreeIn,
} from './address-selection.ts';

const p = (s: string): Prefix => parsePrefix(s)!;
const ip = (s: string): bigint => parseIp(s)!.value;

describe('allocationRange', () => {
  it('is the host range, narrowed by the sub-pool', () => {
    assert.deepEqual(allocationRange(p('198.18.1.0/24')), { first: ip('198.18.1.1'), last: ip('198.18.1.254') });
    assert.deepEqual(allocationRange(p('198.18.1.0/24'), p('198.18.1.128/25')), {
      first: ip('198.18.1.128'),
      last: ip('198.18.1.254'),
    });
    assert.deepEqual(allocationRange(p('198.18.1.0/24'), p('198.18.1.0/30')), {
      first: ip('198.18.1.1'),
      last: ip('198.18.1.3'),
    });
    assert.equal(allocationRange(p('198.18.1.0/24'), p('198.18.1.0/32')), undefined);
    assert.deepEqual(allocationRange(p('fd00::/64')), { first: ip('fd00::1'), last: ip('fd00::ffff:ffff:ffff:ffff') });
  });
});

const pickNextFree = (range: AddressRange, taken: ReadonlySet<bigint>, cursor?: bigint) =>
  pickNextFreeIn(range, (v) => taken.has(v), taken.size, cursor);

describe('pickNextFree', () => {
  const r = { first: 10n, last: 14n };
  it('walks on from the cursor and wraps around', () => {
    assert.equal(pickNextFree(r, new Set()), 10n);
    assert.equal(pickNextFree(r, new Set([10n, 11n])), 12n);
    assert.equal(pickNextFree(r, new Set([10n, 11n]), 12n), 13n);
    assert.equal(pickNextFree(r, new Set([11n]), 14n), 10n);
    assert.equal(pickNextFree(r, new Set([10n, 11n, 12n, 13n]), 14n), 14n, 'the cursor itself comes last');
    assert.equal(pickNextFree(r, new Set([10n, 11n, 12n, 13n, 14n])), undefined);
    assert.equal(pickNextFree(r, new Set([1n, 99n]), 500n), 10n, 'out-of-range cursor and addresses are ignored');
  });

  it('is cheap on a /64', () => {
    const range = allocationRange(p('fd00::/64'))!;
    const used = new Set(Array.from({ length: 1000 }, (_, i) => range.first + BigInt(i)));
    assert.equal(pickNextFree(range, used), range.first + 1000n);
    assert.equal(pickNextFree(range, new Set(), range.last), range.first);
  });

  it('returns a free in-range address, never the cursor while another is free (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.integer({ min: 0, max: 50 })),
        fc.option(fc.integer({ min: 0, max: 50 }), { nil: undefined }),
        (size, used, cur) => {
          const range = { first: 5n, last: 5n + BigInt(size) - 1n };
          const set = new Set(used.map(BigInt));
          const cursor = cur === undefined ? undefined : BigInt(cur);
          const got = pickNextFree(range, set, cursor);
          let free = 0;
          for (let v = range.first; v <= range.last; v++) if (!set.has(v)) free++;
          if (free === 0) return assert.equal(got, undefined);
          assert.ok(got !== undefined && got >= range.first && got <= range.last && !set.has(got));
          if (cursor !== undefined && free > 1) assert.notEqual(got, cursor);
        },
      ),
    );
  });
});

describe('checkRequestedAddress', () => {
  const pool = p('198.18.1.0/24');
  const check = (pfx: Prefix, s: string) => () => checkRequestedAddress(pfx, parseIp(s)!, 'TrussLocal/x');
  it('accepts host addresses anywhere in the pool', () => {
    check(pool, '198.18.1.1')();
    check(pool, '198.18.1.254')();
    check(p('fd00::/64'), 'fd00::ffff:ffff:ffff:ffff')();
  });
  it('refuses addresses outside the pool, naming both', () => {
    assert.throws(check(pool, '198.18.2.1'), {
      code: 'TRUSS_ERR_ADDRESS_OUT_OF_POOL',
      message: 'address 198.18.2.1 is outside pool 198.18.1.0/24 (TrussLocal/x)',
    });
  });
  it('refuses an address of the other family instead of re-reading its number (L4)', () => {
    assert.throws(check(pool, 'fd00::1'), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
      message: 'address fd00::1 is IPv6 but pool 198.18.1.0/24 (TrussLocal/x) is IPv4: request an IPv4 address',
    });
    assert.throws(check(pool, '::c612:107'), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
      message: /is IPv6 but pool 198\.18\.1\.0\/24/,
    });
    assert.throws(check(p('fd00::/64'), '198.18.1.7'), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
      message: /is IPv4 but pool fd00::\/64 .* is IPv6/,
    });
  });
  it('refuses network and broadcast addresses', () => {
    assert.throws(check(pool, '198.18.1.0'), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
      message: /198\.18\.1\.0 is the network address/,
    });
    assert.throws(check(pool, '198.18.1.255'), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
      message: /198\.18\.1\.255 is the broadcast address/,
    });
    assert.throws(check(p('fd00::/64'), 'fd00::'), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
      message: /subnet-router anycast/,
    });
  });
});

describe('parseRequestedAddress and classifyAddressRequest', () => {
  it('parses bare IPs and tolerates CIDR', () => {
    assert.equal(parseRequestedAddress('198.18.1.5').value, ip('198.18.1.5'));
    assert.equal(parseRequestedAddress('198.18.1.5/24').value, ip('198.18.1.5'));
    assert.throws(() => parseRequestedAddress('198.18.1'), { code: 'TRUSS_ERR_ADDRESS_INVALID' });
  });
  it('classifies gateway, endpoint and aux requests', () => {
    assert.deepEqual(classifyAddressRequest({ RequestAddressType: 'com.docker.network.gateway' }, ''), {
      kind: 'gateway',
    });
    assert.deepEqual(classifyAddressRequest({ 'com.docker.network.endpoint.name': 'web' }, ''), {
      kind: 'endpoint',
      owner: 'web',
    });
    assert.deepEqual(classifyAddressRequest({}, '198.18.1.9'), { kind: 'aux' });
    assert.deepEqual(classifyAddressRequest({}, ''), { kind: 'endpoint' });
  });
});
