/**
 * An in-memory kernel for unit tests of the layers above the dataplane (Felix's
 * mocknetlink): it keeps links and the firewall as plain objects, applies the same
 * ownership rules as the Linux dataplane (marks, refusal of foreign links, "gone" is
 * success, no veth re-created after Join), records every call, and fails on demand.
 *
 *   const dp = createFakeDataplane();
 *   dp.failNext('ensureVeth', new KernelError('EBUSY', ['ip'], 2, 'busy'));
 *   dp.addForeignLink('trb0123456789ab');   // someone else's link with our name
 *   dp.deleteBehindBack('trv0123456789ab'); // drift
 *   dp.deletePolicyTableBehindBack();          // drift: every policy gone
 *   dp.policyCounters.ep_0123456789ab = { packets: 3, bytes: 180 };
 *
 * The per-kind fakes: fake-calls.ts (the call log and faults), fake-links.ts (bridges and
 * veths), fake-nft.ts (firewall, policies, published ports, guards); this file adds the
 * cluster devices, routes, egress and bandwidth shapers and is the Dataplane the tests use.
 *
 * Port policies are kept as the PolicyObjects last ensured (validated as the Linux
 * dataplane validates them); an address ensured for one chain is taken from any other,
 * as the kernel map re-points it.
 */
import type { ShaperObject } from '../../core/bandwidth.ts';
import type { RouteObject, VxlanObject, WireguardObject } from '../../core/cluster/desired.ts';
import type { HostAddressObject } from '../../core/cluster/host-address.ts';
import type { ProxyNdpObject } from '../../core/cluster/proxy-ndp.ts';
import type { Dataplane, SetCheck, WireguardPeerStatus } from '../../core/contracts.ts';
import type { EgressNetwork, EgressObject } from '../../core/egress.ts';
import { errors } from '../../core/errors.ts';
import { shortId } from '../../core/naming.ts';
import { clone } from './fake-calls.ts';
import { FakeNftables } from './fake-nft.ts';

export type { DataplaneMethod, FakeCall } from './fake-calls.ts';
export type { FakeLink } from './fake-links.ts';

export class FakeDataplane extends FakeNftables implements Dataplane {
  wireguard: WireguardObject | undefined;
  vxlan: VxlanObject | undefined;
  routes: RouteObject[] = [];
  /** this host's addresses on the cluster devices; they go with their device, as in the kernel */
  hostAddresses: HostAddressObject[] = [];
  /** bridge -> the proxy NDP entries (and switches) last ensured on it */
  readonly proxyNdp = new Map<string, ProxyNdpObject>();
  /** truss.egress.via: each network's table and rules as last ensured, by table id */
  readonly egress = new Map<number, EgressNetwork>();
  /** host veth name -> the bandwidth shaping last ensured on it (its qdiscs and ifb) */
  readonly shapers = new Map<string, ShaperObject>();

  // ----- cluster: one WireGuard device and truss routes, as plain objects -----

  async ensureWireguard(w: WireguardObject): Promise<void> {
    this.enter('ensureWireguard', w);
    this.wireguard = clone(w);
  }

  async removeWireguard(name: string): Promise<void> {
    this.enter('removeWireguard', name);
    if (this.wireguard?.name === name) this.wireguard = undefined;
    this.hostAddresses = this.hostAddresses.filter((a) => a.dev !== name);
  }

  async checkWireguard(w: WireguardObject | undefined, name: string): Promise<readonly string[]> {
    this.enter('checkWireguard', w);
    if (!w) return this.wireguard ? [`wireguard device ${name} exists but no cluster network needs it`] : [];
    if (!this.wireguard) return [`wireguard device ${w.name} is missing`];
    return JSON.stringify(this.wireguard) === JSON.stringify(w) ? [] : [`wireguard device ${w.name} differs`];
  }

  async ensureHostAddresses(addrs: readonly HostAddressObject[]): Promise<void> {
    this.enter('ensureHostAddresses', addrs);
    const present = (dev: string): boolean => this.wireguard?.name === dev || this.vxlan?.name === dev;
    const missing = addrs.find((a) => !present(a.dev));
    if (missing) throw errors.reconcileFailed(`device ${missing.dev} is missing: no address can go on it`);
    this.hostAddresses = clone([...addrs]);
  }

  async checkHostAddresses(addrs: readonly HostAddressObject[]): Promise<readonly string[]> {
    this.enter('checkHostAddresses', addrs);
    const key = (a: HostAddressObject): string => `${a.dev} ${a.address}`;
    const have = new Set(this.hostAddresses.map(key));
    const want = new Set(addrs.map(key));
    return [
      ...[...want].filter((k) => !have.has(k)).map((k) => `host address ${k} is missing`),
      ...[...have].filter((k) => !want.has(k)).map((k) => `host address ${k} is not wanted`),
    ];
  }

  async ensureRoutes(routes: readonly RouteObject[]): Promise<void> {
    this.enter('ensureRoutes', routes);
    this.routes = clone([...routes]);
  }

  async checkRoutes(routes: readonly RouteObject[]): Promise<readonly string[]> {
    this.enter('checkRoutes', routes);
    return JSON.stringify(this.routes) === JSON.stringify(routes) ? [] : ['truss routes differ'];
  }

  async ensureVxlan(v: VxlanObject): Promise<void> {
    this.enter('ensureVxlan', v);
    this.vxlan = clone(v);
  }

  async removeVxlan(name: string): Promise<void> {
    this.enter('removeVxlan', name);
    if (this.vxlan?.name === name) this.vxlan = undefined;
    this.hostAddresses = this.hostAddresses.filter((a) => a.dev !== name);
  }

  async checkVxlan(v: VxlanObject | undefined, name: string): Promise<readonly string[]> {
    this.enter('checkVxlan', v);
    if (!v) return this.vxlan ? [`VXLAN device ${name} exists but no cluster network needs it`] : [];
    if (!this.vxlan) return [`VXLAN device ${v.name} is missing`];
    return JSON.stringify(this.vxlan) === JSON.stringify(v) ? [] : [`VXLAN device ${v.name} differs`];
  }

  async checkProxyNdp(desired: readonly ProxyNdpObject[]): Promise<SetCheck> {
    this.enter('checkProxyNdp', desired);
    const drifted = desired
      // the kernel's entries go with their bridge
      .filter((o) => !this.links.has(o.name) || JSON.stringify(this.proxyNdp.get(o.name)) !== JSON.stringify(o))
      .map((o) => o.name);
    return { drifted, extra: [], problems: drifted.map((b) => `proxy NDP on ${b}: missing or different`) };
  }

  async ensureProxyNdp(o: ProxyNdpObject): Promise<void> {
    this.enter('ensureProxyNdp', o);
    if (this.links.get(o.name)?.kind !== 'bridge') {
      throw errors.reconcileFailed(`proxy NDP on ${o.name}: the bridge is missing`);
    }
    this.proxyNdp.set(o.name, clone(o));
  }

  async removeProxyNdp(bridge: string, _subnets: readonly string[]): Promise<void> {
    this.enter('removeProxyNdp', bridge);
    this.proxyNdp.delete(bridge);
  }

  async ensureEgress(e: EgressObject): Promise<void> {
    this.enter('ensureEgress', e);
    this.egress.clear();
    for (const n of e.networks) this.egress.set(n.table, clone(n));
  }

  async checkEgress(e: EgressObject): Promise<readonly string[]> {
    this.enter('checkEgress', e);
    const want = new Map(e.networks.map((n) => [n.table, n]));
    const problems = e.networks
      .filter((n) => JSON.stringify(this.egress.get(n.table)) !== JSON.stringify(n))
      .map((n) => `egress table ${n.table} of network ${shortId(n.networkId)} is missing or differs`);
    for (const t of this.egress.keys()) if (!want.has(t)) problems.push(`egress table ${t} is not wanted`);
    return problems;
  }

  async readVxlanPeers(name: string): Promise<readonly string[]> {
    this.enter('readVxlanPeers', name);
    return this.vxlan?.name === name ? this.vxlan.peers.map((p) => p.address).sort() : [];
  }

  // ----- bandwidth limits: the shaping of each host veth, as the ShaperObject last ensured -----

  async checkShapers(desired: readonly ShaperObject[]): Promise<SetCheck> {
    this.enter('checkShapers', desired);
    const drifted: string[] = [];
    const problems: string[] = [];
    for (const s of desired) {
      if (JSON.stringify(this.shapers.get(s.name)) === JSON.stringify(s)) continue;
      drifted.push(s.name);
      problems.push(`bandwidth of ${s.name}: missing or different`);
    }
    const wanted = new Set(desired.map((s) => s.name));
    const extra = [...this.shapers.keys()].filter((name) => !wanted.has(name));
    for (const name of extra) problems.push(`bandwidth of ${name}: truss shaping present but not wanted`);
    return { drifted, extra, problems };
  }

  async ensureShaper(s: ShaperObject): Promise<void> {
    this.enter('ensureShaper', s);
    if (this.links.get(s.name)?.kind !== 'veth') {
      throw errors.reconcileFailed(`interface ${s.name} is missing; cannot shape it`);
    }
    this.shapers.set(s.name, clone(s));
  }

  async removeShaper(name: string, _ifb: string): Promise<void> {
    this.enter('removeShaper', name);
    this.shapers.delete(name);
  }

  async readWireguardPeers(name: string): Promise<readonly WireguardPeerStatus[]> {
    this.enter('readWireguardPeers', name);
    return (this.wireguard?.peers ?? []).map((p) => ({
      publicKey: p.publicKey,
      ...(p.endpoint !== undefined ? { endpoint: p.endpoint } : {}),
      allowedIps: p.allowedIps,
      latestHandshake: 0,
      rxBytes: 0,
      txBytes: 0,
    }));
  }
}

export const createFakeDataplane = (): FakeDataplane => new FakeDataplane();
