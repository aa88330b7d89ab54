/**
 * Docker's plugin payloads, exactly as dockerd encodes them (PascalCase Go field names,
 * go-plugins-helpers `network/api.go` and `ipam/api.go`, moby `drivers/remote/api`), the
 * zod schemas that validate them, the decode* functions that turn them into the domain
 * inputs of core/contracts.ts, and the toWire* encoders for the replies.
 *
 * Decoding is liberal: unknown fields and option keys are ignored, `null` stands for
 * "absent" wherever Go may send a nil map or slice, and only the fields truss uses are
 * validated. A failure names the field and the value ("NetworkID must be a 64-character
 * hex id, got \"xyz\"") because `docker` prints the message verbatim.
 */
import { z } from 'zod';
import type {
  CreateEndpointInput,
  CreateEndpointResult,
  CreateNetworkInput,
  IpamCapabilities,
  JoinInput,
  JoinResult,
  NetworkCapabilities,
  RequestAddressInput,
  RequestAddressResult,
  RequestPoolInput,
  RequestPoolResult,
} from '../core/contracts.ts';
import { errors } from '../core/errors.ts';
import { type EndpointId, endpointId, type NetworkId, networkId } from '../core/ids.ts';
import { type Family, formatIp, formatPrefix, parseIp, parsePrefix } from '../core/ip.ts';
import type { IpamData } from '../core/model.ts';
import { showValue } from '../core/safe-json.ts';

// ---------- field schemas ----------

const HEX64 = /^[0-9a-f]{64}$/;
/** swarmkit identity.NewID(): 25 base-36 characters (AllocateNetwork/FreeNetwork on a Swarm manager). */
const SWARM_ID = /^[0-9a-z]{25}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** A value as it appears in an error message: JSON, shortened (core/safe-json.ts). */
export { showValue };

const dockerId = z.string().regex(HEX64, {
  error: (iss) => `must be a 64-character hex id, got ${showValue(iss.input)}`,
});

/** The ids a service is handed: branded once here (core/ids.ts), never checked again. */
const networkIdField = dockerId.transform((s) => networkId(s));
const endpointIdField = dockerId.transform((s) => endpointId(s));

const networkIdAnyScope = z.string().refine((s) => HEX64.test(s) || SWARM_ID.test(s), {
  error: (iss) => `must be a 64-character hex id or a 25-character swarm id, got ${showValue(iss.input)}`,
});

const cidrExample = (f?: Family): string => (f === 6 ? 'fd00::1/64' : '198.18.0.1/24');

/** CIDR text (host bits allowed, as Docker sends gateways), optionally of one family; "" allowed when `emptyOk`. */
function cidr(family?: Family, emptyOk = false) {
  const what = family === undefined ? 'a CIDR' : `an IPv${family} CIDR`;
  const ok = (s: string): boolean => {
    if (emptyOk && s === '') return true;
    const p = parsePrefix(s);
    return p !== undefined && (family === undefined || p.family === family);
  };
  return z.string().refine(ok, {
    error: (iss) =>
      `must be ${what} such as "${cidrExample(family)}"${emptyOk ? ' or ""' : ''}, got ${showValue(iss.input)}`,
  });
}

/** A bare IP address; "" allowed when `emptyOk`. */
function bareIp(emptyOk: boolean) {
  return z.string().refine((s) => (emptyOk && s === '') || parseIp(s) !== undefined, {
    error: (iss) =>
      `must be a bare IP address such as "198.18.0.5"${emptyOk ? ' or ""' : ''}, got ${showValue(iss.input)}`,
  });
}

const macAddress = z.string().refine((s) => s === '' || MAC.test(s), {
  error: (iss) => `must be a colon-hex MAC address such as "02:42:c6:12:c9:0a" or "", got ${showValue(iss.input)}`,
});

const poolId = z
  .string()
  .min(1, { error: 'must be a non-empty pool id' })
  .max(1024, { error: 'must be at most 1024 characters' });

const sandboxKey = z.string().refine((s) => s.startsWith('/') && !s.includes('\0') && !s.split('/').includes('..'), {
  error: (iss) => `must be an absolute path with no ".." segment, got ${showValue(iss.input)}`,
});

/** map[string]string that Go may send as null. */
const stringMap = z.record(z.string(), z.string()).nullish();
/** map[string]interface{} that Go may send as null. */
const anyMap = z.record(z.string(), z.unknown()).nullish();

// ---------- request schemas (field names exactly as Docker sends them) ----------

const IpamDataSchema = (family: Family) =>
  z.object({
    Pool: cidr(family),
    Gateway: cidr(family, true).nullish(),
    AuxAddresses: z.record(z.string(), cidr(family)).nullish(),
  });

export const CreateNetworkRequestSchema = z.object({
  NetworkID: networkIdField,
  Options: z
    .object({
      'com.docker.network.generic': stringMap,
      'com.docker.network.internal': z.boolean().nullish(),
      'com.docker.network.enable_ipv6': z.boolean().nullish(),
    })
    .nullish(),
  IPv4Data: z.array(IpamDataSchema(4)).nullish(),
  IPv6Data: z.array(IpamDataSchema(6)).nullish(),
});
export type CreateNetworkRequest = z.infer<typeof CreateNetworkRequestSchema>;

export const NetworkRefSchema = z.object({ NetworkID: networkIdField });

export const AllocateNetworkRequestSchema = z.object({ NetworkID: networkIdAnyScope, Options: stringMap });
export const FreeNetworkRequestSchema = z.object({ NetworkID: networkIdAnyScope });

export const EndpointRefSchema = z.object({ NetworkID: networkIdField, EndpointID: endpointIdField });

export const CreateEndpointRequestSchema = z.object({
  NetworkID: networkIdField,
  EndpointID: endpointIdField,
  Interface: z
    .object({
      Address: cidr(4, true).nullish(),
      AddressIPv6: cidr(6, true).nullish(),
      MacAddress: macAddress.nullish(),
    })
    .nullish(),
  Options: anyMap,
});
export type CreateEndpointRequest = z.infer<typeof CreateEndpointRequestSchema>;

export const JoinRequestSchema = z.object({
  NetworkID: networkIdField,
  EndpointID: endpointIdField,
  SandboxKey: sandboxKey,
  Options: anyMap,
});

export const ProgramExternalConnectivityRequestSchema = z.object({
  NetworkID: networkIdField,
  EndpointID: endpointIdField,
  Options: anyMap,
});

export const RequestPoolRequestSchema = z.object({
  AddressSpace: z.string().nullish(),
  Pool: cidr(undefined, true).nullish(),
  SubPool: cidr(undefined, true).nullish(),
  Options: stringMap,
  V6: z.boolean().nullish(),
});

export const ReleasePoolRequestSchema = z.object({ PoolID: poolId });

export const RequestAddressRequestSchema = z.object({
  PoolID: poolId,
  Address: bareIp(true).nullish(),
  Options: stringMap,
});

export const ReleaseAddressRequestSchema = z.object({ PoolID: poolId, Address: bareIp(false) });

// ---------- validation errors ----------

/** Messages for the issues that carry no schema-level message (wrong JSON type, missing field). */
const describeIssue: z.core.$ZodErrorMap = (iss) => {
  if (iss.code !== 'invalid_type') return undefined;
  if (iss.input === undefined) return 'is required';
  return `must be ${iss.expected === 'object' ? 'a JSON object' : `a ${iss.expected}`}, got ${showValue(iss.input)}`;
};

/** `IPv4Data[0].Gateway`, `Options["com.docker.network.internal"]` */
function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (typeof p === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(p)) out += out === '' ? p : `.${p}`;
    else out += `[${showValue(String(p))}]`;
  }
  return out;
}

/** Validate `body` against `schema`; throws TRUSS_ERR_REQUEST_INVALID naming the fields. */
export function parseWire<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const r = schema.safeParse(body, { error: describeIssue });
  if (r.success) return r.data;
  const problems = r.error.issues.slice(0, 3).map((i) => {
    const where = formatPath(i.path);
    return where === '' ? `request body ${i.message}` : `${where} ${i.message}`;
  });
  const more = r.error.issues.length > 3 ? ` (and ${r.error.issues.length - 3} more)` : '';
  throw errors.badRequest(`${problems.join('; ')}${more}`);
}

// ---------- decoders: wire → domain ----------

/**
 * Canonical text of a validated CIDR or bare address (lower case, RFC 5952 compression,
 * host bits kept): "FD00:10::0001/64" and "fd00:10::1/64" are one address, so intent never
 * differs from what the kernel reports (security review L10).
 */
export function canonicalAddress(text: string): string {
  const p = parsePrefix(text);
  if (p) return formatPrefix(p);
  const ip = parseIp(text);
  return ip ? formatIp(ip) : text;
}

function toIpamData(d: z.infer<ReturnType<typeof IpamDataSchema>>): IpamData {
  const aux = Object.entries(d.AuxAddresses ?? {}).map(([k, v]) => [k, canonicalAddress(v)]);
  return {
    pool: canonicalAddress(d.Pool),
    ...(d.Gateway ? { gateway: canonicalAddress(d.Gateway) } : {}),
    auxAddresses: Object.fromEntries(aux),
  };
}

export function decodeCreateNetwork(body: unknown): CreateNetworkInput {
  const w = parseWire(CreateNetworkRequestSchema, body);
  const o = w.Options ?? {};
  return {
    networkId: w.NetworkID,
    ipv4: (w.IPv4Data ?? []).map(toIpamData),
    ipv6: (w.IPv6Data ?? []).map(toIpamData),
    generic: { ...(o['com.docker.network.generic'] ?? {}) },
    internal: o['com.docker.network.internal'] ?? false,
    enableIpv6: o['com.docker.network.enable_ipv6'] ?? false,
  };
}

export function decodeNetworkRef(body: unknown): NetworkId {
  return parseWire(NetworkRefSchema, body).NetworkID;
}

export function decodeAllocateNetwork(body: unknown): { networkId: string; options: Record<string, string> } {
  const w = parseWire(AllocateNetworkRequestSchema, body);
  return { networkId: w.NetworkID, options: { ...(w.Options ?? {}) } };
}

export function decodeFreeNetwork(body: unknown): string {
  return parseWire(FreeNetworkRequestSchema, body).NetworkID;
}

export interface EndpointRef {
  readonly networkId: NetworkId;
  readonly endpointId: EndpointId;
}

export function decodeEndpointRef(body: unknown): EndpointRef {
  const w = parseWire(EndpointRefSchema, body);
  return { networkId: w.NetworkID, endpointId: w.EndpointID };
}

export function decodeCreateEndpoint(body: unknown): CreateEndpointInput {
  const w = parseWire(CreateEndpointRequestSchema, body);
  const i = w.Interface ?? {};
  // Docker sends "" for "no value"; with exactOptionalPropertyTypes that is an absent property.
  return {
    networkId: w.NetworkID,
    endpointId: w.EndpointID,
    ...(i.Address ? { address: canonicalAddress(i.Address) } : {}),
    ...(i.AddressIPv6 ? { addressIpv6: canonicalAddress(i.AddressIPv6) } : {}),
    ...(i.MacAddress ? { macAddress: i.MacAddress.toLowerCase() } : {}),
    options: { ...(w.Options ?? {}) },
  };
}

export function decodeJoin(body: unknown): JoinInput {
  const w = parseWire(JoinRequestSchema, body);
  return {
    networkId: w.NetworkID,
    endpointId: w.EndpointID,
    sandboxKey: w.SandboxKey,
    options: { ...(w.Options ?? {}) },
  };
}

export function decodeProgramExternalConnectivity(body: unknown): EndpointRef & {
  readonly options: Record<string, unknown>;
} {
  const w = parseWire(ProgramExternalConnectivityRequestSchema, body);
  return { networkId: w.NetworkID, endpointId: w.EndpointID, options: { ...(w.Options ?? {}) } };
}

export function decodeRequestPool(body: unknown): RequestPoolInput {
  const w = parseWire(RequestPoolRequestSchema, body);
  return {
    addressSpace: w.AddressSpace ?? '',
    pool: canonicalAddress(w.Pool ?? ''),
    subPool: canonicalAddress(w.SubPool ?? ''),
    options: { ...(w.Options ?? {}) },
    v6: w.V6 ?? false,
  };
}

export function decodeReleasePool(body: unknown): string {
  return parseWire(ReleasePoolRequestSchema, body).PoolID;
}

export function decodeRequestAddress(body: unknown): RequestAddressInput {
  const w = parseWire(RequestAddressRequestSchema, body);
  return { poolId: w.PoolID, address: canonicalAddress(w.Address ?? ''), options: { ...(w.Options ?? {}) } };
}

export function decodeReleaseAddress(body: unknown): { poolId: string; address: string } {
  const w = parseWire(ReleaseAddressRequestSchema, body);
  return { poolId: w.PoolID, address: canonicalAddress(w.Address) };
}

// ---------- replies (exact Docker field names) ----------

export interface ActivateResponse {
  readonly Implements: readonly string[];
}
export const ACTIVATE_RESPONSE: ActivateResponse = { Implements: ['NetworkDriver', 'IpamDriver'] };

/** GwAllocChecker is deliberately absent: truss never asks Docker to skip gateway allocation. */
export interface NetworkCapabilitiesResponse {
  readonly Scope: 'local' | 'global';
  readonly ConnectivityScope: 'local' | 'global';
}
export const toWireNetworkCapabilities = (c: NetworkCapabilities): NetworkCapabilitiesResponse => ({
  Scope: c.scope,
  ConnectivityScope: c.connectivityScope,
});

export interface AllocateNetworkResponse {
  readonly Options: Readonly<Record<string, string>>;
}
export const toWireAllocateNetwork = (options: Readonly<Record<string, string>>): AllocateNetworkResponse => ({
  Options: options,
});

/** Only a MAC Docker left empty may be returned; Address/AddressIPv6 are never echoed. */
export interface CreateEndpointResponse {
  readonly Interface?: { readonly MacAddress: string };
}
export const toWireCreateEndpoint = (r: CreateEndpointResult): CreateEndpointResponse =>
  r.macAddress ? { Interface: { MacAddress: r.macAddress } } : {};

export interface EndpointOperInfoResponse {
  readonly Value: Readonly<Record<string, unknown>>;
}
export const toWireEndpointOperInfo = (value: Readonly<Record<string, unknown>>): EndpointOperInfoResponse => ({
  Value: value,
});

export interface StaticRouteWire {
  readonly Destination: string;
  readonly RouteType: 0 | 1;
  readonly NextHop?: string;
}

export interface JoinResponse {
  readonly InterfaceName: { readonly SrcName: string; readonly DstPrefix: string };
  /** bare IPs (net.ParseIP), never CIDR */
  readonly Gateway?: string;
  readonly GatewayIPv6?: string;
  readonly StaticRoutes: readonly StaticRouteWire[];
  readonly DisableGatewayService: boolean;
}
export const toWireJoin = (r: JoinResult): JoinResponse => ({
  InterfaceName: { SrcName: r.srcName, DstPrefix: r.dstPrefix },
  ...(r.gateway !== undefined ? { Gateway: r.gateway } : {}),
  ...(r.gatewayIpv6 !== undefined ? { GatewayIPv6: r.gatewayIpv6 } : {}),
  StaticRoutes: r.staticRoutes.map((s) => ({
    Destination: s.destination,
    RouteType: s.routeType,
    ...(s.nextHop !== undefined ? { NextHop: s.nextHop } : {}),
  })),
  DisableGatewayService: r.disableGatewayService,
});

export interface IpamCapabilitiesResponse {
  readonly RequiresMACAddress: boolean;
  readonly RequiresRequestReplay: boolean;
}
export const toWireIpamCapabilities = (c: IpamCapabilities): IpamCapabilitiesResponse => ({
  RequiresMACAddress: c.requiresMacAddress,
  RequiresRequestReplay: c.requiresRequestReplay,
});

export interface AddressSpacesResponse {
  readonly LocalDefaultAddressSpace: string;
  readonly GlobalDefaultAddressSpace: string;
}
export const toWireAddressSpaces = (s: { local: string; global: string }): AddressSpacesResponse => ({
  LocalDefaultAddressSpace: s.local,
  GlobalDefaultAddressSpace: s.global,
});

export interface RequestPoolResponse {
  readonly PoolID: string;
  readonly Pool: string;
  readonly Data: Readonly<Record<string, string>>;
}
export const toWireRequestPool = (r: RequestPoolResult): RequestPoolResponse => ({
  PoolID: r.poolId,
  Pool: r.pool,
  Data: r.data,
});

export interface RequestAddressResponse {
  /** CIDR form */
  readonly Address: string;
  readonly Data: Readonly<Record<string, string>>;
}
export const toWireRequestAddress = (r: RequestAddressResult): RequestAddressResponse => ({
  Address: r.address,
  Data: r.data,
});

/** Every successful reply that carries nothing: Docker needs a JSON body, so at least `{}`. */
export const EMPTY_RESPONSE: Readonly<Record<string, never>> = Object.freeze({});
