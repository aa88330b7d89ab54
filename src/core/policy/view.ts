/**
 * What the admin API answers for a network's port policy (GET/PUT /v1/networks/{id}/policy),
 * shared by the daemon (service/policy-service.ts) and the CLI (cli/format.ts).
 */
export interface PolicyCounterView {
  readonly packets: number;
  readonly bytes: number;
}

export interface PolicyEndpointView {
  readonly endpointId: string;
  readonly addresses: readonly string[];
  /** the policy in force for this endpoint (canonical text), null = open */
  readonly ingress: string | null;
  /** true when the endpoint's own --driver-opt truss.ingress replaces the network's policy */
  readonly override: boolean;
  /** false until Docker joins a container: only joined endpoints have rules and counters */
  readonly joined: boolean;
  readonly denied: PolicyCounterView;
}

export interface PolicyView {
  readonly networkId: string;
  /** the network-level policy in force (canonical text), null = open */
  readonly ingress: string | null;
  /** where it comes from: -o truss.ingress at creation, truss policy set/clear, or nothing */
  readonly source: 'created' | 'runtime' | 'open';
  readonly endpoints: readonly PolicyEndpointView[];
}
