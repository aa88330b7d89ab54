/**
 * Named network namespaces for simulated hosts and helpers (`ip netns add`, files in /run/netns).
 * Each namespace the suite creates records its owner pid under WORK_DIR, so a later run
 * can tell a namespace left behind by a dead run from one a live run is using.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runOk } from './exec.ts';
import { NETNS_PREFIX, WORK_DIR } from './paths.ts';
import { isAlive, killAllMatching, nsIdOfFile } from './procs.ts';

export const netnsPath = (name: string): string => `/run/netns/${name}`;
const ownerFile = (name: string): string => join(WORK_DIR, 'owners', name);

export function listNetns(prefix = NETNS_PREFIX): string[] {
  if (!existsSync('/run/netns')) return [];
  return readdirSync('/run/netns').filter((n) => n.startsWith(prefix));
}

export async function createNetns(name: string): Promise<string> {
  if (!name.startsWith(NETNS_PREFIX)) throw new Error(`netns name must start with ${NETNS_PREFIX}: ${name}`);
  if (listNetns().includes(name)) await deleteNetns(name);
  mkdirSync(join(WORK_DIR, 'owners'), { recursive: true });
  writeFileSync(ownerFile(name), String(process.pid));
  await runOk(['ip', 'netns', 'add', name]);
  await runOk(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  return netnsPath(name);
}

/** Kills every process still in the namespace (and its descendants), then deletes it. */
export async function deleteNetns(name: string): Promise<void> {
  const id = nsIdOfFile(netnsPath(name), 'net');
  if (id) await killAllMatching((p) => p.netNs === id);
  if (existsSync(netnsPath(name))) await runOk(['ip', 'netns', 'del', name]);
  rmSync(ownerFile(name), { force: true });
}

function ownerAlive(name: string): boolean {
  try {
    const pid = Number(readFileSync(ownerFile(name), 'utf8'));
    return pid > 0 && isAlive(pid);
  } catch {
    return false;
  }
}

/** Deletes `truss-e2e-*` namespaces whose creating run is gone. Returns their names. */
export async function cleanStaleNetns(): Promise<string[]> {
  const stale = listNetns().filter((n) => !ownerAlive(n));
  for (const n of stale) await deleteNetns(n);
  return stale;
}
