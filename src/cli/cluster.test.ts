import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { clusterCommand, formatForget } from './cluster.ts';
import { formatClusterAllocations } from './format.ts';

function io(stateDir: string) {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { env: { TRUSS_STATE_DIR: stateDir }, stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t) },
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

/** A fake daemon admin socket answering POST /v1/cluster/forget with `reply(body)`. */
async function daemon(reply: (body: { node: string; force: boolean }) => [number, unknown]) {
  const dir = mkdtempSync(join(tmpdir(), 'truss-cli-'));
  const seen: unknown[] = [];
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c) => {
      text += c;
    });
    req.on('end', () => {
      const body = JSON.parse(text) as { node: string; force: boolean };
      seen.push({ method: req.method, url: req.url, body });
      const [status, out] = reply(body);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(out));
    });
  });
  await new Promise<void>((r) => server.listen(join(dir, 'admin.sock'), r));
  return {
    dir,
    seen,
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('truss cluster forget', () => {
  it('sends node and force, and prints what was freed', async () => {
    const d = await daemon(({ node, force }) => [
      200,
      {
        node,
        wasRegistered: force,
        clusters: [{ cluster: 'blue', claims: ['198.18.64.2'], blocks: ['198.18.64.0/26'], member: true }],
      },
    ]);
    try {
      const t = io(d.dir);
      assert.equal(await clusterCommand(['forget', 'c2', '--force'], t.io), 0);
      assert.deepEqual(d.seen, [{ method: 'POST', url: '/v1/cluster/forget', body: { node: 'c2', force: true } }]);
      assert.equal(
        t.out(),
        'forgot host c2 (its host record too: --force)\n  blue: 1 block(s) (198.18.64.0/26), 1 address claim(s), membership\n',
      );
    } finally {
      await d.close();
    }
  });

  it('a refusal exits 1 with the daemon message; a bad command line exits 2', async () => {
    const d = await daemon(() => [
      409,
      { error: 'host c2 is registered in the cluster', code: 'TRUSS_ERR_NETWORK_CONFLICT' },
    ]);
    try {
      const t = io(d.dir);
      assert.equal(await clusterCommand(['forget', 'c2'], t.io), 1);
      assert.match(t.err(), /host c2 is registered/);
      const u = io(d.dir);
      assert.equal(await clusterCommand(['forget'], u.io), 2);
      assert.match(u.err(), /missing NODE/);
      assert.equal(await clusterCommand(['drop', 'c2'], u.io), 2);
    } finally {
      await d.close();
    }
  });

  it('says so when there was nothing to forget', () => {
    assert.equal(
      formatForget({ node: 'c9', wasRegistered: false, clusters: [] }),
      'host c9 held nothing in the cluster store\n',
    );
  });
});

describe('truss status: cluster allocations', () => {
  it("shows blocks and claims per host, this host's own addresses, and the reclaim queue", () => {
    const lines = formatClusterAllocations({
      node: 'c1',
      synced: true,
      allocations: {
        blue: { '*': { blocks: 0, claims: 1, member: false }, c1: { blocks: 2, claims: 70, member: true } },
      },
      hostAddresses: [{ cluster: 'blue', dev: 'trwg0', address: '198.18.64.2' }],
      reclaim: {
        orphans: [{ cluster: 'blue', kind: 'claim', address: '198.18.64.9', firstSeen: '2026-01-01T00:00:00.000Z' }],
        unclaimed: [{ cluster: 'blue', address: '198.18.64.7', holder: 'c2' }],
        reclaimedClaims: 3,
        reclaimedClusters: 0,
      },
    });
    assert.deepEqual(lines, [
      'CLUSTER: host c1',
      'NETWORK  NODE ID  NAME  BLOCKS  CLAIMS  MEMBER\nblue     *        -     0       1       shared\nblue     c1       c1    2       70      yes',
      'host address on blue: 198.18.64.2 (trwg0)',
      'reclaim: 1 orphan(s) waiting for the grace period; reclaimed 3 claim(s), 0 left network(s)',
      '  - blue claim 198.18.64.9 since 2026-01-01T00:00:00.000Z',
      "  ! blue 198.18.64.7 is used here without this host's claim (held by c2)",
    ]);
  });

  it('shows node ids beside display names; a host not registered now has name ?', () => {
    const lines = formatClusterAllocations({
      node: 'twin',
      nodeId: '0123456789abcdef0123456789abcdef',
      names: { '0123456789abcdef0123456789abcdef': 'twin', fedcba9876543210fedcba9876543210: 'twin2' },
      synced: true,
      allocations: {
        blue: {
          '0123456789abcdef0123456789abcdef': { blocks: 1, claims: 1, member: true },
          fedcba9876543210fedcba9876543210: { blocks: 1, claims: 2, member: true },
          old: { blocks: 1, claims: 0, member: false },
        },
      },
    });
    assert.deepEqual(lines, [
      'CLUSTER: host twin (node id 0123456789abcdef0123456789abcdef)',
      [
        'NETWORK  NODE ID                           NAME   BLOCKS  CLAIMS  MEMBER',
        'blue     0123456789abcdef0123456789abcdef  twin   1       1       yes',
        'blue     fedcba9876543210fedcba9876543210  twin2  1       2       yes',
        'blue     old                               ?      1       0       no',
      ].join('\n'),
    ]);
  });
});

describe('truss cluster rbac', () => {
  const capture = () => {
    const out = { stdout: '', stderr: '' };
    return {
      out,
      io: {
        env: {},
        stdout: (t: string) => {
          out.stdout += t;
        },
        stderr: (t: string) => {
          out.stderr += t;
        },
      },
    };
  };

  it('prints the etcdctl role and user of one host: read on /truss/, readwrite on its own prefixes only', async () => {
    const t = capture();
    assert.equal(await clusterCommand(['rbac', '--node', 'aa01'], t.io), 0);
    const cmds = t.out.stdout.split('\n').filter((l) => l.startsWith('etcdctl '));
    assert.deepEqual(cmds, [
      'etcdctl role add truss-aa01',
      'etcdctl role grant-permission truss-aa01 --prefix=true read /truss/',
      'etcdctl role grant-permission truss-aa01 readwrite /truss/v2/nodes/aa01',
      'etcdctl role grant-permission truss-aa01 --prefix=true readwrite /truss/v2/networks/aa01/',
      'etcdctl role grant-permission truss-aa01 --prefix=true readwrite /truss/v2/members/aa01/',
      'etcdctl role grant-permission truss-aa01 --prefix=true readwrite /truss/v2/blocks/aa01/',
      'etcdctl role grant-permission truss-aa01 --prefix=true readwrite /truss/v2/addrs/aa01/',
      'etcdctl role grant-permission truss-aa01 --prefix=true readwrite /truss/v2/shared/aa01/',
      'etcdctl role grant-permission truss-aa01 --prefix=true readwrite /truss/v2/names/aa01/',
      'etcdctl user add truss-aa01 --interactive=false < PASSWORD_FILE',
      'etcdctl user grant-role truss-aa01 truss-aa01',
    ]);
    assert.match(t.out.stdout, /^# {3}etcdctl auth enable$/m);
  });

  it('refuses a bad command line (exit 2) and plaintext to a remote etcd without --etcd-insecure', async () => {
    let t = capture();
    assert.equal(await clusterCommand(['rbac'], t.io), 2);
    assert.match(t.out.stderr, /^truss: cluster rbac: missing --node ID\n/);
    t = capture();
    assert.equal(await clusterCommand(['rbac', '--node', 'A B'], t.io), 2);
    assert.match(t.out.stderr, /--node "A B": expected/);
    t = capture();
    assert.equal(await clusterCommand(['rbac', '--node', 'a', '--apply'], t.io), 2);
    assert.match(t.out.stderr, /missing --password-file FILE/);
    t = capture();
    const remote = [
      'rbac',
      '--node',
      'a',
      '--apply',
      '--password-file',
      '/nonexistent',
      '--store',
      'etcd://198.18.0.2:2379',
    ];
    assert.equal(await clusterCommand(remote, t.io), 2);
    assert.match(t.out.stderr, /not on this host and the connection would be plaintext/);
    t = capture();
    assert.equal(await clusterCommand(['rbac', '--help'], t.io), 0);
    assert.match(t.out.stdout, /truss cluster rbac --node ID/);
  });
});

describe('truss status: etcd transport and ignored records', () => {
  it('shows plaintext with its warning, and every ignored record with the reason', () => {
    const lines = formatClusterAllocations({
      node: 'h',
      nodeId: 'h',
      synced: true,
      etcd: {
        tls: false,
        auth: 'none',
        warning: 'etcd connection is plaintext on this host, without authentication: x',
      },
      malformed: [{ key: '/truss/v2/nodes/zzz', why: "its node id is not zzz, the key's" }],
    });
    assert.deepEqual(lines.slice(1, 4), [
      'etcd: plaintext, auth none',
      '  WARNING: etcd connection is plaintext on this host, without authentication: x',
      "  ! ignored record /truss/v2/nodes/zzz: its node id is not zzz, the key's",
    ]);
    const tls = formatClusterAllocations({ node: 'h', etcd: { tls: true, auth: 'password', user: 'truss-h' } });
    assert.equal(tls[1], 'etcd: TLS, auth user truss-h');
  });
});
