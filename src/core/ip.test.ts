import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  formatIp,
  formatPrefix,
  hostRange,
  isNetworkAddress,
  networkOf,
  parseIp,
  parsePrefix,
  prefixContains,
  prefixesOverlap,
} from './ip.ts';

describe('parseIp', () => {
  it('accepts canonical IPv4 and any valid IPv6 text', () => {
    assert.equal(formatIp(parseIp('198.18.0.1')!), '198.18.0.1');
    assert.equal(formatIp(parseIp('FD00:0:0::1')!), 'fd00::1');
    assert.equal(formatIp(parseIp('::')!), '::');
    assert.equal(formatIp(parseIp('1:0:0:1:0:0:0:1')!), '1:0:0:1::1');
  });
  it('refuses leading zeros, zone ids, mapped forms and junk', () => {
    for (const bad of [
      '010.0.0.1',
      '198.18.0.01',
      '1.2.3',
      '1.2.3.4.5',
      '256.0.0.1',
      'fe80::1%eth0',
      '::ffff:1.2.3.4',
      '1:2:3:4:5:6:7:8:9',
      '1::2::3',
      ' 1.2.3.4',
      '1.2.3.4\n',
      '１.2.3.4',
      '',
      'a.b.c.d',
      '12345::',
    ]) {
      assert.equal(parseIp(bad), undefined, bad);
    }
  });
  it('round-trips every IPv4 and IPv6 value', () => {
    fc.assert(fc.property(fc.ipV4(), (s) => formatIp(parseIp(s)!) === s));
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (v) => {
        const text = formatIp({ family: 6, value: v });
        return parseIp(text)?.value === v && formatIp(parseIp(text)!) === text;
      }),
    );
  });
});

describe('prefixes', () => {
  it('parses, normalises and compares', () => {
    const p = parsePrefix('198.18.5.7/16')!;
    assert.equal(isNetworkAddress(p), false);
    assert.equal(formatPrefix(networkOf(p)), '198.18.0.0/16');
    assert.ok(prefixContains(p, parseIp('198.18.200.1')!));
    assert.ok(!prefixContains(p, parseIp('198.19.0.1')!));
    assert.ok(prefixesOverlap(parsePrefix('198.18.0.0/15')!, parsePrefix('198.19.4.0/24')!));
    assert.ok(!prefixesOverlap(parsePrefix('198.18.0.0/24')!, parsePrefix('198.18.1.0/24')!));
    assert.ok(!prefixesOverlap(parsePrefix('198.18.0.0/24')!, parsePrefix('fd00::/8')!));
  });
  it('refuses bad prefixes', () => {
    for (const bad of ['198.18.0.0/33', '198.18.0.0/08', '198.18.0.0', '198.18.0.0/', 'fd00::/129', '1.2.3.4/24/1']) {
      assert.equal(parsePrefix(bad), undefined, bad);
    }
  });
  it('host ranges skip network and broadcast for IPv4', () => {
    const r = hostRange(parsePrefix('198.18.0.0/24')!);
    assert.equal(formatIp({ family: 4, value: r.first }), '198.18.0.1');
    assert.equal(formatIp({ family: 4, value: r.last }), '198.18.0.254');
  });
});
