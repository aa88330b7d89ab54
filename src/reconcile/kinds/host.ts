/**
 * The host-wide whole objects: the firewall (nft tables, iptables shim, sysctls), DNS redirection
 * of dns-enabled networks and egress policy routing.
 */

import type { Dataplane } from '../../core/contracts.ts';
import type { DnsRedirectObject, FirewallObject } from '../../core/desired.ts';
import { computeEgress, type EgressObject } from '../../core/egress.ts';
import type { Owner, WholeKind } from '../kind.ts';
import type { PassState } from './pass.ts';

export const FIREWALL_KEY = 'firewall';
/** truss.dns: dns-enabled networks' DNS to truss's responder (table inet truss_dns) */
export const DNS_KEY = 'dns';
/** truss.egress.via: every network's policy-routing rules and table, one whole object */
export const EGRESS_KEY = 'egress';

/** a network's part of a host-wide object */
const hasNetwork = (w: { readonly networks: readonly { readonly networkId: string }[] }, owner: Owner) =>
  'network' in owner && w.networks.some((n) => n.networkId === owner.network);

const NO_EGRESS: EgressObject = { networks: [] };

export function firewallKind(dp: Dataplane): WholeKind<PassState, FirewallObject> {
  return {
    shape: 'whole',
    name: FIREWALL_KEY,
    watched: true,
    wanted: (d) => (d.kernel.firewall.networks.length > 0 ? d.kernel.firewall : undefined),
    check: (f) => (f ? dp.checkFirewall(f) : Promise.resolve([])),
    ensure: async (f) => {
      await dp.ensureFirewall(f);
      await dp.ensureSysctls(f);
    },
    remove: () => dp.removeFirewall(),
    // the firewall check compares with a wanted firewall; it cannot say that none is left
    blindRemoval: true,
    owns: hasNetwork,
  };
}

export function dnsKind(dp: Dataplane): WholeKind<PassState, DnsRedirectObject> {
  return {
    shape: 'whole',
    name: DNS_KEY,
    watched: true,
    // why no owns: the object names bridges, not networks; a request does not wait for it
    // with no upstream known yet, the table still learns the servers queried (daemon.json "dns")
    wanted: (d) => {
      const o = d.kernel.dnsRedirect;
      return o && o.bridges.length > 0 ? o : undefined;
    },
    // with nothing wanted, the check lists the table: a leftover shows as a problem and is removed
    check: (o) => dp.checkDnsRedirect(o),
    ensure: (o) => dp.ensureDnsRedirect(o),
    remove: () => dp.removeDnsRedirect(),
  };
}

export function egressKind(dp: Dataplane): WholeKind<PassState, EgressObject> {
  return {
    shape: 'whole',
    name: EGRESS_KEY,
    watched: true,
    wanted: (d) => {
      const e = computeEgress(d.intent.networks);
      return e.networks.length > 0 ? e : undefined;
    },
    check: (e) => dp.checkEgress(e ?? NO_EGRESS),
    ensure: (e) => dp.ensureEgress(e),
    remove: () => dp.ensureEgress(NO_EGRESS),
    owns: hasNetwork,
  };
}
