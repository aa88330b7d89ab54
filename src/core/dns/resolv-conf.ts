/**
 * Which upstream DNS servers a container on a truss network talks to (issue 16), computed from
 * the host's resolv.conf the way dockerd does, so that truss can redirect exactly those. Pure.
 *
 * Read against moby's source (github.com/moby/moby, tags v20.10.24, v26.0.0, v28.0.0, v28.5.2):
 *
 * - Which file. A container on a user-defined network (every truss network) is given the host's
 *   /etc/resolv.conf as its origin, on 20.10 and 28.x alike: daemon/container_operations_unix.go,
 *   `case ...NetworkMode.IsUserDefined(): OptionOriginResolvConfPath("/etc/resolv.conf")`, with the
 *   comment "If systemd-resolvd is used, the 'upstream' DNS servers can be found in
 *   /run/systemd/resolve/resolv.conf. We do not query those DNS servers directly". The switch to
 *   /run/systemd/resolve/resolv.conf when /etc/resolv.conf's only nameserver is 127.0.0.53
 *   (libnetwork resolvconf.Path(); 28.x: libnetwork/internal/resolvconf/resolvconf_path.go) is used
 *   for the default bridge and other networks without the embedded DNS only (`default:` case,
 *   cfg.GetResolvConf()). chooseResolvConf() below is that rule; truss's own networks use /etc.
 * - 20.10 (vendor/github.com/docker/libnetwork/sandbox_dns_unix.go setupDNS, rebuildDNS,
 *   setExternalResolvers; resolver.go): without --dns, the embedded DNS's external servers are the
 *   host file's IPv4 nameservers, the first three (maxExtDNS = 3); those in 127.0.0.0/8 are marked
 *   HostLoopback and dialled from the HOST's namespace (`if extDNS.HostLoopback { extConnect() }`),
 *   the others from the container's. Loopback entries (127.*, ::1) are dropped from the container's
 *   own file (resolvconf.FilterResolvDNS); IPv6 nameservers are not external servers at all: they
 *   stay in the container's resolv.conf after 127.0.0.11 ("external v6 DNS servers has to be listed
 *   in resolv.conf"), so libc queries them directly from the container. When the host file has no
 *   IPv4 nameserver, the external servers come from the container's filtered file instead; and when
 *   filtering leaves no nameserver at all, FilterResolvDNS adds 8.8.8.8, 8.8.4.4 and (it is called
 *   with ipv6 = true) 2001:4860:4860::8888, ::8844.
 * - 26.x–27.x (libnetwork/internal/resolvconf TransformForIntNS(ipv6, ...)): every nameserver, v4
 *   and v6, is an external server; HostLoopback when loopback, IPv6 on a container without IPv6,
 *   or with a zone; none at all → the defaults (v6 ones only with IPv6), from the container.
 * - 28.0+ (commit d29767431c "Use host netns for host's ext-dns servers", first in v28.0.0;
 *   TransformForIntNS: `HostLoopback: !rc.md.NSOverride`): EVERY nameserver read from the host's
 *   file is dialled from the host's namespace, loopback or not, and there is no default fallback
 *   ("NO EXTERNAL NAMESERVERS DEFINED"). Only --dns (or daemon.json "dns", also an override:
 *   daemon/container_operations.go) servers are dialled from the container. So on 28.x a container
 *   without --dns sends truss nothing to redirect.
 * - --dns / daemon.json "dns" (all versions): dialled from the container's namespace; a loopback
 *   one is the container's own loopback and never crosses the bridge.
 */
import { parseIp } from '../ip.ts';

export const ETC_RESOLV_CONF = '/etc/resolv.conf';
export const SYSTEMD_RESOLV_CONF = '/run/systemd/resolve/resolv.conf';

/** Docker's fallback servers (Google Public DNS): resolvconf defaultIPv4Dns / defaultIPv6Dns */
export const DEFAULT_V4 = ['8.8.8.8', '8.8.4.4'] as const;
export const DEFAULT_V6 = ['2001:4860:4860::8888', '2001:4860:4860::8844'] as const;
/** resolver.go maxExtDNS: the embedded DNS tries at most this many external servers */
const MAX_EXT_DNS = 3;

export interface ResolvConf {
  /** nameserver addresses in file order (entries that are not an IP are skipped, as Docker does) */
  readonly nameservers: readonly string[];
  readonly search: readonly string[];
  readonly options: readonly string[];
}

/** resolv.conf text, read as moby's processLine does: comments at '#'/';', the last search line wins, options add up. */
export function parseResolvConf(text: string): ResolvConf {
  const nameservers: string[] = [];
  let search: string[] = [];
  const options: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '');
    const [key, ...rest] = line.trim().split(/\s+/);
    if (key === 'nameserver' && rest[0] !== undefined) {
      const ip = parseIp(rest[0]);
      if (ip !== undefined) nameservers.push(rest[0]);
    } else if ((key === 'search' || key === 'domain') && rest.length > 0) search = rest;
    else if (key === 'options') options.push(...rest);
  }
  return { nameservers, search, options };
}

/**
 * The file Docker copies for a container WITHOUT the embedded DNS (default bridge): the systemd
 * one when /etc/resolv.conf names 127.0.0.53 alone. Truss's networks always read /etc/resolv.conf.
 */
export function chooseResolvConf(files: { readonly etc?: string; readonly systemd?: string }): {
  readonly path: string;
  readonly text: string;
} {
  const ns = parseResolvConf(files.etc ?? '').nameservers;
  if (ns.length === 1 && ns[0] === '127.0.0.53' && files.systemd !== undefined) {
    return { path: SYSTEMD_RESOLV_CONF, text: files.systemd };
  }
  return { path: ETC_RESOLV_CONF, text: files.etc ?? '' };
}

export interface DockerUpstreams {
  /** servers a container queries from its own namespace: port-53 traffic to them crosses the truss bridge (redirect these) */
  readonly upstreams: readonly string[];
  /** servers dockerd queries from the host's namespace (its HostLoopback mark): truss never sees those queries */
  readonly hostLoopback: readonly string[];
  /** Docker fell back to its default servers */
  readonly usedDefaults: boolean;
}

export interface UpstreamOptions {
  /** dockerd's major version: 20 (≤25 behave alike), 26, 27, 28 … */
  readonly dockerMajor: number;
  /** whether the container has IPv6 (26.x–27.x only) */
  readonly ipv6: boolean;
  /** the container's --dns (or daemon.json "dns"), when set: these replace the host's file */
  readonly dns?: readonly string[];
}

const isLoopback = (a: string): boolean => {
  const ip = parseIp(a);
  if (ip === undefined) return false;
  return ip.family === 4 ? ip.value >> 24n === 127n : ip.value === 1n;
};
const isV4 = (a: string): boolean => parseIp(a)?.family === 4;
const isV6 = (a: string): boolean => parseIp(a)?.family === 6;
const uniq = (xs: readonly string[]): string[] => [...new Set(xs)];

/** The upstream servers of a container on a network with Docker's embedded DNS, given the host's /etc/resolv.conf text. */
export function computeUpstreams(etcResolvConf: string, o: UpstreamOptions): DockerUpstreams {
  if (o.dns !== undefined && o.dns.length > 0) return fromOverrides(o.dns, o.dockerMajor);
  const ns = parseResolvConf(etcResolvConf).nameservers;
  if (o.dockerMajor >= 28) return { upstreams: [], hostLoopback: uniq(ns.slice(0, MAX_EXT_DNS)), usedDefaults: false };
  if (o.dockerMajor >= 26) {
    if (ns.length === 0) {
      return { upstreams: [...DEFAULT_V4, ...(o.ipv6 ? DEFAULT_V6 : [])], hostLoopback: [], usedDefaults: true };
    }
    const ext = ns.slice(0, MAX_EXT_DNS);
    const viaHost = (a: string): boolean => isLoopback(a) || (isV6(a) && !o.ipv6);
    return {
      upstreams: uniq(ext.filter((a) => !viaHost(a))),
      hostLoopback: uniq(ext.filter(viaHost)),
      usedDefaults: false,
    };
  }
  return docker2010(ns);
}

function docker2010(ns: readonly string[]): DockerUpstreams {
  const filtered = ns.filter((a) => !isLoopback(a));
  const usedDefaults = filtered.length === 0;
  const containerFile = usedDefaults ? [...DEFAULT_V4, ...DEFAULT_V6] : filtered;
  const hostV4 = ns.filter(isV4);
  const ext = (hostV4.length > 0 ? hostV4 : containerFile.filter(isV4)).slice(0, MAX_EXT_DNS);
  // IPv6 servers stay in the container's resolv.conf: libc queries them itself, also through the bridge
  const direct = containerFile.filter(isV6);
  return {
    upstreams: uniq([...ext.filter((a) => !isLoopback(a)), ...direct]),
    hostLoopback: uniq(ext.filter(isLoopback)),
    usedDefaults,
  };
}

/** --dns servers: from the container's namespace; a loopback one stays inside the container. */
function fromOverrides(dns: readonly string[], dockerMajor: number): DockerUpstreams {
  const valid = dns.filter((a) => parseIp(a) !== undefined);
  // 20.10: only IPv4 ones are the embedded DNS's (three of them); IPv6 ones are in the container's file
  const ext =
    dockerMajor >= 26 ? valid.slice(0, MAX_EXT_DNS) : [...valid.filter(isV4).slice(0, 3), ...valid.filter(isV6)];
  return { upstreams: uniq(ext.filter((a) => !isLoopback(a))), hostLoopback: [], usedDefaults: false };
}

/**
 * Why containers may not resolve truss names on this host, and the fix; undefined when nothing
 * says so. `seen`: truss's responder got queries from containers already (then the host's
 * servers evidently are not the only path, e.g. daemon.json "dns" is set).
 */
export function dnsWarning(etcResolvConf: string, dockerMajor: number | undefined, seen: boolean): string | undefined {
  if (dockerMajor === undefined || seen) return undefined;
  const u = computeUpstreams(etcResolvConf, { dockerMajor, ipv6: true });
  if (u.hostLoopback.length === 0) return undefined;
  const servers = parseResolvConf(etcResolvConf).nameservers.filter((a) => !isLoopback(a));
  const fix =
    servers.length > 0
      ? `set "dns": ${JSON.stringify(servers)} in /etc/docker/daemon.json and restart dockerd`
      : 'set "dns" in /etc/docker/daemon.json to your resolvers (not a loopback address) and restart dockerd';
  const why =
    dockerMajor >= 28
      ? `dockerd ${dockerMajor} queries the host's resolv.conf servers from the host's namespace`
      : `dockerd queries loopback resolvers (${u.hostLoopback.join(', ')}) from the host's namespace`;
  return `${why}, where truss DNS cannot see the queries: ${fix} (docs/names.md)`;
}
