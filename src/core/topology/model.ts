/**
 * The topology picture's model: from the typed status (core/admin-api.ts), the hosts (in
 * cluster mode every host the cluster store knows), their networks and containers, the tunnels
 * from this host to its peers with their state, the port policy in force, and what is in error
 * or drifted. Pure: `truss topology` (with Docker's names) and the daemon's /topology page
 * (ids only) render the same model (svg.ts, text.ts).
 *
 * What a host knows: this host's networks and containers in full; of the other hosts, the
 * cluster networks they take part in and how many addresses they claim there (the cluster
 * store holds no more), and the tunnel from this host to each.
 */
import type { StatusBody } from '../admin-api.ts';
import { age } from '../age.ts';
import { type HandshakeState, handshakeState } from '../cluster/handshake.ts';
import { shortId } from '../naming.ts';
import { ingressText, networkIngressText } from '../policy/view.ts';

/** What the model reads of a status reply (a decoded reply fits too). */
export type TopologyStatus = Pick<StatusBody, 'networks' | 'endpoints' | 'kernel' | 'cluster' | 'errors'> &
  Partial<Pick<StatusBody, 'policies' | 'version' | 'reconciler'>>;

/** Docker's names (the CLI's cli/docker-names.ts): the daemon has none. */
export interface TopologyNames {
  /** network id -> name */
  readonly networks: ReadonlyMap<string, string>;
  /** endpoint id -> container name */
  readonly endpoints: ReadonlyMap<string, string>;
}

/** Something wrong with a part of the picture: its objects in error and its drift. */
export interface Trouble {
  readonly errors: readonly string[];
  readonly drift: readonly string[];
}

export interface TopoContainer extends Trouble {
  readonly id: string;
  /** the container's name when known, else the endpoint's short id */
  readonly label: string;
  readonly addresses: readonly string[];
  /** its own truss.ingress, when it overrides the network's */
  readonly ingress?: string;
  readonly joined: boolean;
}

export interface TopoNetwork extends Trouble {
  /** the Docker network id (this host), or `cluster:NAME` (another host's share of a cluster network) */
  readonly id: string;
  readonly label: string;
  readonly subnets: readonly string[];
  /** its cluster, as shown after its label: "cluster blue (wireguard)", "cluster (vxlan)" when the label is the name */
  readonly cluster?: string;
  /** the policy in force ('open', 'none' or the rules); absent when not known (another host) */
  readonly ingress?: string;
  readonly containers: readonly TopoContainer[];
  /** another host's addresses claimed in it (the cluster store's count) */
  readonly claims?: number;
}

export interface TopoHost extends Trouble {
  /** node id (cluster), or '' for the one host without a cluster */
  readonly id: string;
  readonly label: string;
  readonly self: boolean;
  /** underlay address, when known */
  readonly address?: string;
  /** its lease lapsed: kept programmed for a grace period, see cluster/agent.ts */
  readonly lapsed: boolean;
  readonly networks: readonly TopoNetwork[];
}

export type TunnelState = HandshakeState | 'vxlan';

export interface TopoTunnel {
  readonly from: string;
  readonly to: string;
  readonly kind: 'wireguard' | 'vxlan';
  readonly state: TunnelState;
  /** what the picture says of it: "handshake 12 s ago", "no handshake" */
  readonly detail: string;
  readonly endpoint: string;
  readonly error: boolean;
}

export interface Topology {
  /** this host first, then the others by label */
  readonly hosts: readonly TopoHost[];
  readonly tunnels: readonly TopoTunnel[];
  readonly version?: string;
  /** the clock the ages are measured against (ISO 8601) */
  readonly at: string;
}

export interface TopologyOptions {
  /** ms since the epoch */
  readonly now: number;
  readonly names?: TopologyNames;
}

type Net = StatusBody['networks'][number];
type Ep = StatusBody['endpoints'][number];

const byLabel = <T extends { readonly label: string; readonly id: string }>(a: T, b: T): number =>
  a.label < b.label ? -1 : a.label > b.label ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;

/** The kernel objects in error and the drift, each by the link name it is about (a bridge or a host veth). */
function troubleByLink(s: TopologyStatus, links: ReadonlySet<string>) {
  const errors = new Map<string, string[]>();
  const drift = new Map<string, string[]>();
  const rest: { errors: string[]; drift: string[] } = { errors: [], drift: [] };
  const add = (m: Map<string, string[]>, k: string, v: string) => m.set(k, [...(m.get(k) ?? []), v]);
  for (const [key, o] of Object.entries(s.reconciler?.objects ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (o.state !== 'error') continue;
    const name = key.slice(key.indexOf(':') + 1);
    const text = `${key}: ${o.lastError ?? o.code ?? 'error'}`;
    if (links.has(name)) add(errors, name, text);
    else rest.errors.push(text);
  }
  for (const p of s.kernel.problems) {
    const link = p.split(/[\s:,()'"]+/).find((w) => links.has(w));
    if (link) add(drift, link, p);
    else rest.drift.push(p);
  }
  return { errors, drift, rest };
}

function clusterText(name: string, label: string, local: Net | undefined): string {
  const mode = local?.cluster ? ` (${local.cluster.encrypt ? 'wireguard' : 'vxlan'})` : '';
  return `cluster${name === label ? '' : ` ${name}`}${mode}`;
}

function localNetworks(s: TopologyStatus, names: TopologyNames | undefined): TopoNetwork[] {
  const links = new Set([...s.networks.map((n) => n.bridge), ...s.endpoints.map((e) => e.hostVeth)]);
  const t = troubleByLink(s, links);
  const trouble = (link: string): Trouble => ({ errors: t.errors.get(link) ?? [], drift: t.drift.get(link) ?? [] });
  const container = (e: Ep): TopoContainer => ({
    id: e.id,
    label: names?.endpoints.get(e.id) ?? shortId(e.id),
    addresses: [e.ipv4, e.ipv6].filter((a): a is string => a !== undefined),
    ...(e.ingress ? { ingress: ingressText(e.ingress) } : {}),
    joined: e.sandboxKey !== undefined,
    ...trouble(e.hostVeth),
  });
  return s.networks
    .map((n): TopoNetwork => {
      const label = names?.networks.get(n.id) ?? shortId(n.id);
      const cluster = n.cluster ? clusterText(n.cluster.name, label, n) : undefined;
      return {
        id: n.id,
        label,
        subnets: [...n.ipv4, ...n.ipv6].map((d) => d.pool),
        ...(cluster ? { cluster } : {}),
        ingress: networkIngressText(n, s.policies),
        containers: s.endpoints
          .filter((e) => e.networkId === n.id)
          .map(container)
          .sort(byLabel),
        ...trouble(n.bridge),
      };
    })
    .sort(byLabel);
}

/** The part of each status check that is about this host itself, not one network or container. */
function hostTrouble(s: TopologyStatus): Trouble {
  const links = new Set([...s.networks.map((n) => n.bridge), ...s.endpoints.map((e) => e.hostVeth)]);
  const { rest } = troubleByLink(s, links);
  const errors = [...rest.errors, ...(s.errors ?? []).map((e) => `status could not read ${e}`)];
  const passError = s.reconciler?.passError;
  if (passError) errors.push(`the last reconcile pass could not run: ${passError.error}`);
  const etcd = s.cluster?.etcd;
  if (etcd?.reachable === false) errors.push(`etcd unreachable: ${etcd.error ?? 'no answer'}`);
  if (etcd?.lease === 'lost') errors.push("this host's etcd lease is lost");
  return { errors, drift: rest.drift };
}

/** Another host's share of the cluster networks: those it is a member of or holds addresses in. */
function remoteNetworks(s: TopologyStatus, node: string, names: TopologyNames | undefined): TopoNetwork[] {
  const allocations = s.cluster?.allocations ?? {};
  return Object.entries(allocations)
    .flatMap(([cluster, byNode]): TopoNetwork[] => {
      const held = byNode[node];
      if (!held || (!held.member && held.claims === 0 && held.blocks === 0)) return [];
      const local = s.networks.find((n) => n.cluster?.name === cluster);
      const label = (local && names?.networks.get(local.id)) ?? cluster;
      return [
        {
          id: `cluster:${cluster}`,
          label,
          subnets: local ? [...local.ipv4, ...local.ipv6].map((d) => d.pool) : [],
          cluster: clusterText(cluster, label, local),
          containers: [],
          claims: held.claims,
          errors: [],
          drift: [],
        },
      ];
    })
    .sort(byLabel);
}

const hostOf = (endpoint: string): string => endpoint.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');

function tunnels(c: NonNullable<TopologyStatus['cluster']>, now: number): TopoTunnel[] {
  const wg = c.peers.map((p): TopoTunnel => {
    const state = handshakeState(p.latestHandshake, now);
    const ago = age(now / 1000 - p.latestHandshake);
    const detail =
      state === 'never' ? 'no handshake' : state === 'stale' ? `stale: handshake ${ago} ago` : `handshake ${ago} ago`;
    return {
      from: c.nodeId,
      to: p.node,
      kind: 'wireguard',
      state,
      detail,
      endpoint:
        p.path === 'relayed' ? `relayed via ${c.names[p.via ?? ''] ?? p.via}` : (p.endpoint ?? 'not learnt yet'),
      error: state !== 'ok' && p.path !== 'relayed',
    };
  });
  const vx = c.vxlanPeers
    .filter((p) => !c.peers.some((w) => w.node === p.node))
    .map(
      (p): TopoTunnel => ({
        from: c.nodeId,
        to: p.node,
        kind: 'vxlan',
        state: 'vxlan',
        detail: 'vxlan (unencrypted, no handshake)',
        endpoint: p.address,
        error: false,
      }),
    );
  return [...wg, ...vx];
}

/** The topology of `s` as this host sees it. */
export function computeTopology(s: TopologyStatus, opts: TopologyOptions): Topology {
  const names = opts.names;
  const own = hostTrouble(s);
  const c = s.cluster;
  const self: TopoHost = {
    id: c?.nodeId ?? '',
    label: c?.node ?? 'this host',
    self: true,
    lapsed: false,
    networks: localNetworks(s, names),
    ...own,
  };
  if (!c) return { hosts: [self], tunnels: [], at: new Date(opts.now).toISOString(), ...version(s) };
  const lapsed = new Set(c.lapsed ?? []);
  const address = new Map<string, string>([
    ...c.vxlanPeers.map((p): [string, string] => [p.node, p.address]),
    ...c.peers.flatMap((p): [string, string][] => (p.endpoint !== undefined ? [[p.node, hostOf(p.endpoint)]] : [])),
  ]);
  const ids = new Set([
    ...Object.keys(c.names),
    ...c.peers.map((p) => p.node),
    ...c.vxlanPeers.map((p) => p.node),
    ...Object.values(c.allocations).flatMap((byNode) => Object.keys(byNode)),
  ]);
  ids.delete(c.nodeId);
  const peerName = new Map([...c.vxlanPeers, ...c.peers].flatMap((p) => (p.name ? [[p.node, p.name] as const] : [])));
  const others = [...ids]
    .map((id): TopoHost => {
      const addr = address.get(id);
      return {
        id,
        label: c.names[id] ?? peerName.get(id) ?? id,
        self: false,
        ...(addr ? { address: addr } : {}),
        lapsed: lapsed.has(id),
        networks: remoteNetworks(s, id, names),
        errors: lapsed.has(id) ? ['its etcd lease lapsed: kept programmed for a grace period'] : [],
        drift: [],
      };
    })
    .sort(byLabel);
  const hosts = [self, ...others];
  const order = new Map(hosts.map((h, i) => [h.id, i]));
  const sorted = tunnels(c, opts.now).sort((a, b) => (order.get(a.to) ?? 0) - (order.get(b.to) ?? 0));
  return { hosts, tunnels: sorted, at: new Date(opts.now).toISOString(), ...version(s) };
}

const version = (s: TopologyStatus) => (s.version ? { version: s.version } : {});

/** Whether anything is wrong with this part of the picture. */
export const troubled = (t: Trouble): boolean => t.errors.length > 0 || t.drift.length > 0;
