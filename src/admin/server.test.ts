import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type AdminError, adminRequest } from '../cli/admin-client.ts';
import { errors } from '../core/errors.ts';
import { healthy } from '../core/status-testutil.ts';
import { silentLogger } from '../obs/logger.ts';
import { type AdminHandlers, buildAdminServer } from './server.ts';

/** An admin server on a throwaway socket whose handlers are `h`; any other handler throws. */
async function serve(h: Partial<AdminHandlers>) {
  const nope = async (): Promise<never> => {
    throw new Error('not in this test');
  };
  const server = buildAdminServer(
    {
      status: nope,
      reconcile: nope,
      metrics: nope,
      resetMetrics: nope,
      showPolicy: nope,
      setPolicy: nope,
      rotateKey: nope,
      forgetNode: nope,
      ...h,
    },
    silentLogger,
  );
  const dir = mkdtempSync(join(tmpdir(), 'truss-admin-'));
  const socket = join(dir, 'admin.sock');
  await new Promise<void>((r) => server.listen(socket, r));
  return {
    socket,
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('admin API: POST /v1/cluster/forget', () => {
  it('passes node and force; a refusal is a 409 with its code; a bad body is a 400', async () => {
    const calls: unknown[] = [];
    const s = await serve({
      forgetNode: async (node, force) => {
        calls.push([node, force]);
        if (!force) throw errors.networkConflict(`host ${node} is registered`);
        return { node, wasRegistered: true, clusters: [] };
      },
    });
    try {
      assert.deepEqual(await adminRequest(s.socket, 'POST', '/v1/cluster/forget', { node: 'c2', force: true }), {
        schemaVersion: 1,
        node: 'c2',
        wasRegistered: true,
        clusters: [],
      });
      await assert.rejects(adminRequest(s.socket, 'POST', '/v1/cluster/forget', { node: 'c2' }), (e: AdminError) => {
        assert.equal(e.status, 409);
        assert.equal(e.code, 'TRUSS_ERR_NETWORK_CONFLICT');
        return true;
      });
      await assert.rejects(adminRequest(s.socket, 'POST', '/v1/cluster/forget', { node: 3 }), { status: 400 });
      await assert.rejects(adminRequest(s.socket, 'POST', '/v1/cluster/forget', { node: 'c2', force: 'yes' }), {
        status: 400,
      });
      assert.deepEqual(calls, [
        ['c2', true],
        ['c2', false],
      ]);
    } finally {
      await s.close();
    }
  });
});

describe('admin API: malformed input (L12)', () => {
  it('answers 400 for a malformed %-escape and 413 for a body over 4 MiB, chunked or declared', async () => {
    const s = await serve({
      forgetNode: async () => {
        throw new Error('not called: the body is refused first');
      },
    });
    try {
      await assert.rejects(adminRequest(s.socket, 'GET', '/v1/networks/%ZZ/policy'), (e: AdminError) => {
        assert.equal(e.status, 400);
        assert.match(e.message, /malformed %-escape in the network id/);
        return true;
      });
      const big = { node: 'x'.repeat(5 * 1024 * 1024) };
      await assert.rejects(adminRequest(s.socket, 'POST', '/v1/cluster/forget', big), (e: AdminError) => {
        assert.equal(e.status, 413, e.message);
        assert.match(e.message, /larger than 4194304 bytes/);
        return true;
      });
      for (const headers of [{ 'transfer-encoding': 'chunked' }, { 'content-length': String(5 * 1024 * 1024) }]) {
        const status = await new Promise<number>((resolve, reject) => {
          const req = http.request(
            { socketPath: s.socket, method: 'PUT', path: `/v1/networks/${'a'.repeat(64)}/policy`, headers },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          );
          req.on('error', reject);
          const chunk = Buffer.alloc(1024 * 1024, 'x');
          for (let i = 0; i < 5; i++) req.write(chunk);
          req.end();
        });
        assert.equal(status, 413);
      }
    } finally {
      await s.close();
    }
  });
});

describe('admin API: GET /v1/status and ?brief=1', () => {
  it('asks the service for the brief reply only with ?brief=1; any other query is no route', async () => {
    const asked: unknown[] = [];
    const s = await serve({
      status: async (opts) => {
        asked.push(opts);
        return healthy();
      },
    });
    try {
      await adminRequest(s.socket, 'GET', '/v1/status');
      await adminRequest(s.socket, 'GET', '/v1/status?brief=1');
      assert.deepEqual(asked, [undefined, { brief: true }]);
      await assert.rejects(adminRequest(s.socket, 'GET', '/v1/status?brief=yes'), { status: 404 });
    } finally {
      await s.close();
    }
  });
});
