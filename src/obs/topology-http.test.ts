import assert from 'node:assert/strict';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { StatusBody } from '../core/admin-api.ts';
import { healthy } from '../core/status-testutil.ts';
import { findAll, hasClass, parseXml } from '../core/topology/xml-testutil.ts';
import { buildObservabilityServer, type ObservabilityHandlers } from './health-http.ts';
import { silentLogger } from './logger.ts';

const NET = 'f'.repeat(64);
const STATUS: StatusBody = healthy({
  startedAt: '2026-03-01T11:00:00.000Z',
  networks: [
    {
      id: NET,
      bridge: `trb${NET.slice(0, 12)}`,
      bridgeNamed: false,
      mtu: 1500,
      internal: false,
      nat: true,
      ipv4: [{ pool: '198.18.9.0/24', auxAddresses: {} }],
      ipv6: [],
      options: { 'com.example.note': '<b>&' },
    },
  ],
  reconciler: { reconciledRevision: 1, objects: {} },
});

const handlers = (status?: () => Promise<StatusBody>): ObservabilityHandlers => ({
  scrape: async () => '',
  contentType: 'text/plain',
  ready: async () => ({ ready: true, reason: 'fine' }),
  ...(status ? { status } : {}),
});

async function serve(h: ObservabilityHandlers): Promise<{ server: http.Server; base: string }> {
  const server = buildObservabilityServer(h, silentLogger);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('/topology and /topology.svg', () => {
  let withStatus: { server: http.Server; base: string };
  let without: { server: http.Server; base: string };
  before(async () => {
    withStatus = await serve(handlers(async () => STATUS));
    without = await serve(handlers());
  });
  after(async () => {
    for (const s of [withStatus, without]) {
      s.server.closeAllConnections();
      await new Promise((r) => s.server.close(r));
    }
  });

  it('/topology.svg is the picture of the status, well-formed XML', async () => {
    const r = await fetch(`${withStatus.base}/topology.svg`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'image/svg+xml; charset=utf-8');
    const svg = parseXml(await r.text());
    assert.equal(findAll(svg, hasClass('host')).length, 1);
    assert.deepEqual(
      findAll(svg, hasClass('network')).map((n) => n.attrs['data-network']),
      [NET],
    );
  });

  it('/topology is a page that reloads itself, runs nothing, and inlines the picture', async () => {
    const r = await fetch(`${withStatus.base}/topology`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(r.headers.get('content-security-policy'), "default-src 'none'; style-src 'unsafe-inline'");
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const page = await r.text();
    assert.match(page, /<meta http-equiv="refresh" content="10">/);
    const svg = /<svg[\s\S]*<\/svg>/.exec(page)?.[0];
    assert.ok(svg, 'the SVG is inline');
    assert.equal(findAll(parseXml(svg), hasClass('host')).length, 1);
    assert.equal((await fetch(`${withStatus.base}/topology`, { method: 'HEAD' })).status, 200);
  });

  it('without a status source there is no topology (404)', async () => {
    const r = await fetch(`${without.base}/topology`);
    assert.equal(r.status, 404);
    assert.doesNotMatch(await r.text(), /topology/);
  });

  it('a status that fails is a 500 with the reason', async () => {
    const failing = await serve(
      handlers(async () => {
        throw new Error('store closed');
      }),
    );
    try {
      const r = await fetch(`${failing.base}/topology`);
      assert.equal(r.status, 500);
      assert.match(await r.text(), /store closed/);
    } finally {
      failing.server.closeAllConnections();
      await new Promise((r) => failing.server.close(r));
    }
  });
});
