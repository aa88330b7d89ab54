/**
 * Runs a command with an argv array (never a shell string) and collects its output.
 * Every call is bounded by a timeout; a timed-out child is killed with SIGKILL.
 */
import { spawn } from 'node:child_process';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly timeoutMs?: number;
  readonly input?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('run: empty argv');
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: `${stderr}${err.message}\n` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const note = timedOut ? `[timed out after ${opts.timeoutMs ?? 60_000} ms]\n` : '';
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr: `${stderr}${note}` });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** Like run(), but throws with the command and its stderr when the exit code is not 0. */
export async function runOk(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(argv, opts);
  if (r.code !== 0) {
    throw new Error(`command failed (exit ${r.code}): ${argv.join(' ')}\n${r.stderr.trim()}\n${r.stdout.trim()}`);
  }
  return r;
}

/** Prefix that runs a command inside a named network namespace (not `ip netns exec`: it remounts /sys). */
export const inNetns = (netnsPath: string, argv: readonly string[]): string[] => [
  'nsenter',
  `--net=${netnsPath}`,
  '--',
  ...argv,
];
