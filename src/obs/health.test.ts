/** Readiness (obs/health.ts) and the observability routes (obs/health-http.ts) over real HTTP. */
import assert from 'node:assert/strict';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type Readiness, type ReadinessSources, readiness } from './health.ts';
import { buildObservabilityServer, type ObservabilityHandlers } from './health-http.ts';
import { silentLogger } from './logger.ts';

const sources = (over: Partial<ReadinessSources> = {}): ReadinessSources => ({
  serving: () => true,
  firstPassDone: () => true,
  check: async () => [],
  ...over,
});

describe('readiness', () => {
  it('ready only while serving, after the start-up pass, with the kernel matching the intent', async () => {
    assert.deepEqual(await readiness(sources()), { ready: true, reason: 'serving; the kernel matches the intent' });
    assert.match((await readiness(sources({ serving: () => false }))).reason, /not serving dockerd/);
    assert.match((await readiness(sources({ firstPassDone: () => false }))).reason, /start-up reconcile pass/);
    const drift = await readiness(sources({ check: async () => ['nft table inet truss is missing', 'bridge gone'] }));
    assert.deepEqual(drift, {
      ready: false,
      reason:
        'kernel drift: 2 differences (first: nft table inet truss is missing); see truss status, or truss reconcile',
    });
  });

  it('not ready when the check fails or does not finish in time', async () => {
    const failed = await readiness(sources({ check: () => Promise.reject(new Error('nft: permission denied')) }));
    assert.deepEqual(failed, { ready: false, reason: 'the kernel could not be checked: nft: permission denied' });
    const stuck = await readiness(sources({ check: () => new Promise(() => {}) }), 20);
    assert.deepEqual(stuck, { ready: false, reason: 'the kernel check did not finish within 20 ms' });
  });
});

describe('observability routes over HTTP', () => {
  let server: http.Server;
  let base: string;
  let ready: Readiness = { ready: true, reason: 'fine' };
  const h: ObservabilityHandlers = {
    scrape: async () => '# HELP truss_x X\n# TYPE truss_x gauge\ntruss_x 1\n',
    contentType: 'text/plain; version=0.0.4; charset=utf-8',
    ready: async () => ready,
  };
  before(async () => {
    server = buildObservabilityServer(h, silentLogger);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  const get = async (path: string, method = 'GET') => {
    const r = await fetch(`${base}${path}`, { method });
    return {
      status: r.status,
      type: r.headers.get('content-type'),
      text: await r.text(),
      allow: r.headers.get('allow'),
    };
  };

  it('/healthz is 200 while the process answers; /metrics is the exposition with its content type', async () => {
    assert.deepEqual(await get('/healthz'), {
      status: 200,
      type: 'text/plain; charset=utf-8',
      text: 'ok\n',
      allow: null,
    });
    const m = await get('/metrics');
    assert.equal(m.status, 200);
    assert.equal(m.type, h.contentType);
    assert.equal(m.text, await h.scrape());
    assert.equal((await get('/metrics', 'HEAD')).text, '');
  });

  it('/readyz is 200 when ready and 503 with the reason when not', async () => {
    assert.deepEqual(await get('/readyz'), {
      status: 200,
      type: 'text/plain; charset=utf-8',
      text: 'ready: fine\n',
      allow: null,
    });
    ready = { ready: false, reason: 'kernel drift: 1 difference (first: x)' };
    const r = await get('/readyz');
    assert.equal(r.status, 503);
    assert.equal(r.text, 'not ready: kernel drift: 1 difference (first: x)\n');
  });

  it('other methods 405, other paths 404', async () => {
    const post = await get('/metrics', 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.allow, 'GET, HEAD');
    assert.equal((await get('/v1/status')).status, 404);
    assert.equal((await get('/metricsx')).status, 404);
    assert.equal((await get('/metrics?x=1')).status, 200);
  });
});
