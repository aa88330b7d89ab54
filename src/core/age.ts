/**
 * How old something is, in an operator's words, and when a WireGuard handshake is too old:
 * shared by `truss status` (cli/health.ts) and the path walk of `truss doctor` (core/path-walk.ts).
 */

/**
 * WireGuard drops a session's keys 180 s after its handshake (REJECT_AFTER_TIME); truss's peers
 * send a keepalive every 25 s, so a live peer handshakes again well before.
 */
export const HANDSHAKE_STALE_S = 180;

/** "12 s", "4 min", "3 h", "2 d": how long `seconds` is. */
export function age(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} d`;
}
