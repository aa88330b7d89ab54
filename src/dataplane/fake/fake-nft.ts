/**
 * The fake's nftables: the firewall table, the port policies, the published ports and the
 * anti-spoofing guards, each kept as the objects last ensured (validated as the Linux
 * dataplane validates them). An address ensured for one policy chain is taken from any
 * other, as the kernel map re-points it.
 */

import type { PolicyCounter, SetCheck } from '../../core/contracts.ts';
import type {
  DnsRedirectObject,
  FirewallObject,
  GuardObject,
  PolicyObject,
  PortsObject,
  SelectorSetObject,
} from '../../core/desired.ts';
import { selectorSetName } from '../../core/naming.ts';
import type { RoutedRoutesObject } from '../../core/routed.ts';
import { BASE_RULES, diffPorts, type PortElement, planPortDeletes, portElements } from '../linux/dnat.ts';
import { DNS_PRIORITY, DNS_RULES, diffDnsRedirect, dnsBridgeMembers, dnsElements } from '../linux/dns-redirect.ts';
import { KernelError } from '../linux/exec.ts';
import { guardElements } from '../linux/guard.ts';
import { checkIfName } from '../linux/links.ts';
import { checkSelectorName, checkSelectorObject } from '../linux/policy-selectors.ts';
import { checkChainName, checkPolicyObject } from '../linux/policy-sets.ts';
import { clone } from './fake-calls.ts';
import { FakeLinks } from './fake-links.ts';

export class FakeNftables extends FakeLinks {
  firewall: FirewallObject | undefined;
  readonly sysctls = new Map<string, string>([['net/ipv4/ip_forward', '0']]);
  /** table inet truss_policy exists */
  policyTable = false;
  /** chain name -> the policy last ensured for it */
  readonly policies = new Map<string, PolicyObject>();
  /** name=/label= sources: set name (sel_<hash>) -> the members last ensured (a chain adds it empty) */
  readonly selectors = new Map<string, SelectorSetObject>();
  /** chain name -> denied counter; tests set values, ensure keeps them, remove drops them */
  readonly policyCounters: Record<string, PolicyCounter> = {};
  /** table inet truss_ports: its elements (validated as the Linux dataplane does) and bridges; undefined = no table */
  portsTable: { elements: PortElement[]; bridges: Set<string> } | undefined;
  /** table inet truss_dns: the object last ensured (validated as the Linux dataplane does); undefined = no table */
  dnsRedirect: DnsRedirectObject | undefined;
  /** its seen4/seen6 sets: tests add what containers queried; an ensure keeps them, a removal drops them */
  dnsSeen: string[] = [];
  /** table bridge truss_guard exists */
  guardTable = false;
  /** guarded veth -> the guard last ensured for it */
  readonly guards = new Map<string, GuardObject>();

  /** Drift: someone ran `nft delete table inet truss_policy`. */
  deletePolicyTableBehindBack(): void {
    this.policyTable = false;
    this.policies.clear();
    this.selectors.clear();
    for (const k of Object.keys(this.policyCounters)) delete this.policyCounters[k];
  }

  async checkFirewall(f: FirewallObject): Promise<readonly string[]> {
    this.enter('checkFirewall', f);
    if (!this.firewall) return ['nft table inet truss is missing'];
    return JSON.stringify(this.firewall) === JSON.stringify(f)
      ? []
      : ['nft table inet truss differs from the rendering'];
  }

  async ensureFirewall(f: FirewallObject): Promise<void> {
    this.enter('ensureFirewall', f);
    this.firewall = clone(f);
  }

  async removeFirewall(): Promise<void> {
    this.enter('removeFirewall', undefined);
    this.firewall = undefined;
  }

  async ensureSysctls(f: FirewallObject): Promise<void> {
    this.enter('ensureSysctls', f);
    if (f.networks.some((n) => !n.internal)) this.sysctls.set('net/ipv4/ip_forward', '1');
  }

  async checkPolicies(desired: readonly PolicyObject[]): Promise<SetCheck> {
    this.enter('checkPolicies', desired);
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
    this.enter('ensurePolicy', p);
    const c = checkPolicyObject(p);
    const mine = new Set([...c.addresses4, ...c.addresses6]);
    for (const [name, other] of this.policies) {
      if (name === p.name || !other.addresses.some((a) => mine.has(a))) continue;
      this.policies.set(name, { ...other, addresses: other.addresses.filter((a) => !mine.has(a)) });
    }
    this.policyTable = true;
    // as the kernel's chain transaction: the selector sets it names are created empty when missing
    for (const r of p.rules) {
      if (r.peer === undefined) continue;
      const name = selectorSetName(r.peer);
      if (!this.selectors.has(name))
        this.selectors.set(name, { name, selector: r.peer, addresses4: [], addresses6: [] });
    }
    this.policies.set(p.name, clone(p));
    this.policyCounters[p.name] ??= { packets: 0, bytes: 0 };
  }

  async removePolicy(name: string): Promise<void> {
    this.enter('removePolicy', name);
    checkChainName(name);
    this.policies.delete(name);
    delete this.policyCounters[name];
  }

  async checkSelectors(desired: readonly SelectorSetObject[]): Promise<SetCheck> {
    this.enter('checkSelectors', desired);
    const drifted: string[] = [];
    const problems: string[] = [];
    for (const s of desired) {
      const have = this.selectors.get(s.name);
      if (have && sameMembers(have, s)) continue;
      drifted.push(s.name);
      problems.push(have ? `selector ${s.name}: members differ` : `selector ${s.name}: sets are missing`);
    }
    const wanted = new Set(desired.map((s) => s.name));
    const extra = [...this.selectors.keys()].filter((n) => !wanted.has(n)).sort();
    for (const n of extra) problems.push(`selector ${n}: installed but no policy names it`);
    return { drifted, extra, problems, tablePresent: this.policyTable };
  }

  async ensureSelector(s: SelectorSetObject): Promise<void> {
    this.enter('ensureSelector', s);
    const c = checkSelectorObject(s);
    this.policyTable = true;
    this.selectors.set(c.name, clone(c));
  }

  /** As the kernel: a set a chain still names cannot be deleted (EBUSY). */
  async removeSelector(name: string): Promise<void> {
    this.enter('removeSelector', name);
    checkSelectorName(name);
    for (const p of this.policies.values()) {
      if (p.rules.some((r) => r.peer !== undefined && selectorSetName(r.peer) === name)) {
        throw new KernelError(
          'EBUSY',
          ['nft', '-f', '-'],
          1,
          `Error: Could not process rule: Device or resource busy (${name}_4 is named by ${p.name})`,
        );
      }
    }
    this.selectors.delete(name);
  }

  async removePolicyTable(): Promise<void> {
    this.enter('removePolicyTable', undefined);
    this.deletePolicyTableBehindBack();
  }

  async readPolicyCounters(): Promise<Readonly<Record<string, PolicyCounter>>> {
    this.enter('readPolicyCounters', undefined);
    return this.policyTable ? clone(this.policyCounters) : {};
  }

  // ----- published ports: the elements of table inet truss_ports -----

  async checkPorts(desired: readonly PortsObject[]): Promise<SetCheck> {
    this.enter('checkPorts', desired);
    const t = this.portsTable;
    const rules = Object.fromEntries(
      Object.entries(BASE_RULES).map(([h, rs]) => [h, rs.map((r) => /comment "([^"]*)"$/.exec(r)?.[1] ?? '')]),
    );
    const table = t ? { elements: t.elements, rules, bridges: [...t.bridges] } : undefined;
    return { ...diffPorts(desired, table), tablePresent: t !== undefined };
  }

  async ensurePorts(p: PortsObject): Promise<void> {
    this.enter('ensurePorts', p);
    const els = portElements(p);
    this.portsTable ??= { elements: [], bridges: new Set() };
    const t = this.portsTable;
    const gone = new Set(planPortDeletes(p, t.elements));
    t.elements = [...t.elements.filter((e) => !gone.has(e)), ...els];
    t.bridges.add(p.bridge);
  }

  async removePorts(name: string): Promise<void> {
    this.enter('removePorts', name);
    if (this.portsTable) this.portsTable.elements = this.portsTable.elements.filter((e) => e.owner !== name);
  }

  async removePortsTable(): Promise<void> {
    this.enter('removePortsTable', undefined);
    this.portsTable = undefined;
  }

  // ----- DNS redirection: table inet truss_dns, as the object last ensured -----

  async checkDnsRedirect(want: DnsRedirectObject | undefined): Promise<readonly string[]> {
    this.enter('checkDnsRedirect', want);
    if (want !== undefined) dnsElements(want);
    const have = this.dnsRedirect;
    const rules = DNS_RULES.map((r) => /comment "([^"]*)"$/.exec(r)?.[1] ?? '');
    const table = have && {
      elements: dnsElements(have),
      bridges: dnsBridgeMembers(have),
      seen: this.dnsSeen,
      priority: DNS_PRIORITY,
      rules,
    };
    return diffDnsRedirect(want, table);
  }

  async ensureDnsRedirect(o: DnsRedirectObject): Promise<void> {
    this.enter('ensureDnsRedirect', o);
    dnsElements(o);
    this.dnsRedirect = clone(o);
  }

  async removeDnsRedirect(): Promise<void> {
    this.enter('removeDnsRedirect', undefined);
    this.dnsRedirect = undefined;
    this.dnsSeen = [];
  }

  async readDnsSeen(): Promise<readonly string[]> {
    this.enter('readDnsSeen', undefined);
    return this.dnsRedirect ? [...this.dnsSeen] : [];
  }

  // ----- routed networks' routes, as the objects last ensured -----

  readonly routedRoutes = new Map<string, RoutedRoutesObject>();

  async checkRoutedRoutes(desired: readonly RoutedRoutesObject[]): Promise<SetCheck> {
    this.enter('checkRoutedRoutes', desired);
    const drifted = desired
      .filter((o) => JSON.stringify(this.routedRoutes.get(o.name)) !== JSON.stringify(o))
      .map((o) => o.name);
    const wanted = new Set(desired.map((o) => o.name));
    const extra = [...this.routedRoutes.keys()].filter((n) => !wanted.has(n)).sort();
    const problems = [...drifted.map((n) => `routes ${n}: differ`), ...extra.map((n) => `routes ${n}: not desired`)];
    return { drifted, extra, problems };
  }

  async ensureRoutedRoutes(o: RoutedRoutesObject): Promise<void> {
    this.enter('ensureRoutedRoutes', o);
    this.routedRoutes.set(o.name, clone(o));
  }

  async removeRoutedRoutes(name: string): Promise<void> {
    this.enter('removeRoutedRoutes', name);
    this.routedRoutes.delete(name);
  }

  // ----- anti-spoofing: guarded ports, as the GuardObjects last ensured -----

  async checkGuards(desired: readonly GuardObject[]): Promise<SetCheck> {
    this.enter('checkGuards', desired);
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
    this.enter('ensureGuard', { g, exact: opts?.exact ?? false });
    guardElements(g);
    this.guardTable = true;
    this.guards.set(g.name, clone(g));
  }

  async removeGuard(link: string, applied?: GuardObject): Promise<void> {
    this.enter('removeGuard', { link, applied: applied !== undefined });
    checkIfName(link);
    this.guards.delete(link);
  }

  async removeGuardTable(): Promise<void> {
    this.enter('removeGuardTable', undefined);
    this.guardTable = false;
    this.guards.clear();
    this.guardCounters = {};
  }

  /** what the guards "dropped", by reason: set by tests (the fake forwards no frames) */
  guardCounters: Record<string, PolicyCounter> = {};

  async readGuardCounters(): Promise<Readonly<Record<string, PolicyCounter>>> {
    this.enter('readGuardCounters', undefined);
    return this.guardTable ? clone(this.guardCounters) : {};
  }
}

const sortedText = (xs: readonly string[]): string => JSON.stringify([...xs].sort());
const sameMembers = (a: SelectorSetObject, b: SelectorSetObject): boolean =>
  sortedText(a.addresses4) === sortedText(b.addresses4) && sortedText(a.addresses6) === sortedText(b.addresses6);
const samePolicy = (a: PolicyObject, b: PolicyObject): boolean =>
  sortedText(a.addresses) === sortedText(b.addresses) && JSON.stringify(a.rules) === JSON.stringify(b.rules);
