import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitReady } from './wait-ready.ts';

const SCRIPT = join(import.meta.dirname, 'wait-ready.ts');

describe('wait-ready (ExecStartPost)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'truss-ready-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const serve = async (path: string, status: number): Promise<Server> => {
    const s = createServer((req, res) => {
      res.statusCode = req.url === '/Plugin.Activate' && req.method === 'POST' ? status : 404;
      res.end('{}');
    });
    await new Promise<void>((r) => s.listen(path, r));
    return s;
  };

  it('is ready once Plugin.Activate answers 200, not while only a socket file exists', async () => {
    const sock = join(dir, 'a.sock');
    const early = await serve(sock, 500);
    assert.equal(await waitReady({ socketPath: sock, timeoutMs: 300, intervalMs: 20 }), 'timeout');
    await new Promise((r) => early.close(r));
    const pending = waitReady({ socketPath: sock, timeoutMs: 10_000, intervalMs: 20 });
    const s = await serve(sock, 200);
    assert.equal(await pending, 'ready');
    await new Promise((r) => s.close(r));
  });

  it('stops waiting when the daemon is gone', async () => {
    const dead = spawnSync('true').pid as number;
    const r = await waitReady({ socketPath: join(dir, 'none.sock'), timeoutMs: 10_000, pid: dead, intervalMs: 20 });
    assert.equal(r, 'exited');
  });

  it('as a command: exit 1 and says why, TRUSS_SOCKET and TRUSS_READY_TIMEOUT_SECONDS from the environment', () => {
    const sock = join(dir, 'b.sock');
    const r = spawnSync(process.execPath, [SCRIPT], {
      env: { ...process.env, TRUSS_SOCKET: sock, TRUSS_READY_TIMEOUT_SECONDS: '1' },
      encoding: 'utf8',
    });
    assert.equal(r.status, 1);
    assert.equal(r.stderr, `truss: not ready on ${sock}: nothing answered within 1 s (journalctl -u truss)\n`);
  });
});
