/** What the stored intent says, as one reconcile pass reads it. */
import type { ClusterView } from './cluster/desired.ts';
import type { EndpointSpec, NetworkPolicyRecord, NetworkSpec } from './model.ts';

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
}
