/**
 * IPv6 forwarding for truss networks that reach out over v6 (a non-internal network with a v6
 * pool): the host routes between the bridge and its uplinks, as ip_forward does for v4
 * (sysctl.ts ensureFirewallSysctls). Raised once, never lowered, like ip_forward.
 *
 * why accept_ra=2 first: the kernel ignores router advertisements on any interface that
 * forwards unless its accept_ra is 2, and writing net.ipv6.conf.all.forwarding=1 turns
 * forwarding on for every interface. A host whose uplink learnt its v6 default route from
 * RAs (SLAAC, the common case) would lose it when the route expires (moby/moby#43466).
 * So before flipping forwarding from 0 to 1, each uplink (a link carrying a default route)
 * whose accept_ra is 1 is moved to 2: it keeps accepting RAs exactly as before. Other
 * interfaces are left alone on purpose (accept_ra=2 on a bridge such as docker0 would let
 * its containers configure the host). Links that come up later with accept_ra=1 do not
 * accept RAs while forwarding is on: the admin sets 2 on them (docs/ipv6.md).
 */
import type { FirewallObject } from '../../core/desired.ts';
import type { Exec } from './exec.ts';
import { acceptRaKey, readSysctl, writeSysctl } from './sysctl.ts';

export const IP6_FORWARD_KEY = 'net/ipv6/conf/all/forwarding';

/** Pure: whether some network routes v6 beyond its bridge. */
export const needsIpv6Forwarding = (f: FirewallObject): boolean =>
  f.networks.some((n) => !n.internal && n.subnets6.length > 0);

export interface Ipv6ForwardingChange {
  /** true when forwarding went from 0 to 1 */
  readonly raised: boolean;
  /** uplinks whose accept_ra went from 1 to 2 so they keep accepting router advertisements */
  readonly acceptRa2: readonly string[];
}

const NONE: Ipv6ForwardingChange = { raised: false, acceptRa2: [] };

/**
 * Raises net.ipv6.conf.all.forwarding when `f` needs it and it is 0, after moving the
 * uplinks with accept_ra=1 to 2. Nothing when IPv6 is off on the host (the key is absent).
 */
export async function ensureIpv6Forwarding(
  exec: Exec,
  f: FirewallObject,
  uplinks: () => Promise<readonly string[]>,
): Promise<Ipv6ForwardingChange> {
  if (!needsIpv6Forwarding(f)) return NONE;
  if ((await readSysctl(exec, IP6_FORWARD_KEY)) !== '0') return NONE;
  const acceptRa2: string[] = [];
  // why asked only now: listing the uplinks costs processes, and this runs on every firewall change
  for (const u of [...new Set(await uplinks())].sort()) {
    if ((await readSysctl(exec, acceptRaKey(u))) !== '1') continue;
    await writeSysctl(exec, acceptRaKey(u), '2');
    acceptRa2.push(u);
  }
  await writeSysctl(exec, IP6_FORWARD_KEY, '1');
  return { raised: true, acceptRa2 };
}
