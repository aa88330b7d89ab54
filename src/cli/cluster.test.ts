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
  it('shows blocks and claims per host, and the reclaim queue', () => {
    const lines = formatClusterAllocations({
      node: 'c1',
      synced: true,
      allocations: {
        blue: { '*': { blocks: 0, claims: 1, member: false }, c1: { blocks: 2, claims: 70, member: true } },
      },
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
