/**
 * The IPv6 link-local address a container's interface gives itself: fe80::/64 with the
 * modified EUI-64 interface id of its MAC (RFC 4291 appendix A), the kernel's default
 * (addr_gen_mode 0). truss fixes every endpoint's MAC (naming.macFor), so it knows this
 * address without asking the container.
 *
 * why it matters: a port policy keyed only on the endpoint's global addresses would let any
 * neighbour on the bridge reach every port through the link-local one (`nc fe80::…%eth0`).
 */
import { formatIp } from './ip.ts';

const MAC = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i;

/** Pure: fe80::<EUI-64 of mac> in canonical (compressed) form; undefined for a malformed MAC. */
export function eui64LinkLocal(mac: string): string | undefined {
  const m = MAC.exec(mac);
  if (!m) return undefined;
  const b = m.slice(1).map((h) => Number.parseInt(h, 16));
  const id = [(b[0] as number) ^ 0x02, b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]] as number[];
  const value = (0xfe80n << 112n) | id.reduce((acc, x) => (acc << 8n) | BigInt(x), 0n);
  return formatIp({ family: 6, value });
}
