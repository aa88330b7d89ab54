/**
 * Validation of explicit pools (`docker network create --subnet/--ip-range`) and of the
 * default pools: strict CIDR (the network address itself), outside special-purpose
 * ranges, large enough to hold hosts. Pure; throws TrussErrors whose messages name the
 * offending value and say what to do.
 */
import { errors } from '../errors.ts';
import {
  type Family,
  formatPrefix,
  isNetworkAddress,
  networkOf,
  type Prefix,
  parsePrefix,
  prefixesOverlap,
  prefixWithin,
} from '../ip.ts';
import { showValue } from '../safe-json.ts';
import { allocationRange } from './address-selection.ts';

/** Longest pool prefix per family: leaves at least 2 host addresses (v4 /30, v6 /126). */
export const MAX_POOL_LENGTH: Readonly<Record<Family, number>> = { 4: 30, 6: 126 };

const RESERVED: readonly { readonly range: Prefix; readonly what: string }[] = [
  ['0.0.0.0/8', 'unspecified ("this network")'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'limited broadcast'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['fe80::/10', 'link-local'],
  ['ff00::/8', 'multicast'],
].map(([cidr, what]) => ({ range: parsePrefix(cidr as string)!, what: what as string }));

const familyName = (f: Family): string => (f === 4 ? 'IPv4' : 'IPv6');

/**
 * Parses `text` as a pool CIDR. `label` names the field in messages ("pool", "--ip-range", ...).
 * Checks syntax, that it is a network address, and the special-purpose ranges.
 */
export function checkCidr(text: string, label: string): Prefix {
  const p = parsePrefix(text);
  if (!p) throw errors.badAddress(`${label} ${showValue(text)} is not a CIDR such as 198.18.1.0/24 or fd00:1::/64`);
  if (!isNetworkAddress(p)) {
    const net = formatPrefix(networkOf(p));
    throw errors.badAddress(`${label} ${text} has host bits set: it is not a network address; use ${net}`);
  }
  if (p.length === 0) {
    throw errors.badAddress(
      `${label} ${text} covers every ${familyName(p.family)} address: ` +
        'give a --subnet inside a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fd00::/8)',
    );
  }
  for (const r of RESERVED) {
    if (prefixesOverlap(p, r.range)) {
      throw errors.badAddress(
        `${label} ${text} overlaps the ${r.what} range ${formatPrefix(r.range)}: ` +
          'use a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fd00::/8)',
      );
    }
  }
  return p;
}

/** checkCidr plus "big enough for hosts" (v4 up to /30, v6 up to /126). */
export function checkPoolCidr(text: string, label: string): Prefix {
  const p = checkCidr(text, label);
  const max = MAX_POOL_LENGTH[p.family];
  if (p.length > max) {
    throw errors.badAddress(
      `${label} ${text} is too small: ${familyName(p.family)} pools need a prefix length of ${max} or less`,
    );
  }
  return p;
}

export type PoolPlan =
  | { readonly kind: 'explicit'; readonly pool: Prefix; readonly subPool?: Prefix }
  | { readonly kind: 'dynamic'; readonly family: Family };

/** What a RequestPool asks for, validated (Pool = --subnet, SubPool = --ip-range, V6 = family). */
export function planPoolRequest(req: {
  readonly pool: string;
  readonly subPool: string;
  readonly v6: boolean;
}): PoolPlan {
  const family: Family = req.v6 ? 6 : 4;
  if (req.pool === '') {
    if (req.subPool !== '') {
      throw errors.badRequest(`SubPool (--ip-range) ${req.subPool} needs an explicit Pool (--subnet) containing it`);
    }
    return { kind: 'dynamic', family };
  }
  const pool = checkPoolCidr(req.pool, 'pool (--subnet)');
  if (pool.family !== family) {
    throw errors.badAddress(
      `pool (--subnet) ${req.pool} is ${familyName(pool.family)} but the request is for ${familyName(family)} (V6=${req.v6})`,
    );
  }
  if (req.subPool === '') return { kind: 'explicit', pool };
  const subPool = checkCidr(req.subPool, 'sub-pool (--ip-range)');
  if (!prefixWithin(subPool, pool)) {
    throw errors.badAddress(`sub-pool (--ip-range) ${req.subPool} is not inside pool (--subnet) ${req.pool}`);
  }
  if (!allocationRange(pool, subPool)) {
    throw errors.badAddress(
      `sub-pool (--ip-range) ${req.subPool} holds no usable host address of pool ${req.pool} ` +
        '(only the network or broadcast address)',
    );
  }
  return { kind: 'explicit', pool, subPool };
}
