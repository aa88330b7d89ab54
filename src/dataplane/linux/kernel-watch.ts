/**
 * Kernel change notices, so that a read can be answered from the last look while nothing changed
 * (issue 18: `truss status` at 1,000 endpoints without listing the kernel each time). Two
 * long-lived monitors, `ip monitor link address route rule` (rtnetlink) and `nft monitor` (every
 * nftables table: truss's, and iptables-nft's), print a line per change; generation() counts
 * them. Nothing is parsed: any notice makes every remembered look stale, whoever made the change
 * (truss's own writes included).
 *
 * What it cannot see, a reader must list each time: qdiscs (tc), WireGuard peers, the VXLAN FDB,
 * neighbour proxies, sysctls, and iptables-legacy rules (reconcile/kind.ts `watched` says which
 * kinds are covered). generation() is undefined while a monitor is not running, or ran for less
 * than settleMs (subscribed late, it could have missed a change): then nothing may be remembered.
 * A monitor that exits is started again after a second.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { DataplaneLog } from './exec.ts';

export interface KernelWatch {
  /** changes with every change the kernel announced; undefined: not watching now */
  generation(): number | undefined;
  close(): void;
}

export interface KernelWatchOptions {
  /** run the monitors in this network namespace (nsenter), as exec.ts runs commands */
  readonly netns?: string;
  readonly log?: DataplaneLog;
  /** how long a started monitor runs before its silence means something (default 300 ms) */
  readonly settleMs?: number;
  /** test seam: the argv of each monitor */
  readonly monitors?: readonly (readonly string[])[];
}

export const MONITORS: readonly (readonly string[])[] = [
  ['ip', 'monitor', 'link', 'address', 'route', 'rule'],
  ['nft', 'monitor'],
];

const RESTART_MS = 1_000;

export function watchKernel(opts: KernelWatchOptions = {}): KernelWatch {
  const settleMs = opts.settleMs ?? 300;
  let notices = 0;
  let closed = false;
  const running = new Map<number, { child: ChildProcess; since: number }>();
  const timers = new Set<NodeJS.Timeout>();
  /** the monitors whose stop was logged as a warning already */
  const warned = new Set<number>();

  const start = (i: number, argv: readonly string[]): void => {
    if (closed) return;
    const [bin, ...args] = argv as [string, ...string[]];
    const cmd = opts.netns === undefined ? [bin, ...args] : ['nsenter', `--net=${opts.netns}`, '--', bin, ...args];
    const child = spawn(cmd[0] as string, cmd.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
    notices++; // whatever happened while it was not running
    running.set(i, { child, since: performance.now() });
    child.stdout?.on('data', () => {
      notices++;
    });
    const gone = (why: unknown): void => {
      if (running.get(i)?.child !== child) return;
      const ranMs = performance.now() - (running.get(i)?.since ?? 0);
      running.delete(i);
      notices++;
      if (closed) return;
      // why: one that cannot run at all would say so every second
      const say = ranMs > 60_000 || !warned.has(i) ? 'warn' : 'debug';
      warned.add(i);
      opts.log?.[say]('kernel monitor stopped; status lists the kernel until it is back', { argv, why: String(why) });
      const t = setTimeout(() => {
        timers.delete(t);
        start(i, argv);
      }, RESTART_MS);
      t.unref();
      timers.add(t);
    };
    child.on('error', gone);
    child.on('exit', (code, signal) => gone(signal ?? code));
    // a daemon's helper: it must not keep the process alive, nor outlive it (EOF on close)
    child.unref();
    (child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
  };
  const monitors = opts.monitors ?? MONITORS;
  for (const [i, argv] of monitors.entries()) start(i, argv);
  // why: a monitor reads no stdin, so the daemon's end is no EOF to it; killed at exit (after a
  // SIGKILL of the daemon it ends on its next notice, writing into a pipe nobody reads: SIGPIPE)
  const stopAll = (): void => {
    closed = true;
    for (const t of timers) clearTimeout(t);
    for (const r of running.values()) r.child.kill();
    running.clear();
  };
  process.once('exit', stopAll);

  return {
    generation() {
      if (closed || running.size < monitors.length) return undefined;
      const now = performance.now();
      for (const r of running.values()) if (now - r.since < settleMs) return undefined;
      return notices;
    },
    close() {
      stopAll();
      process.removeListener('exit', stopAll);
    },
  };
}
