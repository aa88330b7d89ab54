/**
 * Which WireGuard this host has (kernel or the userspace wireguard-go), and wireguard-go's
 * management: starting it detached with the truss mark on its TUN, telling a live UAPI socket
 * from a dead one, and waiting for the socket to go (wireguard.ts's header tells why it runs
 * in its own session and outlives truss).
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { errors } from '../../core/errors.ts';
import { type Exec, isKernelError } from './exec.ts';
import { batch, deleteLink } from './links.ts';

export type WireguardMode = 'kernel' | 'userspace' | 'none';

/** why: belongs in core/naming.ts with the other marks; here until it moves. */
export const wireguardMark = (name: string): string => `truss:wg:${name}`;
/** wireguard-go's and wg's UAPI directory (compiled in): shared by all netns of a mount namespace. */
export const UAPI_DIR = '/var/run/wireguard';
export const socketOf = (name: string): string => join(UAPI_DIR, `${name}.sock`);

// ---------- detection ----------

const probed = new WeakMap<Exec, Promise<WireguardMode>>();

async function kernelWireguard(exec: Exec): Promise<boolean> {
  const probe = `trwgp${randomBytes(4).toString('hex')}`;
  try {
    await exec.run('ip', ['link', 'add', probe, 'type', 'wireguard']);
  } catch (e) {
    if (isKernelError(e, 'EPERM')) throw e; // without CAP_NET_ADMIN neither path would work
    return false; // "Unknown device type": no module
  }
  await deleteLink(exec, probe);
  return true;
}

/** Can `path` be opened read-write (the TUN device: no TUNSETIFF, so nothing is created)? */
export async function canOpen(path: string): Promise<boolean> {
  try {
    await (await fs.open(path, constants.O_RDWR)).close(); // no TUNSETIFF: nothing is created
    return true;
  } catch {
    return false;
  }
}

/**
 * Which WireGuard this host has, probed once per Exec: 'kernel' when a wireguard link can be
 * made (the probe link is deleted at once), else 'userspace' when wireguard-go, setsid, env
 * and a usable TUN device exist, else 'none'. Both need `wg` (wireguard-tools).
 */
export function detectWireguard(exec: Exec, opts: { readonly tunDevice?: string } = {}): Promise<WireguardMode> {
  let p = probed.get(exec);
  if (p === undefined) {
    p = (async (): Promise<WireguardMode> => {
      if (!exec.which('wg')) return 'none';
      if (await kernelWireguard(exec)) return 'kernel';
      const tools = ['wireguard-go', 'setsid', 'env'].every((t) => exec.which(t) !== undefined);
      return tools && (await canOpen(opts.tunDevice ?? '/dev/net/tun')) ? 'userspace' : 'none';
    })();
    probed.set(exec, p);
    p.catch(() => probed.delete(exec)); // probe again after a failure
  }
  return p;
}

// ---------- userspace: wireguard-go ----------

/** Is a wireguard-go UAPI socket answering? (a killed wireguard-go leaves a dead one) */
export function uapiLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path });
    const done = (live: boolean): void => {
      s.destroy();
      resolve(live);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

export async function startWireguardGo(exec: Exec, name: string): Promise<void> {
  const [env, wgGo] = [exec.which('env'), exec.which('wireguard-go')];
  if (!env || !wgGo) throw errors.unsupported('userspace WireGuard needs env and wireguard-go: install wireguard-go');
  if (await uapiLive(socketOf(name)))
    throw errors.kernelObjectForeign(
      `WireGuard device ${name}: ${socketOf(name)} is served by a device in another network namespace ` +
        'of this mount namespace (wireguard-go names must be unique per mount namespace): use another name',
    );
  // why: own session (a signal to truss's process group must not reach it), empty environment
  // (it outlives truss: no TRUSS_* secrets in its /proc/PID/environ, no LOG_LEVEL, which would
  // keep our stdout pipe open), cwd /. It daemonises: the command returns once TUN + socket exist.
  await exec.run('setsid', ['--wait', env, '-i', '-C', '/', wgGo, name]);
  try {
    await exec.run('ip', ['-batch', '-'], { stdin: batch([`link set ${name} alias ${wireguardMark(name)}`]) });
  } catch (e) {
    await deleteLink(exec, name).catch(() => {});
    throw e;
  }
}

export const exists = (path: string): Promise<boolean> =>
  fs.stat(path).then(
    () => true,
    () => false,
  );

export async function socketGone(path: string, timeoutMs: number): Promise<boolean> {
  for (const end = Date.now() + timeoutMs; Date.now() < end; ) {
    if (!(await exists(path))) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}
