import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatListenAddress, parseListenAddress } from './listen-address.ts';

describe('parseListenAddress', () => {
  it('takes IPv4 HOST:PORT and bracketed IPv6', () => {
    assert.deepEqual(parseListenAddress('127.0.0.1:9733'), { host: '127.0.0.1', port: 9733 });
    assert.deepEqual(parseListenAddress('0.0.0.0:1'), { host: '0.0.0.0', port: 1 });
    assert.deepEqual(parseListenAddress('[::1]:65535'), { host: '::1', port: 65535 });
    assert.deepEqual(parseListenAddress('[FD00:0::1]:80'), { host: 'fd00::1', port: 80 });
  });
  it('refuses what is not an IP address and a port 1-65535', () => {
    for (const bad of [
      '',
      '9733',
      ':9733',
      'localhost:9733',
      '127.0.0.1',
      '127.0.0.1:',
      '127.0.0.1:0',
      '127.0.0.1:65536',
      '127.0.0.1:09733',
      '256.0.0.1:80',
      '::1:80',
      '[127.0.0.1]:80',
      '[::1]',
      ' 127.0.0.1:80',
      'http://127.0.0.1:80',
    ]) {
      assert.equal(parseListenAddress(bad), undefined, bad);
    }
  });
  it('formats back (IPv6 in brackets)', () => {
    assert.equal(formatListenAddress({ host: '::1', port: 80 }), '[::1]:80');
    assert.equal(formatListenAddress({ host: '127.0.0.1', port: 80 }), '127.0.0.1:80');
  });
});
