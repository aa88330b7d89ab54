/**
 * Domain model: what truss has been asked to make (intent). Stored as JSON; camelCase.
 * Wire shapes (PascalCase) live only in protocol/wire.ts.
 */
import type { BandwidthLimits } from './bandwidth.ts';
import type { Family } from './ip.ts';
import type { IngressPolicy } from './policy/model.ts';
import type { Publication } from './portmap.ts';

export interface IpamData {
  /** Pool CIDR, e.g. "198.18.0.0/24". */
  readonly pool: string;
  /** Gateway with prefix length, e.g. "198.18.0.1/24", as Docker sends it. */
  readonly gateway?: string;
  readonly auxAddresses: Readonly<Record<string, string>>;
}

export interface NetworkSpec {
  readonly id: string;
  readonly bridge: string;
  /** true when the bridge name came from com.docker.network.bridge.name */
  readonly bridgeNamed: boolean;
  readonly mtu: number;
  readonly internal: boolean;
  readonly nat: boolean;
  readonly ipv4: readonly IpamData[];
  readonly ipv6: readonly IpamData[];
  /** The generic -o map as Docker sent it (for replay comparison and `truss status`). */
  readonly options: Readonly<Record<string, string>>;
  /** truss.ingress at creation; absent = open (like Docker's bridge) */
  readonly ingress?: IngressPolicy;
  /** truss.cluster: this network is this host's part of a multi-host network */
  readonly cluster?: { readonly name: string; readonly encrypt: boolean };
  /** truss.egress.via: next hops of traffic leaving the network (bare IPs, v4 first); core/egress.ts */
  readonly egressVia?: readonly string[];
  /** truss.bandwidth / truss.bandwidth.ingress: the default limits of each container (bit/s) */
  readonly bandwidth?: BandwidthLimits;
  /** truss.mode=routed: no bridge, a point-to-point veth per container (core/routed.ts); absent = bridge */
  readonly mode?: 'routed';
}

/**
 * A run-time policy for a network (`truss policy set`), stored apart from the network's
 * creation intent. `ingress: null` means open, whatever the network was created with.
 */
export interface NetworkPolicyRecord {
  readonly networkId: string;
  readonly ingress: IngressPolicy | null;
}

export interface EndpointSpec {
  readonly networkId: string;
  readonly id: string;
  readonly hostVeth: string;
  readonly peerVeth: string;
  readonly mac: string;
  /** CIDR form, e.g. "198.18.0.2/24" */
  readonly ipv4?: string;
  readonly ipv6?: string;
  /** truss.* driver options of this endpoint */
  readonly options: Readonly<Record<string, string>>;
  /** --driver-opt truss.ingress: replaces the network's policy for this container */
  readonly ingress?: IngressPolicy;
  /** --driver-opt truss.bandwidth*: replaces the network's limit, direction by direction */
  readonly bandwidth?: BandwidthLimits;
  readonly sandboxKey?: string;
  /** published ports (-p), set by ProgramExternalConnectivity, cleared by Revoke/Leave */
  readonly published?: Publication;
}

export interface PoolRecord {
  readonly id: string;
  readonly addressSpace: string;
  readonly family: Family;
  readonly pool: string;
  readonly subPool?: string;
  readonly dynamic: boolean;
  /** Next-free cursor (string of a bigint), so freed addresses are not reused at once. */
  readonly cursor?: string;
}

/** host: this host's own address on a cluster network (core/cluster/host-address.ts) */
export type AddressKind = 'gateway' | 'aux' | 'endpoint' | 'host';

export interface AddressRecord {
  readonly poolId: string;
  readonly address: string;
  readonly kind: AddressKind;
  /** com.docker.network.endpoint.name, when Docker gave one */
  readonly owner?: string;
}
