import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from './config.ts';

describe('loadConfig', () => {
  it('defaults', () => {
    assert.deepEqual(loadConfig([], {}), {
      socket: '/run/docker/plugins/truss.sock',
      stateDir: '/var/lib/truss',
      logLevel: 'info',
      logFormat: 'json',
      resyncMs: 30_000,
      gcGraceMs: 120_000,
      wgPort: 51820,
      dockerHost: { kind: 'unix', socketPath: '/var/run/docker.sock', url: 'unix:///var/run/docker.sock' },
    });
  });
  it('--docker-host: flag, TRUSS_DOCKER_HOST, DOCKER_HOST, default; none turns it off', () => {
    const host = (argv: string[], env: NodeJS.ProcessEnv) => loadConfig(argv, env).dockerHost?.url;
    assert.equal(host([], { DOCKER_HOST: 'unix:///run/user/0/docker.sock' }), 'unix:///run/user/0/docker.sock');
    assert.equal(host([], { DOCKER_HOST: '' }), 'unix:///var/run/docker.sock');
    assert.equal(
      host([], { TRUSS_DOCKER_HOST: 'tcp://127.0.0.1:2375', DOCKER_HOST: 'unix:///x.sock' }),
      'tcp://127.0.0.1:2375',
    );
    assert.equal(host(['--docker-host', 'unix:///proxy.sock'], { TRUSS_DOCKER_HOST: 'none' }), 'unix:///proxy.sock');
    assert.equal('dockerHost' in loadConfig(['--docker-host', 'none'], {}), false);
    assert.equal('dockerHost' in loadConfig([], { TRUSS_DOCKER_HOST: 'none', DOCKER_HOST: 'unix:///x.sock' }), false);
    assert.deepEqual(loadConfig(['--docker-host', 'tcp://[::1]:2375'], {}).dockerHost, {
      kind: 'tcp',
      host: '::1',
      port: 2375,
      url: 'tcp://[::1]:2375',
    });
    for (const [argv, env, message] of [
      [['--docker-host', 'docker.sock'], {}, /^--docker-host "docker\.sock": only unix:\/\/ and tcp:\/\/ .*or none/],
      [['--docker-host', 'unix://run/docker.sock'], {}, /expected unix:\/\/\/absolute\/path; give --docker-host/],
      [['--docker-host', 'tcp://:2375'], {}, /expected tcp:\/\/host:port/],
      [[], { DOCKER_HOST: 'ssh://me@host' }, /^--docker-host \(from DOCKER_HOST\) "ssh:\/\/me@host"/],
      [[], { DOCKER_HOST: 'tcp://h:2376', DOCKER_TLS_VERIFY: '1' }, /DOCKER_TLS_VERIFY/],
    ] as const) {
      assert.throws(() => loadConfig([...argv], env), { code: 'TRUSS_ERR_OPTION_INVALID', message }, argv.join(' '));
    }
  });
  it('flags win over their TRUSS_* twins; DOCKER_PLUGIN_DEBUG=true means debug', () => {
    const c = loadConfig(['--socket', '/tmp/a.sock', '--gc-grace-seconds', '5'], {
      TRUSS_SOCKET: '/tmp/b.sock',
      TRUSS_STATE_DIR: '/tmp/state',
      TRUSS_DEFAULT_POOLS: '198.18.0.0/16:24',
      DOCKER_PLUGIN_DEBUG: 'true',
      TRUSS_LOG_LEVEL: 'warn',
    });
    assert.equal(c.socket, '/tmp/a.sock');
    assert.equal(c.stateDir, '/tmp/state');
    assert.equal(c.defaultPools, '198.18.0.0/16:24');
    assert.equal(c.logLevel, 'debug');
    assert.equal(c.gcGraceMs, 5000);
  });
  it('cluster flags', () => {
    const c = loadConfig(
      [
        '--store',
        'etcd://198.18.255.254:2379',
        '--node-name',
        'c1',
        '--advertise-address',
        '198.18.255.1',
        '--wg-port',
        '51821',
      ],
      {},
    );
    assert.equal(c.store, 'etcd://198.18.255.254:2379');
    assert.equal(c.nodeName, 'c1');
    assert.equal(c.wgPort, 51821);
    assert.throws(() => loadConfig(['--etcd-ca', '/ca.pem'], {}), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /go together/,
    });
    assert.throws(() => loadConfig(['--advertise-address', 'host'], {}), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /--advertise-address/,
    });
    assert.throws(() => loadConfig(['--node-name', 'Bad_Name'], {}), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /--node-name/,
    });
  });
  it('reachability flags: --public-endpoint (canonical) and --relay, or their env twins', () => {
    const c = loadConfig(['--public-endpoint', '[fd00:0::7]:4500', '--relay'], {});
    assert.equal(c.publicEndpoint, '[fd00::7]:4500');
    assert.equal(c.relay, true);
    const e = loadConfig([], { TRUSS_PUBLIC_ENDPOINT: '198.18.255.9:51820', TRUSS_RELAY: '1' });
    assert.equal(e.publicEndpoint, '198.18.255.9:51820');
    assert.equal(e.relay, true);
    assert.equal(loadConfig([], {}).relay, undefined);
    for (const bad of ['host.example:51820', '198.18.255.9', 'fd00::7:4500', '198.18.255.9:0'])
      assert.throws(() => loadConfig(['--public-endpoint', bad], {}), {
        code: 'TRUSS_ERR_OPTION_INVALID',
        message: /^--public-endpoint .*: expected IP:PORT \(IPv6: \[IP\]:PORT\)/,
      });
  });
  it('etcd user auth and --etcd-insecure (or TRUSS_ETCD_USER, TRUSS_ETCD_PASSWORD_FILE, TRUSS_ETCD_INSECURE)', () => {
    const c = loadConfig(
      ['--etcd-user', 'truss-aa01', '--etcd-password-file', '/etc/truss/etcd-pw', '--etcd-insecure'],
      {},
    );
    assert.deepEqual(c.etcdAuth, { user: 'truss-aa01', passwordFile: '/etc/truss/etcd-pw' });
    assert.equal(c.etcdInsecure, true);
    const e = loadConfig([], { TRUSS_ETCD_USER: 'u', TRUSS_ETCD_PASSWORD_FILE: '/pw', TRUSS_ETCD_INSECURE: '1' });
    assert.deepEqual(e.etcdAuth, { user: 'u', passwordFile: '/pw' });
    assert.equal(e.etcdInsecure, true);
    assert.equal(loadConfig([], {}).etcdInsecure, undefined);
    assert.throws(() => loadConfig(['--etcd-user', 'u'], {}), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /--etcd-user and --etcd-password-file go together/,
    });
    assert.throws(() => loadConfig(['--etcd-password-file', '/pw'], {}), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /go together/,
    });
    assert.throws(() => loadConfig(['--etcd-user', 'u', '--etcd-password-file', 'pw'], {}), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /expected an absolute path/,
    });
    assert.throws(() => loadConfig(['--etcd-user', 'a b', '--etcd-password-file', '/pw'], {}), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /--etcd-user "a b"/,
    });
    assert.throws(() => loadConfig(['--etcd-password', 'x'], {}), /Unknown option '--etcd-password'/);
  });

  it('managed-plugin settings: --iptables and --proc-sys (or TRUSS_IPTABLES, TRUSS_PROC_SYS)', () => {
    const c = loadConfig([], { TRUSS_IPTABLES: 'iptables-legacy', TRUSS_PROC_SYS: '/host/proc/sys' });
    assert.equal(c.iptables, 'iptables-legacy');
    assert.equal(c.procSys, '/host/proc/sys');
    assert.equal(loadConfig(['--iptables', '/usr/sbin/iptables-nft'], {}).iptables, '/usr/sbin/iptables-nft');
    assert.throws(() => loadConfig(['--iptables', 'iptables; rm'], {}), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /--iptables/,
    });
    assert.throws(() => loadConfig(['--proc-sys', 'host/proc/sys'], {}), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /--proc-sys/,
    });
  });
  it('refuses bad values with the flag name', () => {
    assert.throws(() => loadConfig(['--socket', 'rel.sock'], {}), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /--socket/,
    });
    assert.throws(() => loadConfig(['--log-level', 'loud'], {}), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /--log-level/,
    });
    assert.throws(() => loadConfig([], { TRUSS_RESYNC_SECONDS: '0' }), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /--resync-seconds/,
    });
    assert.throws(() => loadConfig(['--bogus'], {}), /bogus/);
    assert.throws(() => loadConfig(['--socket', `/${'x'.repeat(120)}`], {}), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /107 bytes/,
    });
    // L6: the admin socket under a long state dir is refused before anything is bound
    assert.throws(() => loadConfig(['--state-dir', `/${'s'.repeat(100)}`], {}), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /admin socket .*admin\.sock would exceed the 107 bytes of a unix socket path; use a shorter state dir/,
    });
  });
  it('--metrics-address (or TRUSS_METRICS_ADDRESS): off by default, HOST:PORT, refused naming the fix', () => {
    assert.equal(loadConfig([], {}).metricsAddress, undefined);
    assert.deepEqual(loadConfig(['--metrics-address', '127.0.0.1:9733'], {}).metricsAddress, {
      host: '127.0.0.1',
      port: 9733,
    });
    assert.deepEqual(loadConfig([], { TRUSS_METRICS_ADDRESS: '[::1]:9733' }).metricsAddress, {
      host: '::1',
      port: 9733,
    });
    for (const bad of ['9733', 'localhost:9733', '127.0.0.1:0', '127.0.0.1:70000', '::1:9733']) {
      assert.throws(() => loadConfig(['--metrics-address', bad], {}), {
        code: 'TRUSS_ERR_OPTION_INVALID',
        message: /--metrics-address .*expected HOST:PORT .* e\.g\. 127\.0\.0\.1:9733/,
      });
    }
  });
});
