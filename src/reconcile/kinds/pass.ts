/** The desired state one reconcile pass hands every kind (derived once per pass by the Reconciler). */
import type { ClusterDesired } from '../../core/cluster/desired.ts';
import type { DesiredKernel } from '../../core/desired.ts';
import type { Intent } from '../../core/intent.ts';
import type { LinkPlan } from '../plan.ts';

export interface PassState {
  readonly intent: Intent;
  /** the local kernel objects, the firewall with its VXLAN guard */
  readonly kernel: DesiredKernel;
  /** undefined before the cluster store's first sync (cluster kinds are then paused) */
  readonly cluster: ClusterDesired | undefined;
  /** full passes: the kernel's links compared with the desired ones */
  readonly links?: LinkPlan;
  /** checks: the same, listed on the first call (a link kind that answers from the last look lists nothing) */
  readonly lookLinks?: () => Promise<LinkPlan>;
  /** the catalog of names is not known yet: the name/label sets are left as they are (selectorKind) */
  readonly namesPending?: boolean;
}
