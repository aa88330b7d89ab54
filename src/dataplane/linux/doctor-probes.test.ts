import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { probeAdminSocket, probeEtcdClock } from './doctor-probes.ts';

describe('doctor probes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'truss-doctor-probes-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('the admin socket: its mode, owner and kind, and the state dir', async () => {
    assert.equal((await probeAdminSocket(dir)).socket, undefined, 'none yet');
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(join(dir, 'admin.sock'), r));
    try {
      chmodSync(join(dir, 'admin.sock'), 0o660);
      chmodSync(dir, 0o700);
      const f = await probeAdminSocket(dir);
      assert.equal(f.socket?.isSocket, true);
      assert.equal((f.socket?.mode ?? 0) & 0o777, 0o660);
      assert.equal((f.dir?.mode ?? 0) & 0o777, 0o700);
      assert.equal(f.socket?.uid, process.getuid?.());
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it("etcd's clock: the skew from GET /version's Date header", async () => {
    const etcdNow = Date.parse('2026-12-06T12:00:00Z');
    const server = http.createServer((req, res) => {
      assert.equal(req.url, '/version');
      res.setHeader('Date', new Date(etcdNow).toUTCString());
      res.end('{"etcdserver":"3.4.23"}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const f = await probeEtcdClock({ endpoint: `127.0.0.1:${port}`, now: () => etcdNow + 42_500 });
      assert.equal(f.skewS, 42, 'Date is taken as the middle of its second');
      const g = await probeEtcdClock({ endpoint: `127.0.0.1:${port}`, now: () => etcdNow + 500 });
      assert.equal(g.skewS, 0);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('no etcd answering: not measured, with the reason', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise((r) => server.close(r));
    const f = await probeEtcdClock({ endpoint: `127.0.0.1:${port}`, timeoutMs: 500 });
    assert.equal(f.skewS, undefined);
    assert.match(f.error ?? '', /ECONNREFUSED/);
  });
});
