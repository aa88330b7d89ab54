/**
 * The state id: 64 random bits made with the state database and kept in it. The daemon stamps
 * it into the ownership marks of the kernel objects it makes (core/naming.ts ownerMark), so a
 * daemon started with another state dir (a typo, a volume not mounted yet, a managed plugin beside
 * a plain one) can tell their objects from its own and leaves them alone (reconcile/plan.ts).
 *
 * A database that already held intent when its id was made predates the stamps (an upgrade):
 * it adopts unstamped objects. A new database adopts nothing it did not stamp.
 */
import { randomBytes } from 'node:crypto';
import { errors } from '../core/errors.ts';
import { isStateId } from '../core/naming.ts';
import type { Store } from '../store/store.ts';

export const STATE_ID_KEY = '/truss/v1/state-id';

export interface StateIdentity {
  readonly stateId: string;
  /** true when the database held intent before it had an id (truss before stamps) */
  readonly adoptUnstamped: boolean;
  readonly createdAt: string;
  /** made by this call (a new database, or the first start after an upgrade) */
  readonly created: boolean;
}

function decode(value: string): Omit<StateIdentity, 'created'> {
  const v = JSON.parse(value) as Partial<StateIdentity> | null;
  if (!v || !isStateId(v.stateId) || typeof v.adoptUnstamped !== 'boolean') {
    throw errors.storeUnavailable(
      `the state database holds an invalid ${STATE_ID_KEY} (${value.slice(0, 120)}): restore a backup`,
    );
  }
  return { stateId: v.stateId, adoptUnstamped: v.adoptUnstamped, createdAt: String(v.createdAt ?? '') };
}

/** Reads the state id, making it (create-if-absent) on the first start of this database. */
export async function ensureStateId(store: Store, now = new Date()): Promise<StateIdentity> {
  const cur = await store.get(STATE_ID_KEY);
  if (cur) return { ...decode(cur.value), created: false };
  const fresh = {
    stateId: randomBytes(8).toString('hex'),
    adoptUnstamped: (await store.revision()) > 0,
    createdAt: now.toISOString(),
  };
  const r = await store.txn(
    [{ key: STATE_ID_KEY, version: 0 }],
    [{ type: 'put', key: STATE_ID_KEY, value: JSON.stringify(fresh) }],
  );
  if (!r.succeeded) return ensureStateId(store, now); // another process made it meanwhile
  return { ...fresh, created: true };
}
