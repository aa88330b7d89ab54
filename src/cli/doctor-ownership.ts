/**
 * `truss doctor`'s ownership checks (issue 13), without a daemon and read-only:
 *   - instance: whether a truss serve holds this host's lock (obs/instance-lock.ts), and whose;
 *   - foreign-objects: the truss bridges and veths on this host that the state database of
 *     --state-dir did not make (another state's stamp, or unstamped beside a new database), which
 *     that daemon would leave alone and report: a count and their names.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { markOwner } from '../core/naming.ts';
import type { Check } from '../core/preflight.ts';
import { createExec } from '../dataplane/linux/exec.ts';
import { listOwnedLinks } from '../dataplane/linux/links.ts';
import { readInstanceLock } from '../obs/instance-lock.ts';
import { FOREIGN_FIX } from '../reconcile/reconciler.ts';
import { STATE_ID_KEY } from '../service/state-id.ts';

/** The state identity stored in `<stateDir>/state.db`, read-only; undefined when there is none (yet). */
function peekStateIdentity(stateDir: string): { stateId: string; adoptUnstamped: boolean } | undefined {
  const path = join(stateDir, 'state.db');
  if (!existsSync(path)) return undefined;
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path, { readOnly: true, timeout: 1000 });
    const row = db.prepare('SELECT value FROM kv WHERE key = ?').get(STATE_ID_KEY);
    if (!row) return undefined;
    const v = JSON.parse(String(row.value)) as { stateId?: unknown; adoptUnstamped?: unknown };
    return typeof v.stateId === 'string'
      ? { stateId: v.stateId, adoptUnstamped: v.adoptUnstamped === true }
      : undefined;
  } catch {
    return undefined;
  } finally {
    db?.close();
  }
}

const base = { need: 'optional' as const, affects: 'pruning of truss objects (one truss per host)' };

export async function ownershipChecks(stateDir: string): Promise<Check[]> {
  const other = await readInstanceLock();
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
  const identity = peekStateIdentity(stateDir);
  // no identity yet: that serve would make a new database, which adopts nothing unstamped
  const owner = identity ?? { stateId: '', adoptUnstamped: false };
  const links = await listOwnedLinks(createExec()).catch(() => undefined);
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
