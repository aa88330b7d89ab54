/**
 * The plugin under test, run inside a simulated host: same mount namespace as its dockerd
 * (so the socket lands in the host's private /run/docker/plugins, found by legacy
 * discovery) and same network namespace (so it programs the host's kernel).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmdirSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { run } from './exec.ts';
import { CHILD_PATH, REPO_ROOT, TRUSS_BIN } from './paths.ts';
import { isAlive, waitExit } from './procs.ts';
import { sleep, waitFor } from './wait.ts';

export const PLUGIN_SOCKET = '/run/docker/plugins/truss.sock';
/** truss's default state dir (--state-dir), which a `runScript` start leaves to truss. */
export const DEFAULT_STATE_DIR = '/var/lib/truss';
const RUN_SH = join(REPO_ROOT, 'scripts', 'run.sh');

export interface TrussOptions {
  /** DOCKER_PLUGIN_DEBUG=true: every request/response is logged with rpc and durationMs. */
  readonly debug?: boolean;
  /** --default-pools CIDR:LEN,... (keep it inside 198.18.0.0/15). */
  readonly defaultPools?: string;
  readonly extraArgs?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly readyTimeoutMs?: number;
  /**
   * Start truss the way the README tells users to: `scripts/run.sh EXTRA_ARGS` (the bundle, after
   * scripts/prepare.sh), with no flag of the harness's own (no --socket, --state-dir, --log-level
   * or --default-pools: `debug` and `defaultPools` are refused). truss then uses its default state
   * dir /var/lib/truss, which is this host's stateDir: bind-mounted over it in the host's private
   * mount namespace (see ensureDefaultStateDirMountPoint).
   */
  readonly runScript?: boolean;
}

/**
 * The mount point a runScript start binds each host's state dir on: /var/lib/truss must exist
 * on the machine. Returns whether it was made now (the caller removes it once every host that
 * bound it is gone: removing it earlier would detach the other hosts' mounts).
 */
export function ensureDefaultStateDirMountPoint(): boolean {
  if (existsSync(DEFAULT_STATE_DIR)) return false;
  mkdirSync(DEFAULT_STATE_DIR, { recursive: true, mode: 0o700 });
  return true;
}

/** Removes the mount point ensureDefaultStateDirMountPoint made (only if it is still empty). */
export function removeDefaultStateDirMountPoint(made: boolean): void {
  if (!made) return;
  try {
    rmdirSync(DEFAULT_STATE_DIR);
  } catch {
    // not empty (a real truss uses it now) or gone: leave it
  }
}

export interface TrussStatus {
  readonly networks: unknown[];
  readonly endpoints: unknown[];
  readonly pools: unknown[];
  readonly addresses: unknown[];
  readonly kernel: { readonly inSync: boolean; readonly problems: unknown[] };
  /** Port policy: denied packets/bytes per endpoint id (absent before the daemon has port policy). */
  readonly policyCounters?: Readonly<Record<string, { readonly packets: number; readonly bytes: number }>>;
  /** The reconciler; firstPass is the start-up pass (what a restart had to repair). */
  readonly reconciler?: {
    readonly firstPass?: { readonly full: boolean; readonly changes: number };
    /** full passes truss scheduled after dockerd's Plugin.Activate, not run yet */
    readonly scheduledPasses?: number;
    readonly passRunning?: boolean;
  };
  /** Anti-spoofing: dropped frames by reason (mac, ethertype, arp, ip4, ip6, nd). */
  readonly guardCounters?: Readonly<Record<string, { readonly packets: number; readonly bytes: number }>>;
}

export interface TrussDaemon {
  readonly stateDir: string;
  readonly logFile: string;
  pid(): number | undefined;
  running(): boolean;
  /** the exit code of the last truss started here, once it exited (null while running or never started) */
  exitCode(): number | null;
  /** Whether start() was ever called on this host (a host without truss can always be torn down gracefully). */
  started(): boolean;
  start(opts?: TrussOptions): Promise<void>;
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
  /** stop, then start with the last options (and `env` added: bench/cluster.ts switches --wireguard-go) */
  restart(env?: Readonly<Record<string, string>>): Promise<void>;
  status(): Promise<TrussStatus>;
  /** Runs the truss CLI in the host's namespaces, with DOCKER_HOST naming the host's dockerd. */
  cli(args: readonly string[], timeoutMs?: number): ReturnType<typeof run>;
  log(): string;
  /** The last `lines` lines of the log, for a failure message. */
  logTail(lines?: number): string;
}

/** POST /Plugin.Activate on the plugin socket; resolves with the HTTP status (0 if unreachable). */
export function activate(socketPath: string, timeoutMs = 2000): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/Plugin.Activate', method: 'POST', timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

function childEnv(opts: TrussOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('TRUSS_') && k !== 'DOCKER_PLUGIN_DEBUG') env[k] = v;
  }
  env.PATH = CHILD_PATH;
  if (opts.debug) env.DOCKER_PLUGIN_DEBUG = 'true';
  return { ...env, ...opts.env };
}

/**
 * dockerdPid: the host's dockerd, whose mount+net namespaces the plugin joins (and its UTS
 * namespace with `uts`: the host's own hostname, HostOptions.hostname).
 */
export function trussDaemon(dockerdPid: () => number, dir: string, opts: { readonly uts?: boolean } = {}): TrussDaemon {
  const stateDir = `${dir}/state`;
  const logFile = `${dir}/truss.log`;
  /** the socket host.ts gives this host's dockerd (--host) */
  const dockerHost = `unix://${dir}/docker.sock`;
  let child: ChildProcess | undefined;
  let lastOpts: TrussOptions = {};
  const inHost = (argv: readonly string[]): string[] => [
    'nsenter',
    `--target=${dockerdPid()}`,
    '--mount',
    '--net',
    ...(opts.uts ? ['--uts'] : []),
    '--',
    ...argv,
  ];
  const pid = (): number | undefined => (child?.pid !== undefined && isAlive(child.pid) ? child.pid : undefined);
  const self: TrussDaemon = {
    stateDir,
    logFile,
    pid,
    running: () => pid() !== undefined,
    exitCode: () => child?.exitCode ?? null,
    started: () => child !== undefined,
    async start(opts: TrussOptions = lastOpts) {
      if (pid() !== undefined) throw new Error('truss is already running');
      if (!existsSync(TRUSS_BIN)) throw new Error(`${TRUSS_BIN} does not exist (the daemon is not built yet)`);
      lastOpts = opts;
      mkdirSync(stateDir, { recursive: true });
      let argv: string[];
      if (opts.runScript) {
        if (opts.debug || opts.defaultPools) throw new Error('runScript: only extraArgs, as a user passes them');
        if (!existsSync(DEFAULT_STATE_DIR)) throw new Error(`runScript: ${DEFAULT_STATE_DIR} does not exist`);
        // -ef: the same directory, i.e. bound already (a restart); never some other mount found there
        const bind = `[ ${DEFAULT_STATE_DIR} -ef "$1" ] || mount --bind "$1" ${DEFAULT_STATE_DIR} && [ ${DEFAULT_STATE_DIR} -ef "$1" ]`;
        const r = await run(inHost(['sh', '-c', bind, 'sh', stateDir]), { env: childEnv({}) });
        if (r.code !== 0) throw new Error(`bind ${stateDir} on ${DEFAULT_STATE_DIR}: ${r.stderr}`);
        argv = inHost([RUN_SH, ...(opts.extraArgs ?? [])]);
      } else {
        const args = ['serve', '--socket', PLUGIN_SOCKET, '--state-dir', stateDir];
        if (opts.debug) args.push('--log-level', 'debug');
        if (opts.defaultPools) args.push('--default-pools', opts.defaultPools);
        args.push(...(opts.extraArgs ?? []));
        argv = inHost([TRUSS_BIN, ...args]);
      }
      const out = openSync(logFile, 'a');
      child = spawn(argv[0] as string, argv.slice(1), {
        // like the docker CLI, truss follows the Docker API at DOCKER_HOST: this host's dockerd
        env: childEnv({ ...opts, env: { DOCKER_HOST: dockerHost, ...opts.env } }),
        stdio: ['ignore', out, out],
        detached: true,
      });
      child.unref();
      closeSync(out);
      const sock = `/proc/${dockerdPid()}/root${PLUGIN_SOCKET}`;
      const deadline = Date.now() + (opts.readyTimeoutMs ?? 20_000);
      for (;;) {
        if ((await activate(sock)) === 200) return;
        const why = pid() === undefined ? 'truss exited during start-up' : Date.now() > deadline ? 'timed out' : '';
        if (why) {
          const tail = self.logTail();
          throw new Error(
            `truss did not answer Plugin.Activate on ${PLUGIN_SOCKET}: ${why}\n--- truss log tail ---\n${tail}`,
          );
        }
        await sleep(100);
      }
    },
    async stop(signal = 'SIGTERM', timeoutMs = 10_000) {
      const p = pid();
      if (p === undefined) return;
      const kill = (sig: NodeJS.Signals): void => {
        try {
          process.kill(-p, sig); // the whole process group: a wrapper script and its node
        } catch {
          // gone
        }
      };
      kill(signal);
      if (!(await waitExit(p, timeoutMs))) {
        kill('SIGKILL');
        await waitExit(p, 5000);
      }
    },
    async restart(env) {
      await self.stop('SIGTERM');
      await self.start(env ? { ...lastOpts, env: { ...lastOpts.env, ...env } } : lastOpts);
    },
    async status() {
      const r = await self.cli(['status', '--state-dir', stateDir, '--json']);
      if (r.code !== 0) throw new Error(`truss status failed (exit ${r.code}): ${r.stderr}${r.stdout}`);
      return JSON.parse(r.stdout) as TrussStatus;
    },
    // The CLI (not the daemon) may ask Docker, e.g. to resolve a network name: point it at this host's dockerd.
    cli: (args, timeoutMs = 30_000) =>
      run(inHost([TRUSS_BIN, ...args]), { env: { ...childEnv({}), DOCKER_HOST: dockerHost }, timeoutMs }),
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    logTail: (lines = 30) => self.log().split('\n').slice(-lines).join('\n'),
  };
  return self;
}

/**
 * Waits until truss has no full pass scheduled (dockerd's Plugin.Activate schedules some for 10 s):
 * a test that tampers with the kernel and expects status to report it must not race a pass that
 * repairs it first.
 */
export async function trussQuiet(status: () => Promise<TrussStatus>, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    async () => {
      const r = (await status()).reconciler;
      return (r?.scheduledPasses ?? 0) === 0 && r?.passRunning !== true;
    },
    timeoutMs,
    {
      what: 'no reconcile pass running or scheduled in truss',
      intervalMs: 250,
    },
  );
}
