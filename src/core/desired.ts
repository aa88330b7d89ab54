/**
 * computeDesired: the kernel objects that must exist for the stored intent. Pure: no
 * clock, no randomness, no I/O. Everything random (MACs, names) was fixed when the
 * intent was written.
 */
import type { EndpointSpec, NetworkSpec } from './model.ts';

export interface BridgeObject {
  readonly name: string;
  readonly networkId: string;
  readonly mtu: number;
  /** gateway addresses in CIDR form ("198.18.0.1/24"), v4 and v6 */
  readonly addresses: readonly string[];
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
}

export interface FirewallObject {
  /** sorted by bridge name, so equal intent renders to equal text */
  readonly networks: readonly FirewallNetwork[];
}

export interface DesiredKernel {
  readonly bridges: readonly BridgeObject[];
  readonly veths: readonly VethObject[];
  readonly firewall: FirewallObject;
}

const byName = <T extends { name: string }>(a: T, b: T): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export function computeDesired(networks: readonly NetworkSpec[], endpoints: readonly EndpointSpec[]): DesiredKernel {
  const nets = new Map(networks.map((n) => [n.id, n]));
  const bridges = networks
    .map((n) => ({
      name: n.bridge,
      networkId: n.id,
      mtu: n.mtu,
      addresses: [...n.ipv4, ...n.ipv6].flatMap((d) => (d.gateway ? [d.gateway] : [])),
    }))
    .sort(byName);
  const veths: VethObject[] = [];
  for (const e of endpoints) {
    const n = nets.get(e.networkId);
    if (!n) continue; // an endpoint whose network is gone: nothing to build, GC removes it
    veths.push({
      name: e.hostVeth,
      peer: e.peerVeth,
      networkId: n.id,
      endpointId: e.id,
      bridge: n.bridge,
      mtu: n.mtu,
      peerMac: e.mac,
      joined: e.sandboxKey !== undefined,
    });
  }
  veths.sort(byName);
  const firewall: FirewallObject = {
    networks: networks
      .map((n) => ({
        networkId: n.id,
        bridge: n.bridge,
        subnets4: n.ipv4.map((d) => d.pool),
        subnets6: n.ipv6.map((d) => d.pool),
        nat: n.nat && !n.internal,
        internal: n.internal,
      }))
      .sort((a, b) => (a.bridge < b.bridge ? -1 : a.bridge > b.bridge ? 1 : 0)),
  };
  return { bridges, veths, firewall };
}
