/**
 * bench/converge's simulated hosts: no dockerd, only `truss serve` (the bundle, as scripts/run.sh
 * runs it) in a network namespace of its own on the e2e underlay, joined to the underlay's etcd
 * (--store etcd://, its own --node-name and --advertise-address, own --state-dir, plugin socket
 * and admin socket), in a private mount namespace with a tmpfs on /run/wireguard: wireguard-go's
 * UAPI sockets live there, and two hosts' `trwg0` sockets would otherwise be one file.
 *
 * Each host has a route watcher: `ip -ts monitor route` in its namespace for as long as it runs,
 * which records when each route first appeared there (ip's own timestamp, microseconds, so the
 * figure does not depend on when this process got round to reading the line).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { clusterServeArgs } from '../e2e/harness/cluster.ts';
import { run } from '../e2e/harness/exec.ts';
import { createNetns, deleteNetns, netnsPath } from '../e2e/harness/netns.ts';
import { CHILD_PATH, NETNS_PREFIX, WORK_DIR } from '../e2e/harness/paths.ts';
import { isAlive, waitExit } from '../e2e/harness/procs.ts';
import { activate } from '../e2e/harness/truss.ts';
import type { Underlay } from '../e2e/harness/underlay.ts';
import { sleep } from '../e2e/harness/wait.ts';
import { DAEMON_NODE_FLAGS, ensureBundle, NODE_BIN } from '../packaging/bundle.ts';
import { type NetworkRef, PluginClient } from './scale-rpc.ts';

export const CONVERGE_DIR = join(WORK_DIR, 'converge');

// A fixed script (the values come as arguments): the tmpfs only in this private mount namespace.
const WRAPPER = `set -e
mkdir -p /run/wireguard
mount -t tmpfs -o mode=0755 tmpfs /run/wireguard
exec "$@"`;

/** Wall-clock ms (sub-ms), the clock `ip -ts` prints. */
export const wallMs = (): number => performance.timeOrigin + performance.now();

/** `[2026-12-07T03:05:34.656257] 198.18.127.192/26 dev trwg0 ...` → [ms since the epoch, the route's destination]. */
export function parseMonitorLine(line: string): { atMs: number; dst: string } | undefined {
  const m = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{1,6})\] (\S+) /.exec(line);
  if (!m || m[3] === 'Deleted') return undefined;
  // no offset in ip's timestamp: local time, which Date.parse assumes for a date-time without one
  const atMs = Date.parse(m[1] as string) + Number(`0.${m[2]}`) * 1000;
  return Number.isFinite(atMs) ? { atMs, dst: m[3] as string } : undefined;
}

export class SimHost {
  readonly index: number;
  readonly name: string;
  readonly ns: string;
  readonly dir: string;
  readonly socket: string;
  readonly client: PluginClient;
  /** the cluster network while this host is a member */
  net: NetworkRef | undefined;
  readonly #firstSeen = new Map<string, number>();
  #daemon: ChildProcess | undefined;
  #monitor: ChildProcess | undefined;

  constructor(index: number) {
    this.index = index;
    this.name = `cv${index}`;
    this.ns = `${NETNS_PREFIX}cv${index}`;
    this.dir = join(CONVERGE_DIR, this.name);
    this.socket = join(this.dir, 'p.sock');
    this.client = new PluginClient(this.socket);
  }

  get pid(): number | undefined {
    return this.#daemon?.pid;
  }

  /** CPU ms truss has used so far, with the tools it ran and waited for (ip, nft, wg; not wireguard-go). */
  cpuMs(): number {
    const pid = this.#daemon?.pid;
    if (pid === undefined) return Number.NaN;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // from field 3 (state) on
    return [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0) * 10; // utime stime cutime cstime, 10 ms ticks
  }

  /** When a route to `dst` first appeared in this host's namespace since it started (epoch ms). */
  seen(dst: string): number | undefined {
    return this.#firstSeen.get(dst);
  }

  async start(u: Underlay): Promise<void> {
    mkdirSync(join(this.dir, 'state'), { recursive: true });
    await createNetns(this.ns);
    const { address } = await u.attach(this.ns, this.index, this.name);
    this.#watchRoutes();
    const log = join(this.dir, 'truss.log');
    const out = openSync(log, 'w');
    const serve = [
      ...[NODE_BIN, ...DAEMON_NODE_FLAGS, (await ensureBundle()).path, 'serve'],
      ...['--socket', this.socket, '--state-dir', join(this.dir, 'state')],
      ...clusterServeArgs(u, this.name, address),
    ];
    const argv = ['nsenter', `--net=${netnsPath(this.ns)}`, 'unshare', '--mount', '--propagation', 'private'];
    this.#daemon = spawn(argv[0] as string, [...argv.slice(1), '--', 'sh', '-c', WRAPPER, 'truss', ...serve], {
      env: daemonEnv(),
      stdio: ['ignore', out, out],
      detached: true,
    });
    closeSync(out);
    this.#daemon.unref();
    const deadline = Date.now() + 60_000;
    while ((await activate(this.socket)) !== 200) {
      const pid = this.#daemon.pid;
      if (pid === undefined || !isAlive(pid) || Date.now() > deadline) {
        throw new Error(
          `${this.name}: truss did not start:\n${readFileSync(log, 'utf8').split('\n').slice(-30).join('\n')}`,
        );
      }
      await sleep(100);
    }
  }

  #watchRoutes(): void {
    const child = spawn('ip', ['-n', this.ns, '-ts', 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.#monitor = child;
    let rest = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        const r = parseMonitorLine(line);
        if (r && !this.#firstSeen.has(r.dst)) this.#firstSeen.set(r.dst, r.atMs);
      }
    });
  }

  /** The routes in this host's namespace on the cluster devices (trwg0, trvx0), by destination. */
  async clusterRoutes(): Promise<string[]> {
    const r = await run(['ip', '-n', this.ns, '-j', 'route', 'show']);
    return (JSON.parse(r.stdout || '[]') as { dst: string; dev?: string }[])
      .filter((x) => x.dev === 'trwg0' || x.dev === 'trvx0')
      .map((x) => x.dst);
  }

  /** SIGTERM (then SIGKILL) to truss, the watcher stopped, the namespace (and wireguard-go in it) gone. */
  async stop(): Promise<void> {
    this.client.close();
    const pid = this.#daemon?.pid;
    if (pid !== undefined && isAlive(pid)) {
      process.kill(pid, 'SIGTERM');
      if (!(await waitExit(pid, 15_000))) {
        process.kill(pid, 'SIGKILL');
        await waitExit(pid, 5000);
      }
    }
    this.#monitor?.kill('SIGTERM');
    await deleteNetns(this.ns);
  }
}

function daemonEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('TRUSS_') && k !== 'DOCKER_PLUGIN_DEBUG' && k !== 'NODE_OPTIONS') env[k] = v;
  }
  env.PATH = CHILD_PATH;
  return env;
}
