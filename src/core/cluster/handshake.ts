/**
 * How fresh a WireGuard peer's latest handshake is: what `truss status --check` fails on
 * (cli/health.ts) and the colour of a tunnel in `truss topology` (core/topology/).
 */

/**
 * WireGuard drops a session's keys 180 s after its handshake (REJECT_AFTER_TIME); truss's peers
 * send a keepalive every 25 s, so a live peer handshakes again well before.
 */
export const HANDSHAKE_STALE_S = 180;

export type HandshakeState = 'ok' | 'stale' | 'never';

/** `latestHandshake` in s since the epoch (0 = never), against the clock `nowMs`. */
export function handshakeState(latestHandshake: number, nowMs: number): HandshakeState {
  if (latestHandshake === 0) return 'never';
  return nowMs / 1000 - latestHandshake > HANDSHAKE_STALE_S ? 'stale' : 'ok';
}
