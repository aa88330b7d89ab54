/**
 * WireGuard devices: one per host ("trwg0"), encrypting traffic to the other hosts' blocks.
 * Each peer is another host: its public key, its underlay endpoint, and the blocks routed to
 * it (allowed-ips: WireGuard's cryptokey routing — outgoing, which peer a packet goes to;
 * incoming, which sources that peer may use).
 *
 * Two implementations behind one interface, chosen by detectWireguard: the kernel's
 * (`ip link add … type wireguard`) and the userspace wireguard-go, which makes a TUN device
 * and serves the same configuration protocol on /var/run/wireguard/<name>.sock. Everything
 * after creation is one plan (wireguard-plan.ts, in `wg set` terms); kernel WireGuard takes it
 * through `wg`, wireguard-go through its socket directly (wireguard-uapi.ts: no process).
 * wireguard-go is started in its own session with an empty environment and daemonises, so it
 * outlives truss (a kill -9 or a restart of truss never drops a tunnel) and a restarted truss
 * adopts the running device.
 * Deleting the link stops it: wireguard-go exits when its TUN goes, removing its socket.
 *
 * Ownership: the ifalias `truss:wg:<name>` on the link. A device with our name but without
 * that mark is foreign: ensure refuses it (TRUSS_ERR_KERNEL_OBJECT_FOREIGN), remove leaves it.
 *
 * Secrets: the private key lives in `<dir>/wireguard.key` (wireguard-keys.ts: 0600, dir 0700, created O_EXCL with
 * its mode at open) and reaches `wg` as a file path only, wireguard-go as hex on its root-only
 * socket — never argv, stdin, logs or errors. `wg show dump` and the socket's `get` print it:
 * the parsers drop it at once.
 */
import { promises as fs } from 'node:fs';
import { errors } from '../../core/errors.ts';
import type { DataplaneLog, Exec } from './exec.ts';
import { batch, checkIfName, deleteLink, type LinkState, readLink, undoFailedCreate } from './links.ts';
import {
  detectWireguardImpl,
  exists,
  socketGone,
  socketOf,
  startWireguardGo,
  UAPI_SOCKETS,
  type UapiTransport,
  uapiLive,
  type WireguardProbeOptions,
  wireguardGoFor,
  wireguardMark,
} from './wireguard-go.ts';
import { privateKeyHex, readPrivateKeyFile } from './wireguard-keys.ts';
import {
  checkWireguardDevice,
  parseWgDump,
  planRestart,
  planWireguard,
  planWireguardLink,
  restartsCrossed,
  type WireguardDevice,
  type WireguardEnsureResult,
  type WireguardPeer,
  type WireguardState,
} from './wireguard-plan.ts';
import { checkUapiSetAnswer, parseUapiDump, parseUapiHandshakes, uapiSetRequest } from './wireguard-uapi.ts';

export {
  canOpen,
  detectWireguard,
  detectWireguardImpl,
  findWireguardGo,
  probedWireguard,
  TRUSS_WIREGUARD_GO,
  UAPI_DIR,
  type WireguardMode,
  type WireguardProbeOptions,
  wireguardMark,
} from './wireguard-go.ts';
export {
  canonicalEndpoint,
  checkWireguardDevice,
  parseWgDump,
  planWireguard,
  planWireguardLink,
  type WireguardDevice,
  type WireguardEnsureResult,
  type WireguardPeer,
  type WireguardPeerState,
  type WireguardState,
} from './wireguard-plan.ts';

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

async function createDevice(exec: Exec, w: WireguardDevice, opts: WireguardProbeOptions): Promise<void> {
  const impl = await detectWireguardImpl(exec, opts);
  if (impl.kind === 'none')
    throw errors.unsupported(
      `WireGuard device ${w.name}: this host has neither kernel WireGuard nor wireguard-go with /dev/net/tun ` +
        '(and wg from wireguard-tools): install wireguard-tools and wireguard-go',
    );
  if (impl.kind === 'wireguard-go') {
    const endpoints = w.peers.map((p) => p.endpoint);
    return startWireguardGo(exec, w.name, (await wireguardGoFor(exec, impl, endpoints)).path);
  }
  const mark = wireguardMark(w.name);
  const lines = [`link add ${w.name} mtu ${w.mtu} type wireguard`, `link set ${w.name} alias ${mark}`];
  try {
    await exec.run('ip', ['-batch', '-'], { stdin: batch(lines) });
  } catch (e) {
    await undoFailedCreate(exec, e, { name: w.name, kind: 'wireguard', mark });
    throw e;
  }
}

/** Which implementation runs a device, by its link kind: 'tun' is wireguard-go, else kernel. */
const isUserspace = (kind: string): boolean => kind === 'tun';

/** A device with what reaches it: processes (kernel WireGuard) or its socket (wireguard-go). */
interface Running {
  readonly exec: Exec;
  readonly kind: string;
  readonly uapi: UapiTransport;
}

/**
 * One request on wireguard-go's socket, reported like a command (the debug log, tests): argv
 * `uapi get|set NAME`, the request as stdin with its private key line redacted.
 */
async function uapiCall(d: Running, name: string, request?: string): Promise<string> {
  const argv = ['uapi', request === undefined ? 'get' : 'set', name];
  const shown = request?.replace(/^private_key=.*$/m, 'private_key=(redacted)');
  const started = performance.now();
  try {
    const answer = await (request === undefined ? d.uapi.get(name) : d.uapi.set(name, request));
    d.exec.onCommand?.(argv, shown, performance.now() - started, 0);
    return answer;
  } catch (e) {
    d.exec.onCommand?.(argv, shown, performance.now() - started, 1);
    throw e;
  }
}

/** The device's state: wireguard-go's socket, or `wg show dump` for kernel WireGuard. */
async function showDump(d: Running, name: string): Promise<WireguardState> {
  if (isUserspace(d.kind)) return parseUapiDump(await uapiCall(d, name));
  return parseWgDump((await d.exec.run('wg', ['show', name, 'dump'])).stdout);
}

/** Applies `wg set NAME …` arguments: through wireguard-go's socket, or `wg` for kernel WireGuard. */
async function setDevice(d: Running, w: WireguardDevice, args: readonly string[]): Promise<void> {
  if (args.length === 0) return;
  if (!isUserspace(d.kind)) {
    await d.exec.run('wg', ['set', w.name, ...args]);
    return;
  }
  const key = args.includes('private-key') ? await privateKeyHex(w.privateKeyFile) : undefined;
  checkUapiSetAnswer(await uapiCall(d, w.name, uapiSetRequest(args, key)));
}

/**
 * Creates or converges the device: mark, MTU, up, key, listen port, peers. Reads first and
 * writes only differences: a second call with the same spec runs two reads and no write.
 */
export async function ensureWireguard(
  exec: Exec,
  want: WireguardDevice,
  opts: WireguardProbeOptions = {},
): Promise<WireguardEnsureResult> {
  const w = checkWireguardDevice(want);
  const ownPublicKey = await readPrivateKeyFile(w.privateKeyFile);
  let cur = await readLink(exec, w.name);
  const created = cur === undefined;
  if (cur === undefined) {
    await createDevice(exec, w, opts);
    cur = await readLink(exec, w.name);
    if (cur === undefined) throw errors.internal(`WireGuard device ${w.name} vanished right after it was created`);
  }
  assertOwnDevice(cur, w.name);
  const d: Running = { exec, kind: cur.kind, uapi: opts.uapi ?? UAPI_SOCKETS };
  const plan = planWireguard(await showDump(d, w.name), w, ownPublicKey, Date.now() / 1000);
  // the peers whose crossed handshake this host restarts (restartsCrossed), and their handshakes before
  const watched = w.peers.filter(
    (p) => p.endpoint !== undefined && plan.nudged.includes(p.publicKey) && restartsCrossed(ownPublicKey, p.publicKey),
  );
  const before = watched.length > 0 ? await handshakes(d, w.name) : new Map<string, number>();
  await setDevice(d, w, plan.args);
  const link = planWireguardLink(cur, w);
  if (link.length > 0) await exec.run('ip', ['-batch', '-'], { stdin: batch(link) });
  const linkChanges = link.map((l) => l.replace(`link set ${w.name} `, ''));
  const restarted = await restartCrossed(d, w, watched, before);
  return { created, changes: [...(created ? ['created'] : []), ...linkChanges, ...plan.changes, ...restarted] };
}

/** How long a nudged handshake may take before restartCrossed counts it as crossed. */
export const CROSSED_AFTER_MS = 250;

/** Each peer's latest handshake, ms since the epoch (0: never); whole seconds for kernel WireGuard. */
async function handshakes(d: Running, name: string): Promise<Map<string, number>> {
  if (isUserspace(d.kind)) return parseUapiHandshakes(await uapiCall(d, name));
  return new Map((await showDump(d, name)).peers.map((p) => [p.publicKey, p.latestHandshake * 1000]));
}

/**
 * Waits up to CROSSED_AFTER_MS for a handshake with each of `peers` newer than `before`, and
 * restarts the ones that had none (planRestart): their nudge crossed the other host's
 * (restartsCrossed), or reached it before it knew the new key. A peer that is down costs one
 * wait and one needless restart. Kernel WireGuard reports whole seconds, so a handshake in the
 * same second as the one before counts as none (a needless restart, never a missed one).
 */
async function restartCrossed(
  d: Running,
  w: WireguardDevice,
  peers: readonly WireguardPeer[],
  before: ReadonlyMap<string, number>,
): Promise<string[]> {
  if (peers.length === 0) return [];
  let stuck = peers;
  for (const end = Date.now() + CROSSED_AFTER_MS; ; ) {
    const now = await handshakes(d, w.name);
    stuck = stuck.filter((p) => (now.get(p.publicKey) ?? 0) <= (before.get(p.publicKey) ?? 0));
    if (stuck.length === 0 || Date.now() >= end) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  if (stuck.length === 0) return [];
  await setDevice(d, w, stuck.flatMap(planRestart));
  return stuck.map(
    (p) => `peer ${p.publicKey.slice(0, 8)}… handshake restarted (none ${CROSSED_AFTER_MS} ms after its nudge)`,
  );
}

/**
 * Per namespace (its Exec) and device: the identity of the wireguard-go socket that served the
 * device when readWireguard last found its TUN in this namespace (UapiTransport.identity).
 */
const ownSockets = new WeakMap<Exec, Map<string, string>>();

/**
 * The device's public state, or undefined when no link of that name is in this namespace.
 * A userspace device's socket answers from every netns of the mount namespace, so the link is
 * looked for here (an `ip` process) — once per wireguard-go: while the same socket serves the
 * name, the same process runs the same TUN (it exits when its TUN is deleted, removing the
 * socket), so the paths observer's look every 2 s is one socket request and no process.
 */
export async function readWireguard(
  exec: Exec,
  name: string,
  uapi: UapiTransport = UAPI_SOCKETS,
): Promise<WireguardState | undefined> {
  checkIfName(name);
  const id = await uapi.identity?.(name);
  const own = ownSockets.get(exec) ?? new Map<string, string>();
  ownSockets.set(exec, own);
  if (id !== undefined && own.get(name) === id) {
    const state = await showDump({ exec, kind: 'tun', uapi }, name).catch(() => undefined);
    if (state !== undefined) return state;
  }
  own.delete(name);
  const link = await readLink(exec, name);
  if (link === undefined) return undefined;
  // why: the identity read before the link: a socket replaced in between is looked at again next time
  if (isUserspace(link.kind) && id !== undefined) own.set(name, id);
  return showDump({ exec, kind: link.kind, uapi }, name);
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
