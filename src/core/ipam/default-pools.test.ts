import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileDefaultPools, DEFAULT_POOLS, parseDefaultPools } from './default-pools.ts';

describe('parseDefaultPools', () => {
  it('parses CIDR:LEN lists, IPv6 included', () => {
    assert.deepEqual(parseDefaultPools('198.18.0.0/15:24,fd00:1::/48:64'), [
      { base: '198.18.0.0/15', size: 24 },
      { base: 'fd00:1::/48', size: 64 },
    ]);
    assert.deepEqual(parseDefaultPools(' 198.18.0.0/15:16 , '), [{ base: '198.18.0.0/15', size: 16 }]);
  });

  it('refuses bad entries with the flag and the entry named', () => {
    const bad: [string, RegExp][] = [
      ['', /--default-pools "" is empty/],
      ['198.18.0.0/15', /entry "198\.18\.0\.0\/15" is not CIDR:LEN/],
      ['fd00::/48', /entry "fd00::\/48" is not CIDR:LEN/],
      ['198.18.0.1/15:24', /198\.18\.0\.1\/15:24: base .* has host bits set/],
      ['198.18.0.0/15:14', /size must be a prefix length from 15 .* to 30, got 14/],
      ['198.18.0.0/15:31', /to 30, got 31/],
      ['fd00::/48:127', /to 126, got 127/],
      ['224.0.0.0/4:24', /multicast/],
    ];
    for (const [text, re] of bad) {
      assert.throws(
        () => parseDefaultPools(text),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, 'TRUSS_ERR_OPTION_INVALID');
          assert.match(e.message, re);
          return true;
        },
      );
    }
  });

  it('compiles the built-in defaults', () => {
    assert.deepEqual(
      compileDefaultPools(DEFAULT_POOLS).map((d) => d.text),
      ['10.201.0.0/16:24', 'fd7a:7275:7373::/48:64'],
    );
  });
});
