/**
 * Published ports (`docker run -p`): Docker's `com.docker.network.portmap` option, validated,
 * and resolved into the concrete bindings truss programs. Pure: no clock, no kernel.
 *
 * Docker sends the portmap with Join and ProgramExternalConnectivity (Proto as the IP protocol
 * number, HostIP "" = every host address, HostPort 0 = "pick one", HostPort..HostPortEnd = "pick
 * one in this range"). For a remote driver dockerd allocates nothing itself: the pick is ours.
 * It cannot be told back either (dockerd type-asserts EndpointOperInfo values to Go structs, so
 * `docker port` stays empty); truss reports the pick in EndpointOperInfo (`truss.ports`) and
 * `truss status`.
 *
 * A binding is resolved per address family the container has: HostIP "" publishes on the host's
 * IPv4 addresses to the container's IPv4 address and on its IPv6 addresses to its IPv6 address;
 * a given HostIP only on that address. There is no 6-to-4 proxy (an IPv6 host port to an
 * IPv4-only container). Docker 29 adds `no_proxy_6to4: true` when this endpoint is the container's
 * IPv4 gateway and another endpoint its IPv6 gateway: the IPv6 bindings are that other one's, so
 * this endpoint then publishes on IPv4 only.
 */
import { errors } from './errors.ts';
import { type Family, formatIp, parseIp } from './ip.ts';
import { showValue } from './safe-json.ts';

export const PORTMAP_OPTION = 'com.docker.network.portmap';
/** Docker 29: another endpoint is the IPv6 gateway; truss never proxies 6-to-4 anyway. */
export const NO_PROXY_6TO4_OPTION = 'com.docker.network.driver.private.no_proxy_6to4';

export type PortProto = 'tcp' | 'udp' | 'sctp';

const PROTO_NUMBERS: Readonly<Record<number, PortProto>> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };

/** Docker's default ephemeral range for published ports (its bridge driver's, from ip_local_port_range). */
export const EPHEMERAL_FIRST = 32768;
export const EPHEMERAL_LAST = 60999;

/** One entry of the portmap as asked (validated, canonical). */
export interface PortRequest {
  readonly proto: PortProto;
  /** the container's port */
  readonly port: number;
  /** "" = every host address; else a canonical IP */
  readonly hostIp: string;
  /** first..last host port to choose from (equal for a fixed port) */
  readonly hostPortFirst: number;
  readonly hostPortLast: number;
}

/** One resolved binding for one address family: host [hostIp]:hostPort -> container :port. */
export interface PublishedPort {
  readonly family: Family;
  readonly proto: PortProto;
  /** absent = every host address of the family */
  readonly hostIp?: string;
  readonly hostPort: number;
  readonly port: number;
}

/** What an endpoint publishes: the request as Docker sent it (for idempotence) and the resolution. */
export interface Publication {
  readonly request: readonly PortRequest[];
  /** Docker 29's no_proxy_6to4: another endpoint is the IPv6 gateway */
  readonly ipv4Only?: true;
  readonly ports: readonly PublishedPort[];
}

const isPort = (n: unknown, min: number): n is number =>
  Number.isInteger(n) && (n as number) >= min && (n as number) <= 65535;

function field(entry: Record<string, unknown>, key: string): unknown {
  return entry[key];
}

/**
 * Pure: the portmap from a Join/ProgramExternalConnectivity options map; [] when absent or null.
 * Throws badOption naming the entry on anything malformed.
 */
export function parsePortmap(options: Readonly<Record<string, unknown>>): PortRequest[] {
  const raw = options[PORTMAP_OPTION];
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw errors.badOption(`${PORTMAP_OPTION} must be a list, got ${showValue(raw)}`);
  return raw.map((e: unknown, i) => {
    const what = `${PORTMAP_OPTION}[${i}]`;
    if (!e || typeof e !== 'object' || Array.isArray(e)) throw errors.badOption(`${what} must be an object`);
    const entry = e as Record<string, unknown>;
    const proto = PROTO_NUMBERS[field(entry, 'Proto') as number];
    if (!proto) {
      throw errors.badOption(
        `${what}: protocol ${showValue(field(entry, 'Proto'))} is not tcp (6), udp (17) or sctp (132)`,
      );
    }
    const port = field(entry, 'Port');
    if (!isPort(port, 1)) throw errors.badOption(`${what}: container port ${showValue(port)} is not 1-65535`);
    const hostPort = field(entry, 'HostPort') ?? 0;
    const hostPortEnd = field(entry, 'HostPortEnd') ?? 0;
    if (!isPort(hostPort, 0)) throw errors.badOption(`${what}: host port ${showValue(hostPort)} is not 0-65535`);
    if (!isPort(hostPortEnd, 0))
      throw errors.badOption(`${what}: host port end ${showValue(hostPortEnd)} is not 0-65535`);
    if (hostPort > 0 && hostPortEnd > 0 && hostPortEnd < hostPort)
      throw errors.badOption(`${what}: host port range ${hostPort}-${hostPortEnd} is reversed`);
    const hostIpRaw = field(entry, 'HostIP') ?? '';
    if (typeof hostIpRaw !== 'string') throw errors.badOption(`${what}: HostIP must be a string`);
    let hostIp = '';
    if (hostIpRaw !== '') {
      const ip = parseIp(hostIpRaw);
      if (!ip) throw errors.badOption(`${what}: HostIP ${showValue(hostIpRaw)} is not an IP address`);
      hostIp = formatIp(ip);
    }
    const [first, last] =
      hostPort === 0 ? [EPHEMERAL_FIRST, EPHEMERAL_LAST] : [hostPort, Math.max(hostPort, hostPortEnd)];
    return { proto, port, hostIp, hostPortFirst: first, hostPortLast: last };
  });
}

/** The families an endpoint publishes on: those it has addresses of, IPv4 only under no_proxy_6to4. */
export function publishFamilies(
  has: { readonly ipv4: boolean; readonly ipv6: boolean },
  options: Readonly<Record<string, unknown>>,
): Set<Family> {
  const v4Only = options[NO_PROXY_6TO4_OPTION] === true;
  return new Set<Family>([...(has.ipv4 ? [4 as const] : []), ...(has.ipv6 && !v4Only ? [6 as const] : [])]);
}

/** The families and host address a request applies to, given the container's families. */
function targets(r: PortRequest, families: ReadonlySet<Family>): { family: Family; hostIp?: string }[] {
  if (r.hostIp === '') return [...families].sort().map((family) => ({ family }));
  const ip = parseIp(r.hostIp) as NonNullable<ReturnType<typeof parseIp>>;
  const wildcard = ip.value === 0n; // 0.0.0.0 or ::: every address of that family
  if (!families.has(ip.family)) {
    throw errors.badOption(
      `cannot publish on ${r.hostIp}: the container has no IPv${ip.family} address on this network`,
    );
  }
  return [wildcard ? { family: ip.family } : { family: ip.family, hostIp: r.hostIp }];
}

/** Whether two bindings would catch the same packets (same family, protocol, port, overlapping addresses). */
export function portsClash(a: PublishedPort, b: PublishedPort): boolean {
  return (
    a.family === b.family &&
    a.proto === b.proto &&
    a.hostPort === b.hostPort &&
    (a.hostIp === undefined || b.hostIp === undefined || a.hostIp === b.hostIp)
  );
}

/** `p` may also be the admin API's view of a binding (core/admin-api.ts): hostIp may read undefined. */
export const describePort = (p: Omit<PublishedPort, 'hostIp'> & { readonly hostIp?: string | undefined }): string =>
  `${p.hostIp === undefined ? (p.family === 4 ? '0.0.0.0' : '[::]') : p.family === 6 ? `[${p.hostIp}]` : p.hostIp}:${p.hostPort}/${p.proto}`;

/**
 * Pure: the bindings for `requests` on a container with addresses of `families`, given the
 * bindings other endpoints hold (`taken`). A fixed host port already taken is a conflict error;
 * a range or ephemeral request takes the lowest port free in every family it applies to.
 */
export function resolvePorts(
  requests: readonly PortRequest[],
  families: ReadonlySet<Family>,
  taken: readonly PublishedPort[],
): PublishedPort[] {
  const held = [...taken];
  const out: PublishedPort[] = [];
  for (const r of requests) {
    const tgts = targets(r, families);
    if (tgts.length === 0) continue; // no address at all: nothing to publish to
    const candidate = (hostPort: number): PublishedPort[] =>
      tgts.map((t) => ({
        family: t.family,
        proto: r.proto,
        ...(t.hostIp !== undefined ? { hostIp: t.hostIp } : {}),
        hostPort,
        port: r.port,
      }));
    let chosen: PublishedPort[] | undefined;
    for (let hp = r.hostPortFirst; hp <= r.hostPortLast && !chosen; hp++) {
      const c = candidate(hp);
      if (!c.some((p) => held.some((h) => portsClash(p, h)))) chosen = c;
    }
    if (!chosen) {
      const c = candidate(r.hostPortFirst);
      const clash = c.find((p) => held.some((h) => portsClash(p, h))) as PublishedPort;
      throw r.hostPortFirst === r.hostPortLast
        ? errors.portInUse(`host port ${describePort(clash)} is already published by another truss container`)
        : errors.portInUse(
            `no free host port in ${r.hostPortFirst}-${r.hostPortLast}/${r.proto}: all are published by truss containers`,
          );
    }
    held.push(...chosen);
    out.push(...chosen);
  }
  return out;
}
