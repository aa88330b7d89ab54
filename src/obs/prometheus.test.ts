/**
 * The Prometheus exposition: what a scraper reads (the text parsed, never grepped), from the
 * events the daemon counts and from a status body read at scrape time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StatusBody } from '../core/admin-api.ts';
import { type Family, parseExposition, sampleSum, sampleValue } from './prom-text-testutil.ts';
import { createTrussMetrics, type TrussMetrics } from './prometheus.ts';

const N1 = `${'1'.repeat(12)}${'a'.repeat(52)}`;
const N2 = `${'2'.repeat(12)}${'b'.repeat(52)}`;
const E1 = 'e1'.repeat(32);
const E2 = 'e2'.repeat(32);
const E3 = 'e3'.repeat(32);

function network(id: string) {
  return {
    id,
    bridge: `trb${id.slice(0, 12)}`,
    bridgeNamed: false,
    mtu: 1500,
    internal: false,
    nat: true,
    ipv4: [],
    ipv6: [],
    options: {},
  };
}
function endpoint(id: string, networkId: string) {
  return { id, networkId, hostVeth: 'trv', peerVeth: 'trp', mac: '02:00:00:00:00:01', options: {} };
}

/** A status body as StatusService builds it: two networks, three endpoints, a drift, an object in error. */
function statusBody(over: Partial<StatusBody> = {}): StatusBody {
  return {
    version: '9.9.9',
    startedAt: '2025-01-01T00:00:00.000Z',
    revision: 7,
    networks: [network(N1), network(N2)],
    endpoints: [endpoint(E1, N1), endpoint(E2, N1), endpoint(E3, N2)],
    policies: [],
    policyCounters: { [E1]: { packets: 3, bytes: 180 }, [E2]: { packets: 2, bytes: 120 } },
    guardCounters: { mac: { packets: 4, bytes: 256 }, arp: { packets: 1, bytes: 42 } },
    pools: [
      {
        id: 'TrussLocal/198.18.10.0/24',
        addressSpace: 'TrussLocal',
        family: 4,
        pool: '198.18.10.0/24',
        dynamic: false,
      },
      { id: 'TrussLocal/fd00:1::/64', addressSpace: 'TrussLocal', family: 6, pool: 'fd00:1::/64', dynamic: false },
    ],
    addresses: [
      { poolId: 'TrussLocal/198.18.10.0/24', address: '198.18.10.1', kind: 'gateway' },
      { poolId: 'TrussLocal/198.18.10.0/24', address: '198.18.10.2', kind: 'endpoint', owner: E1 },
      { poolId: 'TrussLocal/198.18.10.0/24', address: '198.18.10.3', kind: 'endpoint', owner: E2 },
    ],
    kernel: { inSync: false, problems: ['bridge trb111111111111 is missing', 'nft table inet truss is missing'] },
    reconciler: {
      reconciledRevision: 7,
      objects: {
        [`bridge:trb${N1.slice(0, 12)}`]: { state: 'ok', updatedAt: 'x' },
        'shaper:trv1': { state: 'error', lastError: 'tc refused', code: 'EINVAL', updatedAt: 'x' },
        'shaper:trv2': { state: 'error', lastError: 'tc refused', code: 'EINVAL', updatedAt: 'x' },
        firewall: { state: 'ok', updatedAt: 'x' },
      },
    },
    cluster: {
      node: 'h1',
      nodeId: 'id1',
      synced: true,
      mtu: 1420,
      vxlanMtu: 1450,
      wgPort: 51820,
      peers: [
        { node: 'id2', name: 'h2', endpoint: '198.18.255.2:51820', allowedIps: [], latestHandshake: 1_000 },
        { node: 'id3', endpoint: '198.18.255.3:51820', allowedIps: [], latestHandshake: 0 },
        { node: 'id4', path: 'relayed' as const, via: 'id2', allowedIps: [], latestHandshake: 0 },
      ],
      vxlanPeers: [],
      names: {},
      rejected: [],
      alarms: [],
      malformed: [],
      etcd: { tls: false, auth: 'none' },
      allocations: {},
    },
    ...over,
  };
}

async function scrape(m: TrussMetrics): Promise<Map<string, Family>> {
  return parseExposition(await m.scrape());
}

describe('prometheus exposition', () => {
  it('names every family truss_, with HELP and TYPE, and counters _total; process metrics included', async () => {
    const m = createTrussMetrics({ cluster: true, version: '9.9.9' });
    m.readFrom({ status: async () => statusBody(), etcdConnected: async () => true });
    const families = await scrape(m);
    assert.ok(families.size > 30, `${families.size} families`);
    for (const f of families.values()) {
      assert.match(f.name, /^truss_[a-z0-9_]+$/, f.name);
      assert.ok(f.help.length > 0, `${f.name} has help`);
      if (f.type === 'counter') assert.match(f.name, /_total$/, f.name);
    }
    for (const name of [
      'truss_process_cpu_seconds_total',
      'truss_process_resident_memory_bytes',
      'truss_nodejs_heap_size_used_bytes',
    ]) {
      assert.ok(families.has(name), name);
    }
    assert.equal(sampleValue(families, 'truss_build_info', { version: '9.9.9' }), 1);
  });

  it('counts RPCs by method and outcome, with a latency histogram', async () => {
    const m = createTrussMetrics({ cluster: false, version: 'v', processMetrics: false });
    m.rpc({ method: 'NetworkDriver.CreateEndpoint', outcome: 'ok', seconds: 0.003 });
    m.rpc({ method: 'NetworkDriver.CreateEndpoint', outcome: 'ok', seconds: 0.2 });
    m.rpc({ method: 'NetworkDriver.CreateEndpoint', outcome: 'error', seconds: 20 });
    m.rpc({ method: 'unknown', outcome: 'error', seconds: 0 });
    const f = await scrape(m);
    assert.equal(f.get('truss_rpc_requests_total')?.type, 'counter');
    assert.equal(
      sampleValue(f, 'truss_rpc_requests_total', { method: 'NetworkDriver.CreateEndpoint', outcome: 'ok' }),
      2,
    );
    assert.equal(
      sampleValue(f, 'truss_rpc_requests_total', { method: 'NetworkDriver.CreateEndpoint', outcome: 'error' }),
      1,
    );
    assert.equal(sampleValue(f, 'truss_rpc_requests_total', { method: 'unknown', outcome: 'error' }), 1);
    assert.equal(f.get('truss_rpc_duration_seconds')?.type, 'histogram');
    const ok = { method: 'NetworkDriver.CreateEndpoint', outcome: 'ok' };
    assert.equal(sampleValue(f, 'truss_rpc_duration_seconds_count', ok), 2);
    assert.ok(Math.abs((sampleValue(f, 'truss_rpc_duration_seconds_sum', ok) ?? 0) - 0.203) < 1e-9);
    assert.equal(sampleValue(f, 'truss_rpc_duration_seconds_bucket', { ...ok, le: '0.005' }), 1);
    assert.equal(sampleValue(f, 'truss_rpc_duration_seconds_bucket', { ...ok, le: '0.25' }), 2);
    assert.equal(sampleValue(f, 'truss_rpc_duration_seconds_bucket', { ...ok, le: '+Inf' }), 2);
    const buckets = (f.get('truss_rpc_duration_seconds')?.samples ?? []).filter(
      (s) => s.name.endsWith('_bucket') && s.labels.outcome === 'ok',
    );
    for (let i = 1; i < buckets.length; i++) assert.ok((buckets[i]?.value ?? 0) >= (buckets[i - 1]?.value ?? 0));
  });

  it('counts reconcile passes, changes, failures and errors by mode, drift by kind; zeros from the start', async () => {
    const m = createTrussMetrics({ cluster: false, version: 'v', processMetrics: false });
    let f = await scrape(m);
    for (const mode of ['full', 'incremental']) {
      for (const name of [
        'truss_reconcile_passes_total',
        'truss_reconcile_failures_total',
        'truss_reconcile_pass_errors_total',
      ]) {
        assert.equal(sampleValue(f, name, { mode }), 0, `${name} ${mode}`);
      }
    }
    m.reconcile.pass({ full: true, changes: 5, failures: 1, durationMs: 40 });
    m.reconcile.pass({ full: false, changes: 2, failures: 0, durationMs: 3 });
    m.reconcile.pass({ full: false, changes: 1, failures: 0, durationMs: 2 });
    m.reconcile.passFailed(false);
    m.reconcile.drift('bridge', 1);
    m.reconcile.drift('firewall', 2);
    m.reconcile.drift('bridge', 1);
    f = await scrape(m);
    assert.equal(sampleValue(f, 'truss_reconcile_passes_total', { mode: 'full' }), 1);
    assert.equal(sampleValue(f, 'truss_reconcile_passes_total', { mode: 'incremental' }), 2);
    assert.equal(sampleValue(f, 'truss_reconcile_changes_total', { mode: 'full' }), 5);
    assert.equal(sampleValue(f, 'truss_reconcile_changes_total', { mode: 'incremental' }), 3);
    assert.equal(sampleValue(f, 'truss_reconcile_failures_total', { mode: 'full' }), 1);
    assert.equal(sampleValue(f, 'truss_reconcile_pass_errors_total', { mode: 'incremental' }), 1);
    assert.equal(sampleValue(f, 'truss_reconcile_pass_duration_seconds_count', { mode: 'incremental' }), 2);
    assert.equal(sampleValue(f, 'truss_reconcile_pass_duration_seconds_sum', { mode: 'full' }), 0.04);
    assert.equal(sampleValue(f, 'truss_reconcile_drift_total', { kind: 'bridge' }), 2);
    assert.equal(sampleValue(f, 'truss_reconcile_drift_total', { kind: 'firewall' }), 2);
    const last = sampleValue(f, 'truss_reconcile_last_pass_timestamp_seconds', { mode: 'full' }) ?? 0;
    assert.ok(Math.abs(last - Date.now() / 1000) < 60, `${last}`);
  });

  it('reads the state from the status body at scrape time', async () => {
    const m = createTrussMetrics({ cluster: true, version: 'v', processMetrics: false });
    let connected = true;
    m.readFrom({ status: async () => statusBody(), etcdConnected: async () => connected });
    const f = await scrape(m);
    const n1 = { network: N1.slice(0, 12) };
    const n2 = { network: N2.slice(0, 12) };
    assert.equal(sampleValue(f, 'truss_kernel_in_sync'), 0);
    assert.equal(sampleValue(f, 'truss_kernel_problems'), 2);
    assert.equal(sampleValue(f, 'truss_status_errors'), 0);
    assert.equal(sampleValue(f, 'truss_objects_in_error', { kind: 'shaper' }), 2);
    assert.equal(sampleValue(f, 'truss_objects_in_error', { kind: 'bridge' }), 0);
    assert.equal(sampleValue(f, 'truss_objects_in_error', { kind: 'firewall' }), 0);
    assert.equal(sampleValue(f, 'truss_networks'), 2);
    assert.equal(sampleValue(f, 'truss_endpoints', n1), 2);
    assert.equal(sampleValue(f, 'truss_endpoints', n2), 1);
    assert.equal(sampleValue(f, 'truss_policy_denied_packets_total', n1), 5);
    assert.equal(sampleValue(f, 'truss_policy_denied_bytes_total', n1), 300);
    assert.equal(sampleValue(f, 'truss_policy_denied_packets_total', n2), 0);
    assert.equal(sampleValue(f, 'truss_antispoof_dropped_packets_total', { reason: 'mac' }), 4);
    assert.equal(sampleValue(f, 'truss_antispoof_dropped_bytes_total', { reason: 'arp' }), 42);
    const v4 = { pool: '198.18.10.0/24', address_space: 'TrussLocal' };
    assert.equal(sampleValue(f, 'truss_ipam_pool_used_addresses', v4), 3);
    assert.equal(sampleValue(f, 'truss_ipam_pool_size_addresses', v4), 254);
    const v6 = { pool: 'fd00:1::/64', address_space: 'TrussLocal' };
    assert.equal(sampleValue(f, 'truss_ipam_pool_used_addresses', v6), 0);
    assert.equal(sampleValue(f, 'truss_ipam_pool_size_addresses', v6), 2 ** 64 - 1);
    assert.equal(sampleValue(f, 'truss_etcd_connected'), 1);
    assert.equal(sampleValue(f, 'truss_cluster_synced'), 1);
    assert.equal(sampleValue(f, 'truss_wireguard_peers'), 3);
    assert.equal(sampleValue(f, 'truss_wireguard_peers_without_handshake'), 1, 'a relayed peer needs no handshake');
    assert.equal(sampleValue(f, 'truss_wireguard_peer_paths', { path: 'direct' }), 2);
    assert.equal(sampleValue(f, 'truss_wireguard_peer_paths', { path: 'relayed' }), 1);
    const age = sampleValue(f, 'truss_wireguard_peer_handshake_age_seconds', { peer: 'h2' }) ?? 0;
    assert.ok(Math.abs(age - (Date.now() / 1000 - 1_000)) < 60, `${age}`);
    assert.equal(sampleSum(f, 'truss_wireguard_peer_handshake_age_seconds', { peer: 'id3' }), 0, 'never: no age');
    connected = false;
    assert.equal(sampleValue(await scrape(m), 'truss_etcd_connected'), 0);
  });

  it('a scrape replaces the state: what is gone leaves no series; an unreadable status says so', async () => {
    const m = createTrussMetrics({ cluster: false, version: 'v', processMetrics: false });
    let body: StatusBody | undefined = statusBody();
    m.readFrom({
      status: async () => {
        if (!body) throw new Error('store unavailable');
        return body;
      },
    });
    assert.equal(sampleValue(await scrape(m), 'truss_endpoints', { network: N2.slice(0, 12) }), 1);
    body = statusBody({
      networks: [network(N1)],
      endpoints: [endpoint(E1, N1)],
      kernel: { inSync: true, problems: [] },
      errors: ['anti-spoofing counters: nft failed'],
    });
    let f = await scrape(m);
    assert.equal(sampleValue(f, 'truss_endpoints', { network: N2.slice(0, 12) }), undefined);
    assert.equal(sampleValue(f, 'truss_policy_denied_packets_total', { network: N2.slice(0, 12) }), undefined);
    assert.equal(sampleValue(f, 'truss_endpoints', { network: N1.slice(0, 12) }), 1);
    assert.equal(sampleValue(f, 'truss_kernel_in_sync'), 1);
    assert.equal(sampleValue(f, 'truss_status_errors'), 1);
    assert.equal(f.has('truss_etcd_connected'), false, 'no cluster metrics on a single host');
    body = undefined;
    f = await scrape(m);
    assert.equal(sampleValue(f, 'truss_status_errors'), 1);
    assert.equal(sampleValue(f, 'truss_kernel_in_sync'), 0);
    assert.equal(sampleValue(f, 'truss_endpoints', { network: N1.slice(0, 12) }), undefined);
  });

  it('names across hosts: Docker API up, names known by source, DNS queries by result', async () => {
    const m = createTrussMetrics({ cluster: false, version: 'v', processMetrics: false });
    const names = (state: 'synced' | 'unreachable', answered: number): StatusBody['names'] => ({
      docker: { state, version: '28.5.2' },
      local: 3,
      remote: 5,
      dns: { networks: 1, upstreams: [], answered, forwarded: 7, failed: 1 },
    });
    let body = statusBody({ names: names('synced', 12) });
    m.readFrom({ status: async () => body });
    let f = await scrape(m);
    assert.equal(f.get('truss_dns_queries_total')?.type, 'counter');
    assert.equal(sampleValue(f, 'truss_docker_api_up'), 1);
    assert.equal(sampleValue(f, 'truss_names', { source: 'local' }), 3);
    assert.equal(sampleValue(f, 'truss_names', { source: 'remote' }), 5);
    assert.equal(sampleValue(f, 'truss_dns_queries_total', { result: 'answered' }), 12);
    assert.equal(sampleValue(f, 'truss_dns_queries_total', { result: 'forwarded' }), 7);
    assert.equal(sampleValue(f, 'truss_dns_queries_total', { result: 'failed' }), 1);
    body = statusBody({ names: names('unreachable', 20) });
    f = await scrape(m);
    assert.equal(sampleValue(f, 'truss_docker_api_up'), 0);
    assert.equal(
      sampleValue(f, 'truss_dns_queries_total', { result: 'answered' }),
      20,
      'the count, not a sum of scrapes',
    );
    body = statusBody();
    f = await scrape(m);
    assert.equal(sampleValue(f, 'truss_docker_api_up'), 0, 'a daemon without names');
    assert.equal(sampleValue(f, 'truss_names', { source: 'local' }), undefined);
    assert.equal(sampleValue(f, 'truss_dns_queries_total', { result: 'answered' }), undefined);
  });

  it('each daemon has its own registry', async () => {
    const a = createTrussMetrics({ cluster: false, version: 'v', processMetrics: false });
    const b = createTrussMetrics({ cluster: false, version: 'v', processMetrics: false });
    a.rpc({ method: 'Plugin.Activate', outcome: 'ok', seconds: 0.001 });
    assert.equal(sampleValue(await scrape(a), 'truss_rpc_requests_total', { method: 'Plugin.Activate' }), 1);
    assert.equal(sampleValue(await scrape(b), 'truss_rpc_requests_total', { method: 'Plugin.Activate' }), undefined);
    assert.match(a.contentType, /^text\/plain; version=0\.0\.4/);
  });
});

describe('the exposition parser (test utility)', () => {
  it('reads labels with escapes, special values and histogram suffixes', () => {
    const f = parseExposition(
      [
        '# HELP x_total A counter\\nwith a newline',
        '# TYPE x_total counter',
        'x_total{a="q\\"uote",b="back\\\\slash"} 3',
        '# HELP h Hist',
        '# TYPE h histogram',
        'h_bucket{le="+Inf"} 2',
        'h_sum 0.5',
        'h_count 2',
        '# HELP g G',
        '# TYPE g gauge',
        'g NaN',
        '',
      ].join('\n'),
    );
    assert.equal(f.get('x_total')?.help, 'A counter\nwith a newline');
    assert.equal(sampleValue(f, 'x_total', { a: 'q"uote', b: 'back\\slash' }), 3);
    assert.equal(sampleValue(f, 'h_bucket', { le: '+Inf' }), 2);
    assert.equal(sampleValue(f, 'h_count'), 2);
    assert.ok(Number.isNaN(sampleValue(f, 'g')));
  });

  it('refuses what a scraper would refuse', () => {
    assert.throws(() => parseExposition('x 1\n'), /no declared family/);
    assert.throws(() => parseExposition('# HELP x X\n# TYPE x gauge\nx one\n'), /not a sample|not a number/);
    assert.throws(() => parseExposition('# HELP x X\n# TYPE x gauge\nx{a="1",a="2"} 1\n'), /label a twice/);
    assert.throws(() => parseExposition('# HELP x X\n# TYPE x gauge\nx{a=1} 1\n'), /malformed labels/);
    assert.throws(() => parseExposition('# TYPE x gauge\n'), /before its # HELP/);
  });
});
