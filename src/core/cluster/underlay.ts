/**
 * Which address this host advertises to its peers (WireGuard endpoint, VXLAN VTEP) and which
 * link's MTU its tunnels derive from (pure; cluster/setup.ts gathers the facts):
 *   1. --advertise-address when given;
 *   2. else the source address of the route towards etcd, unless that route is via `lo`;
 *   3. else, etcd being on this host: the address etcd was addressed by when it is one of
 *      this host's own (non-loopback) addresses; for a loopback address (127.0.0.1, ::1), the
 *      preferred source of the default route (etcd's address family first), or the first
 *      global address of that route's device;
 *   4. else an error naming --advertise-address.
 * The MTU is that of the link holding the address, never `lo`'s (65536).
 */
import { errors } from '../errors.ts';
import { formatIp, type Ip, parseIp } from '../ip.ts';

export interface LinkFacts {
  readonly dev: string;
  readonly mtu: number;
  /** the link's addresses (bare IPs), global scope first as `ip addr` lists them */
  readonly addresses: readonly string[];
}

export interface UnderlayFacts {
  /** --advertise-address */
  readonly advertise?: string;
  /** the first etcd endpoint's host (an IP or a DNS name) */
  readonly etcd: string;
  /** `ip route get <etcd>`: the source address and the link (undefined: no route, or a name) */
  readonly route?: { readonly address: string; readonly dev: string; readonly mtu: number };
  readonly links: readonly LinkFacts[];
  readonly defaultRoutes: readonly { readonly dev: string; readonly prefsrc?: string; readonly family: 4 | 6 }[];
}

export interface UnderlayChoice {
  readonly address: string;
  /** the link holding it (the VXLAN device's underlay), when it is one of this host's */
  readonly dev?: string;
  /** that link's MTU: what WireGuard and VXLAN MTUs derive from */
  readonly mtu: number;
  readonly how: 'flag' | 'route' | 'etcd-address' | 'default-route';
}

const DEFAULT_MTU = 1500;

export const isLoopback = (ip: Ip): boolean => (ip.family === 4 ? ip.value >> 24n === 127n : ip.value === 1n);

const canon = (s: string): string | undefined => {
  const ip = parseIp(s);
  return ip ? formatIp(ip) : undefined;
};

const isGlobal = (s: string): boolean => {
  const ip = parseIp(s);
  if (!ip || isLoopback(ip)) return false;
  return ip.family === 4 || ip.value >> 118n !== 0x3fan; // not fe80::/10
};

function linkOf(links: readonly LinkFacts[], address: string): LinkFacts | undefined {
  const want = canon(address);
  return links.find((l) => l.dev !== 'lo' && l.addresses.some((a) => canon(a) === want));
}

function fromDefaultRoute(f: UnderlayFacts, family: 4 | 6): string | undefined {
  const routes = [...f.defaultRoutes].sort((a, b) => (a.family === family ? 0 : 1) - (b.family === family ? 0 : 1));
  for (const r of routes) {
    if (r.dev === 'lo') continue;
    if (r.prefsrc && isGlobal(r.prefsrc)) return r.prefsrc;
    const link = f.links.find((l) => l.dev === r.dev);
    const a = link?.addresses.find((x) => isGlobal(x) && parseIp(x)?.family === r.family);
    if (a) return a;
  }
  return undefined;
}

function pickAddress(f: UnderlayFacts): { address: string; how: UnderlayChoice['how'] } {
  if (f.advertise !== undefined) {
    const ip = parseIp(f.advertise);
    if (!ip) throw errors.badOption(`--advertise-address ${JSON.stringify(f.advertise)}: expected an IP address`);
    if (isLoopback(ip)) {
      throw errors.badOption(
        `--advertise-address ${f.advertise} is a loopback address other hosts cannot reach: ` +
          "give this host's address on the network between the hosts",
      );
    }
    return { address: f.advertise, how: 'flag' };
  }
  if (f.route && f.route.dev !== 'lo') return { address: f.route.address, how: 'route' };
  const etcd = parseIp(f.etcd);
  if (!etcd) {
    throw errors.badOption(
      `cannot tell this host's underlay address towards etcd at ${f.etcd} (a name, or no route to it): ` +
        'give --advertise-address (the address other hosts reach this one at)',
    );
  }
  const local = isLoopback(etcd) || f.route?.dev === 'lo' || linkOf(f.links, f.etcd) !== undefined;
  if (!local) {
    throw errors.badOption(
      `cannot tell this host's underlay address towards etcd at ${f.etcd} (no route to it): ` +
        'give --advertise-address (the address other hosts reach this one at)',
    );
  }
  if (!isLoopback(etcd) && linkOf(f.links, f.etcd)) return { address: f.etcd, how: 'etcd-address' };
  const fallback = fromDefaultRoute(f, etcd.family);
  if (fallback) return { address: fallback, how: 'default-route' };
  throw errors.badOption(
    `etcd at ${f.etcd} is on this host and it has no default route to take its own address from: ` +
      'give --advertise-address (the address other hosts reach this one at)',
  );
}

export function chooseUnderlay(f: UnderlayFacts): UnderlayChoice {
  const { address, how } = pickAddress(f);
  const link = linkOf(f.links, address);
  if (link) return { address, dev: link.dev, mtu: link.mtu, how };
  // an address not on this host (e.g. a NAT's, given by --advertise-address): the route's link
  if (f.route && f.route.dev !== 'lo') return { address, dev: f.route.dev, mtu: f.route.mtu, how };
  return { address, mtu: DEFAULT_MTU, how };
}
