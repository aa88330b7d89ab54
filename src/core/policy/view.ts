/**
 * What the admin API answers for a network's port policy (GET/PUT /v1/networks/{id}/policy),
 * shared by the daemon (service/policy-service.ts) and the CLI (cli/format.ts); the schema
 * is in core/admin-api.ts.
 */
import type { PolicyBody, PolicyEndpointBody } from '../admin-api.ts';

export type PolicyView = PolicyBody;
export type PolicyEndpointView = PolicyEndpointBody;
export type PolicyCounterView = PolicyEndpointView['denied'];
