/**
 * `truss serve`: the process around the daemon's stack (daemon.ts wires it): the instance
 * lock, preflight, the sockets, the log, the signals. The plugin socket is bound before any
 * slow work (dockerd gives a managed plugin ~12 s); the first full reconcile pass runs after.
 * Shutdown leaves the kernel as it is: containers keep their network across plugin restarts
 * and upgrades.
 */
import type http from 'node:http';
import { adminSocketPath, type Config } from './config.ts';
import { formatListenAddress } from './core/listen-address.ts';
import { buildDaemon } from './daemon.ts';
import { configureFaults } from './obs/fault.ts';
import { buildObservabilityServer } from './obs/health-http.ts';
import { acquireInstanceLock } from './obs/instance-lock.ts';
import { listenTcp } from './obs/listen-tcp.ts';
import { createLogger } from './obs/logger.ts';
import { listenUnix, probeSocket } from './obs/unix-socket.ts';
import { VERSION } from './obs/version.ts';
import { preflight } from './preflight.ts';

/** `config`: serve's flags, already checked by the CLI (a bad one is a usage error, exit 2). */
export async function serve(config: Config, env: NodeJS.ProcessEnv): Promise<void> {
  process.umask(0o077);
  const log = createLogger(config.logLevel, undefined, undefined, config.logFormat).child({ name: 'truss' });
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
  const daemon = await buildDaemon(config, {
    log,
    capabilities,
    faults: faults.size > 0,
    startedAt,
    // another live host has this host's name or node id: stop, saying so (exit 1)
    onFatal: (e) => {
      process.stderr.write(`truss: ${e.message}\n`);
      shutdown('fatal', 1);
    },
  });
  const { plugin, admin } = daemon;
  const settled = await daemon.settleLeftovers();
  // opt-in; bound first, so that an address in use stops the start before dockerd is served
  const observability = config.metricsAddress && buildObservabilityServer(daemon.observability, log);
  if (observability && config.metricsAddress)
    await listenTcp(observability, config.metricsAddress, '--metrics-address');
  await listenUnix(plugin, config.socket);
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
    ...(config.metricsAddress ? { metricsAddress: formatListenAddress(config.metricsAddress) } : {}),
  });

  let stopping = false;
  function shutdown(signal: string, code = 0): void {
    if (stopping) return;
    stopping = true;
    log.info('shutting down; kernel state is left in place', { signal });
    const close = (s: http.Server): Promise<void> => new Promise((r) => s.close(() => r()));
    plugin.closeAllConnections();
    observability?.closeAllConnections();
    void Promise.all([close(plugin), close(admin), observability && close(observability), daemon.stop()])
      .then(() => Promise.all([daemon.close(), lock.release()]))
      .finally(() => process.exit(code));
  }
  daemon.start();
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
