/**
 * Prometheus metrics and health end to end (docs/metrics.md): truss started as the docs tell
 * users, with `--metrics-address 127.0.0.1:PORT`, inside a simulated host with its own dockerd;
 * scraped over HTTP from the host's network namespace (curl) while containers start and stop.
 * The exposition is parsed as a scraper parses it. /readyz is 503 during a forced drift (truss's
 * nft table deleted by hand) and 200 after `truss reconcile`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Family, parseExposition, sampleSum, sampleValue } from '../src/obs/prom-text-testutil.ts';
import { containerIp, removeContainers, runContainer } from './harness/containers.ts';
import { type Host, startHost } from './harness/host.ts';
import { tcpConnect } from './harness/traffic.ts';
import { trussQuiet } from './harness/truss.ts';
import { waitFor } from './harness/wait.ts';

const ADDRESS = '127.0.0.1:9733';
/** no periodic full pass during the run: drift stays until the test asks for repair */
const TRUSS_OPTS = {
  defaultPools: '198.18.128.0/17:24',
  extraArgs: ['--metrics-address', ADDRESS, '--resync-seconds', '3600'],
} as const;

let host: Host;

/** GET over HTTP from inside the host: status and body. */
async function get(path: string): Promise<{ status: number; body: string }> {
  const r = await host.exec(['curl', '-sS', '--max-time', '15', '-w', '\n%{http_code}', `http://${ADDRESS}${path}`]);
  assert.equal(r.code, 0, `curl ${path}: ${r.stderr}`);
  const cut = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut) };
}

async function scrape(): Promise<Map<string, Family>> {
  const r = await get('/metrics');
  assert.equal(r.status, 200, r.body);
  return parseExposition(r.body);
}

const rpcs = (f: Map<string, Family>, method: string) =>
  sampleValue(f, 'truss_rpc_requests_total', { method, outcome: 'ok' }) ?? 0;

describe('metrics and health over --metrics-address', { timeout: 10 * 60_000 }, () => {
  let nid = '';
  before(async () => {
    host = await startHost('met');
    await host.startTruss(TRUSS_OPTS);
    const r = await host.docker([
      'network',
      'create',
      '-d',
      'truss',
      '--ipam-driver',
      'truss',
      '--subnet',
      '198.18.40.0/24',
      '-o',
      'truss.ingress=tcp/80',
      'm1',
    ]);
    assert.equal(r.code, 0, r.stderr);
    nid = (await host.docker(['network', 'inspect', '-f', '{{.Id}}', 'm1'])).stdout.trim().slice(0, 12);
  });

  after(async () => {
    await host?.stop();
  });

  it('1. /healthz is 200; /readyz turns 200 once the kernel matches the intent', async () => {
    assert.deepEqual(await get('/healthz'), { status: 200, body: 'ok\n' });
    await waitFor(async () => (await get('/readyz')).status === 200, 30_000, { what: '/readyz 200' });
    assert.equal((await get('/readyz')).body, 'ready: serving; the kernel matches the intent\n');
    assert.equal((await get('/nope')).status, 404);
  });

  it('2. counters move as containers start and stop; policy denials are counted for the network', async () => {
    const s0 = await scrape();
    assert.equal(sampleValue(s0, 'truss_networks'), 1);
    assert.equal(sampleValue(s0, 'truss_endpoints', { network: nid }), 0);
    const pool = { pool: '198.18.40.0/24' };
    assert.equal(sampleValue(s0, 'truss_ipam_pool_used_addresses', pool), 1, 'the gateway');
    assert.equal(sampleValue(s0, 'truss_ipam_pool_size_addresses', pool), 254);
    assert.ok(rpcs(s0, 'NetworkDriver.CreateNetwork') >= 1);

    await runContainer(host, { name: 'ma', network: 'm1' });
    await runContainer(host, { name: 'mb', network: 'm1' });
    const s1 = await scrape();
    for (const m of ['IpamDriver.RequestAddress', 'NetworkDriver.CreateEndpoint', 'NetworkDriver.Join']) {
      assert.equal(rpcs(s1, m) - rpcs(s0, m), 2, m);
    }
    const count = (f: Map<string, Family>) =>
      sampleValue(f, 'truss_rpc_duration_seconds_count', { method: 'NetworkDriver.Join', outcome: 'ok' }) ?? 0;
    assert.equal(count(s1) - count(s0), 2, 'the latency histogram saw both joins');
    assert.equal(sampleValue(s1, 'truss_endpoints', { network: nid }), 2);
    assert.equal(sampleValue(s1, 'truss_ipam_pool_used_addresses', pool), 3);
    const passes = (f: Map<string, Family>) => sampleSum(f, 'truss_reconcile_passes_total');
    assert.ok(passes(s1) > passes(s0), 'the joins ran reconcile passes');
    assert.equal(sampleSum(s1, 'truss_objects_in_error'), 0);
    assert.equal(sampleValue(s1, 'truss_kernel_in_sync'), 1);

    // port 7000 is not in truss.ingress=tcp/80: the SYN is dropped and counted
    const denied = (f: Map<string, Family>) =>
      sampleValue(f, 'truss_policy_denied_packets_total', { network: nid }) ?? 0;
    const r = await tcpConnect(host, 'ma', await containerIp(host, 'mb', 'm1'), 7000, 2);
    assert.equal(r.ok, false, 'the policy blocks port 7000');
    const s2 = await scrape();
    assert.ok(denied(s2) > denied(s1), `denied packets ${denied(s1)} -> ${denied(s2)}`);

    await removeContainers(host, ['ma', 'mb']);
    const s3 = await scrape();
    for (const m of ['NetworkDriver.Leave', 'NetworkDriver.DeleteEndpoint', 'IpamDriver.ReleaseAddress']) {
      assert.equal(rpcs(s3, m) - rpcs(s2, m), 2, m);
    }
    assert.equal(sampleValue(s3, 'truss_endpoints', { network: nid }), 0);
    assert.equal(sampleValue(s3, 'truss_ipam_pool_used_addresses', pool), 1);
  });

  it('3. /readyz is 503 during a forced drift and 200 after truss reconcile; the drift is counted', async () => {
    await trussQuiet(() => host.trussStatus()); // no pass may repair it before /readyz reads it
    const before = await scrape();
    assert.equal((await host.exec(['nft', 'delete', 'table', 'inet', 'truss'])).code, 0);
    const drift = await get('/readyz');
    assert.equal(drift.status, 503, drift.body);
    assert.match(drift.body, /^not ready: kernel drift: \d+ difference/);
    assert.equal(sampleValue(await scrape(), 'truss_kernel_in_sync'), 0);
    const r = await host.truss.cli(['reconcile', '--state-dir', host.stateDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await get('/readyz')).status, 200);
    const after = await scrape();
    assert.equal(sampleValue(after, 'truss_kernel_in_sync'), 1);
    const full = (f: Map<string, Family>) => sampleValue(f, 'truss_reconcile_passes_total', { mode: 'full' }) ?? 0;
    assert.ok(full(after) > full(before), 'truss reconcile ran a full pass');
    assert.ok(
      sampleSum(after, 'truss_reconcile_drift_total') > sampleSum(before, 'truss_reconcile_drift_total'),
      'the full pass counted the drift it repaired',
    );
  });
});
