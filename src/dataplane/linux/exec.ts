/**
 * The one door to the kernel: runs ip/nft/iptables-restore/sysctl/conntrack as child processes with
 * argv arrays (never a shell) and, for batches, text on stdin (`ip -batch -`, `nft -f -`,
 * `iptables-restore`). Binaries are resolved to absolute paths once. With `netns` set,
 * every command runs as `nsenter --net=<path> -- <bin> ...` (tests, simulated hosts).
 *
 * Kernel errors are normalised here and only here: callers branch on KernelError.code,
 * never on stderr text.
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { errors } from '../../core/errors.ts';
import { joinScript, locateErrors, NftSession } from './nft-session.ts';

export type KernelErrorCode = 'EEXIST' | 'ENODEV' | 'ENOENT' | 'ESRCH' | 'EBUSY' | 'EPERM' | 'EINVAL' | 'OTHER';

export class KernelError extends Error {
  readonly code: KernelErrorCode;
  readonly argv: readonly string[];
  readonly exitCode: number;
  readonly stderr: string;
  /** 1-based line of the failing command of a stdin batch, when the tool says so */
  readonly line?: number;
  constructor(code: KernelErrorCode, argv: readonly string[], exitCode: number, stderr: string) {
    const first = stderr.trim().split('\n')[0] ?? '';
    super(`${argv.join(' ')}: ${first || `exit code ${exitCode}`}`);
    this.name = 'KernelError';
    this.code = code;
    this.argv = argv;
    this.exitCode = exitCode;
    this.stderr = stderr;
    const line = batchLineOf(stderr);
    if (line !== undefined) this.line = line;
  }
}

export const isKernelError = (e: unknown, code?: KernelErrorCode): e is KernelError =>
  e instanceof KernelError && (code === undefined || e.code === code);

// Most specific first: "Cannot find device" must win over the generic "not found".
const PATTERNS: readonly (readonly [RegExp, KernelErrorCode])[] = [
  [/file exists|already exists/i, 'EEXIST'],
  // `conntrack -D` that matched nothing exits 1 with this line and no errno text
  [/(?:^|\D)0 flow entries have been deleted/i, 'ENOENT'],
  [/no such device|cannot find device|device (?:"[^"]*" )?does not exist/i, 'ENODEV'],
  [/no such process/i, 'ESRCH'],
  [/device or resource busy|resource busy/i, 'EBUSY'],
  [/operation not permitted|permission denied|must be root/i, 'EPERM'],
  [
    /no such file or directory|not found|no chain\/target\/match by that name|does a matching rule exist|cannot stat/i,
    'ENOENT',
  ],
  [/invalid argument|invalid|out of range|greater than|less than/i, 'EINVAL'],
];

/** Maps a tool's stderr to a stable code. The single place that reads error text. */
export function normaliseKernelError(stderr: string): KernelErrorCode {
  for (const [re, code] of PATTERNS) if (re.test(stderr)) return code;
  return 'OTHER';
}

/** `ip -batch`: "Command failed -:3"; `nft -f -`: "/dev/stdin:3:5-9: Error: ..." */
export function batchLineOf(stderr: string): number | undefined {
  const m = /Command failed -:(\d+)/.exec(stderr) ?? /\/dev\/stdin:(\d+):/.exec(stderr);
  return m ? Number(m[1]) : undefined;
}

/** The slice of the daemon's logger the dataplane uses (obs/logger's Logger fits). */
export interface DataplaneLog {
  debug(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export type OnCommand = (
  argv: readonly string[],
  stdin: string | undefined,
  durationMs: number,
  exitCode: number,
) => void;

export interface RunOptions {
  readonly stdin?: string;
  readonly timeoutMs?: number;
  /**
   * `nft -f -` only: run the script in the long-lived `nft -i` (nft-session.ts) when it is made of
   * one-line commands and the exec has a session; else as usual. For small, frequent transactions
   * on the attach path (the guard's elements). The script must be idempotent: when the session
   * fails mid-transaction (nft died or stuck) it runs again as `nft -f -`.
   */
  readonly session?: boolean;
}

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
}

export interface Exec {
  /** `bin` is a tool name ("ip") resolved once on PATH, or an absolute path. Throws KernelError on exit != 0. */
  run(bin: string, args: readonly string[], opts?: RunOptions): Promise<ExecResult>;
  /** Absolute path of a tool, or undefined when it is not installed. */
  which(bin: string): string | undefined;
  readonly netns?: string;
  /**
   * Where our own network namespace's /proc/sys is (ExecOptions.procSys, default /proc/sys;
   * unset with `netns`): sysctls are then read and written as files there instead of with the
   * `sysctl` tool, which only runs for another namespace (through nsenter).
   */
  readonly procSys?: string;
  /** The debug hook of every command, for work done without a process (sysctl files): argv names it. */
  readonly onCommand?: OnCommand;
  /** Ends the waiting spare processes (SpareProcesses), if any. */
  close?(): void;
}

export interface ExecOptions {
  readonly netns?: string;
  readonly onCommand?: OnCommand;
  /** Directories searched for tools after /usr/sbin, /usr/bin, /sbin, /bin; defaults to PATH. */
  readonly searchPath?: readonly string[];
  /**
   * Where /proc/sys is writable, when not at /proc/sys (default /proc/sys). why: Docker mounts /proc/sys read-only
   * in a managed plugin (moby oci.DefaultSpec ReadonlyPaths); the plugin gets the host's
   * /proc/sys/net bind-mounted read-write at another path. Ignored with `netns`.
   */
  readonly procSys?: string;
  /** Run `ip -batch -` from a spare started ahead (SpareProcesses). Default: only without `netns`. */
  readonly spareProcesses?: boolean;
  /**
   * Run `nft -f -` scripts asked to (RunOptions.session) in one long-lived `nft -i` (nft-session.ts).
   * Default: as spareProcesses.
   */
  readonly nftSession?: boolean;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_PROC_SYS = '/proc/sys';
/**
 * stdin batch tools run from a spare process (SpareProcesses): the attach path's link batches, and
 * its nft transactions (an endpoint's anti-spoofing elements; nft reads all of stdin before it
 * looks at the kernel, so a spare's ruleset view is as fresh as a new process's)
 */
const SPARE_TOOLS = new Set(['ip -batch -', 'nft -f -']);

/** Searched first, always: a tool in a user's directory on root's PATH never shadows the system's (L7). */
const SYSTEM_DIRS = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'] as const;

function searchDirs(extra?: readonly string[]): string[] {
  const fromEnv = (process.env.PATH ?? '').split(delimiter).filter((d) => isAbsolute(d));
  return [...new Set([...SYSTEM_DIRS, ...(extra ?? fromEnv)])];
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function createExec(opts: ExecOptions = {}): Exec {
  const dirs = searchDirs(opts.searchPath);
  // only hits are cached: a tool installed while the daemon runs is found on its next use (L7)
  const cache = new Map<string, string>();
  // why: not for another namespace by default (tests): a spare would outlive the scratch namespace
  const spares = (opts.spareProcesses ?? opts.netns === undefined) ? new SpareProcesses() : undefined;
  const inNs = (bin: string, args: readonly string[]): string[] =>
    opts.netns === undefined
      ? [resolve(bin), ...args]
      : [resolve('nsenter'), `--net=${opts.netns}`, '--', resolve(bin), ...args];
  const session =
    (opts.nftSession ?? opts.spareProcesses ?? opts.netns === undefined)
      ? new NftSession(() => spawnChild(inNs('nft', ['-i']), true) as ChildProcessByStdio<Writable, Readable, Readable>)
      : undefined;
  let sessionBroken = false;
  const which = (bin: string): string | undefined => {
    const hit = cache.get(bin);
    if (hit !== undefined) return hit;
    const candidates = isAbsolute(bin) ? [bin] : dirs.map((d) => join(d, bin));
    const found = candidates.find(isExecutable);
    if (found !== undefined) cache.set(bin, found);
    return found;
  };
  const resolve = (bin: string): string => {
    const path = which(bin);
    // why: the message reaches Docker clients: it names the system dirs, never root's PATH (L7)
    if (!path) {
      throw errors.unsupported(
        `the program '${bin}' was not found in ${SYSTEM_DIRS.join(', ')} or the daemon's PATH; install it on the host`,
      );
    }
    return path;
  };
  /**
   * The script in the session; undefined: run it as `nft -f -` instead (not one line, no session, or the
   * session failed: nft died or stuck, its outcome unknown, so the caller's script, idempotent by
   * RunOptions.session's contract, runs again). Three processes that never finished a transaction
   * (an nft built without its interactive CLI): no session any more.
   */
  const inSession = async (script: string, timeoutMs: number): Promise<ExecResult | undefined> => {
    const joined = session && !sessionBroken && joinScript(script);
    if (!session || !joined) return undefined;
    const argv = inNs('nft', ['-i']);
    const started = performance.now();
    const res = await session.run(joined.line, timeoutMs);
    opts.onCommand?.(argv, script, performance.now() - started, res.exitCode);
    if (res.exitCode !== 0 && res.exitCode !== 1) {
      if (session.answered === 0 && session.started >= 3) sessionBroken = true;
      return undefined;
    }
    const stderr = locateErrors(res.stderr, joined.starts);
    if (res.exitCode !== 0) throw new KernelError(normaliseKernelError(stderr), argv, res.exitCode, stderr);
    return { stdout: '', stderr };
  };
  const run = async (bin: string, args: readonly string[], ro: RunOptions = {}): Promise<ExecResult> => {
    const argv = inNs(bin, args);
    const started = performance.now();
    const timeoutMs = ro.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (ro.session && ro.stdin !== undefined && bin === 'nft' && args.join(' ') === '-f -') {
      const done = await inSession(ro.stdin, timeoutMs);
      if (done) return done;
    }
    const spare = spares !== undefined && ro.stdin !== undefined && SPARE_TOOLS.has(`${bin} ${args.join(' ')}`);
    const child = spare ? (spares as SpareProcesses).take(argv) : spawnChild(argv, ro.stdin !== undefined);
    const res = await collect(child, ro.stdin, timeoutMs);
    opts.onCommand?.(argv, ro.stdin, performance.now() - started, res.exitCode);
    if (res.exitCode !== 0) {
      const code = res.timedOut ? 'OTHER' : normaliseKernelError(res.stderr);
      throw new KernelError(code, argv, res.exitCode, res.timedOut ? `timed out: ${res.stderr}` : res.stderr);
    }
    return { stdout: res.stdout, stderr: res.stderr };
  };
  const hook = {
    ...(opts.onCommand ? { onCommand: opts.onCommand } : {}),
    ...(spares || session
      ? {
          close: () => {
            spares?.close();
            session?.close();
          },
        }
      : {}),
  };
  if (opts.netns !== undefined) return { run, which, netns: opts.netns, ...hook };
  // why: in our own namespace /proc/sys is read and written as files (what `sysctl` does),
  // without a process per key (~3-5 ms each on the attach path)
  return { run, which, procSys: opts.procSys ?? DEFAULT_PROC_SYS, ...hook };
}

/** A failed file operation on /proc/sys as a KernelError (same codes as the tools' errors). */
export function kernelErrorFromErrno(e: unknown, argv: readonly string[]): KernelError {
  const errno = (e as NodeJS.ErrnoException | undefined)?.code;
  const codes: Readonly<Record<string, KernelErrorCode>> = {
    ENOENT: 'ENOENT',
    EPERM: 'EPERM',
    EACCES: 'EPERM',
    EROFS: 'EPERM',
    EINVAL: 'EINVAL',
    EBUSY: 'EBUSY',
  };
  const message = e instanceof Error ? e.message : String(e);
  return new KernelError((errno ? codes[errno] : undefined) ?? 'OTHER', argv, 1, message);
}

interface Spawned {
  stdout: string;
  stderr: string;
  exitCode: number;
  timedOut: boolean;
}

type Child = ChildProcessByStdio<Writable | null, Readable, Readable>;

function spawnChild(argv: readonly string[], withStdin: boolean): Child {
  const [file, ...args] = argv as [string, ...string[]];
  return spawn(file, args, {
    stdio: [withStdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: { ...process.env, LC_ALL: 'C' }, // why: stderr is parsed; localised messages would not match
  }) as Child;
}

/** Feeds `stdin` (then EOF) to a started child and collects its output; SIGKILL after timeoutMs. */
function collect(child: Child, stdin: string | undefined, timeoutMs: number): Promise<Spawned> {
  return new Promise((resolvePromise) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let settled = false;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const settle = (s: Spawned): void => {
      clearTimeout(timer);
      if (!settled) resolvePromise(s);
      settled = true;
    };
    child.on('error', (e) => {
      // why: a failed spawn (EACCES, ENOMEM) may never emit 'close'
      if (child.pid === undefined) settle({ stdout: '', stderr: `${e.message}\n`, exitCode: 127, timedOut: false });
    });
    child.on('close', (code) =>
      settle({
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        exitCode: code ?? 128,
        timedOut,
      }),
    );
    if (stdin !== undefined) {
      child.stdin?.on('error', () => {}); // why: EPIPE when the tool exits early; its exit code tells the story
      child.stdin?.end(stdin);
    }
  });
}

/**
 * Spare processes for stdin batches (`ip -batch -`, `nft -f -`): one per tool is started ahead and waits on its
 * stdin; a batch is written to it and its stdin closed, then the next spare is started. Each
 * batch still runs in a fresh process (no name/ifindex cache across batches, the same line
 * numbers and exit codes as a one-shot run); only the ~5 ms spawn moves off the request path.
 * A spare holds nothing but a netlink socket; it exits on EOF when we do.
 */
export class SpareProcesses {
  readonly #spares = new Map<string, { child: Child; alive: boolean }>();
  #closed = false;

  /** A started child for argv: the spare if there is a live one, else a new one; then a new spare. */
  take(argv: readonly string[]): Child {
    const key = argv.join('\0');
    const spare = this.#spares.get(key);
    this.#spares.delete(key);
    const child = spare?.alive ? spare.child : spawnChild(argv, true);
    if (spare && !spare.alive) spare.child.kill('SIGKILL');
    child.ref();
    for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { ref?(): void }).ref?.();
    // why later: spawning forks this process, ~5 ms of the event loop at 1,000 endpoints, which
    // the caller (an attach, a status) would otherwise wait for
    setImmediate(() => this.#startSpare(key, argv));
    return child;
  }

  #startSpare(key: string, argv: readonly string[]): void {
    if (this.#closed || this.#spares.has(key)) return; // closed meanwhile; or two takes, one spare
    const child = spawnChild(argv, true);
    const entry = { child, alive: true };
    child.on('error', () => {
      entry.alive = false;
    });
    child.on('exit', () => {
      entry.alive = false;
    });
    child.stdin?.on('error', () => {});
    // a waiting spare keeps nothing alive (the daemon, a test run)
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { unref?(): void }).unref?.();
    this.#spares.set(key, entry);
  }

  /** Ends every waiting spare (EOF: it runs nothing and exits). */
  close(): void {
    this.#closed = true;
    for (const { child } of this.#spares.values()) child.stdin?.end();
    this.#spares.clear();
  }
}
