import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatStatus } from '../cli/format.ts';
import type { ClusterBody } from '../core/admin-api.ts';
import { errors } from '../core/errors.ts';
import type { Store } from '../store/store.ts';
import type { IntentRepo } from './intent.ts';
import { type StatusDeps, StatusService } from './status.ts';

const NET = { id: 'a'.repeat(64), bridge: 'trb0', ipv4: [], ipv6: [], mtu: 1500 };
/** a cluster section with nothing in it */
const CLUSTER: ClusterBody = {
  node: 'h1',
  nodeId: 'h1',
  synced: true,
  mtu: 1420,
  vxlanMtu: 1370,
  wgPort: 51820,
  peers: [],
  vxlanPeers: [],
  names: {},
  rejected: [],
  alarms: [],
  malformed: [],
  etcd: { tls: true, auth: 'certificate' },
  allocations: {},
};

function service(over: Partial<StatusDeps['reconciler']> = {}, cluster?: StatusDeps['cluster']) {
  const repo = { snapshot: async () => ({ revision: 7, networks: [NET], endpoints: [], policies: [] }) };
  const store = {
    list: async () => ({ items: [{ key: 'k', value: '{"id":"TrussLocal/198.18.64.0/20"}' }], revision: 1 }),
  };
  const reconciler: StatusDeps['reconciler'] = {
    check: async () => [],
    status: () => ({}) as ReturnType<StatusDeps['reconciler']['status']>,
    reconcileNow: async () => ({}) as Awaited<ReturnType<StatusDeps['reconciler']['reconcileNow']>>,
    policyCounters: async () => ({}),
    guardCounters: async () => ({}),
    ...over,
  };
  return new StatusService({
    repo: repo as unknown as IntentRepo,
    store: store as unknown as Store,
    reconciler,
    version: 'test',
    startedAt: 'now',
    ...(cluster ? { cluster } : {}),
  });
}

describe('StatusService: never depends on a successful reconcile or kernel read', () => {
  it('a failing kernel check leaves everything else in status, with the error (was: HTTP 400, only the error)', async () => {
    const bad = errors.badOption('WireGuard device trwg0: allowed IP 198.18.64.64/26 is given to both x and y');
    const rejected = [
      'block 198.18.64.64/26 of node m overlaps block 198.18.64.64/26 of node v, claimed first: rejected',
    ];
    const s = await service({ check: async () => Promise.reject(bad) }, async () => ({
      ...CLUSTER,
      rejected,
      alarms: rejected,
    })).status();
    assert.equal(s.revision, 7);
    assert.deepEqual((s.networks as unknown[]).length, 1);
    assert.deepEqual(s.kernel, { inSync: false, problems: [] });
    assert.deepEqual(s.errors, [`kernel check: ${bad.message}`]);
    assert.deepEqual(s.cluster?.rejected, rejected);
    const text = formatStatus(s);
    assert.match(text, /NETWORKS \(1\)/);
    assert.match(text, /ERRORS: 1 part\(s\) of the status could not be read\n {2}- kernel check: .*given to both/);
    assert.match(
      text,
      /rejected: 1 cluster record\(s\) left out \(1 alarm\(s\)\)\n {2}! block 198\.18\.64\.64\/26 of node m/,
    );
  });

  it('a failing cluster section or counter read is reported the same way', async () => {
    const s = await service({ guardCounters: async () => Promise.reject(new Error('nft gone')) }, async () => {
      throw new Error('etcd away');
    }).status();
    assert.equal(s.cluster, undefined);
    assert.deepEqual((s.errors as string[]).sort(), ['anti-spoofing counters: nft gone', 'cluster: etcd away']);
    assert.equal((s.pools as unknown[]).length, 1);
  });
});

describe('StatusService: the brief reply (GET /v1/status?brief=1, human truss status)', () => {
  const POOL = 'TrussLocal/198.18.64.0/20';
  const records = {
    '/truss/v1/ipam/pools/': [{ key: 'p', value: JSON.stringify({ id: POOL, pool: '198.18.64.0/20' }) }],
    '/truss/v1/ipam/addrs/': ['198.18.64.1', '198.18.64.2', '198.18.64.3'].map((address) => ({
      key: address,
      value: JSON.stringify({ poolId: POOL, address, kind: 'endpoint' }),
    })),
  } as Record<string, { key: string; value: string }[]>;
  const objects = {
    firewall: { state: 'ok' as const, updatedAt: 't' },
    'veth/x': { state: 'ok' as const, updatedAt: 't' },
    'veth/y': { state: 'error' as const, updatedAt: 't', lastError: 'EBUSY' },
  };
  function brief() {
    const store = { list: async (prefix: string) => ({ items: records[prefix] ?? [], revision: 1 }) };
    return new StatusService({
      repo: {
        snapshot: async () => ({ revision: 7, networks: [NET], endpoints: [], policies: [] }),
      } as unknown as IntentRepo,
      store: store as unknown as Store,
      reconciler: {
        check: async () => [],
        status: () => ({ reconciledRevision: 7, scheduledPasses: 0, passRunning: false, objects }),
        reconcileNow: async () => ({}) as Awaited<ReturnType<StatusDeps['reconciler']['reconcileNow']>>,
        policyCounters: async () => ({}),
        guardCounters: async () => ({}),
      },
      version: 'test',
      startedAt: 'now',
    });
  }

  it('leaves out the addresses and the objects in state ok, says how many, and each pool counts its own', async () => {
    const s = await brief().status({ brief: true });
    assert.deepEqual(s.addresses, []);
    assert.deepEqual(Object.keys(s.reconciler.objects), ['veth/y']);
    assert.deepEqual(s.omitted, { addresses: 3, okObjects: 2 });
    assert.equal(s.pools[0]?.used, 3);
    const text = formatStatus(s, { now: 0 });
    assert.match(text, /IPAM POOLS \(1\) {2}ADDRESSES \(3\)/);
    assert.match(text, /TrussLocal\/198\.18\.64\.0\/20 +198\.18\.64\.0\/20 +3 +4094 +4091/);
    assert.match(text, /truss status --verbose lists the addresses/);
  });

  it('the full reply lists everything, with no omitted section', async () => {
    const s = await brief().status();
    assert.equal(s.addresses.length, 3);
    assert.equal(Object.keys(s.reconciler.objects).length, 3);
    assert.equal(s.omitted, undefined);
    assert.equal(s.pools[0]?.used, 3);
  });
});
