/**
 * Bridges and veths. A full pass lists the links once (plan.ts) and both kinds read that plan;
 * the plan also finds links of another state (foreign: left alone, reported, removed only on
 * `truss cleanup --foreign`) and orphaned endpoints (the endpoint GC's input).
 */

import type { Dataplane } from '../../core/contracts.ts';
import type { BridgeObject, DesiredKernel, VethObject } from '../../core/desired.ts';
import { FOREIGN_FIX } from '../../core/naming.ts';
import type { Logger } from '../../obs/logger.ts';
import { objectKey, ownedBy, type SetKind } from '../kind.ts';
import { type ForeignLink, type LinkPlan, planLinks, type StateOwner } from '../plan.ts';
import type { PassState } from './pass.ts';

export const bridgeKey = (name: string): string => objectKey('bridge', name);
export const vethKey = (name: string): string => objectKey('veth', name);

export class Links {
  readonly #dp: Dataplane;
  readonly #log: Logger;
  readonly #owner: StateOwner | undefined;
  /** truss links of another or an unknown state, as the last full pass saw them */
  #foreign: readonly ForeignLink[] = [];
  /** `truss cleanup --foreign` asked: the next full pass removes them */
  #cleanup = false;
  #removed: ForeignLink[] = [];

  constructor(dp: Dataplane, log: Logger, owner: StateOwner | undefined) {
    this.#dp = dp;
    this.#log = log;
    this.#owner = owner;
  }

  get foreign(): readonly ForeignLink[] {
    return this.#foreign;
  }

  /** The next full pass removes the foreign links; returns what that removed so far. */
  cleanupNext(): readonly ForeignLink[] {
    this.#cleanup = true;
    this.#removed = [];
    return this.#removed;
  }

  /** The kernel's links against the desired ones; a pass (not a check) notes foreign ones and cleans up. */
  async plan(desired: DesiredKernel, mode: 'full' | 'check'): Promise<LinkPlan> {
    let plan = planLinks(desired, await this.#dp.listLinks(), this.#owner);
    if (mode === 'check') return plan;
    if (this.#cleanup) plan = await this.#removeForeign(desired, plan);
    this.#noteForeign(plan.foreign);
    return plan;
  }

  kinds(): [SetKind<PassState, BridgeObject>, SetKind<PassState, VethObject>] {
    const dp = this.#dp;
    const bridges: SetKind<PassState, BridgeObject> = {
      shape: 'set',
      name: 'bridge',
      wanted: (d) => d.kernel.bridges,
      check: async (_w, d) => {
        const plan = d.links ?? (await d.lookLinks?.());
        return (
          plan && {
            problems: plan.problems,
            drifted: plan.ensureBridges.map((b) => b.name),
            extra: plan.remove.filter((r) => r.kind === 'bridge').map((r) => r.name),
          }
        );
      },
      ensure: (b) => dp.ensureBridge(b),
      remove: (name) => dp.removeBridge(name),
      removeAt: 'last',
      watched: true,
      owns: ownedBy,
    };
    const veths: SetKind<PassState, VethObject> = {
      shape: 'set',
      name: 'veth',
      wanted: (d) => d.kernel.veths,
      // the problems are the bridge kind's (one listing, one list)
      check: async (_w, d) => {
        const plan = d.links ?? (await d.lookLinks?.());
        return (
          plan && {
            problems: [],
            drifted: plan.ensureVeths.map((v) => v.name),
            extra: plan.remove.filter((r) => r.kind !== 'bridge').map((r) => r.name),
          }
        );
      },
      ensure: (v) => dp.ensureVeth(v),
      remove: (name) => dp.removeVeth(name),
      watched: true,
      // a routed veth has no bridge (core/routed.ts)
      needs: (v) => (v.routed ? undefined : bridgeKey(v.bridge)),
      // after every kind, before the bridges (removals run in reverse registry order)
      removeAt: 'last',
      owns: ownedBy,
    };
    return [bridges, veths];
  }

  /** Removes the foreign links (veths before bridges) and plans again from the kernel. */
  async #removeForeign(desired: DesiredKernel, plan: LinkPlan): Promise<LinkPlan> {
    this.#cleanup = false;
    const order = [...plan.foreign].sort((a, b) => Number(a.kind === 'bridge') - Number(b.kind === 'bridge'));
    for (const f of order) {
      try {
        if (f.kind === 'bridge') await this.#dp.removeBridge(f.name);
        else await this.#dp.removeVeth(f.name);
        this.#removed.push(f);
      } catch (e) {
        this.#log.warn('could not remove a foreign truss link', { link: f.name, err: e });
      }
    }
    if (this.#removed.length > 0) {
      this.#log.warn('removed truss links of another state', {
        count: this.#removed.length,
        links: this.#removed.map((f) => f.name),
      });
    }
    return planLinks(desired, await this.#dp.listLinks(), this.#owner);
  }

  /** Says loudly (warn) when the set of foreign links changes; they are in status meanwhile. */
  #noteForeign(found: readonly ForeignLink[]): void {
    const key = (l: readonly ForeignLink[]) => l.map((f) => f.name).join(',');
    const changed = key(found) !== key(this.#foreign);
    this.#foreign = found;
    if (!changed) return;
    if (found.length === 0) {
      this.#log.info('no truss objects of another state are left; pruning as usual');
      return;
    }
    const states = [...new Set(found.map((f) => f.state ?? 'unstamped'))];
    this.#log.warn('truss objects of another state found: leaving them alone, pruning nothing shared', {
      count: found.length,
      links: found.map((f) => f.name),
      states,
      ownState: this.#owner?.stateId,
      fix: FOREIGN_FIX,
    });
  }
}
