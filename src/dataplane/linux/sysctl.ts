/**
 * Kernel parameters under /proc/sys. They are per network namespace for net.*, so they
 * are read and written with the `sysctl` tool run inside the target namespace (a process
 * sees the /proc/sys/net of its own namespace). Keys use the slash form
 * ("net/ipv6/conf/<ifname>/accept_ra") so interface names with dots stay one component.
 *
 * Ownership: sysctls are shared host state, not ours. truss only ever raises what it needs
 * (ip_forward; bridge-nf-call-ip(6)tables once a port policy exists) or sets per-interface
 * values on its own links (accept_ra on our bridges and veths); it never lowers a host-wide
 * value and never restores one on removal.
 *
 * In our own namespace the keys are read and written as files under Exec.procSys (/proc/sys, or
 * as a managed plugin, where /proc/sys is read-only by Docker's default container spec, the
 * host's /proc/sys/net mounted read-write elsewhere): no process per key. The `sysctl` tool
 * only runs for another namespace (Exec.netns, through nsenter). Entries under /proc/sys/net
 * always show the reader's own network namespace, whichever procfs mount they are reached through.
 */

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FirewallObject } from '../../core/desired.ts';
import { errors } from '../../core/errors.ts';
import { type Exec, isKernelError, kernelErrorFromErrno } from './exec.ts';
import { checkIfName } from './links.ts';

export const acceptRaKey = (ifname: string): string => `net/ipv6/conf/${checkIfName(ifname)}/accept_ra`;
export const IP_FORWARD_KEY = 'net/ipv4/ip_forward';

/** The value, or undefined when the key does not exist (e.g. IPv6 disabled on the host). */
export async function readSysctl(exec: Exec, key: string): Promise<string | undefined> {
  try {
    if (exec.procSys !== undefined && exec.netns === undefined) return await readProcSys(exec, exec.procSys, key);
    const { stdout } = await exec.run('sysctl', ['-n', key]);
    return stdout.trim();
  } catch (e) {
    if (isKernelError(e, 'ENOENT')) return undefined;
    throw e;
  }
}

export async function writeSysctl(exec: Exec, key: string, value: string): Promise<void> {
  if (exec.procSys !== undefined && exec.netns === undefined) return writeProcSys(exec, exec.procSys, key, value);
  await exec.run('sysctl', ['-q', '-w', `${key}=${value}`]);
}

const procSysPath = (root: string, key: string): string => {
  if (key.split('/').some((c) => c === '' || c === '.' || c === '..')) throw errors.internal(`bad sysctl key ${key}`);
  return join(root, key);
};

// why sync: a procfs key is a few bytes served from memory; the thread pool hop cost more (~1 ms under load)
async function readProcSys(exec: Exec, root: string, key: string): Promise<string> {
  const path = procSysPath(root, key);
  const started = performance.now();
  try {
    const value = readFileSync(path, 'utf8').trim();
    exec.onCommand?.(['read', path], undefined, performance.now() - started, 0);
    return value;
  } catch (e) {
    exec.onCommand?.(['read', path], undefined, performance.now() - started, 1);
    throw kernelErrorFromErrno(e, ['read', path]);
  }
}

async function writeProcSys(exec: Exec, root: string, key: string, value: string): Promise<void> {
  const path = procSysPath(root, key);
  const started = performance.now();
  try {
    writeFileSync(path, `${value}\n`);
    exec.onCommand?.(['write', path, value], undefined, performance.now() - started, 0);
  } catch (e) {
    exec.onCommand?.(['write', path, value], undefined, performance.now() - started, 1);
    throw kernelErrorFromErrno(e, ['write', path, value]);
  }
}

/**
 * Sets `key` to `value` when it differs. Returns whether it wrote. A missing key is not an
 * error (IPv6 off): there is nothing to protect.
 */
export async function ensureSysctl(exec: Exec, key: string, value: string): Promise<boolean> {
  const current = await readSysctl(exec, key);
  if (current === undefined || current === value) return false;
  await writeSysctl(exec, key, value);
  return true;
}

/** why: a bridge or host veth that accepted router advertisements would let a container configure the host. */
export const ensureAcceptRaOff = (exec: Exec, ifname: string): Promise<boolean> =>
  ensureSysctl(exec, acceptRaKey(ifname), '0');

/** Host-wide sysctls the firewall needs: IPv4 forwarding once any network reaches out. Never lowers. */
export async function ensureFirewallSysctls(exec: Exec, f: FirewallObject): Promise<boolean> {
  if (!f.networks.some((n) => !n.internal)) return false;
  const current = await readSysctl(exec, IP_FORWARD_KEY);
  if (current === undefined || current !== '0') return false;
  await writeSysctl(exec, IP_FORWARD_KEY, '1');
  return true;
}

/** br_netfilter's switches: bridged IPv4/IPv6 frames traverse the inet hooks only when they are 1. */
export const BRIDGE_NF_KEYS = ['net/bridge/bridge-nf-call-iptables', 'net/bridge/bridge-nf-call-ip6tables'] as const;

/**
 * Port policy needs both switches on (dockerd turns them on too): otherwise traffic between
 * two containers of one bridge never meets the policy. Raises them, never lowers them.
 * Throws `unsupported` when br_netfilter is absent (the keys do not exist): a policy that
 * silently did not apply within a network would be worse than a visible failure.
 */
export async function ensureBridgeNetfilter(exec: Exec): Promise<string[]> {
  const values = await Promise.all(BRIDGE_NF_KEYS.map((k) => readSysctl(exec, k)));
  const missing = BRIDGE_NF_KEYS.filter((_, i) => values[i] === undefined);
  if (missing.length > 0) {
    throw errors.unsupported(
      `port policy needs br_netfilter, but ${missing.join(' and ')} do not exist: load it (modprobe br_netfilter)`,
    );
  }
  const raise = BRIDGE_NF_KEYS.filter((_, i) => values[i] !== '1');
  for (const k of raise) await writeSysctl(exec, k, '1');
  return raise;
}
