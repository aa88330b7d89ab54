/** listenUnix never deletes what is not a socket (security review L6). */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { listenUnix } from './unix-socket.ts';

let dir = '';
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const close = (s: http.Server): Promise<void> => new Promise((resolve) => s.close(() => resolve()));

describe('listenUnix', () => {
  it('refuses a path that holds a regular file, a directory or a symlink, and leaves it as it was (L6)', async () => {
    dir = mkdtempSync(join(tmpdir(), 'truss-sock-'));
    const file = join(dir, 'victim.txt');
    writeFileSync(file, 'precious\n');
    mkdirSync(join(dir, 'adir'));
    symlinkSync(file, join(dir, 'link'));
    for (const p of [file, join(dir, 'adir'), join(dir, 'link')]) {
      const server = http.createServer();
      await assert.rejects(listenUnix(server, p), /exists and is not a unix socket: truss does not remove it/);
    }
    assert.equal(readFileSync(file, 'utf8'), 'precious\n');
  });

  it('replaces a stale socket that nothing listens on', async () => {
    dir = mkdtempSync(join(tmpdir(), 'truss-sock-'));
    const path = join(dir, 's.sock');
    const old = net.createServer();
    await new Promise<void>((resolve) => old.listen(path, resolve));
    // leave the socket file behind, as a killed daemon does
    (old as unknown as { _handle: { close(): void } | null })._handle?.close();
    const server = http.createServer((_q, r) => r.end('ok'));
    await listenUnix(server, path);
    const text = await new Promise<string>((resolve, reject) => {
      http
        .get({ socketPath: path, path: '/' }, (res) => {
          let t = '';
          res.on('data', (c: Buffer) => (t += c));
          res.on('end', () => resolve(t));
        })
        .on('error', reject);
    });
    assert.equal(text, 'ok');
    await close(server);
  });
});
