/**
 * The daemon's observability as wired (daemon.ts): RPCs through its own plugin server, passes
 * of its own reconciler, state from its own status, and readiness, all read where an operator
 * reads them, the admin socket's /metrics and /readyz (next to the JSON /v1/metrics).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from './config.ts';
import { bridgeName } from './core/naming.ts';
import { buildDaemon, type Daemon } from './daemon.ts';
import { FakeDataplane } from './dataplane/fake/fake-dataplane.ts';
import { silentLogger } from './obs/logger.ts';
import { parseExposition, sampleValue } from './obs/prom-text-testutil.ts';
import { MemoryStore } from './store/memory.ts';

const NID = 'c'.repeat(64);

function request(socketPath: string, method: string, path: string, body = '') {
  return new Promise<{ status: number; type: string; text: string }>((resolve, reject) => {
    const req = http.request(
      { socketPath, method, path, headers: { 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('daemon observability (memory store, fake kernel)', () => {
  let dir: string;
  let d: Daemon;
  let dp: FakeDataplane;
  const plugin = () => join(dir, 'plugin.sock');
  const admin = () => join(dir, 'admin.sock');
  const scrape = async () => {
    const r = await request(admin(), 'GET', '/metrics');
    assert.equal(r.status, 200, r.text);
    return parseExposition(r.text);
  };
  const rpc = (name: string, body: object | '') =>
    request(plugin(), 'POST', `/${name}`, body === '' ? '' : `${JSON.stringify(body)}\n`);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'truss-obs-'));
    dp = new FakeDataplane();
    const config = loadConfig(['--resync-seconds', '3600', '--state-dir', dir], {});
    d = await buildDaemon(config, { store: new MemoryStore(), dataplane: dp, log: silentLogger, stamps: false });
    await new Promise<void>((r) => d.admin.listen(admin(), r));
  });
  after(async () => {
    await d.stop();
    for (const s of [d.plugin, d.admin]) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('is not ready before it serves dockerd; ready once serving after the start-up pass', async () => {
    const early = await request(admin(), 'GET', '/readyz');
    assert.equal(early.status, 503);
    assert.match(early.text, /^not ready: not serving dockerd/);
    assert.equal((await request(admin(), 'GET', '/healthz')).status, 200);
    await new Promise<void>((r) => d.plugin.listen(plugin(), r));
    d.start();
    await d.reconciler.reconcileNow();
    const ready = await request(admin(), 'GET', '/readyz');
    assert.deepEqual([ready.status, ready.text], [200, 'ready: serving; the kernel matches the intent\n']);
  });

  it('counts the RPCs its plugin server answers and the passes they cause; shows the network', async () => {
    const before = await scrape();
    const incremental = sampleValue(before, 'truss_reconcile_passes_total', { mode: 'incremental' }) ?? 0;
    assert.equal((await rpc('NetworkDriver.GetCapabilities', '')).status, 200);
    const created = await rpc('NetworkDriver.CreateNetwork', {
      NetworkID: NID,
      Options: { 'com.docker.network.generic': {} },
      IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '198.18.0.0/24', Gateway: '198.18.0.1/24' }],
      IPv6Data: [],
    });
    assert.equal(created.status, 200, created.text);
    assert.equal((await rpc('NetworkDriver.CreateNetwork', '')).status, 500);
    const f = await scrape();
    const ok = (method: string, outcome = 'ok') => sampleValue(f, 'truss_rpc_requests_total', { method, outcome });
    assert.equal(ok('NetworkDriver.GetCapabilities'), 1);
    assert.equal(ok('NetworkDriver.CreateNetwork'), 1);
    assert.equal(ok('NetworkDriver.CreateNetwork', 'error'), 1);
    assert.equal(
      sampleValue(f, 'truss_rpc_duration_seconds_count', { method: 'NetworkDriver.CreateNetwork', outcome: 'ok' }),
      1,
    );
    assert.ok((sampleValue(f, 'truss_reconcile_passes_total', { mode: 'incremental' }) ?? 0) > incremental);
    assert.equal(sampleValue(f, 'truss_networks'), 1);
    assert.equal(sampleValue(f, 'truss_endpoints', { network: NID.slice(0, 12) }), 0);
    assert.equal(sampleValue(f, 'truss_kernel_in_sync'), 1);
    assert.ok(f.has('truss_process_cpu_seconds_total'));
  });

  it('/readyz is 503 during drift and 200 after truss reconcile; the drift is counted by kind', async () => {
    dp.deleteBehindBack(bridgeName(NID));
    const drift = await request(admin(), 'GET', '/readyz');
    assert.equal(drift.status, 503);
    assert.match(drift.text, /^not ready: kernel drift: \d+ difference/);
    assert.equal(sampleValue(await scrape(), 'truss_kernel_in_sync'), 0);
    const pass = await d.status.reconcile();
    assert.equal(pass.kernel.inSync, true);
    assert.equal((await request(admin(), 'GET', '/readyz')).status, 200);
    const f = await scrape();
    assert.ok((sampleValue(f, 'truss_reconcile_drift_total', { kind: 'bridge' }) ?? 0) >= 1);
    assert.equal(sampleValue(f, 'truss_kernel_in_sync'), 1);
  });

  it('keeps the JSON /v1/metrics', async () => {
    const r = await request(admin(), 'GET', '/v1/metrics');
    assert.equal(r.status, 200);
    assert.equal(r.type, 'application/json');
    const body = JSON.parse(r.text) as { schemaVersion: number; pid: number };
    assert.deepEqual([body.schemaVersion, body.pid], [1, process.pid]);
  });
});
