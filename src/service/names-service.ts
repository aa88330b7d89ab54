/**
 * Names across hosts, the service part: joins this host's intent with what Docker says of the
 * containers (learned off the request path), publishes this host's named endpoints of cluster
 * networks to the cluster, and hands the reconciler the whole catalog (this host's and the
 * other hosts') and the DNS plan. It never calls Docker: it reads the follower's copy.
 *
 * 'pending': until Docker's containers were listed once (and, in cluster mode, the other
 * hosts' names were read once), the catalog is not known; the name/label sets in the kernel
 * are then left exactly as they are, so a restart never flips a verdict (issue 16 item 4).
 */

import type { ClusterNames } from '../core/contracts.ts';
import type { EndpointSpec, NetworkPolicyRecord, NetworkSpec } from '../core/model.ts';
import type { ContainerFacts, DnsPlan } from '../core/names/catalog.ts';
import { dnsEnabled, localCatalog, onDnsNetworks, planDns, visibleFrom } from '../core/names/catalog.ts';
import type { NamedEndpoint } from '../core/names/model.ts';
import type { IngressPolicy } from '../core/policy/model.ts';
import type { Logger } from '../obs/logger.ts';

/** A querying container's dns network, as resolve() needs it. */
export interface QueryNetwork {
  readonly networkId?: string;
  /** Docker's name of the network ('' when no container on it is named yet) */
  readonly networkName: string;
  readonly cluster?: string;
}

export type FollowerState = 'off' | 'connecting' | 'synced' | 'unreachable';

/** What the service needs of Docker's follower (docker/watch.ts). */
export interface LocalNames {
  containers(): ReadonlyMap<string, ContainerFacts>;
  state(): { readonly state: FollowerState; readonly reason?: string; readonly since?: number };
}

/** What the service needs of the cluster agent (cluster/names.ts). */
export type RemoteNames = ClusterNames;

export interface NamesServiceDeps {
  /** this host's node id */
  readonly self: () => string;
  readonly docker: LocalNames;
  readonly cluster?: RemoteNames;
  /**
   * The servers Docker's embedded DNS of these containers forwards to from the containers'
   * namespaces (their --dns, the host's resolv.conf as dockerd's version reads it); with no
   * container, those of a container without --dns (redirected before its first query).
   */
  readonly upstreams: (containers: readonly ContainerFacts[]) => readonly string[];
  readonly log: Logger;
}

export interface NamesView {
  readonly catalog: readonly NamedEndpoint[] | 'pending';
  readonly dns: DnsPlan;
}

export interface NamesStatus {
  readonly docker: { readonly state: FollowerState; readonly reason?: string };
  readonly clusterSynced?: boolean;
  readonly local: number;
  readonly remote: number;
  /** dns-enabled networks on this host, and why truss DNS cannot work now (if it cannot) */
  readonly dnsNetworks: number;
  readonly dnsOff?: string;
}

export class NamesService {
  readonly #d: NamesServiceDeps;
  #ports = new Map<string, number>();
  #published = '';
  #local: readonly NamedEndpoint[] = [];
  #localText = '[]';
  #remote: readonly NamedEndpoint[] = [];
  #catalog: readonly NamedEndpoint[] = [];
  #dnsNetworks = 0;
  #matter = true;
  /** ids of this host's truss.dns networks, as of the last view() */
  #dnsIds = new Set<string>();
  /** bare address -> the dns networks it is an endpoint of (from the intent: known from Join on) */
  #dnsByAddress = new Map<string, { readonly networkId: string; readonly cluster?: string }[]>();

  constructor(deps: NamesServiceDeps) {
    this.#d = deps;
  }

  /** The catalog and DNS plan for one reconcile pass over `intent`; publishes this host's part when it changed. */
  /**
   * Whether what Docker says can change what truss programs or publishes: in cluster mode (this
   * host's names are published), with a truss.dns network, or with a name/label rule in force, as
   * of the last view(). Otherwise a Docker event needs no reconcile pass.
   */
  namesMatter(): boolean {
    return this.#matter;
  }

  view(intent: {
    readonly networks: readonly NetworkSpec[];
    readonly endpoints: readonly EndpointSpec[];
    readonly policies?: readonly NetworkPolicyRecord[];
  }): NamesView {
    const hasPeer = (rules: IngressPolicy | null | undefined): boolean => !!rules?.some((r) => r.peer !== undefined);
    this.#matter =
      this.#d.cluster !== undefined ||
      intent.networks.some((n) => dnsEnabled(n) || hasPeer(n.ingress)) ||
      intent.endpoints.some((e) => hasPeer(e.ingress)) ||
      (intent.policies ?? []).some((p) => hasPeer(p.ingress));
    const containers = [...this.#d.docker.containers().values()];
    const local = localCatalog(intent.networks, intent.endpoints, containers, this.#d.self());
    const localText = JSON.stringify(local);
    this.#publish(local, localText);
    const remote = this.#d.cluster?.names() ?? [];
    // an unchanged catalog stays the same array: computeDesired memoises the name/label sets on it
    if (localText !== this.#localText || remote !== this.#remote) {
      this.#local = local;
      this.#localText = localText;
      this.#remote = remote;
      this.#catalog = [...local, ...remote];
    }
    const upstreams = this.#d.upstreams(onDnsNetworks(intent.networks, containers));
    const { plan, ports } = planDns(intent.networks, upstreams, this.#ports);
    this.#ports = ports;
    const dnsNets = new Map(intent.networks.filter(dnsEnabled).map((n) => [n.id, n]));
    this.#dnsIds = new Set(dnsNets.keys());
    this.#dnsByAddress = new Map();
    // why the guard: without a dns network this walk of every endpoint finds nothing (issue 18 item 5)
    for (const ep of dnsNets.size > 0 ? intent.endpoints : []) {
      const net = dnsNets.get(ep.networkId);
      if (!net) continue;
      for (const cidr of [ep.ipv4, ep.ipv6]) {
        const a = cidr?.split('/')[0];
        if (!a) continue;
        const list = this.#dnsByAddress.get(a) ?? [];
        list.push({ networkId: net.id, ...(net.cluster ? { cluster: net.cluster.name } : {}) });
        this.#dnsByAddress.set(a, list);
      }
    }
    this.#dnsNetworks = this.#dnsIds.size;
    const pending =
      this.#d.docker.state().state === 'connecting' ||
      (this.#d.cluster !== undefined && !this.#d.cluster.namesSynced());
    return { catalog: pending ? 'pending' : this.#catalog, dns: plan };
  }

  /**
   * What a query from `source` (a container's address on a dns network) may resolve: that
   * container's dns networks and the catalog entries on them; undefined when no endpoint of a
   * dns network has the address. A container Docker has not told of yet (its first query comes
   * within milliseconds of its start) is known by its endpoint in the intent, which truss wrote
   * at Join.
   */
  queryView(
    source: string,
  ): { readonly networks: readonly QueryNetwork[]; readonly endpoints: readonly NamedEndpoint[] } | undefined {
    const self = this.#local.find((e) => e.addresses.includes(source));
    const networks: QueryNetwork[] = self
      ? this.#local
          .filter(
            (e) => e.containerId === self.containerId && e.networkId !== undefined && this.#dnsIds.has(e.networkId),
          )
          .map((e) => ({
            networkId: e.networkId as string,
            networkName: e.networkName,
            ...(e.cluster ? { cluster: e.cluster } : {}),
          }))
      : (this.#dnsByAddress.get(source) ?? []).map((n) => ({ ...n, networkName: this.#networkName(n) }));
    if (networks.length === 0) return undefined;
    return { networks, endpoints: visibleFrom(this.#catalog, networks) };
  }

  /** Docker's name of a network, from any container on it (here, or on another host of its cluster). */
  #networkName(n: { readonly networkId: string; readonly cluster?: string }): string {
    const e = this.#catalog.find(
      (x) => x.networkId === n.networkId || (n.cluster !== undefined && x.cluster === n.cluster),
    );
    return e?.networkName ?? '';
  }

  /** The whole catalog as last computed (policy show, status). */
  catalog(): readonly NamedEndpoint[] {
    return this.#catalog;
  }

  status(): NamesStatus {
    const d = this.#d.docker.state();
    const docker = { state: d.state, ...(d.reason ? { reason: d.reason } : {}) };
    const off =
      d.state === 'off' || d.state === 'unreachable' ? (d.reason ?? `the Docker API is ${d.state}`) : undefined;
    return {
      docker,
      ...(this.#d.cluster ? { clusterSynced: this.#d.cluster.namesSynced() } : {}),
      local: this.#local.length,
      remote: this.#catalog.length - this.#local.length,
      dnsNetworks: this.#dnsNetworks,
      ...(off && this.#dnsNetworks > 0 ? { dnsOff: off } : {}),
    };
  }

  #publish(local: readonly NamedEndpoint[], localText: string): void {
    const c = this.#d.cluster;
    if (!c || this.#d.docker.state().state === 'connecting') return;
    const mine = local.filter((e) => e.cluster !== undefined);
    const text = mine.length === local.length ? localText : JSON.stringify(mine);
    if (text === this.#published) return;
    this.#published = text;
    // never rejects (logged and retried by the agent)
    void c.publishNames(mine);
  }
}
