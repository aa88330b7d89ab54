/**
 * computeDesired: the kernel objects that must exist for the stored intent. Pure: no
 * clock, no randomness, no I/O. Everything random (MACs, names) was fixed when the
 * intent was written.
 *
 * Intent records are immutable, and the intent cache hands out an unchanged record as the
 * same object on every pass. So an endpoint's veth and policy objects are memoised on the
 * identity of the endpoint, its network and the network's run-time policy: a pass at 1,000
 * endpoints rebuilds only what changed, and unchanged objects keep their identity (the
 * reconciler's fingerprints are memoised on it in turn).
 */

import { WG_DEVICE } from './cluster/desired.ts';
import { type GuardObject, guardFor } from './guard.ts';
import type { EndpointSpec, NetworkPolicyRecord, NetworkSpec } from './model.ts';
import { policyChainName, VXLAN_DEVICE } from './naming.ts';
import type { IngressPolicy } from './policy/model.ts';

export interface BridgeObject {
  readonly name: string;
  readonly networkId: string;
  readonly mtu: number;
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
  /** bare IPs of the endpoint (v4 and/or v6) */
  readonly addresses: readonly string[];
  readonly rules: IngressPolicy;
}

export type { GuardObject } from './guard.ts';

export interface DesiredKernel {
  readonly bridges: readonly BridgeObject[];
  readonly veths: readonly VethObject[];
  readonly firewall: FirewallObject;
  /** sorted by name; only joined endpoints whose network or own option sets a policy */
  readonly policies: readonly PolicyObject[];
  /** anti-spoofing per bridge port (core/guard.ts), from CreateEndpoint on; intent order */
  readonly guards: readonly GuardObject[];
}

/** The policy in force for an endpoint: its own option, else the network's run-time or creation policy. */
export function effectiveIngress(
  net: NetworkSpec,
  ep: EndpointSpec,
  runtime: NetworkPolicyRecord | undefined,
): IngressPolicy | undefined {
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
  };
  const rules = e.sandboxKey === undefined ? undefined : effectiveIngress(n, e, runtime);
  const addresses = [...bare(e.ipv4), ...bare(e.ipv6)];
  const policy =
    rules !== undefined && addresses.length > 0
      ? { name: policyChainName(e.id), endpointId: e.id, networkId: n.id, addresses, rules }
      : undefined;
  const objects = { net: n, runtime, veth, policy, guard: guardFor(n, e) };
  memo.set(e, objects);
  return objects;
}

export function computeDesired(
  networks: readonly NetworkSpec[],
  endpoints: readonly EndpointSpec[],
  runtimePolicies: readonly NetworkPolicyRecord[] = [],
): DesiredKernel {
  const nets = new Map(networks.map((n) => [n.id, n]));
  const runtime = new Map(runtimePolicies.map((p) => [p.networkId, p]));
  const policies: PolicyObject[] = [];
  const bridges = networks
    .map((n) => ({
      name: n.bridge,
      networkId: n.id,
      mtu: n.mtu,
      addresses: [...n.ipv4, ...n.ipv6].flatMap((d) => (d.gateway ? [d.gateway] : [])),
      ...(n.cluster ? { proxyArp: true } : {}),
    }))
    .sort(byName);
  const veths: VethObject[] = [];
  const guards: GuardObject[] = [];
  for (const e of endpoints) {
    const n = nets.get(e.networkId);
    if (!n) continue; // an endpoint whose network is gone: nothing to build, GC removes it
    const derived = endpointObjects(n, e, runtime.get(n.id));
    veths.push(derived.veth);
    if (derived.policy) policies.push(derived.policy);
    if (derived.guard) guards.push(derived.guard);
  }
  // veths keep the intent's order (store key order, then newest last): sorting 1,000 of them on
  // every pass would cost more than all the rest of it
  policies.sort(byName);
  const firewall: FirewallObject = {
    networks: networks
      .map((n) => ({
        networkId: n.id,
        bridge: n.bridge,
        subnets4: n.ipv4.map((d) => d.pool),
        subnets6: n.ipv6.map((d) => d.pool),
        nat: n.nat && !n.internal,
        internal: n.internal,
        ...(n.cluster ? { peerLinks: [n.cluster.encrypt ? WG_DEVICE : VXLAN_DEVICE] } : {}),
      }))
      .sort((a, b) => (a.bridge < b.bridge ? -1 : a.bridge > b.bridge ? 1 : 0)),
  };
  return { bridges, veths, firewall, policies, guards };
}
