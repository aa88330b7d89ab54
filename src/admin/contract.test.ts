/**
 * The admin contract (core/admin-api.ts) holds: the JSON Schemas published in docs/json/ are
 * the ones the contract generates, and replies built by the real services (over the in-memory
 * store and the fake dataplane) fit it exactly — nothing the contract lacks, nothing missing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import type { z } from 'zod';
import { JSON_SCHEMA_DIR, schemaFiles } from '../../packaging/json-schema.ts';
import { adminRequest } from '../cli/admin-client.ts';
import { forgetNode } from '../cluster/reclaim.ts';
import type { Cluster } from '../cluster/setup.ts';
import { CONTRACT, SCHEMA_VERSION, statusBody } from '../core/admin-api.ts';
import { ipamData, networkInput } from '../core/testing.ts';
import { createLogger, silentLogger } from '../obs/logger.ts';
import { createMetrics } from '../obs/metrics.ts';
import { clusterStatus } from '../service/cluster-status.ts';
import { IpamService } from '../service/ipam-service.ts';
import { PolicyService } from '../service/policy-service.ts';
import { StatusService } from '../service/status.ts';
import { stopTestServices, testEid, testNid, testService } from '../service/testing.ts';
import { MemoryStore } from '../store/memory.ts';
import { type AdminHandlers, buildAdminServer } from './server.ts';

afterEach(stopTestServices);

/** Fits the contract exactly: valid, and parsing (which strips unknown fields) changes nothing. */
function assertExactly(schema: z.ZodType, body: object, versioned = true): void {
  const sent: unknown = JSON.parse(JSON.stringify(versioned ? { schemaVersion: SCHEMA_VERSION, ...body } : body));
  const r = schema.safeParse(sent);
  assert.ok(r.success, r.success ? '' : JSON.stringify(r.error.issues.slice(0, 5)));
  assert.deepStrictEqual(r.data, sent, 'the reply has fields the contract does not name');
}

describe('admin contract: the published JSON Schemas', () => {
  it('docs/json/ holds exactly what the contract generates (npm run --silent json-schema)', () => {
    const files = schemaFiles();
    assert.deepEqual(readdirSync(JSON_SCHEMA_DIR).sort(), [...files.keys()].sort());
    for (const [name, text] of files) {
      assert.deepStrictEqual(
        JSON.parse(readFileSync(join(JSON_SCHEMA_DIR, name), 'utf8')),
        JSON.parse(text),
        `docs/json/${name} is stale: run npm run --silent json-schema`,
      );
    }
  });

  it('pins the version in every reply, and leaves readers free to meet fields they do not know', () => {
    const status = JSON.parse(readFileSync(join(JSON_SCHEMA_DIR, 'status.schema.json'), 'utf8'));
    assert.equal(status.properties.schemaVersion.const, SCHEMA_VERSION);
    assert.ok(status.required.includes('schemaVersion'));
    for (const text of schemaFiles().values()) assert.doesNotMatch(text, /"additionalProperties": false/);
  });
});

const NID = testNid('a');
const EID = testEid('b');
const netInput = networkInput({
  networkId: NID,
  ipv6: [ipamData('fd00:1::/64')],
  generic: { 'truss.ingress': 'tcp/80', 'truss.bandwidth': '10mbit' },
});
const PUBLISH = {
  'com.docker.network.endpoint.exposedports': [{ Proto: 6, Port: 80 }],
  'com.docker.network.portmap': [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 18080, HostPortEnd: 18080 }],
};

/** The daemon's services over one store, a network with a policy and a limit, one joined endpoint publishing a port. */
async function daemon() {
  const { store, repo, reconciler, svc } = testService();
  const ipam = new IpamService({ store, log: silentLogger, defaultPools: [] });
  const pool = await ipam.requestPool({
    addressSpace: 'TrussLocal',
    pool: '198.18.1.0/24',
    subPool: '',
    options: {},
    v6: false,
  });
  await ipam.requestAddress({
    poolId: pool.poolId,
    address: '',
    options: { RequestAddressType: 'com.docker.network.gateway' },
  });
  await ipam.requestAddress({ poolId: pool.poolId, address: '198.18.1.2', options: {} });
  await svc.createNetwork(netInput);
  await svc.createEndpoint({
    networkId: NID,
    endpointId: EID,
    address: '198.18.1.2/24',
    addressIpv6: 'fd00:1::2/64',
    options: PUBLISH,
  });
  await svc.join({ networkId: NID, endpointId: EID, sandboxKey: '/var/run/docker/netns/2', options: PUBLISH });
  await svc.programExternalConnectivity(NID, EID, PUBLISH);
  const status = new StatusService({
    repo,
    store,
    reconciler,
    version: 'test',
    startedAt: new Date(0).toISOString(),
    ownership: () => {
      const foreign = reconciler.foreign();
      return { stateId: '1111111111111111', adoptUnstamped: false, foreign: { count: foreign.length, links: foreign } };
    },
  });
  const policy = new PolicyService({ repo, reconciler, log: silentLogger, programTimeoutMs: 2000 });
  return { store, reconciler, status, policy };
}

describe('admin contract: real replies fit it exactly', () => {
  it('status and reconcile', async () => {
    const d = await daemon();
    await d.policy.set(NID, 'udp/53');
    const s = await d.status.status();
    assert.equal(s.endpoints[0]?.published?.ports.length, 2, 'the status has the parts under test');
    assert.equal(s.networks[0]?.bandwidth?.egress, 10e6);
    assert.ok(s.pools.length > 0 && s.addresses.length > 1 && s.policies.length === 1);
    assert.equal(s.errors, undefined, JSON.stringify(s.errors));
    assertExactly(CONTRACT.status, s);
    assertExactly(CONTRACT.reconcile, await d.status.reconcile());
  });

  it('policy show and set, metrics, cleanup --foreign, cluster forget', async () => {
    const d = await daemon();
    assertExactly(CONTRACT.policy, await d.policy.show(NID));
    assertExactly(CONTRACT.policy, await d.policy.set(NID, null));
    const metrics = createMetrics();
    try {
      assertExactly(CONTRACT.metrics, metrics.read());
    } finally {
      metrics.stop();
    }
    assertExactly(CONTRACT['cleanup-foreign'], await d.reconciler.cleanupForeign());
    assertExactly(CONTRACT['cluster-forget'], await forgetNode(new MemoryStore(), 'gone', 'me', false));
  });
});

describe('admin contract: the cluster section of status', () => {
  it('as service/cluster-status.ts builds it (a host with one WireGuard and one VXLAN peer)', async () => {
    const { repo } = testService();
    const cluster = {
      agent: {
        name: 'h1',
        self: 'n1',
        view: () => ({ nodes: [{ id: 'n2', name: 'h2', address: '198.18.255.2', wgPublicKey: 'k2', wgPort: 51820 }] }),
        malformed: () => [{ key: '/truss/v2/x', why: 'not JSON' }],
        allocations: () => ({ blue: { n1: { blocks: 1, claims: 2, member: true } } }),
        connection: () => ({ lease: 'alive', watch: 'connected', watchSince: '2026-01-01T00:00:00.000Z' }),
        lapsedPeers: () => ['n3'],
      },
      store: { revision: async () => 7 },
      mtu: { wireguard: 1420, vxlan: 1450 },
      listenPort: 51820,
      etcd: { tls: false, auth: 'none', warning: 'plaintext' },
    } as unknown as Cluster;
    const peer = { node: 'n2', publicKey: 'k2', endpoint: '198.18.255.2:51820', allowedIps: ['198.18.64.0/26'] };
    const section = await clusterStatus({
      cluster,
      repo,
      reconciler: {
        clusterDesired: () =>
          ({
            wireguard: { peers: [{ ...peer, keepaliveSeconds: 25 }] },
            vxlan: { peers: [{ node: 'n2', address: '198.18.255.2', mac: '02:00:00:00:00:02' }] },
            rejected: ['r'],
            alarms: [],
          }) as never,
      },
      dataplane: {
        readWireguardPeers: async () =>
          [{ publicKey: 'k2', latestHandshake: 1700000000, rxBytes: 10, txBytes: 20, allowedIps: [] }] as never,
      },
      claimGc: {
        status: () => ({
          orphans: [{ cluster: 'blue', kind: 'claim', address: '198.18.64.9', firstSeen: 'a', deadline: 'b' }],
          unclaimed: [],
          reclaimedClaims: 0,
          reclaimedClusters: 0,
        }),
      },
    });
    assert.equal(section.peers[0]?.name, 'h2');
    assert.deepEqual([section.peers[0]?.rxBytes, section.peers[0]?.txBytes], [10, 20]);
    assert.deepEqual([section.etcd.reachable, section.etcd.lease, section.etcd.watch], [true, 'alive', 'connected']);
    assertExactly(statusBody.shape.cluster.unwrap(), section, false);
  });
});

describe('admin contract: the server', () => {
  async function serve(status: AdminHandlers['status']) {
    const lines: string[] = [];
    const nope = async (): Promise<never> => {
      throw new Error('not in this test');
    };
    const server = buildAdminServer(
      {
        status,
        reconcile: nope,
        metrics: nope,
        resetMetrics: nope,
        showPolicy: nope,
        setPolicy: nope,
        rotateKey: nope,
        forgetNode: nope,
      },
      createLogger('error', (l) => lines.push(l)),
    );
    const dir = mkdtempSync(join(tmpdir(), 'truss-contract-'));
    const socket = join(dir, 'admin.sock');
    await new Promise<void>((r) => server.listen(socket, r));
    const close = async () => {
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    };
    return { socket, lines, close };
  }

  it('sends a status versioned, as built, without a log line', async () => {
    const d = await daemon();
    const built = await d.status.status();
    const s = await serve(async () => built);
    try {
      const reply = await adminRequest(s.socket, 'GET', '/v1/status');
      assert.deepStrictEqual(reply, JSON.parse(JSON.stringify({ schemaVersion: SCHEMA_VERSION, ...built })));
      assert.deepEqual(s.lines, []);
    } finally {
      await s.close();
    }
  });

  it('a reply outside the contract is a bug: logged, and still sent (status must not go dark)', async () => {
    const d = await daemon();
    const built = await d.status.status();
    const s = await serve(async () => ({ ...built, kernel: { inSync: 'yes', problems: [] } }) as never);
    try {
      const reply = await adminRequest(s.socket, 'GET', '/v1/status');
      assert.deepEqual((reply as { kernel: unknown }).kernel, { inSync: 'yes', problems: [] });
      assert.equal(s.lines.length, 1);
      assert.match(s.lines[0] ?? '', /admin reply outside the admin contract.*kernel\.inSync/);
    } finally {
      await s.close();
    }
  });
});
