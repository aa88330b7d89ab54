/**
 * Features refused when the host lacks a piece they need (core/preflight.ts: Capabilities):
 * checked by the network service before any intent is written, so a container's Join is never
 * the first to fail on a missing program. Pure over what the caller hands in.
 */

import type { NetworkSpec } from '../core/model.ts';
import { shortId } from '../core/naming.ts';
import { type NetworkOptions, OPT_CLUSTER, OPT_ENCRYPT } from '../core/options.ts';
import { OPT_INGRESS } from '../core/policy/model.ts';
import { type Capabilities, requireFeature } from '../core/preflight.ts';

/** CreateNetwork: its port policy, encrypted cluster mode and IPv6 pool. */
export function checkNetworkFeatures(
  caps: Capabilities | undefined,
  opts: Pick<NetworkOptions, 'ingress' | 'cluster'>,
  ipv6Pool: string | undefined,
): void {
  if (opts.ingress !== undefined) requireFeature(caps, 'port-policy', OPT_INGRESS);
  if (opts.cluster?.encrypt) {
    const subject = `${OPT_CLUSTER}=${opts.cluster.name} with ${OPT_ENCRYPT}=true (the default)`;
    requireFeature(caps, 'encrypted-cluster', subject);
  }
  if (ipv6Pool !== undefined) requireFeature(caps, 'ipv6', `the IPv6 pool ${ipv6Pool}`);
}

/**
 * CreateEndpoint: an IPv6 address, and a policy the endpoint will get at Join (its own
 * truss.ingress, the network's, or one set at run time), which needs conntrack and br_netfilter.
 * `runtimePolicy` is asked only then: undefined = never set at run time, ingress null = cleared.
 */
export async function checkEndpointFeatures(
  caps: Capabilities | undefined,
  net: Pick<NetworkSpec, 'id' | 'ingress'>,
  ep: { readonly ownIngress: boolean; readonly addressIpv6: string | undefined },
  runtimePolicy: () => Promise<{ readonly ingress: unknown } | undefined>,
): Promise<void> {
  if (ep.addressIpv6 !== undefined) requireFeature(caps, 'ipv6', `the IPv6 address ${ep.addressIpv6}`);
  if (!caps?.missing('port-policy')) return;
  if (ep.ownIngress) requireFeature(caps, 'port-policy', OPT_INGRESS);
  const runtime = await runtimePolicy();
  if (runtime !== undefined ? runtime.ingress !== null : net.ingress !== undefined) {
    requireFeature(caps, 'port-policy', `the port policy of network ${shortId(net.id)} (${OPT_INGRESS})`);
  }
}
