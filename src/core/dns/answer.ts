/**
 * What truss's DNS responder says to one question (issue 16): the addresses of the containers a
 * name means on the querying container's dns-enabled networks, "no data" when truss knows the name
 * but not for that type, or "forward" for every name truss does not know (the container's
 * upstream answers it, exactly as it would without truss).
 *
 * A container is known by its name, each of its aliases on a network, and NAME.NETWORK /
 * ALIAS.NETWORK (the network's name as the querying container's host knows it); case-insensitive
 * (RFC 4343), a trailing dot ignored. Pure.
 */
import { formatIp, parseIp } from '../ip.ts';
import type { NamedEndpoint } from '../names/model.ts';
import { TYPE_A, TYPE_AAAA } from './message.ts';

export interface DnsView {
  /** the querying container's dns-enabled networks (cluster: the network's truss.cluster, when it spans hosts) */
  readonly networks: readonly { readonly networkName: string; readonly cluster?: string }[];
  readonly endpoints: readonly NamedEndpoint[];
}

export type Resolution =
  | { readonly kind: 'answer'; readonly addresses: readonly string[] }
  | { readonly kind: 'nodata' }
  | { readonly kind: 'forward' };

const FORWARD: Resolution = { kind: 'forward' };
const NODATA: Resolution = { kind: 'nodata' };

/** An endpoint is on a querying network: the same cluster for a cluster network, else the same local name. */
function onNetwork(e: NamedEndpoint, n: DnsView['networks'][number]): boolean {
  if (n.cluster !== undefined) return e.cluster === n.cluster;
  return e.cluster === undefined && e.networkName === n.networkName;
}

function namesOf(e: NamedEndpoint, networkName: string): string[] {
  const bare = [e.name, ...e.aliases].map((s) => s.toLowerCase());
  const net = networkName.toLowerCase();
  return [...bare, ...bare.map((s) => `${s}.${net}`)];
}

export function resolve(q: { readonly name: string; readonly type: number }, view: DnsView): Resolution {
  const name = (q.name.endsWith('.') ? q.name.slice(0, -1) : q.name).toLowerCase();
  if (name === '') return FORWARD;
  const matched = new Set<string>();
  let known = false;
  for (const n of view.networks) {
    for (const e of view.endpoints) {
      if (!onNetwork(e, n) || !namesOf(e, n.networkName).includes(name)) continue;
      known = true;
      for (const a of e.addresses) {
        const ip = parseIp(a);
        if (ip === undefined) continue;
        if ((ip.family === 4 && q.type === TYPE_A) || (ip.family === 6 && q.type === TYPE_AAAA))
          matched.add(formatIp(ip));
      }
    }
  }
  if (!known) return FORWARD;
  if (matched.size === 0) return NODATA;
  return { kind: 'answer', addresses: [...matched].sort(compareIps) };
}

/** numeric order (198.18.0.9 before 198.18.0.10), so the answer is stable whatever the catalog's order */
function compareIps(a: string, b: string): number {
  const x = parseIp(a)?.value ?? 0n;
  const y = parseIp(b)?.value ?? 0n;
  return x < y ? -1 : x > y ? 1 : 0;
}
