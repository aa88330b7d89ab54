/**
 * The cluster's objects: the WireGuard device, the VXLAN device, this host's addresses on them,
 * the routes through them (whose source those addresses are; whole objects), then per dual-stack
 * cluster network the proxy NDP entries of its bridge (a set keyed by bridge). Paused before the
 * cluster store's first sync: peers are never pruned from a view not read yet.
 */

import { type RouteObject, type VxlanObject, WG_DEVICE, type WireguardObject } from '../../core/cluster/desired.ts';
import type { HostAddressObject } from '../../core/cluster/host-address.ts';
import { computeProxyNdp, type ProxyNdpObject } from '../../core/cluster/proxy-ndp.ts';
import type { Dataplane } from '../../core/contracts.ts';
import { VXLAN_DEVICE } from '../../core/naming.ts';
import { objectKey, ownedBy, type SetKind, type WholeKind } from '../kind.ts';
import { bridgeKey } from './links.ts';
import type { PassState } from './pass.ts';

export const WIREGUARD_KEY = 'wireguard';
export const VXLAN_KEY = 'vxlan';
export const HOST_ADDRESSES_KEY = 'host-addresses';
export const ROUTES_KEY = 'routes';

const paused = (d: PassState) => (d.cluster === undefined ? 'cluster store not synced yet' : undefined);

/** one unreadable cluster device must not hide the rest (status shows what it can) */
const checked = (what: string, p: Promise<readonly string[]>) =>
  p.catch((e: unknown) => {
    throw new Error(`${what} could not be checked: ${e instanceof Error ? e.message : String(e)}`);
  });

export function wireguardKind(dp: Dataplane): WholeKind<PassState, WireguardObject> {
  return {
    shape: 'whole',
    name: WIREGUARD_KEY,
    paused,
    wanted: (d) => d.cluster?.wireguard,
    check: (w) => checked('WireGuard device', dp.checkWireguard(w, WG_DEVICE)),
    ensure: (w) => dp.ensureWireguard(w),
    remove: () => dp.removeWireguard(WG_DEVICE),
  };
}

export function vxlanKind(dp: Dataplane): WholeKind<PassState, VxlanObject> {
  return {
    shape: 'whole',
    name: VXLAN_KEY,
    paused,
    wanted: (d) => d.cluster?.vxlan,
    check: (v) => checked('VXLAN device', dp.checkVxlan(v, VXLAN_DEVICE)),
    ensure: (v) => dp.ensureVxlan(v),
    remove: () => dp.removeVxlan(VXLAN_DEVICE),
  };
}

export function hostAddressesKind(dp: Dataplane): WholeKind<PassState, readonly HostAddressObject[]> {
  return {
    shape: 'whole',
    name: HOST_ADDRESSES_KEY,
    watched: true,
    paused,
    wanted: (d) => (d.cluster?.hostAddresses?.length ? d.cluster.hostAddresses : undefined),
    check: (a) => checked('host addresses', dp.checkHostAddresses(a ?? [])),
    ensure: (a) => dp.ensureHostAddresses(a),
    remove: () => dp.ensureHostAddresses([]),
    // they go on the devices
    needs: [WIREGUARD_KEY, VXLAN_KEY],
  };
}

export function routesKind(dp: Dataplane): WholeKind<PassState, readonly RouteObject[]> {
  return {
    shape: 'whole',
    name: ROUTES_KEY,
    watched: true,
    paused,
    wanted: (d) => (d.cluster && d.cluster.routes.length > 0 ? d.cluster.routes : undefined),
    check: (r) => checked('cluster routes', dp.checkRoutes(r ?? [])),
    ensure: (r) => dp.ensureRoutes(r),
    remove: () => dp.ensureRoutes([]),
    // the kernel refuses a route via a missing link, or from a source that is no local address
    needs: [WIREGUARD_KEY, VXLAN_KEY, HOST_ADDRESSES_KEY],
  };
}

/** a dual-stack cluster network's proxy NDP entries, by bridge name */
export const proxyNdpKey = (bridge: string): string => objectKey('proxy-ndp', bridge);

/**
 * Containers on other hosts answered by the bridge (core/cluster/proxy-ndp.ts): after the routes,
 * so that a container is told an address is on-link only once the host can forward to it. The
 * entries go with their bridge; the check reports only the wanted bridges (extra: none).
 */
export function proxyNdpKind(dp: Dataplane): SetKind<PassState, ProxyNdpObject> {
  const memo = new WeakMap<PassState, readonly ProxyNdpObject[]>();
  const wanted = (d: PassState): readonly ProxyNdpObject[] => {
    let w = memo.get(d);
    if (!w) {
      w = d.cluster ? computeProxyNdp(d.intent.networks, d.cluster.routes) : [];
      memo.set(d, w);
    }
    return w;
  };
  return {
    shape: 'set',
    name: 'proxy-ndp',
    paused,
    wanted,
    check: (w) => dp.checkProxyNdp(w),
    ensure: (o) => dp.ensureProxyNdp(o),
    // nothing applied is known after a restart: then the bridge (and its entries) is going anyway
    remove: (name, applied) => (applied ? dp.removeProxyNdp(name, applied.subnets) : Promise.resolve()),
    needs: (o) => bridgeKey(o.name),
    extrasMayBeForeign: false,
    owns: ownedBy,
  };
}
