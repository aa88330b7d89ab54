/**
 * The WireGuard device plan (pure): the device spec and its validation, `wg show dump` parsed
 * without the private key, and the one `wg set` (plus `ip -batch` lines) that converges a
 * device to the spec, with the handshake nudge that keeps key rotation hitless. wireguard.ts
 * runs it against the kernel.
 */
import { isAbsolute } from 'node:path';
import { canonicalEndpoint } from '../../core/cluster/endpoint.ts';
import type { WireguardPeerStatus } from '../../core/contracts.ts';
import { errors } from '../../core/errors.ts';
import { formatPrefix, isNetworkAddress, parsePrefix } from '../../core/ip.ts';
import { checkIfName, type LinkState } from './links.ts';
import { isWireguardKey } from './wireguard-keys.ts';

export interface WireguardPeer {
  /** base64 of the 32-byte Curve25519 public key */
  readonly publicKey: string;
  /**
   * "198.18.0.2:51820" or "[fd00::2]:51820"; absent: never set, WireGuard learns it from the
   * peer's packets (a peer behind a NAT that dials this host)
   */
  readonly endpoint?: string;
  /** network CIDRs routed to this peer and accepted from it */
  readonly allowedIps: readonly string[];
  /** 0 or absent = off */
  readonly keepaliveSeconds?: number;
  /**
   * The peer has a live session (packets from it just now): the endpoint the device has, where
   * WireGuard roamed it (a NAT's outside address, a mapping that changed), is kept over `endpoint`
   */
  readonly live?: boolean;
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

export interface WireguardPlan {
  readonly args: string[];
  readonly changes: string[];
  /** public keys of the peers the args nudge into a handshake */
  readonly nudged: string[];
}

export interface WireguardEnsureResult {
  readonly created: boolean;
  /** what was changed, for logs (public keys abbreviated, no secrets); [] = nothing */
  readonly changes: readonly string[];
}

// ---------- validation (pure) ----------

export { canonicalEndpoint };

/** A public key as changes and warnings name it: its first 8 characters. */
export const short = (key: string): string => `${key.slice(0, 8)}…`;
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
      p.endpoint === undefined
        ? undefined
        : (canonicalEndpoint(p.endpoint) ??
          bad(`peer ${short(p.publicKey)}: endpoint ${JSON.stringify(p.endpoint)} is not IPv4:port or [IPv6]:port`));
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
    return {
      publicKey: p.publicKey,
      ...(endpoint !== undefined ? { endpoint } : {}),
      allowedIps,
      ...(ka > 0 ? { keepaliveSeconds: ka } : {}),
      ...(p.live ? { live: true } : {}),
    };
  });
  return { name, privateKeyFile: w.privateKeyFile, listenPort: w.listenPort, mtu: w.mtu, peers };
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

/** A handshake this recent proves the endpoint it came from, before any look at the peer's traffic. */
export const JUST_NOW_SECONDS = 5;

/**
 * Whether the peer's endpoint must be set to `want`: not when it matches, and not while the peer
 * is live (WireGuard moves a peer's endpoint to the source of its latest authenticated packet:
 * where the peer really is; overwriting it with the record's would cut a working session until
 * its next keepalive). Live: packets from it just now (the paths observer's `live`), or a
 * handshake in the last JUST_NOW_SECONDS (a host behind a NAT that just dialled this one, before
 * the observer or the NAT's record tell).
 */
function endpointStale(c: WireguardPeerState | undefined, want: string, live: boolean, nowSeconds: number): boolean {
  if (c?.endpoint === undefined) return true;
  if (canonicalEndpoint(c.endpoint) === want) return false;
  return !(live || (c.latestHandshake > 0 && nowSeconds - c.latestHandshake < JUST_NOW_SECONDS));
}

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
  nowSeconds = Number.POSITIVE_INFINITY,
): WireguardPlan {
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
    if (p.endpoint !== undefined && endpointStale(c, p.endpoint, p.live === true, nowSeconds)) {
      fields.push('endpoint', p.endpoint);
      what.push('endpoint');
      // a new place to try (a hole punch, a relay's sighting): handshake now, not at the next keepalive
      if (c && cur.publicKey !== undefined && !nudges.includes(p.publicKey))
        nudges.push(...nudgeArgs(p.publicKey, p.keepaliveSeconds ?? 0));
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
  const nudged = w.peers.filter((p) => nudges.includes(p.publicKey)).map((p) => p.publicKey);
  return { args, changes, nudged };
}

/**
 * Pure: does this host restart the handshake with `peerKey` when the two nudges crossed? Exactly
 * one side does: the one with the smaller public key. why: when both hosts apply a rotation (or
 * a new endpoint) within one round trip, both start a handshake, each answers the other's
 * initiation, and each then drops the other's response (it is no longer waiting for one): no
 * session, and neither may start another before REKEY_TIMEOUT (5 s). WireGuard's own rekey
 * avoids this by letting only a session's initiator rekey; a nudge has no such initiator.
 */
export const restartsCrossed = (ownPublicKey: string, peerKey: string): boolean => ownPublicKey < peerKey;

/**
 * Pure: `wg set` arguments that restart peer `p`'s handshake now: removed and added back (a new
 * peer may initiate at once, where the old one waits out REKEY_TIMEOUT), then nudged.
 */
export function planRestart(p: WireguardPeer): string[] {
  const ka = p.keepaliveSeconds ?? 0;
  return [
    'peer',
    p.publicKey,
    'remove',
    'peer',
    p.publicKey,
    ...(p.endpoint !== undefined ? ['endpoint', p.endpoint] : []),
    'allowed-ips',
    p.allowedIps.join(','),
    'persistent-keepalive',
    ka === 0 ? 'off' : String(ka),
    ...nudgeArgs(p.publicKey, ka),
  ];
}

/** Pure: the `ip -batch` lines that bring an owned device's MTU and state in line. */
export function planWireguardLink(cur: LinkState, w: WireguardDevice): string[] {
  const name = checkIfName(w.name);
  const lines: string[] = [];
  if (cur.mtu !== w.mtu) lines.push(`link set ${name} mtu ${w.mtu}`);
  if (!cur.up) lines.push(`link set ${name} up`);
  return lines;
}
