/**
 * A simulated host: a network namespace with its own dockerd (private mount namespace with
 * tmpfs on /run/docker/plugins, /run/containerd and /run/wireguard, so dockerd starts its own
 * containerd and finds only this host's plugins), the test image, and optionally truss.
 * stop() removes everything it started, whatever state the tests left.
 */
import { spawn } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeEverything } from './containers.ts';
import { inNetns, type RunOptions, type RunResult, run } from './exec.ts';
import { dockerdFigureLine, printFigures } from './figures.ts';
import { importImage } from './image.ts';
import { cleanStaleNetns, createNetns, deleteNetns } from './netns.ts';
import { CHILD_PATH, DOCKER_CLI, DOCKERD, DOCKERD_PATH, NETNS_PREFIX, WORK_DIR } from './paths.ts';
import { isAlive, killAllMatching, nsIdOfFile, nsIdOfPid, waitExit, waitReaped } from './procs.ts';
import { type TrussDaemon, type TrussOptions, type TrussStatus, trussDaemon } from './truss.ts';
import type { Underlay } from './underlay.ts';
import { waitFor } from './wait.ts';

export interface HostOptions {
  /** Docker's own bridge (docker0) address; must stay in 198.18.0.0/15. */
  readonly bip?: string;
  /** Docker's pool for its own networks (`docker network create b1`). */
  readonly defaultAddressPool?: string;
  readonly dockerdArgs?: readonly string[];
  /** The content of dockerd's daemon.json (default `{}`); a test may rewrite `${dir}/daemon.json` before a restart. */
  readonly daemonJson?: Readonly<Record<string, unknown>>;
  /** Attaches the host to an underlay at start (underlay.ts): `eth-ul` with 198.18.255.<index>/24. */
  readonly underlay?: { readonly of: Underlay; readonly index: number };
  /**
   * The host's own UTS namespace with this hostname (`unshare --uts`): dockerd, truss and the CLI
   * see it as the hostname (two hosts may share one, like cloned VMs).
   */
  readonly hostname?: string;
  /**
   * The host's own /etc/resolv.conf (bind-mounted in its mount namespace): the upstream DNS
   * servers its dockerd gives containers and truss DNS forwards to. Absent: the machine's.
   */
  readonly resolvConf?: string;
}

export interface Host {
  readonly name: string;
  readonly netnsPath: string;
  readonly dir: string;
  readonly stateDir: string;
  readonly truss: TrussDaemon;
  /** The host's underlay address (HostOptions.underlay), undefined when not attached. */
  readonly underlayAddress: string | undefined;
  /** The host's current dockerd (it changes with startDockerd). */
  dockerdPid(): number;
  /**
   * Stops the host's dockerd with `signal` (SIGKILL: a crash) and waits until it has exited; what
   * it started (containerd, shims, containers) stays as dockerd leaves it. Resolves with the ms
   * from the signal to its exit.
   */
  stopDockerd(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number>;
  /**
   * Starts a new dockerd, same arguments, in the host's namespaces (the mount namespace truss and
   * containerd still use); resolves once it answers `docker version`, with the ms that took.
   */
  startDockerd(timeoutMs?: number): Promise<number>;
  docker(args: readonly string[], timeoutMs?: number): Promise<RunResult>;
  /** Runs argv in the host's network namespace (ip, nft, iptables, tcpdump...). */
  exec(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  startTruss(opts?: TrussOptions): Promise<void>;
  stopTruss(signal?: NodeJS.Signals): Promise<void>;
  restartTruss(): Promise<void>;
  trussStatus(): Promise<TrussStatus>;
  /** Registers a clean-up that stop() runs before deleting the namespace (e.g. helper namespaces). */
  onStop(fn: () => Promise<void>): void;
  stop(): Promise<void>;
}

// Mount points are created in the shared /run (empty dirs), the tmpfs only in the private namespace.
const DOCKERD_WRAPPER = `set -e
for d in /run/docker/plugins /run/containerd /run/wireguard; do mkdir -p "$d"; mount -t tmpfs -o mode=0755 tmpfs "$d"; done
if [ -n "$TRUSS_E2E_HOSTNAME" ]; then hostname "$TRUSS_E2E_HOSTNAME"; fi
if [ -n "$TRUSS_E2E_RESOLV" ]; then mount --bind "$TRUSS_E2E_RESOLV" /etc/resolv.conf; fi
unset TRUSS_E2E_HOSTNAME TRUSS_E2E_RESOLV
exec "$TRUSS_E2E_DOCKERD" "$@"`;

function dockerdArgs(dir: string, opts: HostOptions): string[] {
  return [
    `--config-file=${dir}/daemon.json`,
    '--storage-driver=vfs',
    `--data-root=${dir}/data`,
    `--exec-root=${dir}/x`,
    `--host=unix://${dir}/docker.sock`,
    `--pidfile=${dir}/docker.pid`,
    `--bip=${opts.bip ?? '198.19.254.1/24'}`,
    `--default-address-pool=${opts.defaultAddressPool ?? 'base=198.19.128.0/18,size=24'}`,
    '--userland-proxy=false',
    ...(opts.dockerdArgs ?? []),
  ];
}

/** Each suite (one process) names the dockerd it ran against once, in its figures. */
let versionShown = false;

export async function startHost(shortName: string, opts: HostOptions = {}): Promise<Host> {
  if (DOCKERD !== 'dockerd' && !existsSync(DOCKERD)) {
    throw new Error(`TRUSS_E2E_DOCKERD=${DOCKERD}: no such file (scripts/setup.sh unpacks the newest dockerd)`);
  }
  const name = shortName.startsWith(NETNS_PREFIX) ? shortName : `${NETNS_PREFIX}${shortName}`;
  for (const stale of await cleanStaleNetns()) {
    rmSync(join(WORK_DIR, 'hosts', stale.slice(NETNS_PREFIX.length)), { recursive: true, force: true });
  }
  const dir = join(WORK_DIR, 'hosts', name.slice(NETNS_PREFIX.length));
  await killAllMatching((p) => p.cmdline.includes(`${dir}/`));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'cli'), { recursive: true });
  const netnsPath = await createNetns(name);
  let underlayAddress: string | undefined;
  if (opts.underlay) {
    try {
      underlayAddress = (await opts.underlay.of.attach(name, opts.underlay.index, name.slice(NETNS_PREFIX.length)))
        .address;
    } catch (err) {
      await deleteNetns(name).catch(() => {});
      throw err;
    }
  }
  const env = { ...process.env, PATH: CHILD_PATH };
  writeFileSync(join(dir, 'daemon.json'), `${JSON.stringify(opts.daemonJson ?? {})}\n`);
  const argv = ['nsenter', `--net=${netnsPath}`, 'unshare', '--mount', '--propagation', 'private'];
  if (opts.hostname !== undefined) argv.push('--uts');
  argv.push('--', 'sh', '-c', DOCKERD_WRAPPER, 'dockerd', ...dockerdArgs(dir, opts));
  if (opts.resolvConf !== undefined) writeFileSync(join(dir, 'resolv.conf'), opts.resolvConf);
  const resolv = opts.resolvConf !== undefined ? join(dir, 'resolv.conf') : undefined;
  let pid = spawnDockerd(dir, argv, opts.hostname, resolv);
  /** fds of the first dockerd's mount (and UTS) namespace: a restarted dockerd joins them */
  let nsFds: { mnt: number; uts?: number } | undefined;
  const cleanups: (() => Promise<void>)[] = [];
  const dockerEnv: NodeJS.ProcessEnv = { ...env, DOCKER_CONFIG: join(dir, 'cli'), DOCKER_CLI_HINTS: 'false' };
  delete dockerEnv.DOCKER_HOST;
  delete dockerEnv.DOCKER_CONTEXT;
  const docker = (args: readonly string[], timeoutMs = 60_000): Promise<RunResult> =>
    run([DOCKER_CLI, '-H', `unix://${dir}/docker.sock`, ...args], { env: dockerEnv, timeoutMs });
  const truss = trussDaemon(() => pid, dir, { uts: opts.hostname !== undefined });
  let mntNs = '';
  const netNs = nsIdOfFile(netnsPath, 'net') ?? 'none';
  const dockerdUp = (timeoutMs: number): Promise<boolean> =>
    waitFor(
      async () => {
        if (!isAlive(pid)) throw new Error('dockerd exited');
        return (await docker(['version', '--format', '{{.Server.Version}}'], 5000)).code === 0;
      },
      timeoutMs,
      { what: `dockerd in ${name}`, intervalMs: 100 },
    );
  const internals = {
    pid: () => pid,
    mntNs: () => mntNs,
    netNs,
    cleanups,
    takeNsFds: () => {
      const fds = nsFds;
      nsFds = undefined;
      return fds;
    },
  };
  const host: Host = {
    name,
    netnsPath,
    dir,
    stateDir: truss.stateDir,
    truss,
    underlayAddress,
    dockerdPid: () => pid,
    async stopDockerd(signal = 'SIGTERM', timeoutMs = 30_000) {
      const t0 = performance.now();
      if (!isAlive(pid)) return 0;
      process.kill(pid, signal);
      if (!(await waitExit(pid, timeoutMs)))
        throw new Error(`dockerd ${pid} in ${name}: still running ${timeoutMs} ms after ${signal}`);
      const stoppedMs = performance.now() - t0;
      // why: a new dockerd refuses to start while the old pid is in /proc, even as a zombie
      if (!(await waitReaped(pid, 10_000)))
        throw new Error(`dockerd ${pid} in ${name}: not reaped 10 s after it exited (${signal})`);
      return stoppedMs;
    },
    async startDockerd(timeoutMs = 60_000) {
      if (isAlive(pid)) throw new Error(`dockerd ${pid} in ${name} is still running`);
      if (nsFds === undefined) throw new Error(`${name}: no mount namespace to restart dockerd in`);
      const t0 = performance.now();
      await dropZombieContainerdPidfile(dir);
      const fd = (n: number): string => `/proc/${process.pid}/fd/${n}`;
      const again = ['nsenter', `--net=${netnsPath}`, `--mount=${fd(nsFds.mnt)}`];
      if (nsFds.uts !== undefined) again.push(`--uts=${fd(nsFds.uts)}`);
      again.push('--', 'sh', '-c', 'exec "$TRUSS_E2E_DOCKERD" "$@"', 'dockerd', ...dockerdArgs(dir, opts));
      pid = spawnDockerd(dir, again, undefined, undefined);
      try {
        await dockerdUp(timeoutMs);
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- dockerd log tail ---\n${logTail(dir)}`);
      }
      return performance.now() - t0;
    },
    docker,
    exec: (a, o) => run(inNetns(netnsPath, a), { env, ...o }),
    startTruss: (o) => truss.start(o),
    stopTruss: (s) => truss.stop(s),
    restartTruss: () => truss.restart(),
    trussStatus: () => truss.status(),
    onStop: (fn) => {
      cleanups.push(fn);
    },
    stop: () => stopHost(host, internals),
  };
  try {
    await dockerdUp(60_000);
    mntNs = nsIdOfPid(pid, 'mnt');
    nsFds = { mnt: openSync(`/proc/${pid}/ns/mnt`, 'r') };
    if (opts.hostname !== undefined) nsFds.uts = openSync(`/proc/${pid}/ns/uts`, 'r');
    if (!versionShown) {
      versionShown = true;
      printFigures([dockerdFigureLine((await docker(['version', '--format', '{{json .Server}}'])).stdout, DOCKERD)]);
    }
    await importImage(docker);
  } catch (err) {
    const tail = logTail(dir);
    await host.stop().catch(() => {});
    throw new Error(`${(err as Error).message}\n--- dockerd log tail ---\n${tail}`);
  }
  return host;
}

const logTail = (dir: string): string =>
  readFileSync(join(dir, 'dockerd.log'), 'utf8').split('\n').slice(-20).join('\n');

/**
 * A dockerd killed with SIGKILL takes its containerd with it, which becomes a zombie child of
 * pid 1; where pid 1 does not reap (some sandboxes), the containerd pidfile under the exec root
 * names that zombie, the next dockerd takes it for a running containerd and times out dialling
 * it. A real host's init reaps it: drop the pidfile as if it had.
 */
async function dropZombieContainerdPidfile(dir: string): Promise<void> {
  const file = join(dir, 'x', 'containerd', 'containerd.pid');
  if (!existsSync(file)) return;
  const pid = Number(readFileSync(file, 'utf8').trim());
  // why: the parent-death signal reaches containerd a moment after dockerd died (seconds under
  // load); read too early, the pidfile names a live containerd that is about to become a zombie
  if (Number.isInteger(pid) && pid > 0) await waitExit(pid, 20_000);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) rmSync(file, { force: true });
}

/** Spawns argv (nsenter ... dockerd) detached, logging to dir/dockerd.log; returns its pid. */
function spawnDockerd(
  dir: string,
  argv: readonly string[],
  hostname: string | undefined,
  resolv: string | undefined,
): number {
  const log = openSync(join(dir, 'dockerd.log'), 'a');
  const child = spawn(argv[0] as string, argv.slice(1), {
    env: {
      ...process.env,
      PATH: DOCKERD_PATH,
      TRUSS_E2E_DOCKERD: DOCKERD,
      ...(hostname !== undefined ? { TRUSS_E2E_HOSTNAME: hostname } : {}),
      ...(resolv !== undefined ? { TRUSS_E2E_RESOLV: resolv } : {}),
    },
    stdio: ['ignore', log, log],
    detached: true,
  });
  child.unref();
  closeSync(log);
  return child.pid ?? -1; // nsenter, unshare and sh all exec: this pid ends up being dockerd
}

interface Internals {
  readonly pid: () => number;
  readonly mntNs: () => string;
  readonly netNs: string;
  readonly cleanups: (() => Promise<void>)[];
  /** the namespace fds a restarted dockerd would join, handed over once (stop closes them) */
  readonly takeNsFds: () => { readonly mnt: number; readonly uts?: number } | undefined;
}

/** Best effort in order, then a hard sweep; throws only if something could not be removed. */
async function stopHost(host: Host, st: Internals): Promise<void> {
  const problems: string[] = [];
  // A graceful removal lets truss clean up; with truss down, dockerd would retry the plugin for
  // each endpoint, so skip straight to killing (the namespace takes the kernel objects with it).
  const pid = st.pid();
  const mntNs = st.mntNs();
  if (isAlive(pid) && (host.truss.running() || !host.truss.started())) await removeEverything(host);
  await host.truss.stop('SIGTERM', 5000);
  if (isAlive(pid)) {
    process.kill(pid, 'SIGTERM');
    await waitExit(pid, 5000);
  }
  const left = await killAllMatching(
    (p) => p.pid === pid || (mntNs !== '' && p.mntNs === mntNs) || p.netNs === st.netNs,
  );
  const fds = st.takeNsFds();
  for (const fd of fds ? [fds.mnt, fds.uts] : []) if (fd !== undefined) closeSync(fd);
  if (left.length > 0) problems.push(`processes survived SIGKILL: ${left.map((p) => p.pid).join(' ')}`);
  for (const fn of st.cleanups.splice(0).reverse()) {
    await fn().catch((err: Error) => problems.push(err.message));
  }
  await deleteNetns(host.name).catch((err: Error) => problems.push(err.message));
  keepLogs(host);
  try {
    if (existsSync(host.dir)) rmSync(host.dir, { recursive: true, force: true, maxRetries: 3 });
  } catch (err) {
    problems.push(`rm -rf ${host.dir}: ${(err as Error).message}`);
  }
  if (problems.length > 0) throw new Error(`host ${host.name} teardown: ${problems.join('; ')}`);
}

/** Runs argv in a host's mount and network namespaces (wg and wireguard-go need its private /run/wireguard). */
export const inHostMounts = (h: Host, argv: readonly string[], timeoutMs = 15_000): Promise<RunResult> =>
  run(['nsenter', `--target=${h.dockerdPid()}`, '--mount', '--net', '--', ...argv], {
    env: { ...process.env, PATH: CHILD_PATH },
    timeoutMs,
  });

/** Logs outlive the host (WORK_DIR/logs/<name>/) so a failed CI run can be read afterwards. */
function keepLogs(host: Host): void {
  const to = join(WORK_DIR, 'logs', host.name);
  mkdirSync(to, { recursive: true });
  for (const f of ['dockerd.log', 'truss.log']) {
    if (existsSync(join(host.dir, f))) copyFileSync(join(host.dir, f), join(to, f));
  }
}
