/**
 * Finds and ends processes by namespace membership, read from /proc. A simulated host's
 * processes are exactly those in its private mount namespace or its network namespace,
 * plus their descendants (container processes live in namespaces of their own).
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { sleep } from './wait.ts';

export interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly cmdline: string;
  readonly mntNs: string;
  readonly netNs: string;
}

const readLink = (p: string): string => {
  try {
    return readlinkSync(p);
  } catch {
    return '';
  }
};

function readProc(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    return {
      pid,
      ppid: Number(fields[1]),
      cmdline,
      mntNs: readLink(`/proc/${pid}/ns/mnt`),
      netNs: readLink(`/proc/${pid}/ns/net`),
    };
  } catch {
    return undefined;
  }
}

export function listProcs(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const p = readProc(Number(name));
    if (p) out.push(p);
  }
  return out;
}

/** The namespace id of a namespace file (e.g. /run/netns/x), in the form /proc/PID/ns/* links show. */
export function nsIdOfFile(path: string, kind: 'net' | 'mnt'): string | undefined {
  try {
    return `${kind}:[${statSync(path).ino}]`;
  } catch {
    return undefined;
  }
}

export const nsIdOfPid = (pid: number, kind: 'net' | 'mnt'): string => readLink(`/proc/${pid}/ns/${kind}`);

/** Processes matching pred, and all their descendants. */
export function procsWithDescendants(pred: (p: ProcInfo) => boolean): ProcInfo[] {
  const all = listProcs();
  const chosen = new Map<number, ProcInfo>();
  for (const p of all) if (pred(p) && p.pid !== process.pid) chosen.set(p.pid, p);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of all) {
      if (!chosen.has(p.pid) && chosen.has(p.ppid)) {
        chosen.set(p.pid, p);
        grew = true;
      }
    }
  }
  return [...chosen.values()];
}

export function isAlive(pid: number): boolean {
  return readProc(pid) !== undefined;
}

/** SIGKILL the processes matching pred (and descendants), repeatedly, until none is left. */
export async function killAllMatching(pred: (p: ProcInfo) => boolean, timeoutMs = 10_000): Promise<ProcInfo[]> {
  const deadline = Date.now() + timeoutMs;
  let left = procsWithDescendants(pred);
  while (left.length > 0 && Date.now() < deadline) {
    for (const p of left) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await sleep(100);
    left = procsWithDescendants(pred);
  }
  return left;
}

/**
 * Waits until pid is gone from /proc (reaped), up to timeoutMs; returns whether it is. A killed
 * multi-threaded process shows as a zombie while its other threads still exit, and dockerd 28's
 * pidfile check counts any /proc/PID as running ("process with PID N is still running").
 */
export async function waitReaped(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (existsSync(`/proc/${pid}`) && Date.now() < deadline) await sleep(50);
  return !existsSync(`/proc/${pid}`);
}

/** Waits until pid has exited (or become a zombie); returns false on timeout. */
export async function waitExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await sleep(50);
  }
  return !isAlive(pid);
}
