/**
 * Kernel change notices, so that a read can be answered from the last look while nothing changed
 * (issue 18: `truss status` at 1,000 endpoints without listing the kernel each time). Two
 * long-lived monitors, `ip monitor link address route rule` (rtnetlink) and `nft monitor` (every
 * nftables table: truss's, and iptables-nft's), print a line per change; generation() counts
 * them. Any notice makes every remembered look stale, whoever made the change (truss's own writes
 * included), except what no check reads and the kernel announces on its own seconds after an
 * attach (IpNotices): a link's carrier and operational state, and the IPv6 link-local addresses
 * and routes that follow duplicate address detection. Counted, each attach of a burst would make
 * status list the whole kernel again for the next 15 s (1,000 endpoints: ~200 ms a status).
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

/** fe80::/10 (link-local) and ff00::/8 as `ip monitor` prints them */
const LINK_LOCAL = /^fe[89ab][0-9a-f]:/;
/** the words of a link notice that only tell carrier and operational state, which no check reads */
const LINK_STATE = /\b(LOWER_UP|NO-CARRIER|DORMANT|M-DOWN)\b|\bstate \S+ ?/g;
/** a notice without its state words, nor where the veth's peer is now (`@trc…`, `@if12`, `link-netnsid 0`) */
const shapeOf = (notice: readonly string[]): string =>
  notice
    .map((l) =>
      l
        .replace(LINK_STATE, '')
        .replace(/,+(?=[,>])|(?<=<),+/g, '')
        .replace(/^(\d+: [^@:\s]+)@[^:\s]+:/, '$1:')
        .replace(/ link-netns(id)? \S+/, ''),
    )
    .join('\n');

/**
 * Pure: is this `ip monitor` notice (its first line) the kernel's own IPv6 link-local bookkeeping,
 * which truss neither makes nor reads? Everything else counts.
 */
export function kernelNoise(line: string): boolean {
  const l = line.replace(/^Deleted /, '');
  const addr = /^\d+: \S+\s+inet6 (\S+) scope link\b/.exec(l);
  if (addr) return LINK_LOCAL.test(addr[1] ?? '');
  const local = /^local (\S+) dev \S+ table local proto kernel\b/.exec(l);
  if (local) return LINK_LOCAL.test(local[1] ?? '');
  return /^(fe80::\/64 dev \S+ proto kernel|multicast ff00::\/8 dev \S+ table local proto kernel)\b/.test(l);
}

/**
 * Reads `ip monitor`'s output chunk by chunk and tells whether a chunk holds a notice that counts:
 * not kernelNoise, and not a link notice that repeats the link's previous one but for its carrier,
 * operational state and where its veth peer went (the container's end moved into its namespace
 * and up: the host end's carrier comes seconds after the attach that made it, in batches, and
 * each would make status list the whole kernel again). A notice is its first line and
 * the indented lines after it; one split across chunks counts (never a missed change).
 */
export class IpNotices {
  /** ifindex (+ " port": the bridge's notices) -> the link's last notice without its state words */
  readonly #links = new Map<string, string>();
  #partial = '';

  matters(chunk: string): boolean {
    const lines = (this.#partial + chunk).split('\n');
    this.#partial = lines.pop() ?? '';
    const notices: string[][] = [];
    let counts = false;
    for (const line of lines) {
      if (line === '') continue;
      if (/^\s/.test(line)) {
        if (notices.length === 0)
          counts = true; // the rest of a notice of the chunk before
        else notices.at(-1)?.push(line);
      } else notices.push([line]);
    }
    for (const n of notices) if (this.#counts(n)) counts = true;
    return counts;
  }

  #counts(notice: readonly string[]): boolean {
    const [head = ''] = notice;
    if (kernelNoise(head)) return false;
    const link = /^(Deleted )?(\d+): \S+: </.exec(head);
    if (!link) return true;
    // two kinds of notice per link: rtnetlink's own (with its qdisc) and the bridge's about its port
    const index = `${link[2]}${head.includes(' qdisc ') ? '' : ' port'}`;
    if (link[1]) {
      this.#links.delete(`${link[2]}`);
      this.#links.delete(`${link[2]} port`);
      return true;
    }
    const shape = shapeOf(notice);
    const same = this.#links.get(index) === shape;
    this.#links.set(index, shape);
    return !same;
  }
}

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
    const ip = bin === 'ip' ? new IpNotices() : undefined;
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      if (!ip || ip.matters(chunk)) notices++;
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
