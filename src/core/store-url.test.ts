import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopbackEndpoint, onThisHost, parseStoreUrl, plaintextProblem } from './store-url.ts';

describe('parseStoreUrl', () => {
  it('takes embedded (the default) and etcd:// endpoint lists', () => {
    assert.deepEqual(parseStoreUrl(undefined), { kind: 'embedded' });
    assert.deepEqual(parseStoreUrl('embedded'), { kind: 'embedded' });
    assert.deepEqual(parseStoreUrl('etcd://127.0.0.1:2379'), { kind: 'etcd', endpoints: ['127.0.0.1:2379'] });
    assert.deepEqual(parseStoreUrl('etcd://10.0.0.1:2379,etcd-2.example.com:23790,[fd00::1]:2379'), {
      kind: 'etcd',
      endpoints: ['10.0.0.1:2379', 'etcd-2.example.com:23790', '[fd00::1]:2379'],
    });
  });

  it('rejects everything else, naming the problem', () => {
    const cases: [string, RegExp][] = [
      ['', /expected "embedded" or etcd:\/\/HOST:PORT/],
      ['Embedded', /expected "embedded"/],
      ['127.0.0.1:2379', /expected "embedded" or etcd:\/\//],
      ['http://127.0.0.1:2379', /TLS is turned on by --etcd-ca/],
      ['https://127.0.0.1:2379', /write etcd:\/\/HOST:PORT/],
      ['consul://a:1', /unknown scheme "consul"/],
      ['etcd://', /no endpoint/],
      ['etcd://127.0.0.1', /has no :PORT .*2379/],
      ['etcd://127.0.0.1:0', /port "0" is not 1-65535/],
      ['etcd://127.0.0.1:65536', /port "65536"/],
      ['etcd://127.0.0.1:02379', /port "02379"/],
      ['etcd://127.0.0.1:2379,', /empty endpoint/],
      ['etcd://a:1,,b:2', /empty endpoint/],
      ['etcd://010.0.0.1:2379', /"010.0.0.1" is not an IPv4 address/],
      ['etcd://1.2.3:2379', /not an IPv4 address/],
      ['etcd://fd00::1:2379', /not HOST:PORT .*\[ADDR\]:PORT/],
      ['etcd://[fe80::1%eth0]:2379', /zone ids/],
      ['etcd://[1.2.3.4]:2379', /not an IPv6 address/],
      ['etcd://a_b:2379', /"a_b" is not a host name/],
      ['etcd://-a:2379', /not a host name/],
      ['etcd://a:1/path', /no path, query, user or spaces/],
      ['etcd://u@a:1', /no path/],
      ['etcd://a:1, b:2', /no path, query, user or spaces/],
      ['etcd://a:1,a:1', /a:1 is listed twice/],
    ];
    for (const [text, why] of cases) {
      assert.throws(
        () => parseStoreUrl(text),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, 'TRUSS_ERR_OPTION_INVALID', text);
          assert.match(e.message, /^--store "/, text);
          assert.match(e.message, why, text);
          return true;
        },
      );
    }
  });
});

describe('plaintext etcd (M4)', () => {
  it('knows loopback endpoints', () => {
    for (const ep of ['127.0.0.1:2379', '127.1.2.3:2379', '[::1]:2379', 'localhost:2379', 'LOCALHOST:1']) {
      assert.equal(isLoopbackEndpoint(ep), true, ep);
    }
    for (const ep of ['198.18.0.2:2379', '[fd00::1]:2379', 'etcd.example:2379', '128.0.0.1:2379']) {
      assert.equal(isLoopbackEndpoint(ep), false, ep);
    }
  });

  it('refuses plaintext to an etcd not on this host unless --etcd-insecure; the error names both fixes', () => {
    assert.equal(plaintextProblem(['127.0.0.1:2379'], false, false), undefined);
    assert.equal(plaintextProblem(['198.18.0.2:2379'], true, false), undefined);
    assert.equal(plaintextProblem(['198.18.0.2:2379'], false, true), undefined);
    const e = plaintextProblem(['127.0.0.1:2379', '198.18.0.2:2379'], false, false);
    assert.equal(e?.code, 'TRUSS_ERR_OPTION_INVALID');
    assert.equal(
      e?.message,
      '--store etcd://127.0.0.1:2379,198.18.0.2:2379: etcd at 198.18.0.2:2379 is not on this host and the connection ' +
        'would be plaintext (anyone on the path can read and rewrite the cluster records): give --etcd-ca, --etcd-cert ' +
        'and --etcd-key for TLS, or --etcd-insecure to accept plaintext',
    );
  });

  it("counts this host's own addresses as on this host (etcd://HOST1:2379 on HOST1)", () => {
    const own = (host: string) => host === '198.18.0.1' || host === 'fd00::1';
    assert.equal(onThisHost('198.18.0.1:2379', own), true);
    assert.equal(onThisHost('[fd00::1]:2379', own), true);
    assert.equal(onThisHost('198.18.0.2:2379', own), false);
    assert.equal(plaintextProblem(['198.18.0.1:2379'], false, false, own), undefined);
    assert.equal(plaintextProblem(['[fd00::1]:2379', '127.0.0.1:2379'], false, false, own), undefined);
    const e = plaintextProblem(['198.18.0.1:2379', '198.18.0.2:2379'], false, false, own);
    assert.match(e?.message ?? '', /: etcd at 198\.18\.0\.2:2379 is not on this host /);
  });
});
