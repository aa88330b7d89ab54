/**
 * The admin API contract: the request and reply bodies of `<state-dir>/admin.sock`, which are
 * also what every `truss ... --json` prints. One set of zod schemas: the daemon's handlers are
 * typed by them and admin/server.ts checks each reply against them; the CLI decodes replies
 * with them (cli/admin-client.ts); docs/json/*.schema.json is generated from them
 * (scripts/admin-json-schema.ts, kept current by admin-api.test.ts).
 *
 * Versioning (docs/reference.md#the---json-contract): every reply and every --json output
 * carries `schemaVersion`. Adding a field or a route keeps the version, so readers ignore
 * fields they do not know; removing, renaming or retyping a field bumps it. Version 1 is the
 * shape the admin API had before it was versioned, so a reply without `schemaVersion` is 1.
 *
 * These are views, not the store's records (core/model.ts): a field added to a record reaches
 * the contract only by adding it here, and parsing a reply strips what the contract lacks.
 * Lives in core because daemon services, the admin server and the CLI all read it; zod does
 * no I/O.
 */
import { z } from 'zod';
import {
  type DoctorBody,
  doctorBody,
  type PathBody,
  type PathRequest,
  pathBody,
  pathRequest,
} from './admin-api-doctor.ts';

export const SCHEMA_VERSION = 1;

/**
 * What the daemon builds: readonly all the way down (it fills replies from readonly domain
 * values); an optional field may be set to undefined (JSON leaves it out).
 */
export type Built<S extends z.ZodType> = DeepReadonly<z.output<S>, false>;
/** What a reader gets from parsing: an optional field is absent, never undefined. */
export type View<S extends z.ZodType> = DeepReadonly<z.output<S>, true>;
type DeepReadonly<T, Exact extends boolean> = T extends (infer E)[]
  ? readonly DeepReadonly<E, Exact>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<Exact extends true ? Exclude<T[K], undefined> : T[K], Exact> }
    : T;

/** safeParse, typed as the View (one cast for all readers, see View). */
export function parseView<S extends z.ZodType>(
  schema: S,
  value: unknown,
): { readonly success: true; readonly data: View<S> } | { readonly success: false; readonly error: z.ZodError } {
  // why the cast: zod types an optional field `T | undefined`, which exactOptionalPropertyTypes
  // keeps apart from `?: T`; parsing leaves an absent field absent, so the View type is exact
  return schema.safeParse(value) as
    | { readonly success: true; readonly data: View<S> }
    | { readonly success: false; readonly error: z.ZodError };
}

const version = z.literal(SCHEMA_VERSION).describe('the contract version: additive changes keep it');
/** A reply as sent: its body plus `schemaVersion` (admin/server.ts adds it). */
const versioned = <S extends z.ZodObject>(body: S) => body.extend({ schemaVersion: version });
const counter = z.object({ packets: z.number(), bytes: z.number() });
const family = z.union([z.literal(4), z.literal(6)]);
const bandwidth = z
  .object({ egress: z.number().optional(), ingress: z.number().optional() })
  .describe('bit/s; absent = unlimited');
const peerSelector = z
  .union([
    z.object({ by: z.literal('name'), glob: z.string() }),
    z.object({
      by: z.literal('label'),
      key: z.string(),
      value: z.string().optional().describe('absent: any container carrying the key'),
    }),
  ])
  .describe('sources by container: a name glob or a label (core/names)');
const ingressRule = z.object({
  proto: z.enum(['tcp', 'udp', 'icmp']),
  ports: z.object({ from: z.number(), to: z.number() }).optional(),
  source: z.string().optional().describe('canonical CIDR; absent (and no peer) = any source'),
  peer: peerSelector.optional().describe('never together with source'),
});
const ingressPolicy = z.array(ingressRule).describe('an allow-list; [] admits nothing new (none)');

// ---------- GET /v1/status ----------

const ipamData = z.object({
  pool: z.string(),
  gateway: z.string().optional(),
  auxAddresses: z.record(z.string(), z.string()),
});
export const networkView = z.object({
  id: z.string(),
  bridge: z.string(),
  bridgeNamed: z.boolean(),
  mtu: z.number(),
  internal: z.boolean(),
  nat: z.boolean(),
  ipv4: z.array(ipamData),
  ipv6: z.array(ipamData),
  options: z.record(z.string(), z.string()).describe('the -o map as Docker sent it'),
  ingress: ingressPolicy.optional(),
  cluster: z.object({ name: z.string(), encrypt: z.boolean() }).optional(),
  egressVia: z.array(z.string()).optional(),
  bandwidth: bandwidth.optional(),
  mode: z.literal('routed').optional().describe('truss.mode=routed: no bridge (absent: bridge mode)'),
});
const portProto = z.enum(['tcp', 'udp', 'sctp']);
const publication = z.object({
  request: z.array(
    z.object({
      proto: portProto,
      port: z.number(),
      hostIp: z.string(),
      hostPortFirst: z.number(),
      hostPortLast: z.number(),
    }),
  ),
  ipv4Only: z.literal(true).optional(),
  ports: z.array(
    z.object({
      family,
      proto: portProto,
      hostIp: z.string().optional(),
      hostPort: z.number(),
      port: z.number(),
    }),
  ),
});
export const endpointView = z.object({
  networkId: z.string(),
  id: z.string(),
  hostVeth: z.string(),
  peerVeth: z.string(),
  mac: z.string(),
  ipv4: z.string().optional(),
  ipv6: z.string().optional(),
  options: z.record(z.string(), z.string()),
  ingress: ingressPolicy.optional(),
  bandwidth: bandwidth.optional(),
  sandboxKey: z.string().optional().describe('set once Docker joined a container'),
  published: publication.optional(),
});
const poolView = z.object({
  id: z.string(),
  addressSpace: z.string(),
  family,
  pool: z.string(),
  subPool: z.string().optional(),
  dynamic: z.boolean(),
  cursor: z.string().optional(),
  used: z.number().optional().describe('addresses allocated from it (absent from a daemon before this field)'),
});
const addressView = z.object({
  poolId: z.string(),
  address: z.string(),
  kind: z.enum(['gateway', 'aux', 'endpoint', 'host']),
  owner: z.string().optional(),
});
const kernelView = z.object({
  inSync: z.boolean(),
  problems: z.array(z.string()),
  /**
   * When the oldest kernel listing this verdict rests on was made, when it rests on an earlier one:
   * the kernel announced no change of what it covers since (dataplane/linux/kernel-watch.ts).
   * Absent: listed for this reply.
   */
  lookedAt: z.string().optional(),
});
const passView = z.object({
  full: z.boolean(),
  revision: z.number(),
  changes: z.number(),
  failures: z.number(),
  durationMs: z.number(),
  at: z.string().optional().describe('when it ended (ISO 8601)'),
  failed: z.array(z.string()).optional().describe('the objects (reconciler.objects keys) that failed in it'),
});
const reconcilerView = z.object({
  reconciledRevision: z.number(),
  lastPass: passView.optional(),
  firstPass: passView.optional(),
  /** full passes scheduled after dockerd's Plugin.Activate, not run yet */
  scheduledPasses: z.number().optional(),
  /** a pass is running or queued */
  passRunning: z.boolean().optional(),
  passError: z
    .object({ error: z.string(), at: z.string() })
    .optional()
    .describe('the last pass could not run at all (the stored intent could not be read)'),
  objects: z.record(
    z.string(),
    z.object({
      state: z.enum(['ok', 'error']),
      lastError: z.string().optional(),
      code: z.string().optional(),
      updatedAt: z.string().describe('its last attempt'),
      since: z.string().optional().describe('error: when its run of failures began'),
    }),
  ),
});
const linkView = z.object({
  name: z.string(),
  kind: z.string(),
  id: z.string().describe('the Docker network or endpoint id in its mark'),
  state: z.string().optional().describe('the state id in its mark; absent = unstamped'),
});
export const ownershipView = z.object({
  stateId: z.string(),
  adoptUnstamped: z.boolean(),
  foreign: z.object({ count: z.number(), links: z.array(linkView), fix: z.string().optional() }),
});
const allocation = z.object({ blocks: z.number(), claims: z.number(), member: z.boolean() });
export const clusterView = z.object({
  node: z.string().describe("this host's display name"),
  nodeId: z.string().describe("this host's node id (what truss cluster forget takes)"),
  synced: z.boolean(),
  mtu: z.number(),
  vxlanMtu: z.number(),
  wgPort: z.number(),
  wireguard: z
    .string()
    .optional()
    .describe('which WireGuard runs: kernel, or which wireguard-go (version, path, why); absent: no device made yet'),
  peers: z.array(
    z.object({
      node: z.string(),
      name: z.string().optional(),
      endpoint: z
        .string()
        .optional()
        .describe("where its packets go (the device's, which WireGuard learns from the peer); absent: not known yet"),
      path: z
        .enum(['direct', 'learned', 'punched', 'relayed', 'unreachable'])
        .optional()
        .describe(
          'direct: dialled; learned: behind a NAT, it dials this host; punched: both behind NATs, hole punched; relayed: through `via`; unreachable: both behind NATs and no relay',
        ),
      via: z.string().optional().describe('relayed: the relay node id'),
      allowedIps: z.array(z.string()),
      latestHandshake: z.number().describe('s since the epoch, 0 = never'),
      rxBytes: z.number().optional().describe('received from it (absent: not on the WireGuard device)'),
      txBytes: z.number().optional(),
    }),
  ),
  vxlanPeers: z.array(
    z.object({ node: z.string(), name: z.string().optional(), address: z.string(), mac: z.string() }),
  ),
  reach: z
    .object({
      address: z.string().describe('the advertised (underlay) address'),
      publicEndpoint: z.string().optional().describe('--public-endpoint'),
      relay: z.boolean().describe('--relay'),
      nat: z
        .enum(['independent', 'dependent', 'unknown'])
        .optional()
        .describe(
          'learnt: behind a NAT that maps the same outside endpoint towards every host (independent), another per host (dependent); absent: not behind a NAT as far as known',
        ),
      seenAs: z.array(z.string()).optional().describe('the endpoints other hosts see this host at'),
    })
    .optional(),
  names: z.record(z.string(), z.string()).describe('node id -> display name of every registered host'),
  lapsed: z
    .array(z.string())
    .optional()
    .describe('node ids of peers whose etcd lease lapsed, kept programmed while they hold blocks (a grace period)'),
  rejected: z.array(z.string()),
  alarms: z.array(z.string()),
  malformed: z.array(z.object({ key: z.string(), why: z.string() })),
  etcd: z.object({
    tls: z.boolean(),
    auth: z.enum(['certificate', 'password', 'none']),
    user: z.string().optional(),
    warning: z.string().optional(),
    reachable: z.boolean().optional().describe('it answered a read of its revision just now (within 2 s)'),
    error: z.string().optional().describe('why it did not'),
    latencyMs: z.number().optional(),
    lease: z
      .enum(['alive', 'lost', 'revoked', 'none'])
      .optional()
      .describe("this host's presence lease: lost = no keepalive for its TTL − 2 s; none = not registered"),
    watch: z.enum(['connected', 'disconnected', 'none']).optional().describe('the watch of the cluster records'),
    watchError: z.string().optional(),
    watchSince: z.string().optional(),
  }),
  allocations: z.record(z.string(), z.record(z.string(), allocation)).describe('cluster -> node id -> held'),
  hostAddresses: z
    .array(z.object({ cluster: z.string(), dev: z.string(), address: z.string() }))
    .optional()
    .describe(
      "this host's own address on each cluster network: the source of what it sends to other hosts' containers",
    ),
  reclaim: z
    .object({
      orphans: z.array(
        z.object({
          cluster: z.string(),
          kind: z.string(),
          address: z.string().optional(),
          firstSeen: z.string(),
          deadline: z.string().optional().describe('released by the first pass after it'),
        }),
      ),
      unclaimed: z.array(z.object({ cluster: z.string(), address: z.string(), holder: z.string().optional() })),
      reclaimedClaims: z.number(),
      reclaimedClusters: z.number(),
      lastPass: z.string().optional(),
      lastError: z.string().optional(),
    })
    .optional(),
});
/** Names across hosts (issue 16): where names come from, how many are known, truss DNS. */
export const namesView = z.object({
  docker: z.object({
    state: z.enum(['off', 'connecting', 'synced', 'unreachable']).describe("the follower of Docker's API"),
    reason: z.string().optional().describe('why it is not synced, and the fix'),
    version: z.string().optional().describe("dockerd's version, as last read"),
  }),
  local: z.number().describe("this host's endpoints with a known container"),
  remote: z.number().describe("other hosts' named endpoints (cluster networks)"),
  clusterSynced: z.boolean().optional().describe("the other hosts' names were read once (cluster mode)"),
  dns: z.object({
    networks: z.number().describe('truss.dns networks on this host'),
    upstreams: z
      .array(z.object({ address: z.string(), port: z.number() }))
      .describe('redirected, with responder ports'),
    answered: z.number(),
    forwarded: z.number(),
    failed: z.number(),
    warning: z.string().optional().describe('why containers may not resolve truss names here, and the fix'),
  }),
});
export const statusBody = z.object({
  version: z.string(),
  startedAt: z.string(),
  revision: z.number().optional().describe('absent when the stored intent could not be read'),
  networks: z.array(networkView),
  endpoints: z.array(endpointView),
  policies: z.array(z.object({ networkId: z.string(), ingress: ingressPolicy.nullable() })),
  policyCounters: z.record(z.string(), counter).describe('endpoint id -> what its port policy dropped'),
  guardCounters: z.record(z.string(), counter).describe('reason -> what anti-spoofing dropped'),
  pools: z.array(poolView),
  addresses: z.array(addressView),
  kernel: kernelView,
  reconciler: reconcilerView,
  ownership: ownershipView.optional(),
  cluster: clusterView.optional().describe('only with a cluster store (etcd)'),
  names: namesView.optional().describe('names across hosts: absent in a daemon without them'),
  orphans: z
    .array(
      z.object({
        networkId: z.string(),
        endpointId: z.string(),
        reason: z.string(),
        since: z.string(),
        deadline: z.string().describe('reclaimed by the first full pass after it'),
        held: z.literal(true).optional().describe('its sandbox is still a network namespace: kept'),
      }),
    )
    .optional()
    .describe('endpoints that look orphaned, waiting for the GC grace period'),
  errors: z.array(z.string()).optional().describe('the parts that could not be read (the rest is shown)'),
  omitted: z
    .object({
      addresses: z.number().describe('IPAM addresses not listed (each pool says how many it has: used)'),
      okObjects: z.number().describe('reconciler objects in state ok not listed (those in error are)'),
    })
    .optional()
    .describe('only in the brief reply (GET /v1/status?brief=1): what it leaves out'),
});
export type StatusBody = Built<typeof statusBody>;
/** What `truss policy` reads of the status: the network ids (the rest may be any shape). */
export const statusNetworkIds = z.object({ networks: z.array(networkView.pick({ id: true })) });
export type StatusView = View<typeof statusBody>;
export type OwnershipBody = Built<typeof ownershipView>;
export type OwnershipView = View<typeof ownershipView>;
export type ClusterBody = Built<typeof clusterView>;
export type ClusterView = View<typeof clusterView>;

// ---------- POST /v1/reconcile, metrics ----------

export const reconcileBody = z.object({
  pass: passView.optional().describe('absent only when no pass could run (the daemon is stopping)'),
  kernel: kernelView,
});
export type ReconcileBody = Built<typeof reconcileBody>;

export const metricsBody = z.object({
  pid: z.number(),
  uptimeMs: z.number(),
  memory: z.object({ rssBytes: z.number(), heapUsedBytes: z.number(), externalBytes: z.number() }),
  eventLoopDelay: z
    .object({ sinceMs: z.number(), p50: z.number(), p99: z.number(), max: z.number(), mean: z.number() })
    .describe('ms beyond the 10 ms sampling interval, since the window started'),
});
export type MetricsBody = Built<typeof metricsBody>;
export type MetricsView = View<typeof metricsBody>;

// ---------- /v1/networks/{id}/policy ----------

export const policyEndpointView = z.object({
  endpointId: z.string(),
  addresses: z.array(z.string()),
  ingress: z.string().nullable().describe('the policy in force for it (canonical text), null = open'),
  override: z.boolean().describe("its own truss.ingress replaces the network's"),
  joined: z.boolean().describe('false until Docker joins a container: only joined endpoints have rules and counters'),
  denied: counter,
});
const selectorMatch = z.object({
  name: z.string().describe("the container's name"),
  node: z.string().optional().describe('the node id of the host it runs on'),
  addresses: z.array(z.string()),
});
export const policyBody = z.object({
  networkId: z.string(),
  ingress: z.string().nullable().describe('the network policy in force (canonical text), null = open'),
  source: z.enum(['created', 'runtime', 'open']),
  endpoints: z.array(policyEndpointView),
  selectorRules: z
    .array(
      z.object({
        rule: z.string().describe('a name= or label= rule in force (canonical text)'),
        matches: z.array(selectorMatch).describe('the containers it admits from now, as truss knows them'),
      }),
    )
    .optional()
    .describe("the name=/label= rules of the network's policy and of its endpoints' own; absent when there are none"),
});
// one optional field (selectorRules): the daemon leaves it out rather than setting it undefined
export type PolicyBody = View<typeof policyBody>;
export type PolicyEndpointBody = View<typeof policyEndpointView>;

export const setPolicyRequest = z.object({ ingress: z.string().nullable() });
export type SetPolicyRequest = Built<typeof setPolicyRequest>;

// ---------- keys, cluster forget, cleanup ----------

export const rotateKeyBody = z.object({
  node: z.string().describe("this host's display name"),
  nodeId: z.string(),
  publicKey: z.string(),
});
export type RotateKeyBody = Built<typeof rotateKeyBody>;

export const forgetRequest = z.object({ node: z.string(), force: z.boolean().optional() });
export type ForgetRequest = Built<typeof forgetRequest>;
export const forgetBody = z.object({
  node: z.string(),
  wasRegistered: z.boolean().describe('it was registered and --force removed its host record'),
  clusters: z.array(
    z.object({ cluster: z.string(), claims: z.array(z.string()), blocks: z.array(z.string()), member: z.boolean() }),
  ),
});
export type ForgetBody = Built<typeof forgetBody>;
export type ForgetView = View<typeof forgetBody>;

export const cleanupBody = z.object({ removed: z.array(linkView), remaining: z.array(linkView) });
export type CleanupBody = Built<typeof cleanupBody>;
export type CleanupView = View<typeof cleanupBody>;

/** Every answer other than 200 (no `schemaVersion`: it goes to stderr, never to --json). */
export const errorBody = z.object({
  error: z.string(),
  code: z.string().optional().describe('the stable error code (TRUSS_ERR_*) when there is one'),
});

// ---------- truss version --json (no daemon, same contract) ----------

export const versionBody = z.object({
  version: z.string(),
  commit: z.string().describe('the git commit truss was built from, or "unknown"'),
  node: z.string().describe('the Node.js version it runs on (process.version)'),
});
export type VersionBody = Built<typeof versionBody>;

export { type DoctorBody, doctorBody, type PathBody, type PathRequest, pathBody, pathRequest };

/** The published contract: docs/json/NAME.schema.json for each, replies with their schemaVersion. */
export const CONTRACT = {
  status: versioned(statusBody),
  reconcile: versioned(reconcileBody),
  metrics: versioned(metricsBody),
  policy: versioned(policyBody),
  'policy-set-request': setPolicyRequest,
  'keys-rotate': versioned(rotateKeyBody),
  'cluster-forget': versioned(forgetBody),
  'cluster-forget-request': forgetRequest,
  'cleanup-foreign': versioned(cleanupBody),
  doctor: versioned(doctorBody),
  'doctor-path': versioned(pathBody),
  'doctor-path-request': pathRequest,
  version: versioned(versionBody),
  error: errorBody,
} as const;

/** The JSON Schema (draft 2020-12) of each contract entry, as published in docs/json/. */
export function contractJsonSchemas(): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(CONTRACT).map(([name, schema]) => [
      name,
      // io 'input': readers must accept fields they do not know (additive changes keep the version)
      { title: `truss ${name}`, ...z.toJSONSchema(schema, { io: 'input' }) },
    ]),
  );
}
