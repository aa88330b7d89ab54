/**
 * A TCP listen address given as HOST:PORT (`--metrics-address`): an IPv4 address, or an IPv6
 * address in brackets, and a port 1-65535. Pure: the daemon binds it (main.ts).
 */
import { formatIp, parseIp } from './ip.ts';

export interface ListenAddress {
  /** the canonical address (IPv6 without brackets) */
  readonly host: string;
  readonly port: number;
}

/** undefined when `text` is not HOST:PORT with an IP address and a port 1-65535 */
export function parseListenAddress(text: string): ListenAddress | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):([1-9][0-9]{0,4})$/.exec(text);
  if (!m) return undefined;
  const v6 = m[1];
  const ip = parseIp(v6 ?? (m[2] as string));
  if (!ip || (v6 !== undefined) !== (ip.family === 6)) return undefined;
  const port = Number(m[3]);
  return port <= 65535 ? { host: formatIp(ip), port } : undefined;
}

/** HOST:PORT as given to --metrics-address (IPv6 in brackets) */
export function formatListenAddress(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
