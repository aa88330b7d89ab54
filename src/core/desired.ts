/**
 * computeDesired: the kernel objects that must exist for the stored intent. Pure: no
 * clock, no randomness, no I/O. Everything random (MACs, names) was fixed when the
 * intent was written.
 *
 * Intent records are immutable, and the intent cache hands out an unchanged record as the
 * same object on every pass. So a network's bridge and firewall entry are memoised on the
 * network record's identity, and an endpoint's veth and policy objects on the identity of the
 * endpoint, its network and the network's run-time policy: a pass at 1,000
 * endpoints rebuilds only what changed, and unchanged objects keep their identity (the
 * reconciler's fingerprints are memoised on it in turn).
 */

import { type ShaperObject, shaperFor } from './bandwidth.ts';
import { WG_DEVICE } from './cluster/desired.ts';
import { antispoofEnabled, type GuardObject, guardFor } from './guard.ts';
import { formatIp, parseIp } from './ip.ts';
import { eui64LinkLocal } from './link-local.ts';
import type { EndpointSpec, NetworkPolicyRecord, NetworkSpec } from './model.ts';
import { type NamedEndpoint, type PeerSelector, selectorText, selects } from './names/model.ts';
import { bridgeMac, policyChainName, portsOwnerName, selectorSetName, VXLAN_DEVICE } from './naming.ts';
import type { IngressPolicy } from './policy/model.ts';
import type { PublishedPort } from './portmap.ts';
import {
  endpointRoutes,
  gatewayHostAddresses,
  isRouted,
  type RoutedRoutesObject,
  routedGroup,
  subnetRoutes,
} from './routed.ts';

export interface BridgeObject {
  readonly name: string;
  readonly networkId: string;
  readonly mtu: number;
  /** its own MAC (naming.bridgeMac), fixed so the gateway's MAC never follows a departing port */
  readonly mac: string;
  /** gateway addresses in CIDR form ("198.18.0.1/24"), v4 and v6 */
  readonly addresses: readonly string[];
  /** answer ARP for addresses routed elsewhere (cluster networks: containers on other hosts) */
  readonly proxyArp?: boolean;
}

export interface VethObject {
  /** host end, enslaved to the bridge */
  readonly name: string;
  /** container end, handed to Docker as SrcName */
  readonly peer: string;
  readonly networkId: string;
  readonly endpointId: string;
  readonly bridge: string;
  readonly mtu: number;
  readonly peerMac: string;
  /** After Join the peer lives in the container: it is never recreated on its own. */
  readonly joined: boolean;
  /**
   * truss.mode=routed: no master (`bridge` only names the network); the host end is in the
   * network's interface group and carries its gateway addresses (core/routed.ts)
   */
  readonly routed?: {
    readonly group: number;
    readonly addresses: readonly string[];
    /** the container's host routes on this host end (/32, /128, protocol 116): made in the veth's own batch */
    readonly routes: readonly string[];
  };
}

export interface FirewallNetwork {
  readonly networkId: string;
  readonly bridge: string;
  readonly subnets4: readonly string[];
  readonly subnets6: readonly string[];
  readonly nat: boolean;
  readonly internal: boolean;
  /** links that carry this network's traffic to and from other hosts (cluster networks: the WireGuard or VXLAN device) */
  readonly peerLinks?: readonly string[];
  /** truss.egress.via: traffic routed to these next hops may leave wherever they are (core/egress.ts) */
  readonly egressVia?: readonly string[];
  /**
   * truss.mode=routed: the interface group of the network's host ends (core/routed.ts), matched
   * instead of `bridge` (which then names no link); `rpf`: its sources are checked (anti-spoofing)
   */
  readonly routed?: { readonly group: number; readonly rpf: boolean };
}

/** Who may send truss's VXLAN traffic to this host: the current peers' underlay addresses. */
export interface VxlanGuard {
  readonly port: number;
  readonly vni: number;
  /** bare IPs, sorted */
  readonly peers: readonly string[];
}

export interface FirewallObject {
  /** sorted by bridge name, so equal intent renders to equal text */
  readonly networks: readonly FirewallNetwork[];
  /** present while this host has a VXLAN device (an unencrypted cluster network) */
  readonly vxlan?: VxlanGuard;
  /**
   * --relay with an encrypted cluster network: the WireGuard device, whose traffic between two
   * other hosts this host forwards (in and out of it again; dockerd's FORWARD policy is DROP)
   */
  readonly relay?: string;
}

/** The firewall with relaying through `device` (none: the firewall as it is). */
export function withRelay(f: FirewallObject, device: string | undefined): FirewallObject {
  return device === undefined || f.networks.length === 0 ? f : { ...f, relay: device };
}

/** The firewall with the VXLAN guard for `guard` (none: the firewall as it is). */
export function withVxlanGuard(f: FirewallObject, guard: VxlanGuard | undefined): FirewallObject {
  if (!guard || f.networks.length === 0) return f;
  return { ...f, vxlan: { port: guard.port, vni: guard.vni, peers: [...new Set(guard.peers)].sort() } };
}

/** One joined endpoint's ingress allow-list, keyed on its addresses (one nft chain). */
export interface PolicyObject {
  /** nft chain name, policyChainName(endpointId) */
  readonly name: string;
  readonly endpointId: string;
  readonly networkId: string;
  /** bare IPs of the endpoint (v4 and/or v6, and its EUI-64 link-local address) */
  readonly addresses: readonly string[];
  readonly rules: IngressPolicy;
}

/**
 * The addresses of the containers a name= or label= source selects (core/names), as two nft
 * sets `${name}_4` and `${name}_6` shared by every policy chain that names the selector. Exists
 * only while a desired policy does.
 */
export interface SelectorSetObject {
  /** naming.selectorSetName(selector): sel_<10 hex> */
  readonly name: string;
  readonly selector: PeerSelector;
  /** canonical bare IPs, sorted, no duplicates */
  readonly addresses4: readonly string[];
  readonly addresses6: readonly string[];
}

/** One joined endpoint's published ports (-p): its elements in table inet truss_ports. */
export interface PortsObject {
  /** owner tag of its map elements, portsOwnerName(endpointId) */
  readonly name: string;
  readonly endpointId: string;
  readonly networkId: string;
  /**
   * the endpoint's bridge: DNATed flows from it are masqueraded (hairpin); in routed mode its
   * host end (equal to hostVeth: no bridge port, no hairpin mode)
   */
  readonly bridge: string;
  /** the endpoint's bridge port (host veth): hairpin mode on, so it can reach itself via the host */
  readonly hostVeth: string;
  /** bare IPs of the endpoint, the DNAT targets */
  readonly address4?: string;
  readonly address6?: string;
  /** bare gateway IPs of its network: the source of its own connections to itself via the host */
  readonly gateway4?: string;
  readonly gateway6?: string;
  readonly ports: readonly PublishedPort[];
}
export type { GuardObject } from './guard.ts';

/** A dns-enabled network's bridge (truss.dns=true) and its bare gateway IPs: where its DNS is redirected to. */
export interface DnsRedirectBridge {
  readonly bridge: string;
  /** truss.mode=routed: matched by its host ends' interface group, `bridge` only names it */
  readonly group?: number;
  readonly gateway4?: string;
  readonly gateway6?: string;
}

/** One upstream DNS server Docker's embedded DNS forwards to, and the responder's port for it. */
export interface DnsRedirectUpstream {
  /** bare IP */
  readonly address: string;
  /** the port truss's responder listens on (on every dns-enabled gateway) for queries to this upstream */
  readonly port: number;
}

/**
 * The host's DNS redirection (table inet truss_dns, dataplane/linux/dns-redirect.ts): queries
 * from dns-enabled bridges to an upstream are DNATed to that bridge's gateway and the upstream's
 * responder port. One whole object for the host; absent or empty = no table.
 */
export interface DnsRedirectObject {
  /** the dns-enabled networks' bridges, sorted by name */
  readonly bridges: readonly DnsRedirectBridge[];
  /** sorted by address */
  readonly upstreams: readonly DnsRedirectUpstream[];
}

export interface DesiredKernel {
  readonly bridges: readonly BridgeObject[];
  readonly veths: readonly VethObject[];
  readonly firewall: FirewallObject;
  /** sorted by name; only joined endpoints whose network or own option sets a policy */
  readonly policies: readonly PolicyObject[];
  /** sorted by name; one per distinct name=/label= source of the policies */
  readonly selectors: readonly SelectorSetObject[];
  /** bandwidth limits: only endpoints with a limit in force, in the veths' order */
  readonly shapers: readonly ShaperObject[];
  /** sorted by name; only joined endpoints of non-internal networks that publish ports */
  readonly ports: readonly PortsObject[];
  /** anti-spoofing per bridge port (core/guard.ts), from CreateEndpoint on; intent order */
  readonly guards: readonly GuardObject[];
  /** DNS of dns-enabled networks to truss's responder (one whole object); undefined = none */
  readonly dnsRedirect?: DnsRedirectObject;
  /** routed networks' subnets' unreachable routes (core/routed.ts); host routes are their veths' */
  readonly routes: readonly RoutedRoutesObject[];
}

/** The policy in force for an endpoint: its own option, else the network's run-time or creation policy. */
export function effectiveIngress<P = IngressPolicy>(
  net: { readonly ingress?: P },
  ep: { readonly ingress?: P },
  runtime: { readonly ingress: P | null } | undefined,
): P | undefined {
  if (ep.ingress !== undefined) return ep.ingress;
  if (runtime !== undefined) return runtime.ingress ?? undefined;
  return net.ingress;
}

const bare = (cidr: string | undefined): string[] => (cidr === undefined ? [] : [cidr.split('/')[0] as string]);

const byName = <T extends { name: string }>(a: T, b: T): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

interface EndpointObjects {
  readonly net: NetworkSpec;
  readonly runtime: NetworkPolicyRecord | undefined;
  readonly veth: VethObject;
  readonly policy: PolicyObject | undefined;
  readonly shaper: ShaperObject | undefined;
  readonly ports: PortsObject | undefined;
  readonly guard: GuardObject | undefined;
}

const memo = new WeakMap<EndpointSpec, EndpointObjects>();

/** The endpoint's veth and (joined, with a policy in force) its policy chain; memoised on identity. */
function endpointObjects(n: NetworkSpec, e: EndpointSpec, runtime: NetworkPolicyRecord | undefined): EndpointObjects {
  const hit = memo.get(e);
  if (hit && hit.net === n && hit.runtime === runtime) return hit;
  const veth: VethObject = {
    name: e.hostVeth,
    peer: e.peerVeth,
    networkId: n.id,
    endpointId: e.id,
    bridge: n.bridge,
    mtu: n.mtu,
    peerMac: e.mac,
    joined: e.sandboxKey !== undefined,
    ...(isRouted(n)
      ? { routed: { group: routedGroup(n.id), addresses: gatewayHostAddresses(n), routes: endpointRoutes(e) } }
      : {}),
  };
  const rules = e.sandboxKey === undefined ? undefined : effectiveIngress(n, e, runtime);
  // the link-local address too: it would otherwise be a way around the policy (link-local.ts)
  const ll = eui64LinkLocal(e.mac);
  const addresses = [...bare(e.ipv4), ...bare(e.ipv6), ...(ll === undefined ? [] : [ll])];
  const policy =
    rules !== undefined && addresses.length > 0
      ? { name: policyChainName(e.id), endpointId: e.id, networkId: n.id, addresses, rules }
      : undefined;
  const objects = {
    net: n,
    runtime,
    veth,
    policy,
    shaper: shaperFor(n, e),
    ports: portsObject(n, e),
    // routed: anti-spoofing is one constant reverse-path rule per network (nft.ts), nothing per endpoint
    guard: isRouted(n) ? undefined : guardFor(n, e),
  };
  memo.set(e, objects);
  return objects;
}

interface NetworkObjects {
  /** none in routed mode */
  readonly bridge: BridgeObject | undefined;
  readonly firewall: FirewallNetwork;
  readonly routes: readonly RoutedRoutesObject[];
}

const netMemo = new WeakMap<NetworkSpec, NetworkObjects>();

/** The network's bridge and its part of the firewall; memoised on identity like endpointObjects. */
function networkObjects(n: NetworkSpec): NetworkObjects {
  const hit = netMemo.get(n);
  if (hit) return hit;
  const objects: NetworkObjects = {
    routes: subnetRoutes(n),
    bridge: isRouted(n)
      ? undefined
      : {
          name: n.bridge,
          networkId: n.id,
          mtu: n.mtu,
          mac: bridgeMac(n.id),
          addresses: [...n.ipv4, ...n.ipv6].flatMap((d) => (d.gateway ? [d.gateway] : [])),
          ...(n.cluster ? { proxyArp: true } : {}),
        },
    firewall: {
      ...(isRouted(n) ? { routed: { group: routedGroup(n.id), rpf: antispoofEnabled(n, { options: {} }) } } : {}),
      networkId: n.id,
      bridge: n.bridge,
      subnets4: n.ipv4.map((d) => d.pool),
      subnets6: n.ipv6.map((d) => d.pool),
      nat: n.nat && !n.internal,
      internal: n.internal,
      ...(n.cluster ? { peerLinks: [n.cluster.encrypt ? WG_DEVICE : VXLAN_DEVICE] } : {}),
      ...(n.egressVia ? { egressVia: n.egressVia } : {}),
    },
  };
  netMemo.set(n, objects);
  return objects;
}

/** The endpoint's published ports, when it is joined, on a non-internal network, and publishes any. */
function portsObject(n: NetworkSpec, e: EndpointSpec): PortsObject | undefined {
  const [address4] = bare(e.ipv4);
  const [address6] = bare(e.ipv6);
  const ports = (e.published?.ports ?? []).filter((p) => (p.family === 4 ? address4 : address6) !== undefined);
  if (e.sandboxKey === undefined || n.internal || ports.length === 0) return undefined;
  const [gateway4] = bare(n.ipv4.find((d) => d.gateway)?.gateway);
  const [gateway6] = bare(n.ipv6.find((d) => d.gateway)?.gateway);
  return {
    name: portsOwnerName(e.id),
    endpointId: e.id,
    networkId: n.id,
    bridge: isRouted(n) ? e.hostVeth : n.bridge,
    hostVeth: e.hostVeth,
    ...(address4 !== undefined ? { address4 } : {}),
    ...(address6 !== undefined ? { address6 } : {}),
    ...(gateway4 !== undefined ? { gateway4 } : {}),
    ...(gateway6 !== undefined ? { gateway6 } : {}),
    ports,
  };
}

const peersMemo = new WeakMap<IngressPolicy, readonly PeerSelector[]>();

/** The name=/label= sources of a policy; memoised on the rules' identity (policies repeat across endpoints). */
function peersOf(rules: IngressPolicy): readonly PeerSelector[] {
  let peers = peersMemo.get(rules);
  if (peers === undefined) {
    peers = rules.flatMap((r) => (r.peer === undefined ? [] : [r.peer]));
    peersMemo.set(rules, peers);
  }
  return peers;
}

const setsMemo = new WeakMap<readonly NamedEndpoint[], Map<string, SelectorSetObject>>();

/** One selector's set against the catalog; memoised on the catalog's identity (unchanged sets keep theirs). */
function selectorSet(selector: PeerSelector, names: readonly NamedEndpoint[]): SelectorSetObject {
  const text = selectorText(selector);
  let byText = setsMemo.get(names);
  if (byText === undefined) {
    byText = new Map();
    setsMemo.set(names, byText);
  }
  const hit = byText.get(text);
  if (hit) return hit;
  const v4 = new Set<string>();
  const v6 = new Set<string>();
  for (const e of names) {
    if (!selects(selector, e)) continue;
    for (const a of e.addresses) {
      // the catalog holds other hosts' records too: only what parses as a bare IP reaches a set
      const ip = parseIp(a);
      if (ip !== undefined) (ip.family === 4 ? v4 : v6).add(formatIp(ip));
    }
  }
  const set = { name: selectorSetName(selector), selector, addresses4: [...v4].sort(), addresses6: [...v6].sort() };
  byText.set(text, set);
  return set;
}

/**
 * The last call's lists and what each endpoint derived (undefined: its network is gone). A pass
 * after one attach calls again with the same records and one more or one changed endpoint: over
 * the same networks and policies, an endpoint in the same place of the list (or one on) reuses
 * what it derived, and only the others are looked up (issue 18 item 5: the lookups of 5,000
 * endpoints on every pass cost more than the attach).
 */
let lastCall:
  | {
      readonly networks: readonly NetworkSpec[];
      readonly runtime: readonly NetworkPolicyRecord[];
      readonly endpoints: readonly EndpointSpec[];
      readonly derived: readonly (EndpointObjects | undefined)[];
    }
  | undefined;

const sameItems = <T>(a: readonly T[], b: readonly T[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * `names`: the catalog of named endpoints (core/names), on this host and others; the members of
 * the name=/label= sets. Absent: every such set is empty (its rules admit nobody).
 */
export function computeDesired(
  networks: readonly NetworkSpec[],
  endpoints: readonly EndpointSpec[],
  runtimePolicies: readonly NetworkPolicyRecord[] = [],
  names: readonly NamedEndpoint[] = [],
): DesiredKernel {
  const nets = new Map(networks.map((n) => [n.id, n]));
  const runtime = new Map(runtimePolicies.map((p) => [p.networkId, p]));
  const policies: PolicyObject[] = [];
  const bridges = networks.flatMap((n) => networkObjects(n).bridge ?? []).sort(byName);
  const routes: RoutedRoutesObject[] = networks.flatMap((n) => networkObjects(n).routes);
  const ports: PortsObject[] = [];
  const veths: VethObject[] = [];
  const shapers: ShaperObject[] = [];
  const guards: GuardObject[] = [];
  const prev =
    lastCall && sameItems(lastCall.networks, networks) && sameItems(lastCall.runtime, runtimePolicies)
      ? lastCall
      : undefined;
  const all: (EndpointObjects | undefined)[] = new Array(endpoints.length);
  let j = 0;
  for (let i = 0; i < endpoints.length; i++) {
    const e = endpoints[i] as EndpointSpec;
    let derived: EndpointObjects | undefined;
    if (prev && e === prev.endpoints[j]) derived = prev.derived[j++];
    else if (prev && e === prev.endpoints[j + 1]) {
      derived = prev.derived[j + 1];
      j += 2;
    } else {
      const n = nets.get(e.networkId);
      // an endpoint whose network is gone: nothing to build, GC removes it
      derived = n ? endpointObjects(n, e, runtime.get(n.id)) : undefined;
      if (prev && endpoints[i + 1] !== prev.endpoints[j]) j++;
    }
    all[i] = derived;
    if (!derived) continue;
    veths.push(derived.veth);
    if (derived.policy) policies.push(derived.policy);
    if (derived.shaper) shapers.push(derived.shaper);
    if (derived.ports) ports.push(derived.ports);
    if (derived.guard) guards.push(derived.guard);
  }
  lastCall = { networks, runtime: runtimePolicies, endpoints, derived: all };
  // veths keep the intent's order (store key order, then newest last): sorting 1,000 of them on
  // every pass would cost more than all the rest of it
  policies.sort(byName);
  ports.sort(byName);
  const selectors = new Map<string, SelectorSetObject>();
  for (const p of policies) {
    for (const peer of peersOf(p.rules)) {
      const text = selectorText(peer);
      if (!selectors.has(text)) selectors.set(text, selectorSet(peer, names));
    }
  }
  const firewall: FirewallObject = {
    networks: networks
      .map((n) => networkObjects(n).firewall)
      .sort((a, b) => (a.bridge < b.bridge ? -1 : a.bridge > b.bridge ? 1 : 0)),
  };
  return {
    bridges,
    veths,
    firewall,
    policies,
    selectors: [...selectors.values()].sort(byName),
    shapers,
    ports,
    guards,
    routes,
  };
}
