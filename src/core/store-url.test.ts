import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopbackEndpoint, onThisHost, plaintextProblem } from './store-url.ts';

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
