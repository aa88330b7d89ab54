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
 * Port policies are kept as the PolicyObjects last ensured (validated as the Linux
 * dataplane validates them); an address ensured for one chain is taken from any other,
 * as the kernel map re-points it.
 */
import type { ShaperObject } from '../../core/bandwidth.ts';
import type { RouteObject, VxlanObject, WireguardObject } from '../../core/cluster/desired.ts';
import type {
  BridgeObject,
  FirewallObject,
  GuardObject,
  PolicyObject,
  PortsObject,
  VethObject,
} from '../../core/desired.ts';
import type { EgressNetwork, EgressObject } from '../../core/egress.ts';
import { errors } from '../../core/errors.ts';
import { isTrussLinkName, shortId } from '../../core/naming.ts';
import type {
  Dataplane,
  GuardCheck,
  ObservedLink,
  PolicyCheck,
  PolicyCounter,
  ShaperCheck,
  WireguardPeerStatus,
} from '../../core/ports.ts';
import { BASE_RULES, diffPorts, type PortElement, planPortDeletes, portElements } from '../linux/dnat.ts';
import { KernelError } from '../linux/exec.ts';
import { guardElements } from '../linux/guard.ts';
import { checkIfName } from '../linux/links.ts';
import { checkChainName, checkPolicyObject } from '../linux/policy-sets.ts';
import { endpointDisconnected } from '../linux/veth.ts';

export type DataplaneMethod = keyof Dataplane;

export interface FakeLink {
  name: string;
  ifindex: number;
  kind: string;
  mark?: { kind: 'br' | 'ep'; id: string; state?: string };
  /** a label someone else put on a foreign link */
  alias?: string;
  mtu: number;
  up: boolean;
  master?: string;
  mac: string;
  addresses: string[];
  /** veth: the other end's name */
  peer?: string;
}

export interface FakeCall {
  readonly method: DataplaneMethod;
  readonly arg: unknown;
}

const clone = <T>(x: T): T => structuredClone(x);
const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export class FakeDataplane implements Dataplane {
  readonly links = new Map<string, FakeLink>();
  readonly calls: FakeCall[] = [];
  firewall: FirewallObject | undefined;
  wireguard: WireguardObject | undefined;
  vxlan: VxlanObject | undefined;
  routes: RouteObject[] = [];
  /** truss.egress.via: each network's table and rules as last ensured, by table id */
  readonly egress = new Map<number, EgressNetwork>();
  readonly sysctls = new Map<string, string>([['net/ipv4/ip_forward', '0']]);
  /** table inet truss_policy exists */
  policyTable = false;
  /** chain name -> the policy last ensured for it */
  readonly policies = new Map<string, PolicyObject>();
  /** chain name -> denied counter; tests set values, ensure keeps them, remove drops them */
  readonly policyCounters: Record<string, PolicyCounter> = {};
  /** host veth name -> the bandwidth shaping last ensured on it (its qdiscs and ifb) */
  readonly shapers = new Map<string, ShaperObject>();
  /** table inet truss_ports: its elements (validated as the Linux dataplane does) and bridges; undefined = no table */
  portsTable: { elements: PortElement[]; bridges: Set<string> } | undefined;
  /** table bridge truss_guard exists */
  guardTable = false;
  /** port -> the guard last ensured for it */
  readonly guards = new Map<string, GuardObject>();
  #nextIndex = 2;
  readonly #faults = new Map<DataplaneMethod, unknown[]>();
  readonly #sticky = new Map<DataplaneMethod, unknown>();

  /** The next call of `method` throws `error` (queued: call again to fail the one after too). */
  failNext(method: DataplaneMethod, error: unknown): void {
    this.#faults.set(method, [...(this.#faults.get(method) ?? []), error]);
  }

  /** Every call of `method` throws `error` until clearFaults(). */
  failAlways(method: DataplaneMethod, error: unknown): void {
    this.#sticky.set(method, error);
  }

  clearFaults(): void {
    this.#faults.clear();
    this.#sticky.clear();
  }

  /** A link truss did not make, under any name (e.g. one of ours): ensure must refuse it. */
  addForeignLink(name: string, kind = 'bridge', alias?: string): FakeLink {
    const l: FakeLink = {
      name,
      ifindex: this.#nextIndex++,
      kind,
      mtu: 1500,
      up: true,
      mac: this.#mac(),
      addresses: [],
    };
    if (alias !== undefined) l.alias = alias;
    this.links.set(name, l);
    return l;
  }

  /** Drift: a link vanishes (with its veth peer), as if an admin deleted it. */
  deleteBehindBack(name: string): void {
    const l = this.links.get(name);
    if (l?.peer) this.links.delete(l.peer);
    this.links.delete(name);
  }

  /** Docker's part of Join: the peer leaves the host namespace for the container. */
  movePeerToContainer(peer: string): void {
    const p = this.links.get(peer);
    const host = p?.peer ? this.links.get(p.peer) : undefined;
    if (host) delete host.peer;
    this.links.delete(peer);
  }

  /** Drift: someone ran `nft delete table inet truss_policy`. */
  deletePolicyTableBehindBack(): void {
    this.policyTable = false;
    this.policies.clear();
    for (const k of Object.keys(this.policyCounters)) delete this.policyCounters[k];
  }

  callsOf(method: DataplaneMethod): FakeCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  #enter(method: DataplaneMethod, arg: unknown): void {
    this.calls.push({ method, arg: clone(arg) });
    const queued = this.#faults.get(method);
    if (queued && queued.length > 0) throw queued.shift();
    if (this.#sticky.has(method)) throw this.#sticky.get(method);
  }

  #mac(): string {
    const n = this.#nextIndex;
    return `02:fa:4e:00:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`;
  }

  async listLinks(): Promise<readonly ObservedLink[]> {
    this.#enter('listLinks', undefined);
    return [...this.links.values()]
      .filter((l) => l.mark !== undefined || isTrussLinkName(l.name))
      .sort(byName)
      .map(({ alias: _a, peer: _p, ...rest }) => clone(rest));
  }

  async ensureBridge(b: BridgeObject): Promise<void> {
    this.#enter('ensureBridge', b);
    const cur = this.links.get(b.name);
    if (cur && !(cur.kind === 'bridge' && cur.mark?.kind === 'br' && cur.mark.id === b.networkId)) {
      throw errors.kernelObjectForeign(
        `network ${shortId(b.networkId)}: interface ${b.name} already exists and is not truss's bridge for it`,
      );
    }
    const l = cur ?? { name: b.name, ifindex: this.#nextIndex++, kind: 'bridge', mac: this.#mac() };
    this.links.set(b.name, {
      ...l,
      mark: { kind: 'br', id: b.networkId },
      mtu: b.mtu,
      mac: b.mac,
      up: true,
      addresses: [...b.addresses],
    });
  }

  async removeBridge(name: string): Promise<void> {
    this.#enter('removeBridge', name);
    if (this.links.get(name)?.mark?.kind !== 'br') return;
    this.links.delete(name);
    for (const l of this.links.values()) if (l.master === name) delete l.master;
  }

  async ensureVeth(v: VethObject): Promise<void> {
    this.#enter('ensureVeth', v);
    const cur = this.links.get(v.name);
    if (!cur) {
      if (v.joined) throw endpointDisconnected(v);
      if (!this.links.has(v.bridge)) {
        throw new KernelError(
          'ENODEV',
          ['ip', '-batch', '-'],
          1,
          `Cannot find device "${v.bridge}"\nCommand failed -:2`,
        );
      }
      if (this.links.has(v.peer)) {
        throw new KernelError('EEXIST', ['ip', '-batch', '-'], 2, 'RTNETLINK answers: File exists\nCommand failed -:1');
      }
      this.links.set(v.peer, {
        name: v.peer,
        ifindex: this.#nextIndex++,
        kind: 'veth',
        mtu: v.mtu,
        up: false,
        mac: v.peerMac,
        addresses: [],
        peer: v.name,
      });
    }
    const owned =
      cur?.kind === 'veth' &&
      (cur.mark ? cur.mark.kind === 'ep' && cur.mark.id === v.endpointId : !cur.alias && isTrussLinkName(cur.name));
    if (cur && !owned) {
      throw errors.kernelObjectForeign(`endpoint ${shortId(v.endpointId)}: interface ${v.name} already exists`);
    }
    const l = cur ?? {
      name: v.name,
      ifindex: this.#nextIndex++,
      kind: 'veth',
      mac: this.#mac(),
      addresses: [],
      peer: v.peer,
    };
    this.links.set(v.name, { ...l, mark: { kind: 'ep', id: v.endpointId }, mtu: v.mtu, up: true, master: v.bridge });
  }

  async removeVeth(name: string): Promise<void> {
    this.#enter('removeVeth', name);
    const cur = this.links.get(name);
    const owned = cur?.kind === 'veth' && (cur.mark ? cur.mark.kind === 'ep' : !cur.alias && isTrussLinkName(name));
    if (!owned) return;
    this.deleteBehindBack(name);
  }

  async checkFirewall(f: FirewallObject): Promise<readonly string[]> {
    this.#enter('checkFirewall', f);
    if (!this.firewall) return ['nft table inet truss is missing'];
    return JSON.stringify(this.firewall) === JSON.stringify(f)
      ? []
      : ['nft table inet truss differs from the rendering'];
  }

  async applyFirewall(f: FirewallObject): Promise<void> {
    this.#enter('applyFirewall', f);
    this.firewall = clone(f);
  }

  async removeFirewall(): Promise<void> {
    this.#enter('removeFirewall', undefined);
    this.firewall = undefined;
  }

  async ensureSysctls(f: FirewallObject): Promise<void> {
    this.#enter('ensureSysctls', f);
    if (f.networks.some((n) => !n.internal)) this.sysctls.set('net/ipv4/ip_forward', '1');
  }

  async checkPolicies(desired: readonly PolicyObject[]): Promise<PolicyCheck> {
    this.#enter('checkPolicies', desired);
    if (!this.policyTable) {
      const drifted = desired.map((p) => p.name);
      return {
        drifted,
        extra: [],
        problems: drifted.length > 0 ? ['table inet truss_policy is missing'] : [],
        tablePresent: false,
      };
    }
    const drifted: string[] = [];
    const problems: string[] = [];
    for (const p of desired) {
      const have = this.policies.get(p.name);
      if (have && samePolicy(have, p)) continue;
      drifted.push(p.name);
      problems.push(have ? `policy ${p.name}: differs` : `policy ${p.name}: chain ${p.name} is missing`);
    }
    const wanted = new Set(desired.map((p) => p.name));
    const extra = [...this.policies.keys()].filter((n) => !wanted.has(n)).sort();
    for (const n of extra) problems.push(`policy ${n}: installed but not desired`);
    return { drifted, extra, problems, tablePresent: true };
  }

  async ensurePolicy(p: PolicyObject): Promise<void> {
    this.#enter('ensurePolicy', p);
    const c = checkPolicyObject(p);
    const mine = new Set([...c.addresses4, ...c.addresses6]);
    for (const [name, other] of this.policies) {
      if (name === p.name || !other.addresses.some((a) => mine.has(a))) continue;
      this.policies.set(name, { ...other, addresses: other.addresses.filter((a) => !mine.has(a)) });
    }
    this.policyTable = true;
    this.policies.set(p.name, clone(p));
    this.policyCounters[p.name] ??= { packets: 0, bytes: 0 };
  }

  async removePolicy(name: string): Promise<void> {
    this.#enter('removePolicy', name);
    checkChainName(name);
    this.policies.delete(name);
    delete this.policyCounters[name];
  }

  async removePolicyTable(): Promise<void> {
    this.#enter('removePolicyTable', undefined);
    this.deletePolicyTableBehindBack();
  }

  async readPolicyCounters(): Promise<Readonly<Record<string, PolicyCounter>>> {
    this.#enter('readPolicyCounters', undefined);
    return this.policyTable ? clone(this.policyCounters) : {};
  }

  // ----- published ports: the elements of table inet truss_ports -----

  async checkPorts(desired: readonly PortsObject[]): Promise<PolicyCheck> {
    this.#enter('checkPorts', desired);
    const t = this.portsTable;
    const rules = Object.fromEntries(
      Object.entries(BASE_RULES).map(([h, rs]) => [h, rs.map((r) => /comment "([^"]*)"$/.exec(r)?.[1] ?? '')]),
    );
    const table = t ? { elements: t.elements, rules, bridges: [...t.bridges] } : undefined;
    return { ...diffPorts(desired, table), tablePresent: t !== undefined };
  }

  async ensurePorts(p: PortsObject): Promise<void> {
    this.#enter('ensurePorts', p);
    const els = portElements(p);
    this.portsTable ??= { elements: [], bridges: new Set() };
    const t = this.portsTable;
    const gone = new Set(planPortDeletes(p, t.elements));
    t.elements = [...t.elements.filter((e) => !gone.has(e)), ...els];
    t.bridges.add(p.bridge);
  }

  async removePorts(name: string): Promise<void> {
    this.#enter('removePorts', name);
    if (this.portsTable) this.portsTable.elements = this.portsTable.elements.filter((e) => e.owner !== name);
  }

  async removePortsTable(): Promise<void> {
    this.#enter('removePortsTable', undefined);
    this.portsTable = undefined;
  }

  // ----- anti-spoofing: guarded ports, as the GuardObjects last ensured -----

  async checkGuards(desired: readonly GuardObject[]): Promise<GuardCheck> {
    this.#enter('checkGuards', desired);
    if (!this.guardTable) {
      const drifted = desired.map((g) => g.name);
      return {
        drifted,
        exact: [],
        extra: [],
        problems: drifted.length > 0 ? ['table bridge truss_guard is missing'] : [],
        tablePresent: false,
      };
    }
    const drifted = desired
      .filter((g) => JSON.stringify(this.guards.get(g.name)) !== JSON.stringify(g))
      .map((g) => g.name);
    const wanted = new Set(desired.map((g) => g.name));
    const extra = [...this.guards.keys()].filter((n) => !wanted.has(n)).sort();
    const problems = [...drifted.map((n) => `guard ${n}: differs`), ...extra.map((n) => `guard ${n}: not desired`)];
    // a guard present but different has elements not its own: repaired exactly
    const exact = drifted.filter((n) => this.guards.has(n));
    return { drifted, exact, extra, problems, tablePresent: true };
  }

  async ensureGuard(g: GuardObject, opts?: { readonly exact?: boolean }): Promise<void> {
    this.#enter('ensureGuard', { g, exact: opts?.exact ?? false });
    guardElements(g);
    this.guardTable = true;
    this.guards.set(g.name, clone(g));
  }

  async removeGuard(port: string, applied?: GuardObject): Promise<void> {
    this.#enter('removeGuard', { port, applied: applied !== undefined });
    checkIfName(port);
    this.guards.delete(port);
  }

  async removeGuardTable(): Promise<void> {
    this.#enter('removeGuardTable', undefined);
    this.guardTable = false;
    this.guards.clear();
    this.guardCounters = {};
  }

  /** what the guards "dropped", by reason: set by tests (the fake forwards no frames) */
  guardCounters: Record<string, PolicyCounter> = {};

  async readGuardCounters(): Promise<Readonly<Record<string, PolicyCounter>>> {
    this.#enter('readGuardCounters', undefined);
    return this.guardTable ? clone(this.guardCounters) : {};
  }

  // ----- cluster: one WireGuard device and truss routes, as plain objects -----

  async ensureWireguard(w: WireguardObject): Promise<void> {
    this.#enter('ensureWireguard', w);
    this.wireguard = clone(w);
  }

  async removeWireguard(name: string): Promise<void> {
    this.#enter('removeWireguard', name);
    if (this.wireguard?.name === name) this.wireguard = undefined;
  }

  async checkWireguard(w: WireguardObject | undefined, name: string): Promise<readonly string[]> {
    this.#enter('checkWireguard', w);
    if (!w) return this.wireguard ? [`wireguard device ${name} exists but no cluster network needs it`] : [];
    if (!this.wireguard) return [`wireguard device ${w.name} is missing`];
    return JSON.stringify(this.wireguard) === JSON.stringify(w) ? [] : [`wireguard device ${w.name} differs`];
  }

  async ensureRoutes(routes: readonly RouteObject[]): Promise<void> {
    this.#enter('ensureRoutes', routes);
    this.routes = clone([...routes]);
  }

  async checkRoutes(routes: readonly RouteObject[]): Promise<readonly string[]> {
    this.#enter('checkRoutes', routes);
    return JSON.stringify(this.routes) === JSON.stringify(routes) ? [] : ['truss routes differ'];
  }

  async ensureVxlan(v: VxlanObject): Promise<void> {
    this.#enter('ensureVxlan', v);
    this.vxlan = clone(v);
  }

  async removeVxlan(name: string): Promise<void> {
    this.#enter('removeVxlan', name);
    if (this.vxlan?.name === name) this.vxlan = undefined;
  }

  async checkVxlan(v: VxlanObject | undefined, name: string): Promise<readonly string[]> {
    this.#enter('checkVxlan', v);
    if (!v) return this.vxlan ? [`VXLAN device ${name} exists but no cluster network needs it`] : [];
    if (!this.vxlan) return [`VXLAN device ${v.name} is missing`];
    return JSON.stringify(this.vxlan) === JSON.stringify(v) ? [] : [`VXLAN device ${v.name} differs`];
  }

  async ensureEgress(e: EgressObject): Promise<void> {
    this.#enter('ensureEgress', e);
    this.egress.clear();
    for (const n of e.networks) this.egress.set(n.table, clone(n));
  }

  async checkEgress(e: EgressObject): Promise<readonly string[]> {
    this.#enter('checkEgress', e);
    const want = new Map(e.networks.map((n) => [n.table, n]));
    const problems = e.networks
      .filter((n) => JSON.stringify(this.egress.get(n.table)) !== JSON.stringify(n))
      .map((n) => `egress table ${n.table} of network ${shortId(n.networkId)} is missing or differs`);
    for (const t of this.egress.keys()) if (!want.has(t)) problems.push(`egress table ${t} is not wanted`);
    return problems;
  }

  async readVxlanPeers(name: string): Promise<readonly string[]> {
    this.#enter('readVxlanPeers', name);
    return this.vxlan?.name === name ? this.vxlan.peers.map((p) => p.address).sort() : [];
  }

  // ----- bandwidth limits: the shaping of each host veth, as the ShaperObject last ensured -----

  async checkShapers(desired: readonly ShaperObject[]): Promise<ShaperCheck> {
    this.#enter('checkShapers', desired);
    const drifted: string[] = [];
    const problems: string[] = [];
    for (const s of desired) {
      if (JSON.stringify(this.shapers.get(s.name)) === JSON.stringify(s)) continue;
      drifted.push(s.name);
      problems.push(`bandwidth of ${s.name}: missing or different`);
    }
    const wanted = new Set(desired.map((s) => s.name));
    const extra = [...this.shapers.values()]
      .filter((s) => !wanted.has(s.name))
      .map((s) => ({ name: s.name, ifb: s.ifb }));
    for (const x of extra) problems.push(`bandwidth of ${x.name}: truss shaping present but not wanted`);
    return { drifted, extra, problems };
  }

  async ensureShaper(s: ShaperObject): Promise<void> {
    this.#enter('ensureShaper', s);
    if (this.links.get(s.name)?.kind !== 'veth') {
      throw errors.reconcileFailed(`interface ${s.name} is missing; cannot shape it`);
    }
    this.shapers.set(s.name, clone(s));
  }

  async removeShaper(name: string, _ifb: string): Promise<void> {
    this.#enter('removeShaper', name);
    this.shapers.delete(name);
  }

  async readWireguardPeers(name: string): Promise<readonly WireguardPeerStatus[]> {
    this.#enter('readWireguardPeers', name);
    return (this.wireguard?.peers ?? []).map((p) => ({
      publicKey: p.publicKey,
      endpoint: p.endpoint,
      allowedIps: p.allowedIps,
      latestHandshake: 0,
      rxBytes: 0,
      txBytes: 0,
    }));
  }
}

const sortedText = (xs: readonly string[]): string => JSON.stringify([...xs].sort());
const samePolicy = (a: PolicyObject, b: PolicyObject): boolean =>
  sortedText(a.addresses) === sortedText(b.addresses) && JSON.stringify(a.rules) === JSON.stringify(b.rules);

export const createFakeDataplane = (): FakeDataplane => new FakeDataplane();
