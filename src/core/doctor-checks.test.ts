import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { adminSocketCheck, CLOCK_SKEW_WARN_S, clockSkewCheck } from './doctor-checks.ts';

const SOCK = 0o140000;
const DIR = 0o040000;

describe('doctor: admin socket', () => {
  it('root only: ok', () => {
    const c = adminSocketCheck({
      stateDir: '/var/lib/truss',
      dir: { mode: DIR | 0o700, uid: 0 },
      socket: { mode: SOCK | 0o600, uid: 0, isSocket: true },
    });
    assert.equal(c.status, 'ok');
    assert.equal(c.id, 'admin-socket');
  });

  it('no socket: no daemon with this state dir, said as info', () => {
    const c = adminSocketCheck({ stateDir: '/var/lib/truss', dir: { mode: DIR | 0o700, uid: 0 } });
    assert.equal(c.status, 'info');
    assert.match(c.detail, /no truss serve runs with this state dir/);
  });

  it('opened to others, or not root: a warning naming each problem and the fix', () => {
    const c = adminSocketCheck({
      stateDir: '/srv/truss',
      dir: { mode: DIR | 0o777, uid: 1000 },
      socket: { mode: SOCK | 0o666, uid: 1000, isSocket: true },
    });
    assert.equal(c.status, 'warn');
    assert.equal(
      c.detail,
      '/srv/truss/admin.sock is owned by uid 1000; /srv/truss/admin.sock has mode 0666; /srv/truss is owned by uid 1000; /srv/truss has mode 0777 (writable by others)',
    );
    assert.match(c.fix ?? '', /chmod 0600 \/srv\/truss\/admin.sock/);
  });
});

describe('doctor: clock skew against etcd', () => {
  it(`within ${CLOCK_SKEW_WARN_S} s either way: ok`, () => {
    assert.equal(clockSkewCheck({ endpoint: 'e:2379', skewS: 1.2 }).status, 'ok');
    assert.equal(clockSkewCheck({ endpoint: 'e:2379', skewS: -CLOCK_SKEW_WARN_S }).status, 'ok');
  });

  it('beyond: a warning that says which way and how far, and the fix', () => {
    const ahead = clockSkewCheck({ endpoint: 'e:2379', skewS: 42.04 });
    assert.equal(ahead.status, 'warn');
    assert.equal(ahead.detail, "this host's clock is 42 s ahead of etcd's");
    assert.match(ahead.fix ?? '', /chrony/);
    assert.equal(
      clockSkewCheck({ endpoint: 'e:2379', skewS: -7.5 }).detail,
      "this host's clock is 7.5 s behind etcd's",
    );
  });

  it('not measured: info with the reason', () => {
    const c = clockSkewCheck({ endpoint: 'e:2379', error: 'connect ECONNREFUSED' });
    assert.equal(c.status, 'info');
    assert.equal(c.detail, 'not measured: connect ECONNREFUSED');
  });
});
