/**
 * A host's identity in the cluster (pure decisions; the file and etcd I/O are the caller's).
 *
 * The node id is made once and kept in <state-dir>/node-id, like Docker's engine id: every etcd
 * key and record of the host (node, members, blocks, claims) names it. The display name
 * (--node-name, default the hostname) is only shown. Two live hosts must never share either:
 *   - the same name under another id: a cloned VM, or two hosts with one hostname;
 *   - the same id from another process: a state dir copied to a second host.
 * A record of this host's own previous process (a restart, a crash) is not a conflict: it is
 * recognised by the instance nonce this host wrote last (<state-dir>/node-instance) and its
 * address; any other suspect is a conflict only if it is still there once a lease TTL passed.
 */
import { errors, type TrussError } from '../errors.ts';
import { isValidNodeName, type NodeRecord, nodeIdOf } from './model.ts';

export type NodeIdOrigin = 'stored' | 'legacy' | 'new';

export interface NodeIdInput {
  /** the node-id file's content (trimmed), if the file exists */
  readonly stored?: string;
  /** where the id is kept, for messages */
  readonly file: string;
  /** this state dir was used by truss before node ids (its WireGuard key dir or a cluster network exists) */
  readonly legacy: boolean;
  /** the display name (--node-name or the hostname) */
  readonly name: string;
  /** a fresh random id (16 random bytes in hex) */
  readonly random: () => string;
}

/**
 * The node id to use: the stored one; for a host upgraded from truss before node ids, its
 * old identity (its name), so its claims, blocks and members stay its own; else a new one.
 */
export function decideNodeId(i: NodeIdInput): { readonly id: string; readonly origin: NodeIdOrigin } {
  if (i.stored !== undefined) {
    if (!isValidNodeName(i.stored)) {
      throw errors.badOption(
        `${i.file} holds ${JSON.stringify(i.stored.slice(0, 80))}, not a node id ([a-z0-9][a-z0-9.-]{0,62}): ` +
          'restore it from a backup, or remove it (this host then registers as a new node)',
      );
    }
    return { id: i.stored, origin: 'stored' };
  }
  if (i.legacy) return { id: i.name, origin: 'legacy' };
  const id = i.random();
  if (!isValidNodeName(id)) throw errors.internal(`generated node id ${JSON.stringify(id)} is not valid`);
  return { id, origin: 'new' };
}

export interface IdentitySuspect {
  /** name: another id under this host's name; id: this host's id from another process */
  readonly kind: 'name' | 'id';
  /** the other record's id and instance (to tell whether it is still the same one later) */
  readonly other: NodeRecord;
}

/**
 * Node records that may be another live host with this host's name or id. `self` is the
 * record this process is about to register; `previousInstance` the instance this state dir's
 * last process wrote. Own records (this process, or this host's previous one) are not suspects.
 */
export function findIdentitySuspects(
  self: NodeRecord,
  previousInstance: string | undefined,
  nodes: readonly NodeRecord[],
): IdentitySuspect[] {
  const selfId = nodeIdOf(self);
  const out: IdentitySuspect[] = [];
  for (const n of nodes) {
    if (typeof n !== 'object' || n === null || typeof n.name !== 'string') continue;
    const id = nodeIdOf(n);
    if (id === selfId) {
      // this process, or this state dir's previous one at this address (before instances: both undefined)
      const mine = n.instance === self.instance || (n.instance === previousInstance && n.address === self.address);
      if (!mine) out.push({ kind: 'id', other: n });
    } else if (n.name === self.name) {
      out.push({ kind: 'name', other: n });
    }
  }
  return out;
}

/**
 * The suspects still there after a lease TTL passed since they were seen. A dead process's
 * record is gone by then (its lease expired), so any record under the suspect's id now is a
 * live process's: the same one kept alive, or one written meanwhile (that host restarted).
 */
export function confirmSuspects(
  self: NodeRecord,
  suspects: readonly IdentitySuspect[],
  nodesNow: readonly NodeRecord[],
): IdentitySuspect[] {
  const out: IdentitySuspect[] = [];
  for (const s of suspects) {
    const now = nodesNow.find(
      (n) =>
        typeof n === 'object' &&
        n !== null &&
        typeof n.name === 'string' &&
        nodeIdOf(n) === nodeIdOf(s.other) &&
        n.instance !== self.instance,
    );
    if (now && (s.kind === 'id' || now.name === self.name)) out.push({ ...s, other: now });
  }
  return out;
}

/** The error a confirmed conflict stops the daemon with: both addresses and the fix. */
export function identityConflictError(self: NodeRecord, s: IdentitySuspect, nodeIdFile: string): TrussError {
  const o = s.other;
  if (s.kind === 'name') {
    return errors.nodeConflict(
      `node name ${self.name} is already taken by another live host: ${o.address} (node id ${nodeIdOf(o)}) ` +
        `is registered as ${o.name}, and this host ${self.address} (node id ${nodeIdOf(self)}) cannot be too: ` +
        'give this host its own --node-name, or a unique hostname',
    );
  }
  return errors.nodeConflict(
    `node id ${nodeIdOf(self)} is already used by another live host: ${o.address} (${o.name}) is registered ` +
      `with it, and this host ${self.address} (${self.name}) cannot be too; the state dir was copied from one ` +
      `host to the other: on the copy, stop truss, remove ${nodeIdFile} and start truss again (it gets a new node id)`,
  );
}
