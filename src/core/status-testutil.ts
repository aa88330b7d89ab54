/** Status replies for unit tests of what reads the status (cli/health, status sections, topology, the path walk). */
import type { ClusterBody, StatusBody } from './admin-api.ts';

/** the clock of every fixture: ages are measured against it */
export const NOW = Date.parse('2026-03-01T12:00:00.000Z');
export const T0 = new Date(NOW - 3_600_000).toISOString();

export const CLUSTER: ClusterBody = {
  node: 'h1',
  nodeId: 'n1',
  synced: true,
  mtu: 1420,
  vxlanMtu: 1450,
  wgPort: 51820,
  peers: [],
  vxlanPeers: [],
  names: {},
  rejected: [],
  alarms: [],
  malformed: [],
  etcd: { tls: true, auth: 'certificate', reachable: true, latencyMs: 3, lease: 'alive', watch: 'connected' },
  allocations: {},
};

/** A healthy host with nothing on it, and `over` on top. */
export function healthy(over: Partial<StatusBody> = {}): StatusBody {
  return {
    version: '0.1.0',
    startedAt: T0,
    revision: 7,
    networks: [],
    endpoints: [],
    policies: [],
    policyCounters: {},
    guardCounters: {},
    pools: [],
    addresses: [],
    kernel: { inSync: true, problems: [] },
    reconciler: { reconciledRevision: 7, objects: {} },
    ...over,
  };
}
