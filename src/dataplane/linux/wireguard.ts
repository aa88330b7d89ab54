/**
 * WireGuard devices: one per host ("trwg0"), encrypting traffic to the other hosts' blocks.
 * Each peer is another host: its public key, its underlay endpoint, and the blocks routed to
 * it (allowed-ips: WireGuard's cryptokey routing — outgoing, which peer a packet goes to;
 * incoming, which sources that peer may use).
 *
 * Two implementations behind one interface, chosen by detectWireguard: the kernel's
 * (`ip link add … type wireguard`) and the userspace wireguard-go, which makes a TUN device
 * and serves the same configuration protocol on /var/run/wireguard/<name>.sock. `wg` talks
 * to either, so everything after creation is shared. wireguard-go is started in its own
 * session with an empty environment and daemonises, so it outlives truss (a kill -9 or a
 * restart of truss never drops a tunnel) and a restarted truss adopts the running device.
 * Deleting the link stops it: wireguard-go exits when its TUN goes, removing its socket.
 *
 * Ownership: the ifalias `truss:wg:<name>` on the link. A device with our name but without
 * that mark is foreign: ensure refuses it (TRUSS_ERR_KERNEL_OBJECT_FOREIGN), remove leaves it.
 *
 * Secrets: the private key lives in `<dir>/wireguard.key` (wireguard-keys.ts: 0600, dir 0700, created O_EXCL with
 * its mode at open) and reaches `wg` as a file path only — never argv, stdin, logs or errors.
 * `wg show dump` prints it: the parser drops it at once.
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { connect } from 'node:net';
import { isAbsolute, join } from 'node:path';
import { errors } from '../../core/errors.ts';
import { formatIp, formatPrefix, isNetworkAddress, parseIp, parsePrefix } from '../../core/ip.ts';
import type { WireguardPeerStatus } from '../../core/ports.ts';
import { type DataplaneLog, type Exec, isKernelError } from './exec.ts';
import { batch, checkIfName, deleteLink, type LinkState, readLink, undoFailedCreate } from './links.ts';
import { isWireguardKey, readPrivateKeyFile } from './wireguard-keys.ts';

export type WireguardMode = 'kernel' | 'userspace' | 'none';

export interface WireguardPeer {
  /** base64 of the 32-byte Curve25519 public key */
  readonly publicKey: string;
  /** "198.18.0.2:51820" or "[fd00::2]:51820" */
  readonly endpoint: string;
  /** network CIDRs routed to this peer and accepted from it */
  readonly allowedIps: readonly string[];
  /** 0 or absent = off */
  readonly keepaliveSeconds?: number;
}

export interface WireguardDevice {
  /** "trwg0" */
  readonly name: string;
  readonly privateKeyFile: string;
  readonly listenPort: number;
  readonly mtu: number;
  readonly peers: readonly WireguardPeer[];
}

/** A peer as the device reports it: what status shows, and its keepalive. */
export interface WireguardPeerState extends WireguardPeerStatus {
  /** 0 = off */
  readonly keepaliveSeconds: number;
}

/** A device as `wg show dump` reports it, minus the private key. */
export interface WireguardState {
  /** undefined while no private key is set */
  readonly publicKey?: string;
  readonly listenPort: number;
  readonly peers: readonly WireguardPeerState[];
}

export interface WireguardEnsureResult {
  readonly created: boolean;
  /** what was changed, for logs (public keys abbreviated, no secrets); [] = nothing */
  readonly changes: readonly string[];
}

/** why: belongs in core/naming.ts with the other marks; here until it moves. */
export const wireguardMark = (name: string): string => `truss:wg:${name}`;
/** wireguard-go's and wg's UAPI directory (compiled in): shared by all netns of a mount namespace. */
export const UAPI_DIR = '/var/run/wireguard';
const socketOf = (name: string): string => join(UAPI_DIR, `${name}.sock`);

// ---------- validation (pure) ----------

/** "198.18.0.2:51820" / "[fd00::2]:51820" in wg's own spelling, or undefined. */
export function canonicalEndpoint(s: string): string | undefined {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([0-9.]+)):([1-9][0-9]{0,4})$/.exec(s);
  const port = Number(m?.[3]);
  const ip = m ? parseIp((m[1] ?? m[2]) as string) : undefined;
  if (!ip || port > 65535 || (ip.family === 6) !== (m?.[1] !== undefined)) return undefined;
  return ip.family === 6 ? `[${formatIp(ip)}]:${port}` : `${formatIp(ip)}:${port}`;
}

const short = (key: string): string => `${key.slice(0, 8)}…`;
const ZERO_KEY = Buffer.alloc(32).toString('base64');

/** Validates a device spec and returns it canonical (endpoints, allowed-ips). Throws TrussError. */
export function checkWireguardDevice(w: WireguardDevice): WireguardDevice {
  const name = checkIfName(w.name);
  const bad = (what: string): never => {
    throw errors.badOption(`WireGuard device ${name}: ${what}`);
  };
  if (!Number.isInteger(w.listenPort) || w.listenPort < 1 || w.listenPort > 65535)
    bad(`listen port ${w.listenPort}: use 1-65535`);
  if (!Number.isInteger(w.mtu) || w.mtu < 576 || w.mtu > 65535) bad(`MTU ${w.mtu}: use 576-65535`);
  if (!isAbsolute(w.privateKeyFile) || /[\0\n]/.test(w.privateKeyFile))
    bad('the private key file must be an absolute path');
  const keys = new Set<string>();
  const ips = new Map<string, string>();
  const peers = w.peers.map((p): WireguardPeer => {
    if (!isWireguardKey(p.publicKey) || p.publicKey === ZERO_KEY)
      bad(`peer key ${JSON.stringify(p.publicKey)} is not base64 of 32 bytes (nor all zeros)`);
    if (keys.has(p.publicKey)) bad(`peer ${short(p.publicKey)} is listed twice (duplicate public key)`);
    keys.add(p.publicKey);
    const endpoint =
      canonicalEndpoint(p.endpoint) ??
      bad(`peer ${short(p.publicKey)}: endpoint ${JSON.stringify(p.endpoint)} is not IPv4:port or [IPv6]:port`);
    const ka = p.keepaliveSeconds ?? 0;
    if (!Number.isInteger(ka) || ka < 0 || ka > 65535) bad(`peer ${short(p.publicKey)}: keepalive ${ka}: use 0-65535`);
    const allowedIps = p.allowedIps.map((c) => {
      const pre = parsePrefix(c);
      if (!pre || !isNetworkAddress(pre))
        return bad(`peer ${short(p.publicKey)}: allowed IP ${c} is not a network CIDR`);
      const canon = formatPrefix(pre);
      // why: WireGuard gives a prefix to the last peer that names it, so a duplicate would flap
      if (ips.has(canon)) bad(`allowed IP ${canon} is given to both ${ips.get(canon)} and ${short(p.publicKey)}`);
      ips.set(canon, short(p.publicKey));
      return canon;
    });
    return { publicKey: p.publicKey, endpoint, allowedIps, ...(ka > 0 ? { keepaliveSeconds: ka } : {}) };
  });
  return { name, privateKeyFile: w.privateKeyFile, listenPort: w.listenPort, mtu: w.mtu, peers };
}

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

// ---------- `wg show dump` and the plan (pure) ----------

const num = (s: string | undefined): number => {
  const n = Number(s);
  if (s === undefined || s === '' || !Number.isSafeInteger(n) || n < 0)
    throw errors.internal('unexpected `wg show dump` output (a number field is not a number)');
  return n;
};

/**
 * Pure: `wg show NAME dump` → the device, WITHOUT its private key (field 1 of line 1 is never
 * kept). Errors never quote the text, which holds the key.
 */
export function parseWgDump(stdout: string): WireguardState {
  const lines = stdout.split('\n').filter((l) => l !== '');
  const head = lines[0]?.split('\t');
  if (head?.length !== 4) throw errors.internal('unexpected `wg show dump` output (interface line)');
  const peers = lines.slice(1).map((l): WireguardPeerState => {
    const f = l.split('\t');
    if (f.length !== 8) throw errors.internal('unexpected `wg show dump` output (peer line)');
    const [publicKey, , endpoint, ips, hs, rx, tx, ka] = f as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    return {
      publicKey,
      ...(endpoint !== '(none)' ? { endpoint } : {}),
      allowedIps: ips === '(none)' ? [] : ips.split(','),
      latestHandshake: num(hs),
      rxBytes: num(rx),
      txBytes: num(tx),
      keepaliveSeconds: ka === 'off' ? 0 : num(ka),
    };
  });
  return { ...(head[1] !== '(none)' ? { publicKey: head[1] as string } : {}), listenPort: num(head[2]), peers };
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && new Set([...a, ...b]).size === a.length;

/** Any keepalive other than 0: only its 0 → non-zero edge matters (see nudgeArgs). */
const NUDGE_KEEPALIVE = '25';

/**
 * Pure: `wg set` arguments that make the device send a handshake initiation to peer `key` now,
 * leaving its keepalive at `ka`. why: both WireGuards send a keepalive at once when a peer's
 * persistent keepalive goes from 0 to non-zero (kernel netlink.c set_peer, wireguard-go
 * uapi.go pkaOn); with no session that keepalive starts a handshake. So the peer is named twice
 * more: keepalive flipped to the other side of 0, then back. Without it a new key waits for
 * traffic, and if the other side's first try came before it knew the key, for its REKEY_TIMEOUT
 * (5 s) retry: the key-rotation stall.
 */
function nudgeArgs(key: string, ka: number): string[] {
  return ka === 0
    ? ['peer', key, 'persistent-keepalive', NUDGE_KEEPALIVE, 'peer', key, 'persistent-keepalive', 'off']
    : ['peer', key, 'persistent-keepalive', 'off', 'peer', key, 'persistent-keepalive', String(ka)];
}

/**
 * Pure: the arguments of ONE `wg set NAME …` that converges `cur` to `w` ([] when it matches).
 * Unchanged peers are not mentioned (their sessions are untouched); a changed peer gets only
 * its changed fields (`wg set` keeps its session); peers not in `w` are removed.
 * `ownPublicKey` is the public key of w.privateKeyFile.
 *
 * Key changes are hitless (no REKEY_TIMEOUT stall): on a device that already has a key, every
 * peer added (a new host, or a host's new key) and, when this host's own key is replaced, every
 * peer is nudged into a handshake at once (nudgeArgs). Whichever side learns of a rotation
 * second thus starts a handshake the other side already accepts: the gap is the time between
 * the two hosts applying it, plus one round trip.
 */
export function planWireguard(
  cur: WireguardState,
  want: WireguardDevice,
  ownPublicKey: string,
): { args: string[]; changes: string[] } {
  const w = checkWireguardDevice(want);
  if (w.peers.some((p) => p.publicKey === ownPublicKey))
    throw errors.badOption(`WireGuard device ${w.name}: a peer has this host's own public key`);
  const args: string[] = [];
  const changes: string[] = [];
  if (cur.publicKey !== ownPublicKey) {
    args.push('private-key', w.privateKeyFile);
    changes.push(cur.publicKey === undefined ? 'private key set' : 'private key replaced');
  }
  if (cur.listenPort !== w.listenPort) {
    args.push('listen-port', String(w.listenPort));
    changes.push(`listen port ${cur.listenPort} → ${w.listenPort}`);
  }
  const wanted = new Set(w.peers.map((p) => p.publicKey));
  for (const p of cur.peers.filter((c) => !wanted.has(c.publicKey))) {
    args.push('peer', p.publicKey, 'remove');
    changes.push(`peer ${short(p.publicKey)} removed`);
  }
  const have = new Map(cur.peers.map((p) => [p.publicKey, p]));
  const rekeyed = cur.publicKey !== undefined && cur.publicKey !== ownPublicKey;
  const nudges: string[] = [];
  for (const p of w.peers) {
    if (cur.publicKey !== undefined && (rekeyed || !have.has(p.publicKey)))
      nudges.push(...nudgeArgs(p.publicKey, p.keepaliveSeconds ?? 0));
    const c = have.get(p.publicKey);
    const ka = p.keepaliveSeconds ?? 0;
    const fields: string[] = [];
    const what: string[] = [];
    if (c?.endpoint === undefined || canonicalEndpoint(c.endpoint) !== p.endpoint) {
      fields.push('endpoint', p.endpoint);
      what.push('endpoint');
    }
    if (!c || !sameSet(c.allowedIps, p.allowedIps)) {
      fields.push('allowed-ips', p.allowedIps.join(','));
      what.push('allowed-ips');
    }
    if ((c?.keepaliveSeconds ?? 0) !== ka) {
      fields.push('persistent-keepalive', ka === 0 ? 'off' : String(ka));
      what.push('keepalive');
    }
    if (fields.length === 0) continue;
    args.push('peer', p.publicKey, ...fields);
    changes.push(c ? `peer ${short(p.publicKey)} ${what.join(', ')}` : `peer ${short(p.publicKey)} added`);
  }
  // after every peer's own fields: a nudged peer has its endpoint by then
  args.push(...nudges);
  return { args, changes };
}

/** Pure: the `ip -batch` lines that bring an owned device's MTU and state in line. */
export function planWireguardLink(cur: LinkState, w: WireguardDevice): string[] {
  const name = checkIfName(w.name);
  const lines: string[] = [];
  if (cur.mtu !== w.mtu) lines.push(`link set ${name} mtu ${w.mtu}`);
  if (!cur.up) lines.push(`link set ${name} up`);
  return lines;
}

// ---------- the kernel side ----------

const isWgKind = (kind: string): boolean => kind === 'wireguard' || kind === 'tun';

function assertOwnDevice(cur: LinkState, name: string): void {
  if (isWgKind(cur.kind) && cur.alias === wireguardMark(name)) return;
  const what = cur.alias ? ` (alias ${JSON.stringify(cur.alias)})` : ' with no truss mark';
  throw errors.kernelObjectForeign(
    `WireGuard device ${name}: interface ${name} already exists: a ${cur.kind || 'link'}${what} truss did not ` +
      `create; delete or rename it (if truss was killed while creating it: ip link del ${name})`,
  );
}

/** Is a wireguard-go UAPI socket answering? (a killed wireguard-go leaves a dead one) */
function uapiLive(path: string): Promise<boolean> {
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

async function startWireguardGo(exec: Exec, name: string): Promise<void> {
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

async function createDevice(exec: Exec, w: WireguardDevice): Promise<void> {
  const mode = await detectWireguard(exec);
  if (mode === 'none')
    throw errors.unsupported(
      `WireGuard device ${w.name}: this host has neither kernel WireGuard nor wireguard-go with /dev/net/tun ` +
        '(and wg from wireguard-tools): install wireguard-tools and wireguard-go',
    );
  if (mode === 'userspace') return startWireguardGo(exec, w.name);
  const mark = wireguardMark(w.name);
  const lines = [`link add ${w.name} mtu ${w.mtu} type wireguard`, `link set ${w.name} alias ${mark}`];
  try {
    await exec.run('ip', ['-batch', '-'], { stdin: batch(lines) });
  } catch (e) {
    await undoFailedCreate(exec, e, { name: w.name, kind: 'wireguard', mark });
    throw e;
  }
}

async function showDump(exec: Exec, name: string): Promise<WireguardState> {
  return parseWgDump((await exec.run('wg', ['show', name, 'dump'])).stdout);
}

/**
 * Creates or converges the device: mark, MTU, up, key, listen port, peers. Reads first and
 * writes only differences: a second call with the same spec runs two reads and no write.
 */
export async function ensureWireguard(exec: Exec, want: WireguardDevice): Promise<WireguardEnsureResult> {
  const w = checkWireguardDevice(want);
  const ownPublicKey = await readPrivateKeyFile(w.privateKeyFile);
  let cur = await readLink(exec, w.name);
  const created = cur === undefined;
  if (cur === undefined) {
    await createDevice(exec, w);
    cur = await readLink(exec, w.name);
    if (cur === undefined) throw errors.internal(`WireGuard device ${w.name} vanished right after it was created`);
  }
  assertOwnDevice(cur, w.name);
  const plan = planWireguard(await showDump(exec, w.name), w, ownPublicKey);
  if (plan.args.length > 0) await exec.run('wg', ['set', w.name, ...plan.args]);
  const link = planWireguardLink(cur, w);
  if (link.length > 0) await exec.run('ip', ['-batch', '-'], { stdin: batch(link) });
  const linkChanges = link.map((l) => l.replace(`link set ${w.name} `, ''));
  return { created, changes: [...(created ? ['created'] : []), ...linkChanges, ...plan.changes] };
}

/** The device's public state, or undefined when no link of that name is in this namespace. */
export async function readWireguard(exec: Exec, name: string): Promise<WireguardState | undefined> {
  // why: a userspace device answers `wg` from every netns of the mount namespace: check ours has it
  if ((await readLink(exec, checkIfName(name))) === undefined) return undefined;
  return showDump(exec, name);
}

const exists = (path: string): Promise<boolean> =>
  fs.stat(path).then(
    () => true,
    () => false,
  );

async function socketGone(path: string, timeoutMs: number): Promise<boolean> {
  for (const end = Date.now() + timeoutMs; Date.now() < end; ) {
    if (!(await exists(path))) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

/**
 * Deletes the device; gone = success; a foreign link of that name is left alone. For
 * wireguard-go, deleting the TUN makes it exit and remove its socket; a socket that outlives
 * it (or one left by a killed wireguard-go) is unlinked, but never a live one of another netns.
 */
export async function removeWireguard(exec: Exec, name: string, log?: DataplaneLog): Promise<void> {
  const cur = await readLink(exec, checkIfName(name));
  const sock = socketOf(name);
  if (cur !== undefined) {
    if (!isWgKind(cur.kind) || cur.alias !== wireguardMark(name)) {
      log?.warn('not removing foreign link', { link: name, kind: cur.kind, alias: cur.alias });
      return;
    }
    await deleteLink(exec, name);
    if (cur.kind === 'wireguard' || (await socketGone(sock, 2000))) return;
  } else if (!(await exists(sock)) || (await uapiLive(sock))) {
    return; // nothing here; a live socket belongs to another namespace's device
  }
  await fs.unlink(sock).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
}
