/** What the stored intent says, as one reconcile pass reads it. */
import type { ClusterView } from './cluster/desired.ts';
import type { DnsRedirectObject } from './desired.ts';
import type { EndpointSpec, NetworkPolicyRecord, NetworkSpec } from './model.ts';
import type { NamedEndpoint } from './names/model.ts';

export interface Intent {
  readonly networks: readonly NetworkSpec[];
  readonly endpoints: readonly EndpointSpec[];
  readonly policies: readonly NetworkPolicyRecord[];
  readonly revision: number;
  /**
   * the shared cluster state as this host last saw it; absent without a cluster store;
   * 'pending' until the first sync (cluster objects are then left exactly as they are)
   */
  readonly cluster?: ClusterView | 'pending';
  /**
   * the name catalog (this host's and the other hosts' named endpoints, core/names); absent:
   * no name source (every name/label set is empty); 'pending' until the sources were read once
   * (the name/label sets in the kernel are then left exactly as they are)
   */
  readonly names?: readonly NamedEndpoint[] | 'pending';
  /** truss.dns networks' queries to redirect to the responder (core/names/catalog.ts planDns); absent: none */
  readonly dns?: DnsRedirectObject;
}
