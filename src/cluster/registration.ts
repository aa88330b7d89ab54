/**
 * Before and around registering: the identity check (another live host with this host's name
 * or node id, core/cluster/identity.ts), the twin that registered at the same moment, and the
 * move of this host's records from the old layout. The agent (agent.ts) runs these; they hold
 * no state of their own.
 */
import { confirmSuspects, findIdentitySuspects, identityConflictError } from '../core/cluster/identity.ts';
import { clusterKeys, type NodeRecord, nodeIdOf } from '../core/cluster/model.ts';
import { recordsOf } from '../core/cluster/records.ts';
import type { TrussError } from '../core/errors.ts';
import type { Logger } from '../obs/logger.ts';
import type { Store } from '../store/store.ts';
import { migrateLegacy } from './migrate.ts';

/** What registration needs of the agent's deps (ClusterAgentDeps has it). */
export interface RegistrationDeps {
  readonly store: Store;
  readonly log: Logger;
  /** the instance nonce of this state dir's previous process: its node record is not a conflict */
  readonly previousInstance?: string;
  /** where the node id is kept (<state-dir>/node-id), for the conflict message */
  readonly nodeIdFile?: string;
  readonly leaseTtlSeconds?: number;
  /** waited on top of the lease TTL before a suspect record counts as live (default 2000) */
  readonly conflictSlackMs?: number;
  /** names of the cluster networks this host has (from local intent), re-joined at start */
  localClusters(): Promise<readonly string[]>;
}

const { node: nodeKey } = clusterKeys;

/**
 * Another live host with this host's name or node id, as an error, or undefined. A suspect
 * record gets one lease TTL (plus slack) to expire before it counts as live.
 */
export async function checkIdentity(
  d: RegistrationDeps,
  node: NodeRecord,
  sleep: (ms: number) => Promise<void>,
  stopped: () => boolean,
): Promise<TrussError | undefined> {
  const suspects = findIdentitySuspects(node, d.previousInstance, await nodesOf(d.store));
  if (suspects.length === 0) return undefined;
  const waitMs = (d.leaseTtlSeconds ?? 15) * 1000 + (d.conflictSlackMs ?? 2000);
  d.log.warn("a node record has this host's name or node id: waiting one lease TTL to see if it is live", {
    suspects: suspects.map((s) => ({
      kind: s.kind,
      id: nodeIdOf(s.other),
      name: s.other.name,
      address: s.other.address,
    })),
    waitMs,
  });
  await sleep(waitMs);
  if (stopped()) return undefined;
  const [confirmed] = confirmSuspects(node, suspects, await nodesOf(d.store));
  return confirmed && identityConflictError(node, confirmed, d.nodeIdFile ?? "the state dir's node-id file");
}

/**
 * Another host registered under this host's name just before it (both looked before either
 * wrote): true for the later of the two (higher createRevision), which then steps back and
 * checks again like any host that finds its name taken.
 */
export async function earlierTwin(d: RegistrationDeps, node: NodeRecord): Promise<boolean> {
  const self = nodeIdOf(node);
  const items = (await d.store.list(clusterKeys.nodesPrefix)).items;
  const mine = items.find((kv) => kv.key === nodeKey(self));
  if (!mine) return false;
  return recordsOf('nodes', items).some(
    ({ record: n }) => (n.createRevision ?? 0) < mine.createRevision && n.name === node.name && nodeIdOf(n) !== self,
  );
}

/** Well-formed node records (malformed ones: the view reports them). */
async function nodesOf(store: Store): Promise<NodeRecord[]> {
  return recordsOf('nodes', (await store.list(clusterKeys.nodesPrefix)).items).map((d) => d.record);
}

/** Move this host's records of the layout before owner prefixes (migrate.ts); never fatal. */
export async function migrate(d: RegistrationDeps, self: string): Promise<void> {
  try {
    const moved = await migrateLegacy(d.store, self, await d.localClusters());
    if (moved.moved + moved.dropped > 0) {
      d.log.warn("moved this host's cluster records to the owner layout", { ...moved });
    }
  } catch (e) {
    d.log.warn("could not move this host's records from the old cluster layout; will retry at next start", {
      err: e,
    });
  }
}
