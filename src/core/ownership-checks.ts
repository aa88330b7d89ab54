/**
 * `truss doctor`'s ownership checks (issue 13), from facts gathered read-only without a daemon
 * (src/doctor.ts):
 *   - instance: whether a truss serve holds this host's lock (obs/instance-lock.ts), and whose;
 *   - foreign-objects: the truss bridges and veths on this host that the state database of
 *     --state-dir did not make (another state's stamp, or unstamped beside a new database), which
 *     that daemon would leave alone and report: a count and their names.
 */
import { FOREIGN_FIX, markOwner, type OwnerMark } from './naming.ts';
import type { Check } from './preflight.ts';

export interface OwnershipFacts {
  readonly stateDir: string;
  /** the truss serve holding this host's instance lock (fields it did not tell are absent), if any */
  readonly running: { readonly pid?: number; readonly stateDir?: string; readonly socket?: string } | undefined;
  /** the state identity in `<stateDir>/state.db`; undefined when there is none (yet) */
  readonly identity: { readonly stateId: string; readonly adoptUnstamped: boolean } | undefined;
  /** the truss links on this host; undefined when they could not be listed */
  readonly links: readonly { readonly name: string; readonly mark?: OwnerMark }[] | undefined;
}

const base = { need: 'optional' as const, affects: 'pruning of truss objects (one truss per host)' };

export function ownershipChecks(facts: OwnershipFacts): Check[] {
  const { stateDir, running: other, identity, links } = facts;
  const instance: Check =
    other === undefined
      ? { ...base, id: 'instance', title: 'truss serve on this host', status: 'info', detail: 'none running' }
      : {
          ...base,
          id: 'instance',
          title: 'truss serve on this host',
          status: other.stateDir === undefined || other.stateDir === stateDir ? 'info' : 'warn',
          detail: `running: pid ${other.pid ?? 'unknown'}, state dir ${other.stateDir ?? 'unknown'}, socket ${other.socket ?? 'unknown'}`,
          ...(other.stateDir !== undefined && other.stateDir !== stateDir
            ? {
                fix: `a truss serve with state dir ${stateDir} would be refused: stop that one first, or use its state dir`,
              }
            : {}),
        };
  // no identity yet: that serve would make a new database, which adopts nothing unstamped
  const owner = identity ?? { stateId: '', adoptUnstamped: false };
  if (links === undefined) return [instance];
  const foreign = links.filter((l) => l.mark && markOwner(l.mark, owner) === 'foreign').map((l) => l.name);
  const state = identity ? `state ${identity.stateId} (${stateDir})` : `a new state in ${stateDir}`;
  const objects: Check =
    foreign.length === 0
      ? {
          ...base,
          id: 'foreign-objects',
          title: 'truss objects of another state',
          status: 'ok',
          detail: `none: every truss bridge and veth here is ${state}'s`,
        }
      : {
          ...base,
          id: 'foreign-objects',
          title: 'truss objects of another state',
          status: 'warn',
          detail: `${foreign.length} not made by ${state}, left alone by its daemon: ${foreign.join(', ')}`,
          fix: FOREIGN_FIX,
        };
  return [instance, objects];
}
