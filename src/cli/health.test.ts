import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { StatusBody } from '../core/admin-api.ts';
import { CLUSTER, healthy, NOW, T0 } from '../core/status-testutil.ts';
import { assessHealth, formatHealth, HANDSHAKE_STALE_S } from './health.ts';
import { STATUS_UNHEALTHY, statusCommand } from './status.ts';

const ago = (s: number): string => new Date(NOW - s * 1000).toISOString();

describe('assessHealth: what truss status --check fails on', () => {
  it('a clean status is healthy', () => {
    assert.deepEqual(assessHealth(healthy(), NOW), { problems: [], warnings: [] });
    assert.deepEqual(assessHealth({ ...healthy(), cluster: CLUSTER }, NOW), { problems: [], warnings: [] });
  });

  it('an object in error, even with the kernel in sync, with its error and how long', () => {
    const s = healthy({
      reconciler: {
        reconciledRevision: 7,
        objects: {
          'shaper:trvaaaa': {
            state: 'error',
            lastError: 'link trifbaaaa exists and is not ours',
            code: 'TRUSS_ERR_KERNEL_OBJECT_FOREIGN',
            updatedAt: ago(5),
            since: ago(300),
          },
          'bridge:trb1': { state: 'ok', updatedAt: ago(900) },
        },
      },
    });
    assert.deepEqual(assessHealth(s, NOW).problems, [
      'object shaper:trvaaaa in error for 5 min: link trifbaaaa exists and is not ours',
    ]);
  });

  it('kernel drift, a pass that could not run, a part status could not read', () => {
    const s = healthy({
      kernel: { inSync: false, problems: ['bridge trb1 missing', 'nft table truss differs'] },
      reconciler: { reconciledRevision: 7, objects: {}, passError: { error: 'database is locked', at: ago(10) } },
      errors: ['policy counters: nft gone'],
    });
    assert.deepEqual(assessHealth(s, NOW).problems, [
      'the last reconcile pass could not run: database is locked',
      'kernel: 2 difference(s) from the stored intent (truss reconcile repairs)',
      'status could not read policy counters: nft gone',
    ]);
    // a kernel that could not be read is said once, as what status could not read
    const unread = healthy({ kernel: { inSync: false, problems: [] }, errors: ['kernel check: nft: EPERM'] });
    assert.deepEqual(assessHealth(unread, NOW).problems, ['status could not read kernel check: nft: EPERM']);
  });

  it('etcd unreachable, the lease lost, the watch down, peers without a (recent) handshake', () => {
    const s = healthy({
      cluster: {
        ...CLUSTER,
        etcd: {
          ...CLUSTER.etcd,
          reachable: false,
          error: 'no answer within 2000 ms',
          lease: 'lost',
          watch: 'disconnected',
          watchError: 'stream ended',
        },
        peers: [
          { node: 'n2', name: 'h2', endpoint: '198.18.255.2:51820', allowedIps: [], latestHandshake: 0 },
          {
            node: 'n3',
            endpoint: '198.18.255.3:51820',
            allowedIps: [],
            latestHandshake: NOW / 1000 - HANDSHAKE_STALE_S - 60,
          },
          { node: 'n4', endpoint: '198.18.255.4:51820', allowedIps: [], latestHandshake: NOW / 1000 - 30 },
        ],
      },
    });
    assert.deepEqual(assessHealth(s, NOW).problems, [
      'etcd unreachable: no answer within 2000 ms',
      "this host's etcd lease is lost (no keepalive answered): peers may drop it",
      'the watch of etcd is disconnected: stream ended',
      'cluster peer h2 (198.18.255.2:51820): no WireGuard handshake',
      'cluster peer n3 (198.18.255.3:51820): last WireGuard handshake 4 min ago',
    ]);
  });

  it('rejected records, foreign objects and kept orphans warn without failing', () => {
    const s = healthy({
      cluster: { ...CLUSTER, rejected: ['block x overlaps y'], alarms: ['block x overlaps y'] },
      ownership: { stateId: 's', adoptUnstamped: false, foreign: { count: 2, links: [] } },
      orphans: [
        { networkId: 'n', endpointId: 'e', reason: 'gone', since: T0, deadline: T0, held: true },
        { networkId: 'n', endpointId: 'f', reason: 'gone', since: T0, deadline: T0 },
      ],
    });
    const h = assessHealth(s, NOW);
    assert.deepEqual(h.problems, []);
    assert.deepEqual(h.warnings, [
      '1 cluster record(s) rejected (1 alarm(s))',
      '2 truss object(s) of another state on this host',
      '1 orphaned endpoint(s) kept: their sandbox is still a network namespace',
    ]);
    assert.equal(formatHealth(h).split('\n')[0], 'healthy, 3 warning(s)');
  });
});

describe('truss status --check (over a fake admin socket)', () => {
  /** `truss status ARGS` against a fake daemon answering `reply`; `routes`: the only URLs it knows (else all) */
  async function run(reply: object, args: string[], routes?: readonly string[]) {
    const dir = mkdtempSync(join(tmpdir(), 'truss-check-'));
    const urls: (string | undefined)[] = [];
    const server = http.createServer((req, res) => {
      urls.push(req.url);
      if (routes && !routes.includes(req.url ?? '')) {
        res.writeHead(404).end(JSON.stringify({ error: `no such admin route: GET ${req.url}` }));
        return;
      }
      res.end(JSON.stringify({ schemaVersion: 1, ...reply }));
    });
    await new Promise<void>((r) => server.listen(join(dir, 'admin.sock'), r));
    let out = '';
    let err = '';
    try {
      const code = await statusCommand([...args, '--state-dir', dir], {
        env: {},
        stdout: (t) => {
          out += t;
        },
        stderr: (t) => {
          err += t;
        },
        names: async () => undefined,
      });
      return { code, out, err, urls };
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const broken: StatusBody = healthy({ kernel: { inSync: false, problems: ['bridge trb1 missing'] } });

  it('exit 0 and "healthy" when healthy; exit 1 and the reasons when not', async () => {
    assert.deepEqual(await run(healthy(), ['--check']), {
      code: 0,
      out: 'healthy\n',
      err: '',
      urls: ['/v1/status?brief=1'],
    });
    const r = await run(broken, ['--check']);
    assert.equal(r.code, STATUS_UNHEALTHY);
    assert.equal(
      r.out,
      'unhealthy: 1 problem(s)\n  - kernel: 1 difference(s) from the stored intent (truss reconcile repairs)\n',
    );
  });

  it('with --json: the reply on stdout as always, the reasons on stderr, the same exit status', async () => {
    const ok = await run(healthy(), ['--check', '--json']);
    assert.equal(ok.code, 0);
    assert.equal(JSON.parse(ok.out).schemaVersion, 1);
    assert.equal(ok.err, '');
    const bad = await run(broken, ['--json', '--check']);
    assert.equal(bad.code, STATUS_UNHEALTHY);
    assert.deepEqual(JSON.parse(bad.out).kernel, broken.kernel);
    assert.match(bad.err, /^unhealthy: 1 problem\(s\)\n {2}- kernel: 1 difference/);
  });

  it('the human view and --check ask for the brief reply; --verbose and --json for all of it', async () => {
    for (const [args, url] of [
      [[], '/v1/status?brief=1'],
      [['--check'], '/v1/status?brief=1'],
      [['--verbose'], '/v1/status'],
      [['--json'], '/v1/status'],
      [['--json', '--check'], '/v1/status'],
    ] as const) {
      assert.deepEqual((await run(healthy(), [...args])).urls, [url], args.join(' '));
    }
  });

  it('a daemon without the brief reply (404: older than this CLI) is asked for the full one', async () => {
    assert.deepEqual(await run(healthy(), ['--check'], ['/v1/status']), {
      code: 0,
      out: 'healthy\n',
      err: '',
      urls: ['/v1/status?brief=1', '/v1/status'],
    });
  });

  it('without --check the exit status stays 0, whatever status shows', async () => {
    const r = await run(broken, []);
    assert.equal(r.code, 0);
    assert.match(r.out, /^HEALTH: 1 problem\(s\)/m);
  });
});
