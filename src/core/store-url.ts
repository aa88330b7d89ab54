/**
 * The --store URL: "embedded" (the default) or etcd://HOST:PORT[,HOST:PORT...]. Apart from
 * store/etcd.ts so that checking it does not load etcd3 (gRPC, protobufjs: slow to load); pure,
 * so the CLI and preflight parse it without the store layer.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { errors, type TrussError } from './errors.ts';

export type StoreUrl = { readonly kind: 'embedded' } | { readonly kind: 'etcd'; readonly endpoints: readonly string[] };

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/** Why `ep` is not a HOST:PORT endpoint (IPv4, [IPv6] or a DNS name; port 1-65535), or undefined. */
export function endpointProblem(ep: string): string | undefined {
  if (ep === '') return 'empty endpoint (a stray comma?)';
  const m = /^(\[[^\]]*\]|[^:[\]]*)(?::([^:]*))?$/.exec(ep);
  if (!m) return `${JSON.stringify(ep)} is not HOST:PORT (write an IPv6 address as [ADDR]:PORT)`;
  const host = m[1] ?? '';
  const port = m[2];
  if (host.startsWith('[')) {
    const ip = host.slice(1, -1);
    if (!isIPv6(ip) || ip.includes('%')) return `${host} is not an IPv6 address (zone ids are not supported)`;
  } else if (/^[0-9.]+$/.test(host)) {
    if (!isIPv4(host)) return `${JSON.stringify(host)} is not an IPv4 address`;
  } else if (host === '' || host.length > 253 || !host.split('.').every((l) => DNS_LABEL.test(l))) {
    return `${JSON.stringify(host)} is not a host name or IP address`;
  }
  if (port === undefined) return `${ep} has no :PORT (etcd's client port is usually 2379)`;
  if (!/^[1-9][0-9]{0,4}$/.test(port) || Number(port) > 65535) return `port ${JSON.stringify(port)} is not 1-65535`;
  return undefined;
}

/** `--store`: absent or "embedded" (the default), or etcd://HOST:PORT[,HOST:PORT...]. */
export function parseStoreUrl(text: string | undefined): StoreUrl {
  if (text === undefined || text === 'embedded') return { kind: 'embedded' };
  const bad = (why: string): TrussError => errors.badOption(`--store ${JSON.stringify(text)}: ${why}`);
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/is.exec(text);
  const usage = 'expected "embedded" or etcd://HOST:PORT[,HOST:PORT...]';
  if (!m) throw bad(usage);
  const scheme = m[1] ?? '';
  if (/^https?$/i.test(scheme))
    throw bad('write etcd://HOST:PORT; TLS is turned on by --etcd-ca, --etcd-cert, --etcd-key');
  if (scheme !== 'etcd') throw bad(`unknown scheme ${JSON.stringify(scheme)}: ${usage}`);
  const rest = m[2] ?? '';
  if (rest === '') throw bad(`no endpoint: ${usage}`);
  if (/[/?#@\s]/.test(rest)) throw bad('only HOST:PORT endpoints separated by commas: no path, query, user or spaces');
  const endpoints = rest.split(',');
  for (const ep of endpoints) {
    const problem = endpointProblem(ep);
    if (problem) throw bad(problem);
  }
  const dup = endpoints.find((ep, i) => endpoints.indexOf(ep) !== i);
  if (dup !== undefined) throw bad(`endpoint ${dup} is listed twice`);
  return { kind: 'etcd', endpoints };
}

/** The host part of a HOST:PORT endpoint (brackets of an IPv6 address removed). */
export const endpointHost = (ep: string): string => ep.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');

/** An endpoint on this host: a loopback address (127.0.0.0/8, ::1) or "localhost". */
export function isLoopbackEndpoint(ep: string): boolean {
  const host = endpointHost(ep).toLowerCase();
  return host === 'localhost' || host === '::1' || (isIPv4(host) && host.startsWith('127.'));
}

/** An endpoint on this host: loopback, or one of this host's own addresses (`ownAddress`). */
export const onThisHost = (ep: string, ownAddress: (host: string) => boolean): boolean =>
  isLoopbackEndpoint(ep) || ownAddress(endpointHost(ep));

/**
 * Plaintext to an etcd that is not on this host is refused unless the operator accepted it
 * (--etcd-insecure): anyone on the path could read and rewrite every host's routing.
 * `ownAddress` tells this host's own addresses (the daemon passes its links' addresses): traffic
 * to them never leaves the host either, so etcd://HOST1:2379 on HOST1 is on this host.
 */
export function plaintextProblem(
  endpoints: readonly string[],
  tls: boolean,
  insecure: boolean,
  ownAddress: (host: string) => boolean = () => false,
): TrussError | undefined {
  if (tls || insecure) return undefined;
  const remote = endpoints.filter((ep) => !onThisHost(ep, ownAddress));
  if (remote.length === 0) return undefined;
  return errors.badOption(
    `--store etcd://${endpoints.join(',')}: etcd at ${remote.join(',')} is not on this host and the connection would be ` +
      'plaintext (anyone on the path can read and rewrite the cluster records): give --etcd-ca, --etcd-cert and ' +
      '--etcd-key for TLS, or --etcd-insecure to accept plaintext',
  );
}
