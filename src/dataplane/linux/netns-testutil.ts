/**
 * Throwaway network namespaces for the kernel tests (*.netns.ts, root): CNI testutils.NewNS
 * in small. Every namespace is named truss-t-<random>; tests delete theirs in `after`, and
 * each file ends by asserting that no truss-t-* namespace is left. Nothing here touches
 * the namespace the test runner itself lives in.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { OnCommand } from './exec.ts';

export const TEST_NS_PREFIX = 'truss-t-';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs argv (no shell); never throws on exit != 0. */
export function run(argv: readonly string[], stdin?: string, timeoutMs = 15_000): Promise<RunResult> {
  return new Promise((resolve) => {
    const [file, ...args] = argv as [string, ...string[]];
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.on('error', (e) => resolve({ code: 127, stdout, stderr: e.message }));
    child.on('close', (code) => resolve({ code: code ?? 128, stdout, stderr }));
    child.stdin.on('error', () => {});
    child.stdin.end(stdin ?? '');
  });
}

/** Runs argv and throws with its stderr on exit != 0. */
export async function must(argv: readonly string[], stdin?: string): Promise<string> {
  const r = await run(argv, stdin);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} → ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

export interface TestNs {
  readonly name: string;
  readonly path: string;
  /** argv run inside the namespace (nsenter --net) */
  argv(cmd: readonly string[]): string[];
  run(cmd: readonly string[], stdin?: string, timeoutMs?: number): Promise<RunResult>;
  must(cmd: readonly string[], stdin?: string): Promise<string>;
  /** `ip -j <args>` parsed */
  ipJson<T = Record<string, unknown>[]>(args: readonly string[]): Promise<T>;
  remove(): Promise<void>;
}

export async function createTestNs(role: string): Promise<TestNs> {
  const name = `${TEST_NS_PREFIX}${randomBytes(3).toString('hex')}-${role}`.slice(0, 40);
  await must(['ip', 'netns', 'add', name]);
  const path = `/run/netns/${name}`;
  const argv = (cmd: readonly string[]): string[] => ['nsenter', `--net=${path}`, '--', ...cmd];
  const ns: TestNs = {
    name,
    path,
    argv,
    run: (cmd, stdin, timeoutMs) => run(argv(cmd), stdin, timeoutMs),
    must: (cmd, stdin) => must(argv(cmd), stdin),
    ipJson: async <T>(args: readonly string[]) => JSON.parse(await must(argv(['ip', '-j', ...args]))) as T,
    remove: async () => {
      await run(['ip', 'netns', 'del', name]);
    },
  };
  await ns.must(['ip', 'link', 'set', 'lo', 'up']);
  return ns;
}

export async function listTestNamespaces(): Promise<string[]> {
  const out = await must(['ip', '-j', 'netns', 'list']);
  const list = out.trim() === '' ? [] : (JSON.parse(out) as { name: string }[]);
  return list.map((n) => n.name).filter((n) => n.startsWith(TEST_NS_PREFIX));
}

export const randomId = (): string => randomBytes(32).toString('hex');

/** Records every kernel command the dataplane runs, to tell reads from writes. */
export function commandRecorder(): { onCommand: OnCommand; argvs: string[][]; writes(): string[][]; reset(): void } {
  const argvs: string[][] = [];
  const isWrite = (a: readonly string[]): boolean =>
    a.includes('-batch') || a.includes('-w') || a.includes('-f') || a.includes('del') || a.includes('--noflush');
  return {
    onCommand: (argv) => {
      argvs.push([...argv]);
    },
    argvs,
    // `iptables -w -S` reads: -w is "wait for the lock" there, not sysctl's "write"
    writes: () => argvs.filter((a) => isWrite(a) && !a.includes('-S') && !a.includes('-V')),
    reset: () => {
      argvs.length = 0;
    },
  };
}
