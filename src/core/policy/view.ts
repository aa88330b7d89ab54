/**
 * What the admin API answers for a network's port policy (GET/PUT /v1/networks/{id}/policy),
 * shared by the daemon (service/policy-service.ts) and the CLI (cli/format.ts); the schema
 * is in core/admin-api.ts. And the policy in force as status, topology and the CLI show it.
 */
import type { PolicyBody, PolicyEndpointBody, StatusBody } from '../admin-api.ts';
import type { IngressPolicy } from './model.ts';
import { formatIngress } from './parse.ts';

export type PolicyView = PolicyBody;
export type PolicyEndpointView = PolicyEndpointBody;
export type PolicyCounterView = PolicyEndpointView['denied'];

type Rules = StatusBody['networks'][number]['ingress'];

/** Rules as text: 'open' when there are none (absent or null), else the canonical rules. */
export function ingressText(rules: Rules | null): string {
  // why the cast: a reply's optional fields may read undefined (StatusBody), the parsed rules' never do
  return rules === undefined || rules === null ? 'open' : formatIngress(rules as IngressPolicy);
}

/** A network's port policy in force, as text: the run-time one (truss policy set/clear), else the one from creation. */
export function networkIngressText(
  n: Pick<StatusBody['networks'][number], 'id' | 'ingress'>,
  policies: StatusBody['policies'] | undefined,
): string {
  const runtime = (policies ?? []).find((p) => p.networkId === n.id);
  return ingressText(runtime ? runtime.ingress : n.ingress);
}
