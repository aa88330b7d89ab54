/**
 * The per-endpoint kinds: port-policy chains, anti-spoofing guards, bandwidth shapers and
 * published ports. Each lives in a shared table (or on the endpoint's veth) that may also hold
 * another state's objects, so what the kernel has beyond the intent is pruned only while no
 * foreign link is present.
 */

import type { ShaperObject } from '../../core/bandwidth.ts';
import type { Dataplane } from '../../core/contracts.ts';
import type { GuardObject, PolicyObject, PortsObject, SelectorSetObject } from '../../core/desired.ts';
import { ifbOfHostVeth } from '../../core/naming.ts';
import type { RoutedRoutesObject } from '../../core/routed.ts';
import type { Logger } from '../../obs/logger.ts';
import { objectKey, ownedBy, type SetKind } from '../kind.ts';
import type { PassState } from './pass.ts';

export const policyKey = (name: string): string => objectKey('policy', name);
/** a name=/label= source's shared sets, by set name (sel_<hash>) */
export const selectorKey = (name: string): string => objectKey('selector', name);
export const guardKey = (link: string): string => objectKey('guard', link);
/** an endpoint's bandwidth limits, by its host veth's name */
export const shaperKey = (name: string): string => objectKey('shaper', name);
export const portsKey = (name: string): string => objectKey('ports', name);

/**
 * The members of each name=/label= source, in sets the policy chains name: ensured before the
 * chains (registered before policyKind), so a chain's first packet already meets its members;
 * removed last, after every chain that named them is gone (a named set cannot be deleted).
 * No table of its own: the sets live in the policy table, which policyKind removes whole with
 * the last chain (and with it any set left).
 */
export function selectorKind(dp: Dataplane): SetKind<PassState, SelectorSetObject> {
  return {
    shape: 'set',
    name: 'selector',
    watched: true,
    // why: an empty catalog before Docker was listed would empty every set: a restart must not flip a
    // verdict. With no set wanted there is nothing to keep (leftovers go whatever the catalog says)
    paused: (d) =>
      d.namesPending && d.kernel.selectors.length > 0
        ? 'name/label policy sets: container names not known yet (left as they are)'
        : undefined,
    wanted: (d) => d.kernel.selectors,
    check: (w) => dp.checkSelectors(w),
    ensure: (s) => dp.ensureSelector(s),
    remove: (name) => dp.removeSelector(name),
    removeAt: 'last',
    extrasMayBeForeign: true,
    // a set serves every endpoint whose policy names it: the network's or endpoint's request waits for its chain
  };
}

export function policyKind(dp: Dataplane): SetKind<PassState, PolicyObject> {
  return {
    shape: 'set',
    name: 'policy',
    watched: true,
    wanted: (d) => d.kernel.policies,
    table: { key: 'policy-table', remove: () => dp.removePolicyTable() },
    check: (w) => dp.checkPolicies(w),
    ensure: (p) => dp.ensurePolicy(p),
    remove: (name) => dp.removePolicy(name),
    extrasMayBeForeign: true,
    owns: ownedBy,
  };
}

export function guardKind(dp: Dataplane): SetKind<PassState, GuardObject> {
  return {
    shape: 'set',
    name: 'guard',
    watched: true,
    wanted: (d) => d.kernel.guards,
    table: { key: 'guard-table', remove: () => dp.removeGuardTable() },
    check: (w) => dp.checkGuards(w),
    ensure: (g, how) => dp.ensureGuard(g, { exact: how.exact }),
    remove: (name, applied) => dp.removeGuard(name, applied),
    extrasMayBeForeign: true,
    owns: ownedBy,
  };
}

/**
 * Routed networks' subnet routes (core/routed.ts): an unreachable route per subnet from network
 * create on. (An endpoint's host routes are its veth's: one batch per attach.)
 */
export function routedRoutesKind(dp: Dataplane): SetKind<PassState, RoutedRoutesObject> {
  return {
    shape: 'set',
    name: 'routed-routes',
    wanted: (d) => d.kernel.routes,
    check: (w) => dp.checkRoutedRoutes(w),
    ensure: (o) => dp.ensureRoutedRoutes(o),
    remove: (name) => dp.removeRoutedRoutes(name),
    extrasMayBeForeign: true,
    owns: ownedBy,
  };
}

export function shaperKind(dp: Dataplane, log: Logger): SetKind<PassState, ShaperObject> {
  return {
    shape: 'set',
    name: 'shaper',
    wanted: (d) => d.kernel.shapers,
    check: async (w) => {
      try {
        return await dp.checkShapers(w);
      } catch (e) {
        // why: with no limit anywhere, a host without tc must not fail every full pass
        if (w.length === 0) {
          log.debug('bandwidth check failed', { err: e });
          return undefined;
        }
        throw new Error(`bandwidth limits could not be read: ${e}`);
      }
    },
    ensure: (s) => dp.ensureShaper(s),
    // the ifb is named after the veth (naming.ts), so a name is enough
    remove: (name) => dp.removeShaper(name, ifbOfHostVeth(name)),
    needs: (s) => objectKey('veth', s.name),
    extrasMayBeForeign: true,
    owns: ownedBy,
  };
}

export function portsKind(dp: Dataplane): SetKind<PassState, PortsObject> {
  return {
    shape: 'set',
    name: 'ports',
    watched: true,
    wanted: (d) => d.kernel.ports,
    table: { key: 'ports-table', remove: () => dp.removePortsTable() },
    check: (w) => dp.checkPorts(w),
    // ensure only adds elements: a changed or drifted endpoint's old ones go first
    ensure: async (p, how) => {
      if (how.replace) await dp.removePorts(p.name);
      await dp.ensurePorts(p);
    },
    remove: (name) => dp.removePorts(name),
    // a key a leaving endpoint still holds may be wanted by a new one
    removeAt: 'before',
    extrasMayBeForeign: true,
    owns: ownedBy,
  };
}
