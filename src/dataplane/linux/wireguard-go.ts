/**
 * Which WireGuard this host has (kernel or the userspace wireguard-go, and which wireguard-go:
 * core/wireguard-impl.ts chooses), and wireguard-go's
 * management: starting it detached with the truss mark on its TUN, telling a live UAPI socket
 * from a dead one, and waiting for the socket to go (wireguard.ts's header tells why it runs
 * in its own session and outlives truss).
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { errors } from '../../core/errors.ts';
import {
  chooseWireguard,
  chooseWireguardGo,
  mixedFamilyBug,
  mixesFamilies,
  parseWireguardGoVersion,
  type WireguardGoCandidate,
  type WireguardGoSource,
  type WireguardImpl,
} from '../../core/wireguard-impl.ts';
import { type Exec, isKernelError } from './exec.ts';
import { batch, deleteLink } from './links.ts';

export type WireguardMode = 'kernel' | 'userspace' | 'none';

/** why: belongs in core/naming.ts with the other marks; here until it moves. */
export const wireguardMark = (name: string): string => `truss:wg:${name}`;
/** wireguard-go's and wg's UAPI directory (compiled in): shared by all netns of a mount namespace. */
export const UAPI_DIR = '/var/run/wireguard';
export const socketOf = (name: string): string => join(UAPI_DIR, `${name}.sock`);

// ---------- detection ----------

/** truss's own wireguard-go (scripts/lib/packages.sh TRUSS_WIREGUARD_GO_DIR: Debian unstable's, the newest). */
export const TRUSS_WIREGUARD_GO = '/usr/local/lib/truss/wireguard-go/usr/bin/wireguard-go';

export interface WireguardProbeOptions {
  readonly tunDevice?: string;
  /** the admin's wireguard-go (--wireguard-go): used whatever its version, when the kernel has no WireGuard */
  readonly wireguardGo?: string;
  /** wireguard-go's sockets (default UAPI_SOCKETS; unit tests give a fake) */
  readonly uapi?: UapiTransport;
}

const probed = new WeakMap<Exec, Promise<WireguardImpl>>();

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
 * Every wireguard-go binary there is, with its `--version`: the admin's (when given, the only
 * one asked: it wins anyway), truss's own, the PATH's. One process per binary, once per probe.
 */
export async function findWireguardGo(exec: Exec, explicit?: string): Promise<WireguardGoCandidate[]> {
  const where: [WireguardGoSource, string | undefined][] =
    explicit !== undefined
      ? [['flag', exec.which(explicit) ?? explicit]]
      : [
          ['truss', exec.which(TRUSS_WIREGUARD_GO)],
          ['path', exec.which('wireguard-go')],
        ];
  const found = where.filter((w): w is [WireguardGoSource, string] => w[1] !== undefined);
  const unique = found.filter(([, p], i) => found.findIndex(([, q]) => q === p) === i);
  return Promise.all(
    unique.map(async ([source, path]) => {
      const out = await exec.run(path, ['--version'], { timeoutMs: 5000 }).catch(() => undefined);
      const version = out ? parseWireguardGoVersion(out.stdout) : undefined;
      return { path, source, ...(version !== undefined ? { version } : {}) };
    }),
  );
}

/**
 * Which WireGuard this host runs, probed once per Exec (core/wireguard-impl.ts decides):
 * kernel when a wireguard link can be made (the probe link is deleted at once), else the
 * chosen wireguard-go when setsid, env and a usable TUN device exist, else none. Both need
 * `wg` (wireguard-tools).
 */
export function detectWireguardImpl(exec: Exec, opts: WireguardProbeOptions = {}): Promise<WireguardImpl> {
  let p = probed.get(exec);
  if (p === undefined) {
    p = (async (): Promise<WireguardImpl> => {
      if (!exec.which('wg')) return { kind: 'none' };
      if (await kernelWireguard(exec)) return { kind: 'kernel' };
      const tools = ['setsid', 'env'].every((t) => exec.which(t) !== undefined);
      const tun = tools && (await canOpen(opts.tunDevice ?? '/dev/net/tun'));
      const wireguardGo = tun ? await findWireguardGo(exec, opts.wireguardGo) : [];
      return chooseWireguard({ kernel: false, tun, wireguardGo });
    })();
    probed.set(exec, p);
    p.catch(() => probed.delete(exec)); // probe again after a failure
  }
  return p;
}

/**
 * The wireguard-go for a new device with peers at `endpoints`: the probed one (`impl`), unless
 * the peers mix IPv4 and IPv6 and its version drops IPv6 packets on such a device
 * (core/wireguard-impl.ts mixedFamilyBug) and another installed one does not. Chosen at
 * creation: a device that later gains a peer of the other family keeps its daemon.
 */
export async function wireguardGoFor(
  exec: Exec,
  impl: WireguardGoCandidate,
  endpoints: readonly (string | undefined)[],
): Promise<WireguardGoCandidate> {
  if (impl.source === 'flag' || !mixedFamilyBug(impl.version) || !mixesFamilies(endpoints)) return impl;
  return chooseWireguardGo(await findWireguardGo(exec), { mixedFamilies: true }) ?? impl;
}

/** detectWireguardImpl's answer if it was asked on this Exec (no probe: status must not make a link). */
export const probedWireguard = (exec: Exec): Promise<WireguardImpl> | undefined => probed.get(exec);

/** detectWireguardImpl's kind, as 'kernel' | 'userspace' | 'none'. */
export async function detectWireguard(exec: Exec, opts: WireguardProbeOptions = {}): Promise<WireguardMode> {
  const impl = await detectWireguardImpl(exec, opts);
  return impl.kind === 'wireguard-go' ? 'userspace' : impl.kind;
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

/**
 * One request to a live wireguard-go UAPI socket, its answer as text up to `errno=N` and the
 * blank line. A `get=1` answer holds the private key (parse it with wireguard-uapi.ts, never
 * log it), as does a `set=1` request that sets it: errors quote neither.
 */
function uapiRequest(path: string, request: string, op: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ path });
    let text = '';
    const fail = (why: string): void => {
      s.destroy();
      reject(errors.internal(`wireguard-go UAPI ${op} on ${path}: ${why}`));
    };
    s.setEncoding('utf8');
    s.once('connect', () => s.write(request));
    s.on('data', (d: string) => {
      text += d;
      if (/(^|\n)errno=-?\d+\n\n$/.test(text)) {
        s.destroy();
        resolve(text);
      }
    });
    s.once('error', (e) => fail(e.message));
    s.once('end', () => fail('closed before its answer ended'));
    s.setTimeout(timeoutMs, () => fail(`no answer in ${timeoutMs} ms`));
  });
}

/** A UAPI `get=1`: the device's whole state as text (its private key included). */
export const uapiGet = (path: string, timeoutMs = 5000): Promise<string> =>
  uapiRequest(path, 'get=1\n\n', 'get', timeoutMs);

/** A UAPI `set=1` request (wireguard-uapi.ts uapiSetRequest); resolves with the answer (its errno unchecked). */
export const uapiSet = (path: string, request: string, timeoutMs = 5000): Promise<string> =>
  uapiRequest(path, request, 'set', timeoutMs);

/** wireguard-go's configuration sockets, by device name: one request, its answer. */
export interface UapiTransport {
  get(name: string): Promise<string>;
  set(name: string, request: string): Promise<string>;
  /**
   * Which socket serves `name` now (undefined: none): the same identity means the same
   * wireguard-go, still running (it removes its socket when it exits). Absent: never the same.
   */
  identity?(name: string): Promise<string | undefined>;
}

/** The real sockets, in UAPI_DIR. */
export const UAPI_SOCKETS: UapiTransport = {
  get: (name) => uapiGet(socketOf(name)),
  set: (name, request) => uapiSet(socketOf(name), request),
  async identity(name) {
    const s = await fs.stat(socketOf(name)).catch(() => undefined);
    return s?.isSocket() ? `${s.dev}:${s.ino}:${s.ctimeMs}` : undefined;
  },
};

/** Starts the chosen wireguard-go (`wgGo`: detectWireguardImpl's path) for device `name`. */
export async function startWireguardGo(exec: Exec, name: string, wgGo: string): Promise<void> {
  const env = exec.which('env');
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
