/**
 * Anti-spoofing: what one endpoint's container may send as, computed from its stored intent.
 * A container sends only with the MAC truss gave its interface and the addresses Docker
 * assigned it (plus the IPv6 link-local address the kernel derives from that MAC), and it
 * answers ARP and neighbour discovery only for those. The Linux dataplane enforces this on
 * the bridge port (the host end of the veth), where the container cannot reach it.
 *
 * Opt-out (`truss.antispoof=false`, on the network or on one endpoint) is for containers that
 * forward other hosts' traffic (routers, VPN gateways); the endpoint's value wins.
 */

import { formatIp, parseIp } from './ip.ts';
import type { EndpointSpec, NetworkSpec } from './model.ts';

export const OPT_ANTISPOOF = 'truss.antispoof';

/** One guarded veth (a bridge port): frames entering the bridge from it must carry these identities. */
export interface GuardObject {
  /** the endpoint's host-side veth */
  readonly name: string;
  readonly endpointId: string;
  readonly networkId: string;
  /** lower-case colon hex */
  readonly mac: string;
  /** bare IPv4 addresses (0 or 1) */
  readonly ipv4: readonly string[];
  /** bare IPv6 addresses: the assigned one (if any) and the EUI-64 link-local of `mac` */
  readonly ipv6: readonly string[];
}

const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

/**
 * The link-local address the kernel gives an interface with this MAC (addr_gen_mode eui64,
 * the default, which Docker's containers keep): fe80::/64 + the MAC with the U/L bit flipped
 * and ff:fe in the middle (RFC 4291 appendix A).
 */
export function eui64LinkLocal(mac: string): string {
  if (!MAC.test(mac)) throw new Error(`not a MAC: ${JSON.stringify(mac)}`);
  const b = mac.split(':').map((x) => Number.parseInt(x, 16));
  const iid = [(b[0] as number) ^ 0x02, b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]] as number[];
  let v = 0xfe80n << 112n;
  for (const [i, x] of iid.entries()) v |= BigInt(x) << BigInt((7 - i) * 8);
  return formatIp({ family: 6, value: v });
}

const bare = (cidr: string | undefined): string[] => {
  if (cidr === undefined) return [];
  const ip = parseIp(cidr.split('/')[0] as string);
  return ip ? [formatIp(ip)] : [];
};

/** Whether the endpoint's frames are checked: on unless its own option, else its network's, says false. */
export function antispoofEnabled(net: Pick<NetworkSpec, 'options'>, ep: Pick<EndpointSpec, 'options'>): boolean {
  const text = ep.options[OPT_ANTISPOOF] ?? net.options[OPT_ANTISPOOF];
  return !(text === 'false' || text === '0');
}

/** The endpoint's guard, or undefined when it opted out or its MAC is not one (never guessed). */
export function guardFor(net: NetworkSpec, ep: EndpointSpec): GuardObject | undefined {
  if (!antispoofEnabled(net, ep) || !MAC.test(ep.mac)) return undefined;
  const ll = eui64LinkLocal(ep.mac);
  const v6 = bare(ep.ipv6).filter((a) => a !== ll);
  return {
    name: ep.hostVeth,
    endpointId: ep.id,
    networkId: net.id,
    mac: ep.mac,
    ipv4: bare(ep.ipv4),
    ipv6: [...v6, ll],
  };
}
