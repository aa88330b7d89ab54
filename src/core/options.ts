/**
 * Driver options: the `-o` map of `docker network create` and the `--driver-opt` map of
 * `docker network connect`. truss validates the keys it owns (`truss.*`, plus Docker's
 * bridge name and MTU keys) and refuses unknown `truss.*` keys: a typo must not silently
 * do nothing. Keys outside that namespace (Docker adds new ones between versions) are
 * tolerated and ignored.
 */

import { type BandwidthLimits, OPT_BANDWIDTH, OPT_BANDWIDTH_INGRESS, parseBandwidthOptions } from './bandwidth.ts';
import { isValidClusterName } from './cluster/model.ts';
import { OPT_EGRESS_VIA, parseEgressVia } from './egress.ts';
import { errors } from './errors.ts';
import { OPT_ANTISPOOF } from './guard.ts';
import { OPT_DNS } from './names/catalog.ts';
import { isReservedIfName, isValidIfName } from './naming.ts';
import { type IngressPolicy, OPT_INGRESS } from './policy/model.ts';
import { parseIngress } from './policy/parse.ts';
import { checkRoutedOptions, OPT_MODE, parseMode } from './routed.ts';
import { showValue } from './safe-json.ts';

export const OPT_BRIDGE_NAME = 'com.docker.network.bridge.name';
export const OPT_MTU = 'com.docker.network.driver.mtu';
export const OPT_NAT = 'truss.nat';
export const OPT_CLUSTER = 'truss.cluster';
export const OPT_ENCRYPT = 'truss.encrypt';

export const KNOWN_NETWORK_OPTIONS: readonly string[] = [
  OPT_NAT,
  OPT_INGRESS,
  OPT_CLUSTER,
  OPT_ENCRYPT,
  OPT_EGRESS_VIA,
  OPT_BANDWIDTH,
  OPT_BANDWIDTH_INGRESS,
  OPT_ANTISPOOF,
  OPT_DNS,
  OPT_MODE,
];
export const KNOWN_ENDPOINT_OPTIONS: readonly string[] = [
  OPT_INGRESS,
  OPT_BANDWIDTH,
  OPT_BANDWIDTH_INGRESS,
  OPT_ANTISPOOF,
];

export const DEFAULT_MTU = 1500;
export const MIN_MTU = 576;
export const MIN_MTU_IPV6 = 1280;
export const MAX_MTU = 9216;

export interface NetworkOptions {
  readonly bridgeName?: string;
  readonly mtu: number;
  readonly nat: boolean;
  /** truss.ingress; absent = open */
  readonly ingress?: IngressPolicy;
  /** truss.cluster (+ truss.encrypt, default true: WireGuard; false: VXLAN) */
  readonly cluster?: { readonly name: string; readonly encrypt: boolean };
  /** true when the MTU came from com.docker.network.driver.mtu */
  readonly mtuGiven: boolean;
  /** truss.egress.via, parsed (checked against the network's subnets by core/egress.ts checkEgressVia) */
  readonly egressVia?: readonly string[];
  /** truss.bandwidth*: each container's default limits */
  readonly bandwidth?: BandwidthLimits;
  /** truss.mode=routed (core/routed.ts); absent = bridge */
  readonly routed?: boolean;
}

export interface EndpointOptions {
  /** the truss.* driver options as given */
  readonly raw: Readonly<Record<string, string>>;
  readonly ingress?: IngressPolicy;
  readonly bandwidth?: BandwidthLimits;
}

const isTrussKey = (k: string): boolean => k.startsWith('truss.');

function refuseUnknown(map: Readonly<Record<string, unknown>>, known: readonly string[], where: string): void {
  for (const key of Object.keys(map)) {
    if (isTrussKey(key) && !known.includes(key)) {
      const hint = known.length > 0 ? `known ${where} options: ${known.join(', ')}` : `truss has no ${where} options`;
      throw errors.unknownOption(`unknown ${where} option ${showValue(key)} (${hint})`);
    }
  }
}

export function parseBool(key: string, value: string): boolean {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw errors.badOption(`option ${key}=${showValue(value)}: expected true or false`);
}

export function parseMtu(key: string, value: string, ipv6: boolean): number {
  if (!/^[1-9][0-9]{0,4}$/.test(value)) {
    throw errors.badOption(`option ${key}=${showValue(value)}: expected an integer MTU`);
  }
  const mtu = Number(value);
  const min = ipv6 ? MIN_MTU_IPV6 : MIN_MTU;
  if (mtu < min || mtu > MAX_MTU) {
    throw errors.badOption(`option ${key}=${value}: MTU must be between ${min} and ${MAX_MTU}`);
  }
  return mtu;
}

export function parseNetworkOptions(generic: Readonly<Record<string, string>>, ipv6: boolean): NetworkOptions {
  refuseUnknown(generic, KNOWN_NETWORK_OPTIONS, 'network');
  const name = generic[OPT_BRIDGE_NAME];
  if (name !== undefined && !isValidIfName(name)) {
    throw errors.badOption(
      `option ${OPT_BRIDGE_NAME}=${showValue(name)}: not a valid interface name (1-15 of [a-zA-Z0-9_.-], starting with a letter or digit)`,
    );
  }
  if (name !== undefined && isReservedIfName(name)) {
    throw errors.badOption(
      `option ${OPT_BRIDGE_NAME}=${name}: names tr[bvcf]<12 hex>, trwg0 and trvx0 are truss's own; choose another bridge name`,
    );
  }
  const mtuText = generic[OPT_MTU];
  const natText = generic[OPT_NAT];
  const ingressText = generic[OPT_INGRESS];
  const clusterName = generic[OPT_CLUSTER];
  if (clusterName !== undefined && !isValidClusterName(clusterName)) {
    throw errors.badOption(
      `option ${OPT_CLUSTER}=${showValue(clusterName)}: expected 1-63 of [a-z0-9.-], starting with a letter or digit`,
    );
  }
  const encryptText = generic[OPT_ENCRYPT];
  if (encryptText !== undefined && clusterName === undefined) {
    throw errors.badOption(`option ${OPT_ENCRYPT} only applies with ${OPT_CLUSTER}`);
  }
  // true: WireGuard between hosts; false: plain VXLAN (cheaper, for a trusted underlay)
  const encrypt = encryptText === undefined ? true : parseBool(OPT_ENCRYPT, encryptText);
  const viaText = generic[OPT_EGRESS_VIA];
  const bandwidth = parseBandwidthOptions(generic);
  // read from the stored -o map when the kernel is programmed (core/guard.ts); only checked here
  const antispoofText = generic[OPT_ANTISPOOF];
  if (antispoofText !== undefined) parseBool(OPT_ANTISPOOF, antispoofText);
  // read from the stored -o map too (core/names/catalog.ts dnsEnabled)
  const dnsText = generic[OPT_DNS];
  if (dnsText !== undefined) parseBool(OPT_DNS, dnsText);
  const routed = parseMode(generic[OPT_MODE]) === 'routed';
  if (routed) checkRoutedOptions(name !== undefined);
  return {
    ...(routed ? { routed } : {}),
    ...(viaText !== undefined ? { egressVia: parseEgressVia(viaText) } : {}),
    ...(bandwidth !== undefined ? { bandwidth } : {}),
    ...(clusterName !== undefined ? { cluster: { name: clusterName, encrypt } } : {}),
    mtuGiven: mtuText !== undefined && mtuText !== '',
    ...(name !== undefined ? { bridgeName: name } : {}),
    ...(ingressText !== undefined ? { ingress: parseIngress(OPT_INGRESS, ingressText) } : {}),
    mtu: mtuText === undefined || mtuText === '' ? DEFAULT_MTU : parseMtu(OPT_MTU, mtuText, ipv6),
    nat: natText === undefined ? true : parseBool(OPT_NAT, natText),
  };
}

/** The truss.* driver options of an endpoint (values must be strings). */
export function parseEndpointOptions(options: Readonly<Record<string, unknown>>): EndpointOptions {
  refuseUnknown(options, KNOWN_ENDPOINT_OPTIONS, 'endpoint');
  const raw: Record<string, string> = {};
  for (const [k, v] of Object.entries(options)) {
    if (!isTrussKey(k)) continue;
    if (typeof v !== 'string') throw errors.badOption(`endpoint option ${k}: expected a string value`);
    raw[k] = v;
  }
  const ingressText = raw[OPT_INGRESS];
  const antispoofText = raw[OPT_ANTISPOOF];
  if (antispoofText !== undefined) parseBool(OPT_ANTISPOOF, antispoofText);
  const bandwidth = parseBandwidthOptions(raw);
  return {
    raw,
    ...(ingressText !== undefined ? { ingress: parseIngress(OPT_INGRESS, ingressText) } : {}),
    ...(bandwidth !== undefined ? { bandwidth } : {}),
  };
}
