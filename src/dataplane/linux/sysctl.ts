/**
 * Kernel parameters under /proc/sys. They are per network namespace for net.*, so they
 * are read and written with the `sysctl` tool run inside the target namespace (a process
 * sees the /proc/sys/net of its own namespace). Keys use the slash form
 * ("net/ipv6/conf/<ifname>/accept_ra") so interface names with dots stay one component.
 *
 * Ownership: sysctls are shared host state, not ours. truss only ever raises what it needs
 * (ip_forward) or sets per-interface values on its own links (accept_ra on our bridges
 * and veths); it never lowers a host-wide value and never restores one on removal.
 */
import type { FirewallObject } from '../../core/desired.ts';
import { type Exec, isKernelError } from './exec.ts';
import { checkIfName } from './links.ts';

export const acceptRaKey = (ifname: string): string => `net/ipv6/conf/${checkIfName(ifname)}/accept_ra`;
export const IP_FORWARD_KEY = 'net/ipv4/ip_forward';

/** The value, or undefined when the key does not exist (e.g. IPv6 disabled on the host). */
export async function readSysctl(exec: Exec, key: string): Promise<string | undefined> {
  try {
    const { stdout } = await exec.run('sysctl', ['-n', key]);
    return stdout.trim();
  } catch (e) {
    if (isKernelError(e, 'ENOENT')) return undefined;
    throw e;
  }
}

export async function writeSysctl(exec: Exec, key: string, value: string): Promise<void> {
  await exec.run('sysctl', ['-q', '-w', `${key}=${value}`]);
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
