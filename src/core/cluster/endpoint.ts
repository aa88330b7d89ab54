/**
 * WireGuard endpoints as text ("198.18.0.2:51820", "[fd00::2]:51820"): the one canonical
 * spelling (wg's own), shared by the records checked from etcd, the desired state and the
 * device plan, so that two spellings of one endpoint never look like a change.
 */
import { formatIp, type Ip, parseIp } from '../ip.ts';

/** "198.18.0.2:51820" / "[fd00::2]:51820" in wg's own spelling, or undefined. */
export function canonicalEndpoint(s: string): string | undefined {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([0-9.]+)):([1-9][0-9]{0,4})$/.exec(s);
  const port = Number(m?.[3]);
  const ip = m ? parseIp((m[1] ?? m[2]) as string) : undefined;
  if (!ip || port > 65535 || (ip.family === 6) !== (m?.[1] !== undefined)) return undefined;
  return endpointText(ip, port);
}

export const endpointText = (ip: Ip, port: number): string =>
  ip.family === 6 ? `[${formatIp(ip)}]:${port}` : `${formatIp(ip)}:${port}`;

/** The address part of a canonical endpoint. */
export function endpointIp(endpoint: string): Ip | undefined {
  const m = /^\[?([^\]]+?)\]?:\d+$/.exec(endpoint);
  return m ? parseIp(m[1] as string) : undefined;
}
