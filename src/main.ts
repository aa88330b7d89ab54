/**
 * The composition root: config -> logger -> store -> dataplane -> reconciler -> services ->
 * protocol server. The plugin socket is bound before any slow work (dockerd gives a managed
 * plugin ~12 s); the first full reconcile pass runs after. Shutdown leaves the kernel as it
 * is: containers keep their network across plugin restarts and upgrades.
 */
import { mkdirSync } from 'node:fs';
import type http from 'node:http';
import { buildAdminServer } from './admin/server.ts';
import { ClaimGc } from './cluster/claim-gc.ts';
import { forgetNode } from './cluster/reclaim.ts';
import { setupCluster, wireguardKeyDir } from './cluster-setup.ts';
import { adminSocketPath, loadConfig } from './config.ts';
import { WG_DEVICE } from './core/cluster/desired.ts';
import { isValidNodeName, nodeIdOf } from './core/cluster/model.ts';
import { errors } from './core/errors.ts';
import { createLinuxDataplane } from './dataplane/linux/linux-dataplane.ts';
import { rotatePrivateKey } from './dataplane/linux/wireguard-keys.ts';
import { configureFaults, withFaults } from './obs/fault.ts';
import { acquireInstanceLock } from './obs/instance-lock.ts';
import { createLogger } from './obs/logger.ts';
import { createMetrics } from './obs/metrics.ts';
import { listenUnix, probeSocket } from './obs/unix-socket.ts';
import { VERSION } from './obs/version.ts';
import { preflight } from './preflight.ts';
import { buildServer } from './protocol/server.ts';
import { FOREIGN_FIX, Reconciler } from './reconcile/reconciler.ts';
import { EndpointGc } from './service/endpoint-gc.ts';
import { IntentRepo } from './service/intent.ts';
import { DEFAULT_POOLS, IpamServiceImpl, parseDefaultPools } from './service/ipam-service.ts';
import { Journal } from './service/journal.ts';
import { NetworkService } from './service/network-service.ts';
import { PolicyService } from './service/policy-service.ts';
import { ReleaseRetry } from './service/release-retry.ts';
import { createSettler } from './service/settle.ts';
import { ensureStateId } from './service/state-id.ts';
import { StatusService } from './service/status.ts';
import { openSqliteStore } from './store/sqlite.ts';

export async function serve(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  process.umask(0o077);
  const config = loadConfig(argv, env);
  const log = createLogger(config.logLevel).child({ name: 'truss' });
  // test-only fault injection (docs/development.md); off unless TRUSS_FAULT is set
  const faults = configureFaults(env.TRUSS_FAULT);
  if (faults.size > 0) log.warn('fault injection armed (TRUSS_FAULT)', { faults: Object.fromEntries(faults) });
  const adminPath = adminSocketPath(config.stateDir);
  if ((await probeSocket(adminPath)) === 'live') {
    throw new Error(`another truss daemon is running with state dir ${config.stateDir}`);
  }
  const startedAt = new Date().toISOString();
  // one truss per host network stack, whatever its state dir and socket (obs/instance-lock.ts)
  const lock = await acquireInstanceLock({
    pid: process.pid,
    stateDir: config.stateDir,
    socket: config.socket,
    version: VERSION,
    startedAt,
  });
  // the same checks as `truss doctor`, before anything is written or bound
  const { capabilities, ms: preflightMs } = await preflight(config, log);
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const store = await openSqliteStore(config.stateDir);
  // the state id stamped into the kernel objects this daemon makes (service/state-id.ts)
  const identity = await ensureStateId(store);
  if (identity.created)
    log.info('state id made', { stateId: identity.stateId, adoptUnstamped: identity.adoptUnstamped });
  const klog = log.child({ component: 'kernel' });
  const linux = createLinuxDataplane({
    log: klog,
    wireguardKeyDir: wireguardKeyDir(config.stateDir),
    stateId: identity.stateId,
    ...(config.iptables !== undefined ? { iptables: config.iptables } : {}),
    ...(config.procSys !== undefined ? { procSys: config.procSys } : {}),
    ...(log.isDebug()
      ? {
          onCommand: (argv: readonly string[], stdin: string | undefined, durationMs: number, exitCode: number) =>
            klog.debug('kernel command', { argv, stdin, durationMs, exitCode }),
        }
      : {}),
  });
  const dataplane = faults.size > 0 ? withFaults(linux) : linux;
  const repo = new IntentRepo(store);
  const cluster = await setupCluster(
    config,
    dataplane,
    repo,
    log,
    () => reconciler.trigger(),
    // another live host has this host's name or node id: stop, saying so (exit 1)
    (e) => {
      process.stderr.write(`truss: ${e.message}\n`);
      shutdown('fatal', 1);
    },
  );
  // requests whose reply never reached dockerd are rolled back (service/journal.ts)
  const journal = new Journal({ store, log: log.child({ component: 'journal' }) });
  const ipam = new IpamServiceImpl({
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
            clusterForPool: async (pool: string) =>
              (await repo.listNetworks()).find((n) => n.cluster && [...n.ipv4, ...n.ipv6].some((d) => d.pool === pool))
                ?.cluster?.name,
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
        const use = new Map<string, Set<string>>();
        for (const n of await repo.listNetworks()) {
          if (!n.cluster) continue;
          const set = use.get(n.cluster.name) ?? new Set<string>();
          for (const d of [...n.ipv4, ...n.ipv6]) for (const a of byPool.get(d.pool) ?? []) set.add(a);
          use.set(n.cluster.name, set);
        }
        return use;
      },
      joined: (c) => cluster.agent.joined(c),
      leave: (c) => cluster.agent.leaveNetwork(c),
      log: log.child({ component: 'claim-gc' }),
      graceMs: config.gcGraceMs,
    });
  const reconciler = new Reconciler({
    loadIntent: async (opts) => ({
      ...(await repo.snapshot(opts)),
      ...(cluster ? { cluster: cluster.agent.view() ?? ('pending' as const) } : {}),
    }),
    ...(cluster ? { wireguard: { listenPort: cluster.listenPort, mtu: cluster.mtu.wireguard } } : {}),
    ...(cluster ? { vxlan: cluster.vxlan } : {}),
    dataplane,
    log: log.child({ component: 'reconcile' }),
    owner: { stateId: identity.stateId, adoptUnstamped: identity.adoptUnstamped },
    resyncMs: config.resyncMs,
    afterFullPass: async ({ orphans }) => {
      await gc.observe(orphans);
      await releases.retry();
      await journal.settleLeftovers('its settle failed before; retried after a full pass');
      // not awaited: an unreachable etcd must not hold up the reconciler; nothing before the first sync
      if (claimGc && cluster?.agent.view()) void claimGc.observe();
    },
  });
  // a corrupt state database (M7) fails every request waiting for the kernel at once
  const storeFailed = new Promise<never>((_, reject) => store.onFailure(reject));
  storeFailed.catch(() => {});
  const waitFor: Reconciler['waitFor'] = (...a) => Promise.race([reconciler.waitFor(...a), storeFailed]);
  const releases = new ReleaseRetry(ipam, log.child({ component: 'ipam' }));
  const network = new NetworkService({
    repo,
    reconciler: { waitFor },
    log: log.child({ component: 'network' }),
    capabilities,
    journal,
    ...(cluster ? { cluster: cluster.agent } : {}),
  });
  const status = new StatusService({
    repo,
    store,
    reconciler,
    version: VERSION,
    startedAt,
    ownership: () => {
      const foreign = reconciler.foreign();
      return {
        stateId: identity.stateId,
        adoptUnstamped: identity.adoptUnstamped,
        foreign: { count: foreign.length, links: foreign, ...(foreign.length > 0 ? { fix: FOREIGN_FIX } : {}) },
      };
    },
    ...(cluster
      ? {
          cluster: async () => {
            const view = cluster.agent.view();
            const intent = await repo.snapshot();
            const desired = reconciler.clusterDesired({ ...intent, ...(view ? { cluster: view } : {}) });
            const peers = await dataplane.readWireguardPeers(WG_DEVICE).catch(() => []);
            const names = new Map((view?.nodes ?? []).map((n) => [nodeIdOf(n), n.name]));
            return {
              node: cluster.agent.name,
              nodeId: cluster.agent.self,
              synced: view !== undefined,
              mtu: cluster.mtu.wireguard,
              vxlanMtu: cluster.mtu.vxlan,
              wgPort: cluster.listenPort,
              peers: (desired.wireguard?.peers ?? []).map((p) => {
                const live = peers.find((x) => x.publicKey === p.publicKey);
                return {
                  node: p.node,
                  name: names.get(p.node),
                  endpoint: p.endpoint,
                  allowedIps: p.allowedIps,
                  latestHandshake: live?.latestHandshake ?? 0,
                };
              }),
              vxlanPeers: (desired.vxlan?.peers ?? []).map((p) => ({
                node: p.node,
                name: names.get(p.node),
                address: p.address,
                mac: p.mac,
              })),
              /** registered hosts: node id -> display name */
              names: Object.fromEntries(names),
              rejected: desired.rejected,
              alarms: desired.alarms,
              malformed: cluster.agent.malformed(),
              etcd: cluster.etcd,
              allocations: cluster.agent.allocations(),
              reclaim: claimGc?.status(),
            };
          },
        }
      : {}),
  });
  const policy = new PolicyService({
    repo,
    reconciler: { waitFor, policyCounters: () => reconciler.policyCounters() },
    capabilities,
    log: log.child({ component: 'policy' }),
  });

  // entries a crash left are settled before dockerd can send anything: the pools, addresses and
  // networks they undo are free again for its next request; the first full pass then removes the
  // kernel objects of undone networks (no pass before listening: the trigger waits for start)
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
  const settled = await journal.settleLeftovers();
  const plugin = buildServer({ network, ipam: releases, log: log.child({ component: 'protocol' }) });
  await listenUnix(plugin, config.socket);
  const metrics = createMetrics();
  const admin = buildAdminServer(
    {
      status: () => status.status(),
      reconcile: () => status.reconcile(),
      metrics: () => metrics.read(),
      resetMetrics: () => {
        metrics.reset();
        return metrics.read();
      },
      showPolicy: (id) => policy.show(id),
      setPolicy: (id, ingress) => policy.set(id, ingress),
      rotateKey: async () => {
        if (!cluster) throw errors.unsupported('truss keys rotate needs a cluster store (--store etcd://...)');
        const key = await rotatePrivateKey(cluster.keyDir);
        await cluster.agent.publishKey(key.publicKey);
        reconciler.trigger();
        return { node: cluster.agent.name, nodeId: cluster.agent.self, publicKey: key.publicKey };
      },
      cleanupForeign: () => reconciler.cleanupForeign(),
      forgetNode: async (node, force) => {
        if (!cluster) throw errors.unsupported('truss cluster forget needs a cluster store (--store etcd://...)');
        if (!isValidNodeName(node)) {
          throw errors.badRequest(`${JSON.stringify(node)} is not a node id ([a-z0-9.-]; see truss status)`);
        }
        const result = await forgetNode(cluster.store, node, cluster.agent.self, force);
        log.warn('forgot a cluster host', { ...result });
        reconciler.trigger();
        return result;
      },
    },
    log.child({ component: 'admin' }),
  );
  await listenUnix(admin, adminPath);
  // startupMs: since the process started (managed plugins must listen within ~12 s; we aim for 2)
  const startupMs = Math.round(performance.now());
  log.info('listening', {
    socket: config.socket,
    stateDir: config.stateDir,
    version: VERSION,
    pid: process.pid,
    startupMs,
    preflightMs,
    ...(settled > 0 ? { settled } : {}),
  });

  let stopping = false;
  function shutdown(signal: string, code = 0): void {
    if (stopping) return;
    stopping = true;
    log.info('shutting down; kernel state is left in place', { signal });
    const close = (s: http.Server): Promise<void> => new Promise((r) => s.close(() => r()));
    plugin.closeAllConnections();
    void Promise.all([close(plugin), close(admin), reconciler.stop(), cluster?.agent.stop()])
      .then(() => journal.drain())
      .then(() => Promise.all([store.close(), cluster?.store.close(), lock.release()]))
      .finally(() => process.exit(code));
  }
  reconciling = true;
  reconciler.start();
  cluster?.agent.start();
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
