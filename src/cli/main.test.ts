/**
 * The CLI's exit (security review L2): output piped to a slow reader is never cut at the
 * pipe's 64 KiB; the process exits only after stdout is flushed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

describe('truss CLI output', () => {
  it('writes all of a large `status --json` into a pipe whose reader is slow (L2)', { timeout: 30_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'truss-cli-'));
    const status = { networks: Array.from({ length: 3000 }, (_, i) => ({ id: `n${i}`, pad: 'x'.repeat(60) })) };
    const server = http.createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(status));
    });
    await new Promise<void>((resolve) => server.listen(join(dir, 'admin.sock'), resolve));
    try {
      const child = spawn(process.execPath, [MAIN, 'status', '--json', '--state-dir', dir], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      child.stdout.pause(); // a slow reader: nothing is read until the child has tried to exit
      const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      await new Promise((r) => setTimeout(r, 1500));
      const chunks: Buffer[] = [];
      child.stdout.on('data', (c: Buffer) => chunks.push(c));
      child.stdout.resume();
      const closed = new Promise<void>((resolve) => child.stdout.on('close', () => resolve()));
      assert.equal(await exited, 0);
      await closed;
      const text = Buffer.concat(chunks).toString('utf8');
      // passed through as the daemon sent it, with the contract version (schemaVersion) first
      assert.equal(text, `${JSON.stringify({ schemaVersion: 1, ...status }, null, 2)}\n`);
      assert.ok(text.length > 200_000);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
