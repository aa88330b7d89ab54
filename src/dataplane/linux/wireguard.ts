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
  short,
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

/** planWireguardLink's lines as changes name them: "mtu 1440", "up". */
const linkWords = (lines: readonly string[], name: string): string[] =>
  lines.map((l) => l.replace(`link set ${name} `, ''));

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
 * writes only differences: a second call with the same spec reads the device and writes nothing
 * (for a running wireguard-go whose link was read before, lookLink: one socket request).
 */
export async function ensureWireguard(
  exec: Exec,
  want: WireguardDevice,
  opts: WireguardProbeOptions = {},
): Promise<WireguardEnsureResult> {
  const w = checkWireguardDevice(want);
  const ownPublicKey = await readPrivateKeyFile(w.privateKeyFile);
  const uapi = opts.uapi ?? UAPI_SOCKETS;
  let { link: cur, remembered } = await lookLink(exec, w.name, uapi);
  let state: WireguardState | undefined;
  if (cur !== undefined && remembered) {
    // a remembered socket that does not answer (a killed wireguard-go leaves it): look again, once
    assertOwnDevice(cur, w.name);
    state = await showDump({ exec, kind: cur.kind, uapi }, w.name).catch(() => undefined);
    if (state === undefined) ({ link: cur } = await lookLink(exec, w.name, uapi, true));
  }
  const created = cur === undefined;
  if (cur === undefined) {
    await createDevice(exec, w, opts);
    ({ link: cur } = await lookLink(exec, w.name, uapi, true));
    if (cur === undefined) throw errors.internal(`WireGuard device ${w.name} vanished right after it was created`);
  }
  assertOwnDevice(cur, w.name);
  const d: Running = { exec, kind: cur.kind, uapi };
  state ??= await showDump(d, w.name);
  const plan = planWireguard(state, w, ownPublicKey, Date.now() / 1000);
  // the peers whose crossed handshake this host restarts (restartsCrossed), and their handshakes before
  const watched = w.peers.filter(
    (p) => p.endpoint !== undefined && plan.nudged.includes(p.publicKey) && restartsCrossed(ownPublicKey, p.publicKey),
  );
  const before = watched.length > 0 ? await handshakes(d, w.name) : new Map<string, number>();
  await setDevice(d, w, plan.args);
  const link = planWireguardLink(cur, w);
  if (link.length > 0) {
    forgetLink(exec, w.name); // changed: the next look reads it
    await exec.run('ip', ['-batch', '-'], { stdin: batch(link) }).finally(() => forgetLink(exec, w.name));
  }
  const linkChanges = linkWords(link, w.name);
  const crossed = await restartCrossed(d, w, watched, before);
  const restarted = crossed.map(
    (p) => `peer ${short(p.publicKey)} handshake restarted (none ${CROSSED_AFTER_MS} ms after its nudge)`,
  );
  const nudged = w.peers.filter(
    (p) => p.endpoint !== undefined && plan.nudged.includes(p.publicKey) && !crossed.includes(p),
  );
  // why: the race it repairs is wireguard-go's; a look that fails leaves the applied configuration as it is
  const unanswered = isUserspace(d.kind) ? await restartUnanswered(d, w, nudged).catch(() => []) : [];
  return {
    created,
    changes: [...(created ? ['created'] : []), ...linkChanges, ...plan.changes, ...restarted, ...unanswered],
  };
}

/** How long a nudged peer may leave what this host sends it unanswered (restartUnanswered). */
export const UNANSWERED_MS = 150;
/** How long restartUnanswered looks (from the end of restartCrossed's wait, after the nudge). */
export const UNANSWERED_WINDOW_MS = 400;
/** More than two keepalives (32 bytes each): what this host sent is traffic, not keepalives alone */
const TRAFFIC_BYTES = 64;

/**
 * Restarts the handshake with each nudged peer that, within UNANSWERED_WINDOW_MS after the nudge
 * (and restartCrossed), was sent traffic for UNANSWERED_MS while nothing came back from it. why: wireguard-go's
 * handshake workers can race when a peer's initiation and its response to ours arrive together
 * (a crossed handshake; seen with wireguard-go 0.0.20250522 on 2 cores: both "Received handshake
 * initiation" and "Received handshake response" logged, and the other host logs "Received
 * invalid response message"). This host then sends on a session the other never derived and
 * hears nothing until WireGuard's own retry 15 s later ("stopped hearing back after 15
 * seconds"), while the other sees nothing wrong: only the sender can tell, so either side may
 * restart here, where restartCrossed restarts from one side only. A peer that is down, only
 * receives, or is further than UNANSWERED_MS away costs a needless restart (a blip of one round
 * trip). wireguard-go only: kernel WireGuard is not known to race so, and each look there is a process.
 */
async function restartUnanswered(d: Running, w: WireguardDevice, peers: readonly WireguardPeer[]): Promise<string[]> {
  if (peers.length === 0) return [];
  /** per peer: when its rx last changed, and its counters then */
  const heard = new Map<string, { at: number; rx: number; tx: number }>();
  const stuck = new Set<WireguardPeer>();
  for (const end = Date.now() + UNANSWERED_WINDOW_MS; Date.now() < end && stuck.size < peers.length; ) {
    const now = Date.now();
    const state = new Map((await showDump(d, w.name)).peers.map((p) => [p.publicKey, p]));
    for (const p of peers) {
      const c = state.get(p.publicKey);
      const h = heard.get(p.publicKey);
      if (c === undefined || stuck.has(p)) continue;
      if (h === undefined || c.rxBytes !== h.rx) heard.set(p.publicKey, { at: now, rx: c.rxBytes, tx: c.txBytes });
      else if (now - h.at >= UNANSWERED_MS && c.txBytes - h.tx > TRAFFIC_BYTES) stuck.add(p);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  if (stuck.size === 0) return [];
  await setDevice(d, w, [...stuck].flatMap(planRestart));
  return [...stuck].map(
    (p) => `peer ${short(p.publicKey)} handshake restarted (sent to for ${UNANSWERED_MS} ms, nothing back)`,
  );
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
 * Returns the peers it restarted.
 */
async function restartCrossed(
  d: Running,
  w: WireguardDevice,
  peers: readonly WireguardPeer[],
  before: ReadonlyMap<string, number>,
): Promise<readonly WireguardPeer[]> {
  if (peers.length === 0) return [];
  let stuck = peers;
  for (const end = Date.now() + CROSSED_AFTER_MS; ; ) {
    const now = await handshakes(d, w.name);
    stuck = stuck.filter((p) => (now.get(p.publicKey) ?? 0) <= (before.get(p.publicKey) ?? 0));
    if (stuck.length === 0 || Date.now() >= end) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  if (stuck.length > 0) await setDevice(d, w, stuck.flatMap(planRestart));
  return stuck;
}

/**
 * Per namespace (its Exec) and device: the link as last read in this namespace while a
 * wireguard-go served it, with the identity of that socket (UapiTransport.identity).
 */
const known = new WeakMap<Exec, Map<string, { readonly socket: string; readonly link: LinkState }>>();
/** per namespace and device: bumped by each forgetLink, so that a look begun before it stores nothing */
const epochs = new WeakMap<Exec, Map<string, number>>();

const epochOf = (exec: Exec, name: string): number => epochs.get(exec)?.get(name) ?? 0;

function forgetLink(exec: Exec, name: string): void {
  known.get(exec)?.delete(name);
  const e = epochs.get(exec) ?? new Map<string, number>();
  epochs.set(exec, e);
  e.set(name, epochOf(exec, name) + 1);
}

/**
 * The device's link in this namespace (undefined: none). A userspace device's socket answers
 * from every netns of the mount namespace, so the link is looked for here with `ip` — once per
 * wireguard-go: while the same socket serves the name, the same process runs the same TUN (it
 * exits when its TUN is deleted, removing the socket), and the link read then is answered, so a
 * cluster change and the paths observer's look every 2 s start no `ip`. `fresh` reads it anyway
 * (the full pass's check: an MTU or state changed behind truss is found there, and remembered
 * for the ensure that repairs it). Kernel WireGuard is read every time.
 */
async function lookLink(
  exec: Exec,
  name: string,
  uapi: UapiTransport,
  fresh = false,
): Promise<{ readonly link: LinkState | undefined; readonly remembered: boolean }> {
  const epoch = epochOf(exec, name);
  const socket = await uapi.identity?.(name);
  const mine = known.get(exec) ?? new Map<string, { socket: string; link: LinkState }>();
  known.set(exec, mine);
  const memo = mine.get(name);
  if (!fresh && socket !== undefined && memo?.socket === socket) return { link: memo.link, remembered: true };
  mine.delete(name);
  const link = await readLink(exec, name);
  // why: the identity read before the link: a socket replaced in between is looked at again next
  // time; and a look that began before a change of the link (forgetLink) is not remembered
  if (link !== undefined && isUserspace(link.kind) && socket !== undefined && epochOf(exec, name) === epoch)
    mine.set(name, { socket, link });
  return { link, remembered: false };
}

/**
 * The device's state from its socket (or `wg`), on the link lookLink found. A remembered link
 * whose socket does not answer (a killed wireguard-go leaves its socket file) is read again.
 */
async function lookDevice(
  exec: Exec,
  name: string,
  uapi: UapiTransport,
): Promise<{ readonly link: LinkState; readonly state: WireguardState } | undefined> {
  for (let fresh = false; ; fresh = true) {
    const { link, remembered } = await lookLink(exec, name, uapi, fresh);
    if (link === undefined) return undefined;
    try {
      return { link, state: await showDump({ exec, kind: link.kind, uapi }, name) };
    } catch (e) {
      if (!remembered) throw e;
    }
  }
}

/**
 * The device's public state, or undefined when no link of that name is in this namespace
 * (lookLink: a running wireguard-go's is one socket request and no process). A socket that no
 * longer answers (its wireguard-go killed) is looked at again from the link.
 */
export async function readWireguard(
  exec: Exec,
  name: string,
  uapi: UapiTransport = UAPI_SOCKETS,
): Promise<WireguardState | undefined> {
  return (await lookDevice(exec, checkIfName(name), uapi))?.state;
}

/**
 * What differs between the device's link, read now, and `want`: its MTU and state
 * (planWireguardLink's lines; the peers are checked through readWireguard). Remembers what it read.
 */
export async function checkWireguardLink(
  exec: Exec,
  want: WireguardDevice,
  uapi: UapiTransport = UAPI_SOCKETS,
): Promise<string[]> {
  const { link: cur } = await lookLink(exec, checkIfName(want.name), uapi, true);
  return cur === undefined ? [] : linkWords(planWireguardLink(cur, want), want.name);
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
