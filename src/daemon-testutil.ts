/**
 * Real `truss serve` daemons for the kernel tests (root): started by hand (bin/truss, its own
 * process group) inside a scratch namespace with a temp --state-dir and --socket, spoken to
 * over those sockets, and killed with their group. daemonSuite() holds the set-up a suite
 * repeats: the namespace, the temp dir, and every daemon it starts, gone in its `after` hook.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before } from 'node:test';
import { createScratch, type Scratch, type TestNs } from './dataplane/linux/netns-testutil.ts';

export const TRUSS = join(import.meta.dirname, '../bin/truss');

export interface Reply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** One HTTP request over a Unix socket, JSON both ways; fails after `timeoutMs`. */
export function request(
  socket: string,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 30_000,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, path, method, timeout: timeoutMs }, (res) => {
      let text = '';
      res.on('data', (b: Buffer) => {
        text += b.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text || '{}') }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

export const post = (socket: string, path: string, body: unknown, timeoutMs?: number): Promise<Reply> =>
  request(socket, 'POST', path, body, timeoutMs);

/** GET, the reply's body (the admin API: /v1/status). */
export const get = async (socket: string, path: string): Promise<Record<string, unknown>> =>
  (await request(socket, 'GET', path)).body;

export interface Daemon {
  readonly child: ChildProcess;
  /** its stdout and stderr so far */
  output(): string;
  readonly exited: Promise<number>;
}

/** Spawns argv (a `truss serve`, often wrapped in nsenter/unshare) in its own process group. */
export function startDaemon(argv: readonly string[]): Daemon {
  const [file, ...args] = argv as [string, ...string[]];
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  const add = (b: Buffer): void => {
    out += b.toString();
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  const exited = new Promise<number>((r) => child.on('close', (code) => r(code ?? 128)));
  return { child, output: () => out, exited };
}

/** Signals the daemon's whole process group and waits until it is gone; a gone daemon is success. */
export async function stopDaemon(d: Daemon, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (d.child.exitCode !== null || d.child.pid === undefined) return;
  try {
    process.kill(-d.child.pid, signal);
  } catch {}
  await d.exited;
}

/** Waits until the daemon answers Plugin.Activate on `socket`; throws with its output if it exits or `ms` pass. */
export async function waitForSocket(d: Daemon, socket: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await post(socket, '/Plugin.Activate', {}).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    if (d.child.exitCode !== null) throw new Error(`truss serve exited: ${d.output()}`);
    if (Date.now() > deadline) throw new Error(`truss serve did not listen: ${d.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface DaemonSuite {
  /** the simulated host: a scratch namespace (made in the suite's `before`) */
  readonly ns: TestNs;
  /** a temp dir for state dirs and sockets (made in the suite's `before`) */
  readonly dir: string;
  /** startDaemon, the daemon killed (SIGKILL, its group) when the suite ends */
  start(argv: readonly string[]): Daemon;
  /** the suite's scratch, for more namespaces and processes */
  readonly scratch: Scratch;
}

/**
 * Call in a describe body: a namespace `role` and a temp dir `truss-<tmp>-…` made in `before`;
 * in `after`, every daemon started is killed, then the dir and the namespace are removed.
 */
export function daemonSuite(role: string, tmp: string): DaemonSuite {
  const scratch = createScratch();
  const daemons: Daemon[] = [];
  let ns: TestNs | undefined;
  let dir: string | undefined;
  before(async () => {
    ns = await scratch.ns(role);
    const made = mkdtempSync(join(tmpdir(), `truss-${tmp}-`));
    dir = made;
    scratch.defer(() => rmSync(made, { recursive: true, force: true }));
    scratch.defer(async () => {
      for (const d of daemons) await stopDaemon(d);
    });
  });
  const ready = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('daemonSuite: used before its before hook ran');
    return v;
  };
  return {
    scratch,
    get ns() {
      return ready(ns);
    },
    get dir() {
      return ready(dir);
    },
    start(argv) {
      const d = startDaemon(argv);
      daemons.push(d);
      return d;
    },
  };
}
