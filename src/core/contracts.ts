/**
 * The interfaces between layers. protocol/ calls the driver services; services call the
 * store and the reconciler; the reconciler calls the dataplane. All types here are domain
 * types (camelCase); nothing here knows HTTP or the kernel.
 */
import type { ShaperObject } from './bandwidth.ts';
import type { RouteObject, VxlanObject, WireguardObject } from './cluster/desired.ts';
import type { HostAddressObject } from './cluster/host-address.ts';
import type { ProxyNdpObject } from './cluster/proxy-ndp.ts';
import type {
  BridgeObject,
  DnsRedirectObject,
  FirewallObject,
  GuardObject,
  PolicyObject,
  PortsObject,
  SelectorSetObject,
  VethObject,
} from './desired.ts';
import type { EgressObject } from './egress.ts';
import type { EndpointId, NetworkId } from './ids.ts';
import type { IpamData } from './model.ts';
import type { NamedEndpoint } from './names/model.ts';
import type { RoutedRoutesObject } from './routed.ts';

// ---------- driver services (called by protocol/) ----------

export interface NetworkCapabilities {
  readonly scope: 'local' | 'global';
  readonly connectivityScope: 'local' | 'global';
}

export interface CreateNetworkInput {
  readonly networkId: NetworkId;
  readonly ipv4: readonly IpamData[];
  readonly ipv6: readonly IpamData[];
  /** com.docker.network.generic: the -o map (values are strings) */
  readonly generic: Readonly<Record<string, string>>;
  /** com.docker.network.internal */
  readonly internal: boolean;
  /** com.docker.network.enable_ipv6 */
  readonly enableIpv6: boolean;
}

export interface CreateEndpointInput {
  readonly networkId: NetworkId;
  readonly endpointId: EndpointId;
  /** CIDR or undefined when Docker sent "" */
  readonly address?: string;
  readonly addressIpv6?: string;
  /** colon-hex or undefined */
  readonly macAddress?: string;
  /** Options map as sent, values untyped (driver-opts are strings, Docker's own keys are not). */
  readonly options: Readonly<Record<string, unknown>>;
}

export interface CreateEndpointResult {
  /** Only fields Docker left empty may be filled in. */
  readonly macAddress?: string;
}

export interface JoinInput {
  readonly networkId: NetworkId;
  readonly endpointId: EndpointId;
  readonly sandboxKey: string;
  readonly options: Readonly<Record<string, unknown>>;
}

export interface StaticRoute {
  readonly destination: string;
  readonly routeType: 0 | 1;
  readonly nextHop?: string;
}

export interface JoinResult {
  readonly srcName: string;
  readonly dstPrefix: string;
  /** bare IPs */
  readonly gateway?: string;
  readonly gatewayIpv6?: string;
  readonly staticRoutes: readonly StaticRoute[];
  readonly disableGatewayService: boolean;
}

/**
 * What a service learns of its request's reply (protocol/server.ts): the mutating calls journal
 * what would undo (or complete) them until dockerd has the reply (service/journal.ts).
 */
export interface RequestContext {
  /**
   * true once a success reply has been handed to the client's connection (the response's
   * 'finish'); false when the reply was an error or the connection closed before it was sent.
   */
  readonly replied: Promise<boolean>;
}

export interface NetworkDriver {
  capabilities(): NetworkCapabilities;
  createNetwork(input: CreateNetworkInput, ctx?: RequestContext): Promise<void>;
  deleteNetwork(networkId: NetworkId): Promise<void>;
  allocateNetwork(networkId: string, options: Readonly<Record<string, string>>): Promise<Record<string, string>>;
  freeNetwork(networkId: string): Promise<void>;
  createEndpoint(input: CreateEndpointInput): Promise<CreateEndpointResult>;
  deleteEndpoint(networkId: NetworkId, endpointId: EndpointId): Promise<void>;
  endpointOperInfo(networkId: NetworkId, endpointId: EndpointId): Promise<Record<string, unknown>>;
  join(input: JoinInput): Promise<JoinResult>;
  leave(networkId: NetworkId, endpointId: EndpointId): Promise<void>;
  programExternalConnectivity(
    networkId: NetworkId,
    endpointId: EndpointId,
    options: Readonly<Record<string, unknown>>,
  ): Promise<void>;
  revokeExternalConnectivity(networkId: NetworkId, endpointId: EndpointId): Promise<void>;
}

export interface IpamCapabilities {
  readonly requiresMacAddress: boolean;
  readonly requiresRequestReplay: boolean;
}

export interface RequestPoolInput {
  readonly addressSpace: string;
  /** "" for a dynamic pool */
  readonly pool: string;
  readonly subPool: string;
  readonly options: Readonly<Record<string, string>>;
  readonly v6: boolean;
}

export interface RequestPoolResult {
  readonly poolId: string;
  readonly pool: string;
  readonly data: Readonly<Record<string, string>>;
}

export interface RequestAddressInput {
  readonly poolId: string;
  /** bare IP or "" */
  readonly address: string;
  readonly options: Readonly<Record<string, string>>;
}

export interface RequestAddressResult {
  /** CIDR form: "198.18.0.5/24" */
  readonly address: string;
  readonly data: Readonly<Record<string, string>>;
}

export interface IpamDriver {
  capabilities(): IpamCapabilities;
  defaultAddressSpaces(): { local: string; global: string };
  requestPool(input: RequestPoolInput, ctx?: RequestContext): Promise<RequestPoolResult>;
  releasePool(poolId: string, ctx?: RequestContext): Promise<void>;
  requestAddress(input: RequestAddressInput, ctx?: RequestContext): Promise<RequestAddressResult>;
  releaseAddress(poolId: string, address: string, ctx?: RequestContext): Promise<void>;
}

// ---------- the cluster (called by services when a network has truss.cluster) ----------

export interface ClusterJoin {
  /** the truss.cluster name */
  readonly name: string;
  readonly subnets: readonly string[];
  readonly encrypt: boolean;
  /** canonical text of what every host must agree on */
  readonly fingerprint: string;
  /** addresses every host uses the same way (gateway, aux): reserved in the shared store */
  readonly shared: readonly string[];
}

export interface ClusterMembership {
  /** false when truss runs with the embedded store only (no --store etcd://...) */
  enabled(): boolean;
  /** MTU for container interfaces of cluster networks on this host (the tunnel's: WireGuard or VXLAN) */
  mtu(encrypt: boolean): number;
  /** Register (or check against) the cluster network and this host's membership. */
  joinNetwork(join: ClusterJoin): Promise<void>;
  /**
   * This host leaves the cluster network on purpose (its last local network of it is gone):
   * membership, address claims and blocks are released. Resolves with what was released.
   */
  leaveNetwork(name: string): Promise<unknown>;
}

/**
 * Names across hosts in cluster mode (issue 16, cluster/names.ts): this host publishes its
 * endpoints' container names under its lease, and sees every other host's.
 */
export interface ClusterNames {
  /**
   * This host's complete current list (every cluster; entries without one are not published):
   * written as changes only, after a lease loss again whole. Resolves when written or failed
   * (logged, retried); never rejects.
   */
  publishNames(entries: readonly NamedEndpoint[]): Promise<void>;
  /** every other host's valid, live (or lapsed within the grace) names; no networkId */
  names(): readonly NamedEndpoint[];
  /** true once names() holds the store's initial listing */
  namesSynced(): boolean;
}

export const GATEWAY_REQUEST_TYPE = 'com.docker.network.gateway';
export const REQUEST_ADDRESS_TYPE = 'RequestAddressType';
export const ENDPOINT_NAME_OPTION = 'com.docker.network.endpoint.name';

// ---------- the dataplane (called only by reconcile/) ----------

export interface ObservedLink {
  readonly name: string;
  readonly ifindex: number;
  /** "bridge", "veth", ... (ip -d link's linkinfo.info_kind) */
  readonly kind: string;
  /** the ifalias ownership mark, parsed (naming.parseOwnerMark) */
  readonly mark?: { readonly kind: 'br' | 'ep'; readonly id: string; readonly state?: string };
  readonly mtu: number;
  readonly up: boolean;
  readonly master?: string;
  readonly mac: string;
  /** global-scope addresses, CIDR form */
  readonly addresses: readonly string[];
  /** its interface group (ip link ... group N), when not 0 (routed host ends: core/routed.ts) */
  readonly group?: number;
  /** a routed host end: truss's host routes on it (protocol 116, CIDRs), listed only when it is in a group */
  readonly hostRoutes?: readonly string[];
}

/**
 * Everything the reconciler may do to the kernel. ensure* creates or converges and is
 * idempotent; remove* treats "already gone" as success; list* observes only objects
 * that are truss's (mark or name prefix). Errors are TrussError/KernelError with codes.
 */
export interface Dataplane {
  /**
   * A number that changes whenever the kernel announces a change (dataplane/linux/kernel-watch.ts):
   * while it stays, a look at what it covers still holds. undefined: not watching (nothing may be
   * answered from an earlier look). Absent: never watching.
   */
  kernelGeneration?(): number | undefined;
  listLinks(): Promise<readonly ObservedLink[]>;
  ensureBridge(b: BridgeObject): Promise<void>;
  removeBridge(name: string): Promise<void>;
  ensureVeth(v: VethObject): Promise<void>;
  removeVeth(name: string): Promise<void>;
  /** Problems (human-readable) between the installed firewall and `f`; [] when it matches. */
  checkFirewall(f: FirewallObject): Promise<readonly string[]>;
  /** Atomically replace truss's nft table and iptables shim with the rendering of `f`. */
  ensureFirewall(f: FirewallObject): Promise<void>;
  /** Remove every truss firewall object (nft table, iptables chain and jump). */
  removeFirewall(): Promise<void>;
  /** Host sysctls truss needs (ip_forward when any network NATs). Idempotent. */
  ensureSysctls(f: FirewallObject): Promise<void>;

  // ----- port policy: table inet truss_policy, one chain per joined endpoint with a policy -----

  /**
   * Compare the installed policy table with `desired` (one listing): chains to (re)program,
   * policy chains present but not desired, and human-readable problems.
   */
  checkPolicies(desired: readonly PolicyObject[]): Promise<SetCheck>;
  /**
   * Atomically (one nft transaction) create or replace one endpoint's chain, sets and
   * address->chain map entries, creating the table and its base chains if missing; then
   * delete conntrack entries of flows into the endpoint that the new rules no longer admit.
   */
  ensurePolicy(p: PolicyObject): Promise<void>;
  /** Remove one endpoint's chain, sets, counter and map entries; gone = success. */
  removePolicy(name: string): Promise<void>;
  /**
   * name=/label= sources: compare the installed sets of each selector (sel_<hash>_4/_6 in the
   * policy table) with `desired` (one listing): selectors to rewrite, sets no selector wants.
   */
  checkSelectors(desired: readonly SelectorSetObject[]): Promise<SetCheck>;
  /**
   * Atomically (one nft transaction touching only this selector's two sets) replace the
   * selector's members, creating the table and its base if missing.
   */
  ensureSelector(s: SelectorSetObject): Promise<void>;
  /** Remove a selector's two sets once no chain names them; gone = success. */
  removeSelector(name: string): Promise<void>;
  /** Remove the whole policy table (no policy is desired any more); gone = success. */
  removePolicyTable(): Promise<void>;
  /** Packets/bytes denied per policy chain name, from the named counters. */
  readPolicyCounters(): Promise<Readonly<Record<string, PolicyCounter>>>;

  // ----- published ports (-p): table inet truss_ports, map elements tagged per endpoint -----

  /** Compare the installed ports table with `desired` (one listing): owners to (re)program, extra owners, problems. */
  checkPorts(desired: readonly PortsObject[]): Promise<SetCheck>;
  /** Atomically replace one endpoint's DNAT elements, creating the table and its chains if missing. */
  ensurePorts(p: PortsObject): Promise<void>;
  /** Remove one endpoint's elements (by owner tag); gone = success. */
  removePorts(name: string): Promise<void>;
  /** Remove the whole ports table (no endpoint publishes a port any more); gone = success. */
  removePortsTable(): Promise<void>;
  // ----- DNS of dns-enabled networks (truss.dns): table inet truss_dns, replaced whole -----

  /** Problems between the installed table and `want` ([] when it matches); `undefined` = no table wanted. */
  checkDnsRedirect(want: DnsRedirectObject | undefined): Promise<readonly string[]>;
  /** Atomically (one nft transaction) replace the table with the rendering of `o`. */
  ensureDnsRedirect(o: DnsRedirectObject): Promise<void>;
  /** Delete the table; gone = success. */
  removeDnsRedirect(): Promise<void>;
  /** The servers queried from a dns-enabled bridge that were not redirected (bare IPs, both families); [] without the table. */
  readDnsSeen(): Promise<readonly string[]>;

  // ----- anti-spoofing: table bridge truss_guard, set elements per guarded veth -----

  /** Compare the installed guard table with `desired` (one listing). */
  checkGuards(desired: readonly GuardObject[]): Promise<SetCheck>;
  /** routed networks' routes (core/routed.ts): subnets' unreachable routes, endpoints' host routes */
  checkRoutedRoutes(desired: readonly RoutedRoutesObject[]): Promise<SetCheck>;
  ensureRoutedRoutes(o: RoutedRoutesObject): Promise<void>;
  /** name: a subnet (CIDR) or a host end; gone = success */
  removeRoutedRoutes(name: string): Promise<void>;
  /**
   * Guard one veth in one nft transaction (table, sets and chain created when missing).
   * `exact`: also delete elements on the veth that are not `g`'s (after drift; reads the table).
   */
  ensureGuard(g: GuardObject, opts?: { readonly exact?: boolean }): Promise<void>;
  /** Unguard a veth; `applied` (the guard last ensured) spares reading the table; gone = success. */
  removeGuard(link: string, applied?: GuardObject): Promise<void>;
  /** Remove the whole guard table (no endpoint is guarded any more); gone = success. */
  removeGuardTable(): Promise<void>;
  /** Frames the guards dropped, by reason (mac, ethertype, arp, ip4, ip6, nd); {} without the table. */
  readGuardCounters(): Promise<Readonly<Record<string, PolicyCounter>>>;

  // ----- cluster networks: the WireGuard device and truss routes (proto 116) -----

  /** Create or converge the device and its peers (only changed peers are touched). */
  ensureWireguard(w: WireguardObject): Promise<void>;
  /** Delete the device (and its userspace process); gone = success. */
  removeWireguard(name: string): Promise<void>;
  /** Problems between the device and `w` ([] when it matches); `undefined` = no device wanted. */
  checkWireguard(w: WireguardObject | undefined, name: string): Promise<readonly string[]>;
  /**
   * Make this host's addresses on the cluster devices (trwg0, trvx0) exactly `addrs`
   * (core/cluster/host-address.ts); a device that is not there holds none.
   */
  ensureHostAddresses(addrs: readonly HostAddressObject[]): Promise<void>;
  checkHostAddresses(addrs: readonly HostAddressObject[]): Promise<readonly string[]>;
  /** Make truss's routes exactly `routes`: add/replace these, delete other truss routes. */
  ensureRoutes(routes: readonly RouteObject[]): Promise<void>;
  checkRoutes(routes: readonly RouteObject[]): Promise<readonly string[]>;
  /** Handshake state of the device's peers, for status (no key material). */
  readWireguardPeers(name: string): Promise<readonly WireguardPeerStatus[]>;
  /**
   * Which WireGuard the device runs on ("kernel WireGuard", "wireguard-go 0.0.20250522 (PATH,
   * truss's own)"), once chosen (the first device made); undefined before. Optional: fakes need not.
   */
  wireguardImplementation?(): Promise<string | undefined>;

  // ----- unencrypted cluster networks: the VXLAN device, its FDB and neighbour entries -----

  /** Create or converge the device and its per-peer FDB + neighbour entries (only differences are written). */
  ensureVxlan(v: VxlanObject): Promise<void>;
  /** Delete the device (its FDB and neighbour entries and routes go with it); gone = success. */
  removeVxlan(name: string): Promise<void>;
  /** Problems between the device and `v` ([] when it matches); `undefined` = no device wanted. */
  checkVxlan(v: VxlanObject | undefined, name: string): Promise<readonly string[]>;
  /** The underlay addresses the device's FDB sends to now ([] without the device). */
  readVxlanPeers(name: string): Promise<readonly string[]>;

  // ----- dual-stack cluster networks: proxy NDP for other hosts' IPv6 addresses on the bridges -----

  /** Compare each wanted bridge's proxy entries and switches with `desired` (one listing). */
  checkProxyNdp(desired: readonly ProxyNdpObject[]): Promise<SetCheck>;
  /** Set the bridge's proxy switches and make its truss proxy entries exactly `o.addresses`. */
  ensureProxyNdp(o: ProxyNdpObject): Promise<void>;
  /** Delete the truss proxy entries (inside `subnets`) of `bridge`; a bridge already gone is success. */
  removeProxyNdp(bridge: string, subnets: readonly string[]): Promise<void>;

  // ----- truss.egress.via: policy routing (ip rules + reserved tables, proto 116) -----

  /**
   * Make truss's policy-routing rules and reserved tables exactly `e` (other networks' rules and
   * tables, and foreign ones, are never touched). Each network is programmed on its own: one
   * network's failure (e.g. its next hop is unreachable) does not keep the others back.
   */
  ensureEgress(e: EgressObject): Promise<void>;
  /** Problems between the kernel and `e` ([] when it matches; leftovers count). */
  checkEgress(e: EgressObject): Promise<readonly string[]>;
  // ----- bandwidth limits: tc on an endpoint's host veth, and its ifb device (trf…) -----

  /**
   * Compare the installed shaping with `desired` (a few listings for all endpoints together):
   * shapers to (re)program, shaping present but not desired (the host veth of truss qdiscs, or of
   * a truss ifb device: its ifb is naming.ifbOfHostVeth of it), human-readable problems.
   */
  checkShapers(desired: readonly ShaperObject[]): Promise<SetCheck>;
  /** Create or converge one endpoint's qdiscs, filter and ifb device; a direction without a limit has none. */
  ensureShaper(s: ShaperObject): Promise<void>;
  /** Remove the shaping of host veth `name` and the ifb `ifb`; gone = success; foreign links are left alone. */
  removeShaper(name: string, ifb: string): Promise<void>;
}

export interface WireguardPeerStatus {
  readonly publicKey: string;
  readonly endpoint?: string;
  readonly allowedIps: readonly string[];
  /** seconds since the epoch; 0 = never */
  readonly latestHandshake: number;
  readonly rxBytes: number;
  readonly txBytes: number;
}

/**
 * What one listing of a table of named objects says against the wanted ones: every set check of
 * the dataplane (policies, published ports, guards, shapers) answers in this shape, the one the
 * engine's set kinds take (reconcile/kind.ts).
 */
export interface SetCheck {
  /** names of wanted objects that are missing or differ */
  readonly drifted: readonly string[];
  /** of those, the ones to repair with `exact` (elements not their own, or a chain to rewrite) */
  readonly exact?: readonly string[];
  /** names of truss objects present but not wanted */
  readonly extra: readonly string[];
  /** human-readable, one per drifted or extra object */
  readonly problems: readonly string[];
  /** tables only: whether it exists at all (an empty one is still there to remove) */
  readonly tablePresent?: boolean;
}

export interface PolicyCounter {
  readonly packets: number;
  readonly bytes: number;
}
