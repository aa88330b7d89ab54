/**
 * Address decisions for one pool, pure: which range next-free allocation walks, which free
 * address comes next after the cursor, which requested addresses are acceptable, and what
 * kind of request Docker sent. All math is bigint, so a /64 works like a /24: nothing here
 * enumerates a range; loops are bounded by the number of addresses already allocated.
 */

import { ENDPOINT_NAME_OPTION, GATEWAY_REQUEST_TYPE, REQUEST_ADDRESS_TYPE } from '../contracts.ts';
import { errors } from '../errors.ts';
import {
  formatIp,
  hostRange,
  type Ip,
  lastAddress,
  networkOf,
  type Prefix,
  parseIp,
  parsePrefix,
  prefixContains,
} from '../ip.ts';
import type { AddressKind } from '../model.ts';
import { showValue } from '../safe-json.ts';

// Math.max/min do not take bigints.
const maxOf = (a: bigint, b: bigint): bigint => (a > b ? a : b);
const minOf = (a: bigint, b: bigint): bigint => (a < b ? a : b);

export interface AddressRange {
  readonly first: bigint;
  readonly last: bigint;
}

/**
 * The addresses next-free allocation may hand out: the pool's host range, narrowed to the
 * sub-pool when there is one. undefined when the sub-pool holds no host address.
 */
export function allocationRange(pool: Prefix, subPool?: Prefix): AddressRange | undefined {
  const hosts = hostRange(pool);
  if (!subPool) return hosts;
  const lo = networkOf(subPool).value;
  const hi = lastAddress(subPool);
  const first = maxOf(lo, hosts.first);
  const last = minOf(hi, hosts.last);
  return first <= last ? { first, last } : undefined;
}

/**
 * The first free address in `range` after `cursor` (wrapping around), or from the start
 * when there is no cursor or it lies outside the range. The cursor itself is the last
 * candidate, so the address handed out or released last is not chosen again while any
 * other is free. undefined when every address in the range is taken.
 *
 * `takenCount` is the number of taken addresses (at least those in the range): among
 * takenCount + 1 consecutive candidates one must be free, so that bounds the walk and
 * nothing needs to count or enumerate the range (callers pass a lookup over the stored
 * keys and never parse them).
 */
export function pickNextFree(
  range: AddressRange,
  isTaken: (v: bigint) => boolean,
  takenCount: number,
  cursor?: bigint,
): bigint | undefined {
  const size = range.last - range.first + 1n;
  const probes = minOf(size, BigInt(takenCount) + 1n);
  const inRange = cursor !== undefined && cursor >= range.first && cursor <= range.last;
  let v = !inRange || cursor === range.last ? range.first : cursor + 1n;
  for (let i = 0n; i < probes; i++) {
    if (!isTaken(v)) return v;
    v = v === range.last ? range.first : v + 1n;
  }
  return undefined;
}

/** Parses Docker's bare IP (a CIDR is tolerated: its address part is used). */
export function parseRequestedAddress(text: string): Ip {
  const ip = text.includes('/') ? parsePrefix(text) : parseIp(text);
  if (!ip) throw errors.badAddress(`Address ${showValue(text)} is not an IP address`);
  return { family: ip.family, value: ip.value };
}

/**
 * A specific address must lie inside the pool (not necessarily the sub-pool: --gateway and
 * --aux-address usually sit outside --ip-range) and must not be the pool's network address
 * (or subnet-router anycast for IPv6) or IPv4 broadcast address.
 */
export function checkRequestedAddress(pool: Prefix, ip: Ip, poolId: string): void {
  const addr = formatIp(ip);
  const cidr = `${formatIp({ family: pool.family, value: networkOf(pool).value })}/${pool.length}`;
  if (ip.family !== pool.family) {
    throw errors.badAddress(
      `address ${addr} is IPv${ip.family} but pool ${cidr} (${poolId}) is IPv${pool.family}: request an IPv${pool.family} address`,
    );
  }
  if (!prefixContains(pool, ip)) {
    throw errors.addressOutOfPool(`address ${addr} is outside pool ${cidr} (${poolId})`);
  }
  const { first, last } = hostRange(pool);
  if (ip.value < first || ip.value > last) {
    const what =
      ip.value !== networkOf(pool).value ? 'broadcast' : pool.family === 6 ? 'subnet-router anycast' : 'network';
    throw errors.badAddress(`address ${addr} is the ${what} address of pool ${cidr}; pick a host address`);
  }
}

/** gateway (RequestAddressType), endpoint (endpoint.name), else aux (--aux-address, Options {}/null). */
export function classifyAddressRequest(
  options: Readonly<Record<string, string>>,
  address: string,
): { readonly kind: AddressKind; readonly owner?: string } {
  if (options[REQUEST_ADDRESS_TYPE] === GATEWAY_REQUEST_TYPE) return { kind: 'gateway' };
  const owner = options[ENDPOINT_NAME_OPTION];
  if (owner !== undefined && owner !== '') return { kind: 'endpoint', owner };
  // why: Docker always names the endpoint; an anonymous request without an address is
  // still an endpoint-style next-free request (e.g. Swarm's allocator), not an aux address.
  return { kind: address === '' ? 'endpoint' : 'aux' };
}

/**
 * "the gateway", "endpoint web-1", ...: for conflict messages. dockerd names no endpoint when it
 * asks for an --aux-address or a container's --ip (Options null), so both are stored as 'aux';
 * `declaredAux` (the network's --aux-address list has it, when known) tells them apart.
 */
export function describeHolder(
  rec: { readonly kind: AddressKind; readonly owner?: string },
  declaredAux?: boolean,
): string {
  if (rec.kind === 'gateway') return 'the gateway';
  if (rec.kind === 'host') return "this host's own address on the cluster network";
  if (rec.kind === 'aux') {
    if (declaredAux === true) return 'an aux address (--aux-address) of the network';
    if (declaredAux === false) return "a container's fixed address (--ip)";
    return "a fixed address (a container's --ip or an --aux-address)";
  }
  return rec.owner !== undefined ? `endpoint ${rec.owner}` : 'an endpoint';
}
