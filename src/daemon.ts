/**
 * The composition root of the daemon: config -> store -> dataplane -> cluster -> reconciler ->
 * services -> protocol and admin servers. It only wires: what each part does lives in its
 * layer. `truss serve` (main.ts) adds the process around it (lock, preflight, sockets, signals);
 * the replay test, the fuzz bed, the service tests and the benches build the same stack over a
 * memory store and the fake dataplane.
 *
 * Two halves: openDaemon does the I/O that comes first (the state database and its state id,
 * the Linux dataplane, the cluster set-up); wireDaemon connects the parts and starts nothing.
 */

import { mkdirSync } from 'node:fs';
import type http from 'node:http';
import { buildAdminServer } from './admin/server.ts';
import { ClaimGc } from './cluster/claim-gc.ts';
import { type Cluster, type ClusterSetupDeps, setupCluster, wireguardKeyDir } from './cluster/setup.ts';
import type { Config } from './config.ts';
import { WG_DEVICE } from './core/cluster/desired.ts';
import { clusterOfPool, localUseByCluster } from './core/cluster/local-use.ts';
import type { Dataplane } from './core/contracts.ts';
import { errors, type TrussError } from './core/errors.ts';
import { FOREIGN_FIX } from './core/naming.ts';
import type { Capabilities } from './core/preflight.ts';
import { wireObservability } from './daemon-observability.ts';
import { createLinuxDataplane } from './dataplane/linux/linux-dataplane.ts';
import { ensurePrivateKey, rotatePrivateKey } from './dataplane/linux/wireguard-keys.ts';
import { wireNames } from './names-wiring.ts';
import { withFaults } from './obs/fault.ts';
import type { ObservabilityHandlers } from './obs/health-http.ts';
import { createLogger, type Logger } from './obs/logger.ts';
import { createMetrics } from './obs/metrics.ts';
import { createTrussMetrics } from './obs/prometheus.ts';
import { VERSION } from './obs/version.ts';
import { buildServer } from './protocol/server.ts';
import { Reconciler } from './reconcile/reconciler.ts';
import { ClusterAdmin } from './service/cluster-admin.ts';
import { clusterStatus } from './service/cluster-status.ts';
import { EndpointGc } from './service/endpoint-gc.ts';
import { HostAddresses } from './service/host-addresses.ts';
import { IntentRepo } from './service/intent.ts';
import { DEFAULT_POOLS, IpamService, parseDefaultPools } from './service/ipam-service.ts';
import { Journal } from './service/journal.ts';
import { NetworkService } from './service/network-service.ts';
import { doctorPath } from './service/path-doctor.ts';
import { PolicyService } from './service/policy-service.ts';
import { ReleaseRetry } from './service/release-retry.ts';
import { createSettler } from './service/settle.ts';
import { ensureStateId } from './service/state-id.ts';
import { StatusService } from './service/status.ts';
import { openSqliteStore } from './store/sqlite.ts';
import type { Store } from './store/store.ts';

/** after Plugin.Activate: full passes now and then (dockerd's boot programs its iptables meanwhile) */
const ACTIVATE_RESYNC_MS = [3_000, 10_000] as const;

/** a store that may tell of its failure (the SQLite store: a corrupt database, M7) */
export type DaemonStore = Store & { onFailure?(fn: (e: Error) => void): void };

export interface DaemonDeps {
  /** default: createLogger(config.logLevel), name truss */
  readonly log?: Logger;
  /** default: the SQLite store in config.stateDir */
  readonly store?: DaemonStore;
  /** default: the Linux dataplane, stamping the state id into what it makes */
  readonly dataplane?: Dataplane;
  /** the underlay facts of cluster mode; default: the Linux dataplane */
  readonly underlay?: ClusterSetupDeps['underlay'];
  /** stamp and tell apart kernel objects by the store's state id (default true; tests: every mark is own) */
  readonly stamps?: boolean;
  /** test-only fault injection around the dataplane (TRUSS_FAULT, obs/fault.ts) */
  readonly faults?: boolean;
  /** what the host lacks (preflight.ts); default: nothing */
  readonly capabilities?: Capabilities;
  /** how long a request waits for the kernel (ms); default the services' own */
  readonly programTimeoutMs?: number;
  readonly startedAt?: string;
  /** another live host has this host's cluster name or node id */
  onFatal?(e: TrussError): void;
}

/** What openDaemon made: the parts with I/O behind them. */
export interface DaemonParts {
  readonly log: Logger;
  readonly store: DaemonStore;
  readonly dataplane: Dataplane;
  readonly repo: IntentRepo;
  readonly identity?: { readonly stateId: string; readonly adoptUnstamped: boolean };
  readonly cluster?: Cluster;
  /** the reconciler, once wired: the cluster agent triggers it */
  readonly trigger: { fn: () => void };
}

export interface Daemon {
  readonly log: Logger;
  readonly store: DaemonStore;
  readonly dataplane: Dataplane;
  readonly repo: IntentRepo;
  readonly reconciler: Reconciler;
  readonly network: NetworkService;
  readonly ipam: IpamService;
  /** the IPAM as Docker reaches it: releases that failed are retried after full passes */
  readonly releases: ReleaseRetry;
  readonly policy: PolicyService;
  readonly status: StatusService;
  readonly cluster?: Cluster;
  /** the protocol (plugin) and admin servers, not listening */
  readonly plugin: http.Server;
  readonly admin: http.Server;
  /** /metrics, /healthz, /readyz (on the admin socket already; main.ts serves them on --metrics-address) */
  readonly observability: ObservabilityHandlers;
  /** requests whose reply never reached dockerd (service/journal.ts) */
  readonly journal: Journal;
  /**
   * Settles the entries a crash left (before listening: what they undo is free again for dockerd's
   * next request); returns how many.
   */
  settleLeftovers(): Promise<number>;
  /** the reconciler's passes and the cluster agent */
  start(): void;
  /** stops the reconciler and the cluster agent (the kernel is left as it is) */
  stop(): Promise<void>;
  /** closes the stores, after stop() */
  close(): Promise<void>;
}

/** The I/O before wiring: the store and its state id, the dataplane, the cluster set-up. */
export async function openDaemon(config: Config, deps: DaemonDeps = {}): Promise<DaemonParts> {
  const log = deps.log ?? createLogger(config.logLevel).child({ name: 'truss' });
  let store = deps.store;
  if (!store) {
    mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
    store = await openSqliteStore(config.stateDir);
  }
  // the state id stamped into the kernel objects this daemon makes (service/state-id.ts)
  const identity = deps.stamps === false ? undefined : await ensureStateId(store);
  if (identity?.created)
    log.info('state id made', { stateId: identity.stateId, adoptUnstamped: identity.adoptUnstamped });
  const wrap = <T extends object>(dp: T): T => (deps.faults ? withFaults(dp) : dp);
  const linux = deps.dataplane ? undefined : wrap(linuxDataplane(config, log, identity?.stateId));
  const dataplane = linux ?? wrap(deps.dataplane as Dataplane);
  const underlay = deps.underlay ?? linux;
  const trigger = { fn: () => {} };
  const repo = new IntentRepo(store);
  const cluster = await setupCluster(config, {
    underlay: underlay ?? noUnderlay,
    ensurePrivateKey,
    listNetworks: () => repo.listNetworks(),
    readWireguardPeers: () => dataplane.readWireguardPeers(WG_DEVICE),
    log,
    onChange: () => trigger.fn(),
    ...(deps.onFatal ? { onFatal: deps.onFatal } : {}),
  });
  return {
    log,
    store,
    dataplane,
    repo,
    ...(identity ? { identity: { stateId: identity.stateId, adoptUnstamped: identity.adoptUnstamped } } : {}),
    ...(cluster ? { cluster } : {}),
    trigger,
  };
}

function linuxDataplane(config: Config, log: Logger, stateId: string | undefined) {
  const klog = log.child({ component: 'kernel' });
  return createLinuxDataplane({
    log: klog,
    wireguardKeyDir: wireguardKeyDir(config.stateDir),
    ...(stateId !== undefined ? { stateId } : {}),
    ...(config.iptables !== undefined ? { iptables: config.iptables } : {}),
    ...(config.procSys !== undefined ? { procSys: config.procSys } : {}),
    ...(config.wireguardGo !== undefined ? { wireguardGo: config.wireguardGo } : {}),
    // status answers from the last look while the kernel announced no change (issue 18)
    watchKernel: true,
    ...(log.isDebug()
      ? {
          onCommand: (argv: readonly string[], stdin: string | undefined, durationMs: number, exitCode: number) =>
            klog.debug('kernel command', { argv, stdin, durationMs, exitCode }),
        }
      : {}),
  });
}

/** Parts with nothing to open: no state id (every mark is own), no cluster (tests, benches). */
export function plainParts(store: DaemonStore, dataplane: Dataplane, log: Logger): DaemonParts {
  return { log, store, dataplane, repo: new IntentRepo(store), trigger: { fn: () => {} } };
}

const noUnderlay: ClusterSetupDeps['underlay'] = {
  underlayTowards: () => Promise.reject(errors.unsupported('cluster mode needs the Linux dataplane')),
  readLinks: () => Promise.reject(errors.unsupported('cluster mode needs the Linux dataplane')),
  readDefaultRoutes: () => Promise.reject(errors.unsupported('cluster mode needs the Linux dataplane')),
};

/** Connects the parts; starts nothing, listens nowhere. */
export function wireDaemon(config: Config, parts: DaemonParts, deps: DaemonDeps = {}): Daemon {
  const { log, store, dataplane, repo, identity, cluster } = parts;
  // requests whose reply never reached dockerd are rolled back (service/journal.ts)
  const journal = new Journal({ store, log: log.child({ component: 'journal' }) });
  const ipam = new IpamService({
    store,
    log: log.child({ component: 'ipam' }),
    journal,
    auxAddresses: async (pool) => {
      const net = (await repo.listNetworks()).find((n) => [...n.ipv4, ...n.ipv6].some((d) => d.pool === pool));
      const data = net && [...net.ipv4, ...net.ipv6].find((d) => d.pool === pool);
      return data && Object.values(data.auxAddresses).map((a) => a.split('/')[0] ?? a);
    },
    defaultPools: config.defaultPools !== undefined ? parseDefaultPools(config.defaultPools) : DEFAULT_POOLS,
    ...(cluster
      ? {
          cluster: {
            ipam: cluster.ipam,
            clusterForPool: async (pool: string) => clusterOfPool(await repo.listNetworks(), pool),
          },
        }
      : {}),
  });
  const gc = new EndpointGc({
    repo,
    releaseAddress: (a, before) => ipam.releaseEndpointAddress(a, before),
    trigger: () => reconciler.trigger(),
    log: log.child({ component: 'gc' }),
    graceMs: config.gcGraceMs,
  });
  const claimGc =
    cluster &&
    new ClaimGc({
      store: cluster.store,
      node: cluster.agent.self,
      localUse: async () => {
        const byPool = await ipam.addressesByPool();
        return localUseByCluster(await repo.listNetworks(), byPool);
      },
      joined: (c) => cluster.agent.joined(c),
      leave: (c) => cluster.agent.leaveNetwork(c),
      log: log.child({ component: 'claim-gc' }),
      graceMs: config.gcGraceMs,
    });
  const hostAddresses =
    cluster && new HostAddresses({ cluster: cluster.ipam, ipam, log: log.child({ component: 'cluster' }) });
  const releases = new ReleaseRetry(ipam, log.child({ component: 'ipam' }));
  const prometheus = createTrussMetrics({ cluster: cluster !== undefined, version: VERSION });
  const names = wireNames(config, {
    log,
    self: () => cluster?.agent.self ?? 'local',
    ...(cluster ? { cluster: cluster.agent } : {}),
    trigger: () => reconciler.trigger(),
    readDnsSeen: () => dataplane.readDnsSeen(),
  });
  const observer = prometheus.reconcile;
  const reconciler = new Reconciler({
    observer: {
      pass: (r) => {
        observer.pass(r);
        names.afterPass();
      },
      passFailed: (full) => observer.passFailed(full),
      drift: (kind, problems) => observer.drift(kind, problems),
    },
    loadIntent: async (opts) =>
      names.withNames({
        ...(await repo.snapshot(opts)),
        ...(cluster ? { cluster: cluster.agent.view() ?? ('pending' as const) } : {}),
      }),
    ...(cluster
      ? { wireguard: { listenPort: cluster.listenPort, mtu: cluster.mtu.wireguard, relay: cluster.relay } }
      : {}),
    ...(cluster ? { vxlan: cluster.vxlan } : {}),
    dataplane,
    log: log.child({ component: 'reconcile' }),
    ...(identity ? { owner: identity } : {}),
    resyncMs: config.resyncMs,
    afterFullPass: async ({ orphans }) => {
      await gc.observe(orphans);
      await releases.retry();
      await journal.settleLeftovers('its settle failed before; retried after a full pass');
      // not awaited: an unreachable etcd must not hold up the reconciler; nothing before the first sync
      const view = cluster?.agent.view();
      if (claimGc && view) void claimGc.observe();
      // a cluster network without this host's address (an older truss made it, a claim was lost) gets one
      if (hostAddresses && view)
        void repo.listNetworks().then(
          (ns) => hostAddresses.repair(ns, view),
          () => {},
        );
    },
  });
  parts.trigger.fn = () => reconciler.trigger();
  // a corrupt state database (M7) fails every request waiting for the kernel at once
  const storeFailed = new Promise<never>((_, reject) => store.onFailure?.(reject));
  storeFailed.catch(() => {});
  const waitFor: Reconciler['waitFor'] = (...a) => Promise.race([reconciler.waitFor(...a), storeFailed]);
  const timeout = deps.programTimeoutMs !== undefined ? { programTimeoutMs: deps.programTimeoutMs } : {};
  const capabilities = deps.capabilities ? { capabilities: deps.capabilities } : {};
  const network = new NetworkService({
    repo,
    reconciler: { waitFor },
    log: log.child({ component: 'network' }),
    ...timeout,
    ...capabilities,
    journal,
    ...(cluster ? { cluster: cluster.agent } : {}),
    ...(hostAddresses ? { hostAddresses } : {}),
  });
  const status = new StatusService({
    repo,
    store,
    reconciler,
    version: VERSION,
    startedAt: deps.startedAt ?? new Date().toISOString(),
    ...(identity
      ? {
          ownership: () => {
            const foreign = reconciler.foreign();
            return {
              stateId: identity.stateId,
              adoptUnstamped: identity.adoptUnstamped,
              foreign: { count: foreign.length, links: foreign, ...(foreign.length > 0 ? { fix: FOREIGN_FIX } : {}) },
            };
          },
        }
      : {}),
    orphans: () => gc.orphans(),
    names: () => names.status(),
    ...(cluster
      ? { cluster: () => clusterStatus({ cluster, repo, reconciler, dataplane, ...(claimGc ? { claimGc } : {}) }) }
      : {}),
  });
  const policy = new PolicyService({
    repo,
    names: () => names.service.catalog(),
    reconciler: { waitFor, policyCounters: () => reconciler.policyCounters() },
    ...capabilities,
    ...timeout,
    log: log.child({ component: 'policy' }),
  });
  const plugin = buildServer({
    network,
    ipam: releases,
    log: log.child({ component: 'protocol' }),
    // why: a (re)starting dockerd activates its plugins about when it re-inserts its own FORWARD
    // jumps above truss's; full passes then put truss's back first without waiting for the periodic one
    onActivate: () => reconciler.resyncAfter(ACTIVATE_RESYNC_MS),
    onRpc: prometheus.rpc,
  });
  const metrics = createMetrics();
  const observability = wireObservability({
    metrics: prometheus,
    status,
    reconciler,
    plugin,
    ...(cluster ? { cluster } : {}),
    started: () => reconciling,
  });
  const clusterAdmin = new ClusterAdmin({ cluster, rotatePrivateKey, trigger: () => reconciler.trigger(), log });
  const admin = buildAdminServer(
    {
      status: (opts) => status.status(opts),
      reconcile: () => status.reconcile(),
      metrics: () => metrics.read(),
      resetMetrics: () => {
        metrics.reset();
        return metrics.read();
      },
      showPolicy: (id) => policy.show(id),
      setPolicy: (id, ingress) => policy.set(id, ingress),
      rotateKey: () => clusterAdmin.rotateKey(),
      cleanupForeign: () => reconciler.cleanupForeign(),
      doctorPath: (req) => doctorPath(status, req, () => names.service.catalog()),
      forgetNode: (node, force) => clusterAdmin.forget(node, force),
      observability,
    },
    log.child({ component: 'admin' }),
  );
  // the first full pass removes the kernel objects of networks a settle undid: no pass before start
  let reconciling = false;
  journal.settleWith(
    createSettler({
      repo,
      ipam,
      ...(cluster ? { cluster: cluster.agent } : {}),
      trigger: () => {
        if (reconciling) reconciler.trigger();
      },
      log: log.child({ component: 'journal' }),
    }),
  );
  return {
    log,
    store,
    dataplane,
    repo,
    reconciler,
    journal,
    settleLeftovers: () => journal.settleLeftovers(),
    network,
    ipam,
    releases,
    policy,
    status,
    ...(cluster ? { cluster } : {}),
    plugin,
    admin,
    observability,
    start: () => {
      reconciling = true;
      reconciler.start();
      cluster?.agent.start();
      names.start();
    },
    stop: async () => {
      reconciling = false;
      await Promise.all([reconciler.stop(), cluster?.agent.stop(), names.stop()]);
      await journal.drain();
    },
    close: async () => {
      await Promise.all([store.close(), cluster?.store.close()]);
    },
  };
}

/** The daemon's stack from its config; `deps` replace the parts with I/O (tests, benches). */
export async function buildDaemon(config: Config, deps: DaemonDeps = {}): Promise<Daemon> {
  return wireDaemon(config, await openDaemon(config, deps), deps);
}
