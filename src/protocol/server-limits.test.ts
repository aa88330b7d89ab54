/**
 * The HTTP edge under hostile load (security review L1, L3): idle connections are closed,
 * bursts larger than the old connection limit are served rather than reset, and deeply
 * nested JSON gets a clean error instead of a stack overflow.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { startServer, type TestServer } from './testing.ts';

let srv: TestServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

const deep = (levels: number): string => `${'['.repeat(levels)}${']'.repeat(levels)}`;

describe('protocol server limits', { timeout: 20_000 }, () => {
  it('closes a connection that never sends a request (L1)', async () => {
    srv = await startServer(undefined, { idleConnectionMs: 200 });
    const sock = net.connect(srv.socketPath);
    const started = Date.now();
    await new Promise<void>((resolve, reject) => {
      sock.on('error', reject);
      sock.on('close', () => resolve());
    });
    assert.ok(Date.now() - started < 5000);
    const r = await srv.request('/Plugin.Activate', '');
    assert.equal(r.status, 200);
  });

  it('keeps serving while more idle connections are open than the old limit of 128 (L1)', async () => {
    srv = await startServer(undefined, { idleConnectionMs: 60_000 });
    const idle = await Promise.all(
      Array.from(
        { length: 130 },
        () =>
          new Promise<net.Socket>((resolve, reject) => {
            const c = net.connect((srv as TestServer).socketPath, () => resolve(c));
            c.on('error', reject);
          }),
      ),
    );
    try {
      const r = await srv.request('/Plugin.Activate', '');
      assert.equal(r.status, 200);
    } finally {
      for (const c of idle) c.destroy();
    }
  });

  it('answers a burst of 200 parallel requests without resetting any (L1)', async () => {
    srv = await startServer();
    const s = srv;
    const body = JSON.stringify({ NetworkID: 'a'.repeat(64) });
    const results = await Promise.allSettled(
      Array.from({ length: 200 }, () => rawPost(s.socketPath, '/NetworkDriver.DeleteNetwork', body)),
    );
    const failed = results.filter((r) => r.status === 'rejected' || !r.value.startsWith('HTTP/1.1 200'));
    assert.equal(failed.length, 0, JSON.stringify(failed.slice(0, 3)));
  });

  it('refuses JSON nested deeper than 64 levels with a clean error, at any log level (L3)', async () => {
    srv = await startServer();
    for (const [path, body] of [
      ['/IpamDriver.RequestAddress', `{"PoolID":"x","Options":{"a":${deep(100_000)}}}`],
      ['/NetworkDriver.CreateEndpoint', `{"NetworkID":"${'a'.repeat(64)}","Options":{"x":${deep(65)}}}`],
    ] as const) {
      const r = await srv.request(path, body);
      assert.equal(r.status, 500, r.text);
      const reply = r.json as { Err: string };
      assert.match(reply.Err, /nests deeper than 64 levels/);
      assert.doesNotMatch(reply.Err, /internal error/);
    }
    const ok = await srv.request('/NetworkDriver.DeleteNetwork', JSON.stringify({ NetworkID: 'a'.repeat(64) }));
    assert.equal(ok.status, 200);
  });

  it('names a deeply nested wrong value without overflowing (L3)', async () => {
    srv = await startServer();
    const r = await srv.request('/IpamDriver.RequestAddress', `{"PoolID":${deep(60)}}`);
    assert.equal(r.status, 500);
    assert.match((r.json as { Err: string }).Err, /^PoolID must be a string, got \[\[\[/);
  });
});

/** One request on its own connection; resolves with the raw reply, rejects on a reset. */
function rawPost(socketPath: string, path: string, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    sock.write(
      `POST ${path} HTTP/1.1\r\nHost: \r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  });
}
