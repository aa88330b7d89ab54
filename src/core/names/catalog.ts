/**
 * The name catalog (pure): this host's endpoints joined with what Docker says of their
 * containers, and the DNS plan derived from it. The daemon learns the facts off the request
 * path (docker/watch.ts); nothing here does I/O.
 */

import { formatIp, parseIp } from '../ip.ts';
import type { EndpointSpec, NetworkSpec } from '../model.ts';
import { isRouted, routedGroup } from '../routed.ts';
import type { NamedEndpoint } from './model.ts';

/** `-o truss.dns=true`: containers of the network resolve its containers on every host by name. */
export const OPT_DNS = 'truss.dns';

export function dnsEnabled(net: Pick<NetworkSpec, 'options'>): boolean {
  const v = net.options[OPT_DNS];
  return v === 'true' || v === '1';
}

/** What Docker says of one running container (docker/watch.ts keeps these). */
export interface ContainerFacts {
  readonly id: string;
  /** without Docker's leading '/' */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** its own --dns servers (HostConfig.Dns); [] = the daemon's */
  readonly dns: readonly string[];
  readonly endpoints: readonly {
    readonly endpointId: string;
    readonly networkId: string;
    readonly networkName: string;
    readonly aliases: readonly string[];
  }[];
}

const bare = (cidr: string | undefined): string[] => (cidr ? [cidr.split('/')[0] as string] : []);

/**
 * This host's named endpoints: each truss endpoint of the intent whose container Docker told
 * of. Addresses come from the intent (truss assigned them), names from Docker.
 */
export function localCatalog(
  networks: readonly NetworkSpec[],
  endpoints: readonly EndpointSpec[],
  containers: Iterable<ContainerFacts>,
  self: string,
): NamedEndpoint[] {
  const named = [...containers].filter((c) => c.endpoints.length > 0);
  // why: no container known (no Docker API, or none running) costs no index of every endpoint (issue 18 item 5)
  if (named.length === 0) return [];
  const nets = new Map(networks.map((n) => [n.id, n]));
  const eps = new Map(endpoints.map((e) => [e.id, e]));
  const out: NamedEndpoint[] = [];
  for (const c of named) {
    for (const at of c.endpoints) {
      const ep = eps.get(at.endpointId);
      const net = ep && nets.get(ep.networkId);
      if (!ep || !net) continue;
      out.push({
        endpointId: ep.id,
        node: self,
        networkName: at.networkName,
        networkId: net.id,
        ...(net.cluster ? { cluster: net.cluster.name } : {}),
        containerId: c.id,
        name: c.name,
        aliases: at.aliases.filter((a) => a !== c.name),
        labels: c.labels,
        addresses: [...bare(ep.ipv4), ...bare(ep.ipv6)],
      });
    }
  }
  return out.sort((a, b) => (a.endpointId < b.endpointId ? -1 : a.endpointId > b.endpointId ? 1 : 0));
}

/** The catalog entries a container on `networks` may resolve: same network here, same cluster anywhere. */
export function visibleFrom(
  catalog: readonly NamedEndpoint[],
  networks: readonly Pick<NamedEndpoint, 'networkId' | 'cluster'>[],
): NamedEndpoint[] {
  const ids = new Set(networks.map((n) => n.networkId).filter((x) => x !== undefined));
  const clusters = new Set(networks.map((n) => n.cluster).filter((x) => x !== undefined));
  return catalog.filter(
    (e) => (e.networkId !== undefined && ids.has(e.networkId)) || (e.cluster !== undefined && clusters.has(e.cluster)),
  );
}

export interface DnsBridge {
  readonly bridge: string;
  /** truss.mode=routed: its host ends' interface group (no bridge to match by name) */
  readonly group?: number;
  readonly gateway4?: string;
  readonly gateway6?: string;
}
export interface DnsUpstream {
  /** bare IP of the server Docker's embedded DNS forwards to */
  readonly address: string;
  /** the responder's port for it on each gateway */
  readonly port: number;
}
export interface DnsListener {
  /** a gateway address (bare IP) */
  readonly address: string;
  readonly port: number;
  readonly upstream: string;
}
export interface DnsPlan {
  readonly bridges: readonly DnsBridge[];
  readonly upstreams: readonly DnsUpstream[];
  readonly listeners: readonly DnsListener[];
}

/** The first port of the responder's range on the gateways (one port per upstream server). */
export const DNS_PORT_BASE = 35300;
export const DNS_PORT_COUNT = 200;

/**
 * Ports for `wanted` upstream servers: the ones `prev` gave keep theirs (a DNAT in use stays
 * valid), new ones take the lowest free port of the range; beyond the range they are left out.
 */
export function assignPorts(prev: ReadonlyMap<string, number>, wanted: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const w of wanted) {
    const p = prev.get(w);
    if (p !== undefined) out.set(w, p);
  }
  const used = new Set(out.values());
  let next = DNS_PORT_BASE;
  for (const w of wanted) {
    if (out.has(w)) continue;
    while (used.has(next)) next++;
    if (next >= DNS_PORT_BASE + DNS_PORT_COUNT) break;
    out.set(w, next);
    used.add(next);
  }
  return out;
}

const canon = (ip: string): string | undefined => {
  const p = parseIp(ip);
  return p && formatIp(p);
};

/**
 * What truss DNS needs on this host: the bridges of dns networks, the upstream servers their
 * containers' embedded DNS forwards to from the containers' namespaces (`upstreams`: the
 * caller knows them from resolv.conf, each container's own --dns and dockerd's version), each
 * with its responder port, and the responder's listeners (every gateway of the upstream's family).
 */
export function planDns(
  networks: readonly NetworkSpec[],
  upstreams: readonly string[],
  ports: ReadonlyMap<string, number>,
): { plan: DnsPlan; ports: Map<string, number> } {
  const dnsNets = networks.filter(dnsEnabled).sort((a, b) => (a.bridge < b.bridge ? -1 : 1));
  const bridges: DnsBridge[] = dnsNets.map((n) => {
    const g4 = n.ipv4.find((d) => d.gateway)?.gateway;
    const g6 = n.ipv6.find((d) => d.gateway)?.gateway;
    return {
      bridge: n.bridge,
      ...(isRouted(n) ? { group: routedGroup(n.id) } : {}),
      ...(g4 ? { gateway4: bare(g4)[0] } : {}),
      ...(g6 ? { gateway6: bare(g6)[0] } : {}),
    };
  });
  if (bridges.length === 0) return { plan: { bridges: [], upstreams: [], listeners: [] }, ports: new Map() };
  const wanted = new Set<string>();
  for (const u of upstreams) {
    const c = canon(u);
    if (c) wanted.add(c);
  }
  const sorted = [...wanted].sort();
  const next = assignPorts(ports, sorted);
  const chosen = sorted.filter((a) => next.has(a)).map((address) => ({ address, port: next.get(address) as number }));
  const listeners: DnsListener[] = [];
  for (const b of bridges) {
    for (const u of chosen) {
      const gw = u.address.includes(':') ? b.gateway6 : b.gateway4;
      if (gw) listeners.push({ address: gw, port: u.port, upstream: u.address });
    }
  }
  return { plan: { bridges, upstreams: chosen, listeners }, ports: next };
}

/** The containers with an endpoint on one of the dns networks (their upstreams are redirected). */
export function onDnsNetworks(
  networks: readonly NetworkSpec[],
  containers: Iterable<ContainerFacts>,
): ContainerFacts[] {
  const ids = new Set(networks.filter(dnsEnabled).map((n) => n.id));
  return [...containers].filter((c) => c.endpoints.some((e) => ids.has(e.networkId)));
}
