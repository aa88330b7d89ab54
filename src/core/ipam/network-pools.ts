/**
 * One validation for every pool, whichever IPAM driver handed it out (security review M3):
 * NetworkDriver.CreateNetwork applies the same checks as truss's own IPAM (pool-validation.ts)
 * to the IPv4Data/IPv6Data Docker sends, and CreateEndpoint refuses addresses no container may
 * hold. Docker's default IPAM hands out ordinary private pools (172.17-31.x.x/16, 192.168.x.x/20,
 * fdxx::/64) with the gateway on the first host address: those pass; only pathological pools
 * (0.0.0.0/0, loopback, multicast, link-local, a gateway on the network or broadcast address …)
 * are refused. Pure; messages name the value and the fix.
 */
import { errors } from '../errors.ts';
import {
  formatIp,
  formatPrefix,
  hostRange,
  type Ip,
  networkOf,
  type Prefix,
  parsePrefix,
  prefixesOverlap,
} from '../ip.ts';
import type { IpamData } from '../model.ts';
import { checkPoolCidr } from './pool-validation.ts';

const familyName = (f: 4 | 6): string => (f === 4 ? 'IPv4' : 'IPv6');

/** Which special address of `pool` `ip` is, if any: the network address, or IPv4's broadcast address. */
export function specialAddress(pool: Prefix, ip: Ip): string | undefined {
  const { first, last } = hostRange(pool);
  if (ip.value >= first && ip.value <= last) return undefined;
  if (ip.value !== networkOf(pool).value) return 'broadcast';
  return pool.family === 6 ? 'subnet-router anycast' : 'network';
}

/** A host address of `pool` to suggest in messages (its first one). */
const firstHost = (pool: Prefix): string => formatIp({ family: pool.family, value: hostRange(pool).first });

/**
 * Checks the pools of one family of a network (the IPvNData of CreateNetwork) and returns them
 * parsed. Refuses what truss's IPAM refuses, a gateway that is not a host address of its pool
 * with the pool's prefix length, an aux address outside its pool, and pools that overlap each other.
 */
export function checkNetworkPools(family: 4 | 6, data: readonly IpamData[]): Prefix[] {
  const fam = familyName(family);
  const pools = data.map((d) => {
    const pool = checkPoolCidr(d.pool, `${fam} subnet`);
    if (pool.family !== family) {
      throw errors.badAddress(`${fam} subnet ${d.pool} is ${familyName(pool.family)}: give an ${fam} --subnet`);
    }
    const net = formatPrefix(pool);
    if (d.gateway !== undefined) {
      const gw = parsePrefix(d.gateway);
      const bare = gw ? formatIp(gw) : d.gateway;
      if (!gw || gw.family !== family || networkOf({ ...gw, length: pool.length }).value !== pool.value) {
        throw errors.badAddress(`gateway ${d.gateway} is not inside subnet ${net}: give a --gateway inside it`);
      }
      if (gw.length !== pool.length) {
        throw errors.badAddress(
          `gateway ${d.gateway} has prefix length /${gw.length} but its subnet ${net} has /${pool.length}: ` +
            `give the gateway as ${bare}/${pool.length}`,
        );
      }
      const special = specialAddress(pool, gw);
      if (special) {
        throw errors.badAddress(
          `gateway ${bare} is the ${special} address of subnet ${net}: give a host address, e.g. --gateway ${firstHost(pool)}`,
        );
      }
    }
    for (const [name, aux] of Object.entries(d.auxAddresses)) {
      const a = parsePrefix(aux);
      if (!a || a.family !== family || networkOf({ ...a, length: pool.length }).value !== pool.value) {
        throw errors.badAddress(`aux address ${name}=${aux} is not inside subnet ${net}: give one inside it`);
      }
    }
    return pool;
  });
  for (let i = 0; i < pools.length; i++) {
    for (let j = i + 1; j < pools.length; j++) {
      const [a, b] = [pools[i] as Prefix, pools[j] as Prefix];
      if (prefixesOverlap(a, b)) {
        const what = a.length === b.length ? `is given twice` : `overlaps ${fam} subnet ${formatPrefix(b)}`;
        throw errors.poolOverlap(
          `${fam} subnet ${formatPrefix(a)} ${what} in this network: give each --subnet once, none inside another`,
        );
      }
    }
  }
  return pools;
}

/**
 * The address of a new endpoint: inside one of the network's pools of its family, a host
 * address (not the network or broadcast address), not a gateway. Returns the pool it is in.
 */
export function checkEndpointAddress(
  cidr: string,
  family: 4 | 6,
  data: readonly IpamData[],
  networkName: string,
): Prefix {
  const p = parsePrefix(cidr);
  const fam = familyName(family);
  if (!p || p.family !== family) throw errors.badAddress(`address ${cidr} is not an ${fam} address`);
  const bare = formatIp(p);
  for (const d of data) {
    const pool = parsePrefix(d.pool);
    if (!pool || pool.family !== family || networkOf({ ...p, length: pool.length }).value !== networkOf(pool).value)
      continue;
    const net = formatPrefix(networkOf(pool));
    const special = specialAddress(pool, p);
    if (special) {
      throw errors.badAddress(
        `address ${bare} is the ${special} address of subnet ${net}: give the container a host address (--ip)`,
      );
    }
    const gw = d.gateway === undefined ? undefined : parsePrefix(d.gateway);
    if (gw && gw.value === p.value) {
      throw errors.addressInUse(
        `address ${bare} is the gateway of network ${networkName}: give the container another address (--ip)`,
      );
    }
    return pool;
  }
  throw errors.badAddress(`address ${cidr} is not in a subnet of network ${networkName}`);
}
