/**
 * The per-endpoint kinds of kernel object the reconciler programs one by one: port-policy
 * chains, anti-spoofing guards, bandwidth shapers and published ports. Each kind says how to
 * check, apply and remove its objects; Reconciler#perEndpoint runs every kind the same way
 * (changed ones applied, unwanted ones removed, the kernel's listing consulted on full passes).
 */

import type { ShaperObject } from '../core/bandwidth.ts';
import type { DesiredKernel, GuardObject, PolicyObject, PortsObject } from '../core/desired.ts';
import { ifbOfHostVeth } from '../core/naming.ts';
import type { Dataplane } from '../core/ports.ts';
import type { Logger } from '../obs/logger.ts';
import { AppliedSet } from './applied.ts';

/** What one listing of the kernel says about a kind's objects (a full pass). */
export interface KindCheck {
  readonly problems: readonly string[];
  /** wanted objects missing or different in the kernel */
  readonly drifted: readonly string[];
  /** of those, the ones to repair with `exact` (guards only) */
  readonly exact?: readonly string[];
  /** objects in the kernel that are not wanted */
  readonly extra: readonly string[];
  /** kinds with a table: whether it exists at all */
  readonly tablePresent?: boolean;
}

export interface EndpointKind<T extends { readonly name: string }> {
  /** what was last applied, by name */
  readonly applied: AppliedSet<T>;
  /** the status and failure key of one object */
  key(name: string): string;
  wanted(desired: DesiredKernel): readonly T[];
  /** the shared table the objects live in, removed with the last of them */
  readonly table?: { readonly key: string; remove(): Promise<void> };
  /** the kernel's view (one listing); undefined when it could not be read (nothing is then adopted) */
  check(wanted: readonly T[]): Promise<KindCheck | undefined>;
  /** replace: something of it is installed (changed or drifted); exact: the check asked for it */
  ensure(obj: T, how: { readonly replace: boolean; readonly exact: boolean }): Promise<void>;
  remove(name: string, applied: T | undefined): Promise<void>;
  /** removals before additions: a key a leaving endpoint still holds may be wanted by a new one */
  readonly removeFirst: boolean;
  /** the host veth it sits on: not attempted when that veth failed in the same pass */
  readonly onVeth?: (obj: T) => string;
}

export interface EndpointKinds {
  readonly policies: EndpointKind<PolicyObject>;
  readonly guards: EndpointKind<GuardObject>;
  readonly shapers: EndpointKind<ShaperObject>;
  readonly ports: EndpointKind<PortsObject>;
}

export const policyKey = (name: string): string => `policy:${name}`;
export const guardKey = (port: string): string => `guard:${port}`;
/** an endpoint's bandwidth limits, by its host veth's name */
export const shaperKey = (name: string): string => `shaper:${name}`;
export const portsKey = (name: string): string => `ports:${name}`;

export function endpointKinds(dp: Dataplane, log: Logger): EndpointKinds {
  return {
    policies: {
      applied: new AppliedSet(),
      key: policyKey,
      wanted: (d) => d.policies,
      table: { key: 'policy-table', remove: () => dp.removePolicyTable() },
      check: (w) => dp.checkPolicies(w),
      ensure: (p) => dp.ensurePolicy(p),
      remove: (name) => dp.removePolicy(name),
      removeFirst: false,
    },
    guards: {
      applied: new AppliedSet(),
      key: guardKey,
      wanted: (d) => d.guards,
      table: { key: 'guard-table', remove: () => dp.removeGuardTable() },
      check: (w) => dp.checkGuards(w),
      ensure: (g, how) => dp.ensureGuard(g, { exact: how.exact }),
      remove: (name, applied) => dp.removeGuard(name, applied),
      removeFirst: false,
    },
    shapers: {
      applied: new AppliedSet(),
      key: shaperKey,
      wanted: (d) => d.shapers,
      check: async (w) => {
        try {
          const c = await dp.checkShapers(w);
          return { problems: c.problems, drifted: c.drifted, extra: c.extra.map((x) => x.name) };
        } catch (e) {
          // why: with no limit anywhere, a host without tc must not fail every full pass
          if (w.length === 0) log.debug('bandwidth check failed', { err: e });
          else log.warn('bandwidth check failed', { err: e });
          return undefined;
        }
      },
      ensure: (s) => dp.ensureShaper(s),
      // the ifb is named after the veth (naming.ts), so a name is enough
      remove: (name) => dp.removeShaper(name, ifbOfHostVeth(name)),
      removeFirst: false,
      onVeth: (s) => s.name,
    },
    ports: {
      applied: new AppliedSet(),
      key: portsKey,
      wanted: (d) => d.ports,
      table: { key: 'ports-table', remove: () => dp.removePortsTable() },
      check: (w) => dp.checkPorts(w),
      // ensure only adds elements: a changed or drifted endpoint's old ones go first
      ensure: async (p, how) => {
        if (how.replace) await dp.removePorts(p.name);
        await dp.ensurePorts(p);
      },
      remove: (name) => dp.removePorts(name),
      removeFirst: true,
    },
  };
}
