/**
 * The fault campaign's host (docs/reliability.md): `truss serve` (the bundle, as scripts/run.sh
 * and the managed plugin run it) inside a throwaway network namespace with its own state dir
 * and socket, optionally with TRUSS_FAULT armed; killed with SIGKILL or by its own injected
 * crash, restarted on the same state. Read back: its status and reconcile over the admin socket,
 * the truss-owned kernel objects in its namespace, its RSS and open fds.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { trussKernelObjects } from '../../e2e/harness/leftovers.ts';
import { createNetns, deleteNetns, netnsPath } from '../../e2e/harness/netns.ts';
import { CHILD_PATH, NETNS_PREFIX, WORK_DIR } from '../../e2e/harness/paths.ts';
import { isAlive, waitExit } from '../../e2e/harness/procs.ts';
import { activate } from '../../e2e/harness/truss.ts';
import { sleep } from '../../e2e/harness/wait.ts';
import { DAEMON_NODE_FLAGS, ensureBundle, NODE_BIN } from '../../packaging/bundle.ts';
import { adminRequest, decodeReply } from '../../src/cli/admin-client.ts';
import { adminSocketPath } from '../../src/config.ts';
import { reconcileBody } from '../../src/core/admin-api.ts';

export interface Status {
  readonly endpoints: readonly { id: string; networkId: string; ipv4?: string; sandboxKey?: string }[];
  readonly networks: readonly { id: string }[];
  readonly addresses: readonly { address?: string; poolId?: string; kind?: string }[];
  readonly kernel: { inSync: boolean; problems: string[] };
}

function daemonEnv(fault: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('TRUSS_') && k !== 'DOCKER_PLUGIN_DEBUG' && k !== 'NODE_OPTIONS') env[k] = v;
  }
  env.PATH = CHILD_PATH;
  if (fault !== undefined) env.TRUSS_FAULT = fault;
  return env;
}

export class CampaignHost {
  readonly ns: string;
  readonly dir: string;
  readonly socket: string;
  readonly stateDir: string;
  readonly log: string;
  #child: ChildProcess | undefined;
  /** daemon starts, for the report */
  starts = 0;

  constructor(tag: string) {
    this.ns = `${NETNS_PREFIX}fc${tag}`;
    this.dir = join(WORK_DIR, `campaign-${tag}`);
    this.socket = join(this.dir, 'p.sock');
    this.stateDir = join(this.dir, 'state');
    this.log = join(this.dir, 'truss.log');
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async setup(): Promise<void> {
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.stateDir, { recursive: true });
    await createNetns(this.ns);
  }

  /** Start the daemon (fault = a TRUSS_FAULT value) and wait until it answers Plugin.Activate. */
  async start(fault?: string): Promise<void> {
    const bundle = (await ensureBundle()).path;
    const out = openSync(this.log, 'a');
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        this.ns,
        NODE_BIN,
        ...DAEMON_NODE_FLAGS,
        bundle,
        'serve',
        '--socket',
        this.socket,
        '--state-dir',
        this.stateDir,
        '--resync-seconds',
        '3600',
      ],
      { env: daemonEnv(fault), stdio: ['ignore', out, out], detached: true },
    );
    closeSync(out);
    child.unref();
    this.#child = child;
    this.starts++;
    const deadline = Date.now() + 30_000;
    while ((await activate(this.socket)) !== 200) {
      if (child.pid === undefined || !isAlive(child.pid) || Date.now() > deadline) {
        throw new Error(`truss did not start:\n${this.tail()}`);
      }
      await sleep(50);
    }
  }

  tail(lines = 30): string {
    return readFileSync(this.log, 'utf8').split('\n').slice(-lines).join('\n');
  }

  /** Wait until the daemon is gone (its own injected crash); false if it still runs after timeoutMs. */
  async exited(timeoutMs = 10_000): Promise<boolean> {
    const pid = this.#child?.pid;
    return pid === undefined || (await waitExit(pid, timeoutMs));
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const pid = this.#child?.pid;
    if (pid === undefined || !isAlive(pid)) return;
    process.kill(pid, signal);
    if (!(await waitExit(pid, 15_000))) {
      process.kill(pid, 'SIGKILL');
      await waitExit(pid, 5000);
    }
  }

  status(): Promise<Status> {
    return adminRequest(adminSocketPath(this.stateDir), 'GET', '/v1/status') as unknown as Promise<Status>;
  }

  /** A full pass now (`truss reconcile`); the kernel check after it. */
  async reconcile(): Promise<{ inSync: boolean; problems: string[] }> {
    const r = await adminRequest(adminSocketPath(this.stateDir), 'POST', '/v1/reconcile');
    const { inSync, problems } = decodeReply(reconcileBody, r, 'reconcile').kernel;
    return { inSync, problems: [...problems] };
  }

  /** truss-owned kernel objects in the host namespace (links, nft tables, routes, rules). */
  kernelObjects(): Promise<string[]> {
    return trussKernelObjects(netnsPath(this.ns));
  }

  /** VmRSS (MiB) and open fds of the daemon. */
  resources(): { rssMiB: number; fds: number } {
    const pid = this.#child?.pid;
    if (pid === undefined) throw new Error('no daemon');
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(text)?.[1] ?? Number.NaN);
    return { rssMiB: kb / 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
  }

  /** A reboot as the kernel sees it: the namespace and every object in it gone, a fresh one; the state dir stays. */
  async rebootNamespace(): Promise<void> {
    await this.kill();
    await deleteNetns(this.ns);
    await createNetns(this.ns);
  }

  async teardown(): Promise<void> {
    await this.kill('SIGTERM');
    await deleteNetns(this.ns);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
