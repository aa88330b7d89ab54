/**
 * Every kind of kernel object truss programs, in the order a pass runs them: bridges, veths,
 * firewall, DNS redirection (it matches bridges by name: needs no device), name/label policy sets,
 * policies, guards, shapers, published ports, cluster (WireGuard, VXLAN, host addresses, routes, proxy
 * NDP), egress (its routes need the bridges); removals of links last, veths before bridges.
 * A new kind is one dataplane file, one fake, and one entry here.
 */

import type { Dataplane } from '../core/contracts.ts';
import type { Logger } from '../obs/logger.ts';
import type { Kind } from './kind.ts';
import { hostAddressesKind, proxyNdpKind, routesKind, vxlanKind, wireguardKind } from './kinds/cluster.ts';
import { guardKind, policyKind, portsKind, routedRoutesKind, selectorKind, shaperKind } from './kinds/endpoint.ts';
import { dnsKind, egressKind, firewallKind } from './kinds/host.ts';
import type { Links } from './kinds/links.ts';
import type { PassState } from './kinds/pass.ts';

export function registry(dp: Dataplane, log: Logger, links: Links): Kind<PassState>[] {
  return [
    ...links.kinds(),
    firewallKind(dp),
    dnsKind(dp),
    // before the chains that name its sets; its removals run last, after theirs
    selectorKind(dp),
    policyKind(dp),
    guardKind(dp),
    routedRoutesKind(dp),
    shaperKind(dp, log),
    portsKind(dp),
    wireguardKind(dp),
    vxlanKind(dp),
    hostAddressesKind(dp),
    routesKind(dp),
    proxyNdpKind(dp),
    egressKind(dp),
  ];
}
