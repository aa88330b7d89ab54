/**
 * wireguard-go's configuration protocol (pure): its UAPI socket's `get=1` answer read as the
 * device state `wg show dump` gives, and the `set=1` request that does what `wg set` does with
 * the same arguments. For wireguard-go, `wg` is only a client of this socket
 * (wireguard-tools ipc-uapi.h); speaking it ourselves spares a process per read and per write,
 * which is most of a cluster reaction's cost (docs/benchmarks.md, convergence). Kernel
 * WireGuard has no socket: wireguard.ts keeps `wg` for it.
 *
 * Both texts hold the device's private key (hex): errors never quote them, and the parser
 * derives the public key and keeps nothing else of it.
 */
import { errors } from '../../core/errors.ts';
import { publicKeyOf } from './wireguard-keys.ts';
import type { WireguardPeerState, WireguardState } from './wireguard-plan.ts';

const b64 = (hex: string): string => Buffer.from(hex, 'hex').toString('base64');
const hexOf = (key: string): string => Buffer.from(key, 'base64').toString('hex');
const HEX_KEY = /^[0-9a-f]{64}$/;

function checkErrno(value: string, op: string): void {
  if (value !== '0') throw errors.internal(`wireguard-go UAPI ${op} failed (errno ${value})`);
}

function uapiNumber(value: string): number {
  const n = Number(value);
  if (value === '' || !Number.isSafeInteger(n) || n < 0)
    throw errors.internal('unexpected wireguard-go UAPI answer (a number field is not a number)');
  return n;
}

interface PeerDraft {
  publicKey: string;
  endpoint?: string;
  allowedIps: string[];
  sec: number;
  nsec: number;
  rxBytes: number;
  txBytes: number;
  keepaliveSeconds: number;
}

/** The `key=value` lines of an answer, up to its errno (checked: 0, else an error). */
function* uapiLines(text: string, op: string): Generator<[string, string]> {
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const eq = line.indexOf('=');
    if (eq < 1) throw errors.internal(`unexpected wireguard-go UAPI ${op} answer (a line without key=value)`);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'errno') return checkErrno(value, op);
    yield [key, value];
  }
  throw errors.internal(`wireguard-go UAPI ${op} answer ended without errno`);
}

/** Pure: a UAPI `get=1` answer → its peers, with the handshake in ms since the epoch (0: never). */
function readPeers(text: string): { device: Map<string, string>; peers: PeerDraft[] } {
  const device = new Map<string, string>();
  const peers: PeerDraft[] = [];
  for (const [key, value] of uapiLines(text, 'get')) {
    const peer = peers.at(-1);
    if (key === 'public_key') {
      if (!HEX_KEY.test(value)) throw errors.internal('unexpected wireguard-go UAPI answer (a peer key is not hex)');
      peers.push({
        publicKey: b64(value),
        allowedIps: [],
        sec: 0,
        nsec: 0,
        rxBytes: 0,
        txBytes: 0,
        keepaliveSeconds: 0,
      });
    } else if (peer === undefined) device.set(key, value);
    else if (key === 'endpoint') peer.endpoint = value;
    else if (key === 'allowed_ip') peer.allowedIps.push(value);
    else if (key === 'last_handshake_time_sec') peer.sec = uapiNumber(value);
    else if (key === 'last_handshake_time_nsec') peer.nsec = uapiNumber(value);
    else if (key === 'rx_bytes') peer.rxBytes = uapiNumber(value);
    else if (key === 'tx_bytes') peer.txBytes = uapiNumber(value);
    else if (key === 'persistent_keepalive_interval') peer.keepaliveSeconds = uapiNumber(value);
  }
  return { device, peers };
}

/**
 * Pure: a UAPI `get=1` answer → the device as parseWgDump reads `wg show dump` of it (whole
 * seconds of handshake, the public key derived from the private key, which is not kept).
 */
export function parseUapiDump(text: string): WireguardState {
  const { device, peers } = readPeers(text);
  const priv = device.get('private_key');
  let publicKey: string | undefined;
  if (priv !== undefined && HEX_KEY.test(priv) && !/^0+$/.test(priv)) {
    const raw = Buffer.from(priv, 'hex');
    publicKey = publicKeyOf(raw);
    raw.fill(0);
  }
  return {
    ...(publicKey !== undefined ? { publicKey } : {}),
    listenPort: uapiNumber(device.get('listen_port') ?? '0'),
    peers: peers.map(
      (p): WireguardPeerState => ({
        publicKey: p.publicKey,
        ...(p.endpoint !== undefined ? { endpoint: p.endpoint } : {}),
        allowedIps: p.allowedIps,
        latestHandshake: p.sec,
        rxBytes: p.rxBytes,
        txBytes: p.txBytes,
        keepaliveSeconds: p.keepaliveSeconds,
      }),
    ),
  };
}

/**
 * Pure: a UAPI `get=1` answer → each peer's latest handshake in ms since the epoch (0: never),
 * keyed by base64 public key: finer than `wg show`'s whole seconds.
 */
export function parseUapiHandshakes(text: string): Map<string, number> {
  return new Map(readPeers(text).peers.map((p) => [p.publicKey, p.sec * 1000 + p.nsec / 1e6]));
}

/**
 * Pure: `wg set NAME …` arguments (planWireguard, planRestart) → the UAPI `set=1` request wg
 * would send for them: one public_key section per `peer` named, in order (a peer named again is
 * a new section: the nudge and the restart rely on it), `allowed-ips` replacing the peer's list,
 * `off` as 0. `keyHex`: the private key of a `private-key FILE` argument, read by the caller.
 * Throws on anything planWireguard does not write.
 */
export function uapiSetRequest(args: readonly string[], keyHex?: string): string {
  const lines = ['set=1'];
  const bad = (what: string): never => {
    throw errors.internal(`cannot translate wg set arguments to wireguard-go UAPI: ${what}`);
  };
  let inPeer = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const value = (): string => args[++i] ?? bad(`${arg} without a value`);
    if (arg === 'peer') {
      lines.push(`public_key=${hexOf(value())}`);
      inPeer = true;
    } else if (!inPeer && arg === 'private-key') {
      value(); // the file: its key is keyHex
      if (keyHex === undefined || !HEX_KEY.test(keyHex)) bad('private-key without its key');
      lines.push(`private_key=${keyHex}`);
    } else if (!inPeer && arg === 'listen-port') lines.push(`listen_port=${uapiNumber(value())}`);
    else if (inPeer && arg === 'remove') lines.push('remove=true');
    else if (inPeer && arg === 'endpoint') lines.push(`endpoint=${value()}`);
    else if (inPeer && arg === 'persistent-keepalive') {
      const v = value();
      lines.push(`persistent_keepalive_interval=${v === 'off' ? 0 : uapiNumber(v)}`);
    } else if (inPeer && arg === 'allowed-ips') {
      const ips = value()
        .split(',')
        .filter((c) => c !== '');
      lines.push('replace_allowed_ips=true', ...ips.map((c) => `allowed_ip=${c}`));
    } else bad(`unexpected ${JSON.stringify(arg)}`);
  }
  return `${lines.join('\n')}\n\n`;
}

/** Pure: the answer to a `set=1` request: nothing, or an error naming its errno. */
export function checkUapiSetAnswer(text: string): void {
  for (const _ of uapiLines(text, 'set')) {
    // why: a set answers errno only; anything before it is ignored, as wg ignores it
  }
}
