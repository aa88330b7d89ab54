/**
 * Returning a host's share of cluster address space to the pool: its address claims
 * (addrs/<node>/<cluster>/<ip>), blocks (blocks/<node>/<cluster>/<block>) and records of the
 * shared addresses (shared/<node>/<cluster>/<ip>). Used when this host leaves a
 * cluster network on purpose (agent.leaveNetwork), by the claim GC for what a failed leave or
 * release left behind, and by `truss cluster forget NODE` for a host that is gone for good.
 *
 * Safety: every delete compares the key's modRevision as it was read, so a record written
 * again meanwhile (a concurrent re-allocation of the same address or block) is never deleted;
 * `guard` adds compares every batch must also pass (e.g. "this host is not a member again").
 * Claims go before blocks, so a block never disappears while its host's claims are in it.
 * Everything a host holds is under its own prefixes, so it is listed by key, malformed
 * records included (they are the host's keys all the same).
 */
import { CLUSTER_KINDS, clusterKeys, type NodeRecord, nodeIdOf, parseClusterKey } from '../core/cluster/model.ts';
import { decodeClusterRecord, recordsOf } from '../core/cluster/records.ts';
import { errors } from '../core/errors.ts';
import type { Compare, KeyValue, Store } from '../store/store.ts';

/** etcd's default --max-txn-ops is 128: stay well below with compares and ops together. */
const BATCH = 50;
const MAX_ROUNDS = 5;

export interface Released {
  readonly cluster: string;
  readonly claims: readonly string[];
  readonly blocks: readonly string[];
}

export interface ReleaseOptions {
  /** compares every batch must pass too (e.g. this host's member key absent) */
  readonly guard?: readonly Compare[];
  /** checked before every batch: false stops the release (e.g. the host joined again) */
  readonly proceed?: () => boolean;
}

const parse = <T>(kv: KeyValue): T | undefined => {
  try {
    return JSON.parse(kv.value) as T;
  } catch {
    return undefined;
  }
};

/** The claims, blocks and shared records `node` holds in `cluster`, as read now (with their revisions). */
export async function listHeld(
  store: Store,
  cluster: string,
  node: string,
): Promise<{ claims: KeyValue[]; blocks: KeyValue[]; shared: KeyValue[] }> {
  const claims = [...(await store.list(clusterKeys.addrsOf(cluster, node))).items];
  const blocks = [...(await store.list(clusterKeys.blocksOf(cluster, node))).items];
  const shared = [...(await store.list(clusterKeys.sharedOf(cluster, node))).items];
  return { claims, blocks, shared };
}

/**
 * Delete `kvs` in batches, each comparing every key's modRevision (and `guard`). A batch that
 * fails re-reads its keys and retries with those still unchanged. Returns the deleted keys.
 */
export async function deleteUnchanged(
  store: Store,
  kvs: readonly KeyValue[],
  opts: ReleaseOptions = {},
): Promise<string[]> {
  const done: string[] = [];
  let todo = [...kvs];
  for (let round = 0; todo.length > 0 && round < MAX_ROUNDS; round++) {
    const next: KeyValue[] = [];
    for (let i = 0; i < todo.length; i += BATCH) {
      if (opts.proceed && !opts.proceed()) return done;
      const batch = todo.slice(i, i + BATCH);
      const r = await store.txn(
        [...(opts.guard ?? []), ...batch.map((kv) => ({ key: kv.key, modRevision: kv.modRevision }))],
        batch.map((kv) => ({ type: 'delete' as const, key: kv.key })),
      );
      if (r.succeeded) {
        done.push(...batch.map((kv) => kv.key));
        continue;
      }
      if (opts.guard && !(await guardHolds(store, opts.guard))) return done;
      // someone changed some of them: keep those that are still as we read them
      for (const kv of batch) {
        const cur = await store.get(kv.key);
        if (cur && cur.modRevision === kv.modRevision) next.push(kv);
      }
    }
    todo = next;
  }
  return done;
}

async function guardHolds(store: Store, guard: readonly Compare[]): Promise<boolean> {
  const r = await store.txn(guard, []);
  return r.succeeded;
}

/** Release everything `node` holds in `cluster`: claims first, then blocks. */
export async function releaseHeld(
  store: Store,
  cluster: string,
  node: string,
  opts: ReleaseOptions = {},
): Promise<Released> {
  const { claims, blocks, shared } = await listHeld(store, cluster, node);
  const freedClaims = await deleteUnchanged(store, claims, opts);
  // blocks go only when none of the node's claims is left in the cluster (none came meanwhile)
  const left = freedClaims.length === claims.length ? (await listHeld(store, cluster, node)).claims.length : 1;
  const freedBlocks = left === 0 ? await deleteUnchanged(store, blocks, opts) : [];
  if (left === 0) await deleteUnchanged(store, shared, opts);
  const tail = (prefix: string) => (k: string) => k.slice(prefix.length);
  return {
    cluster,
    claims: freedClaims.map(tail(clusterKeys.addrsOf(cluster, node))),
    blocks: freedBlocks.map(tail(clusterKeys.blocksOf(cluster, node))).map((b) => b.replace('_', '/')),
  };
}

export interface ForgetResult {
  readonly node: string;
  /** the node was registered (live lease) and --force removed its node record */
  readonly wasRegistered: boolean;
  readonly clusters: readonly (Released & { readonly member: boolean })[];
}

/**
 * `truss cluster forget NODE` (a node id, as `truss status` shows it): delete NODE's claims, blocks and member records in every
 * cluster network. Refused for this host itself, and while NODE is registered (its lease is
 * live) unless `force`, which also deletes its node record (peers drop it at once).
 */
export async function forgetNode(store: Store, node: string, self: string, force: boolean): Promise<ForgetResult> {
  if (node === self) {
    throw errors.networkConflict(
      `${node} is this host: to release its addresses remove its cluster networks (docker network rm) instead`,
    );
  }
  const registered = await store.get(clusterKeys.node(node));
  if (!registered) {
    // a display name given for a node id (truss status shows both)
    const named = recordsOf('nodes', (await store.list(clusterKeys.nodesPrefix)).items)
      .map((d) => d.record)
      .find((n) => n.name === node && nodeIdOf(n) !== node);
    if (named) {
      throw errors.badRequest(
        `${node} is the name of host ${nodeIdOf(named)} (address ${named.address}); truss cluster forget takes ` +
          `its node id (the NODE ID column of truss status): truss cluster forget ${nodeIdOf(named)}`,
      );
    }
  }
  if (registered && !force) {
    const rec = parse<NodeRecord>(registered);
    const name = rec && typeof rec.name === 'string' && rec.name !== node ? ` (${rec.name})` : '';
    throw errors.networkConflict(
      `host ${node}${name} is registered in the cluster (lease alive${rec ? `, address ${rec.address}` : ''}): ` +
        'stop truss there and wait for its lease to expire (15 s), or pass --force if it is gone for good',
    );
  }
  const clusters = await clusterNames(store);
  const out: (Released & { member: boolean })[] = [];
  for (const cluster of clusters) {
    const released = await releaseHeld(store, cluster, node);
    const member = await store.get(clusterKeys.member(cluster, node));
    const memberGone = member ? (await deleteUnchanged(store, [member])).length === 1 : false;
    const network = await store.get(clusterKeys.network(cluster, node));
    if (network) await deleteUnchanged(store, [network]);
    if (released.claims.length + released.blocks.length > 0 || memberGone)
      out.push({ ...released, member: memberGone });
  }
  const wasRegistered = registered !== undefined && (await deleteUnchanged(store, [registered])).length === 1;
  return { node, wasRegistered, clusters: out };
}

/** Every cluster name that has a network record, members, blocks, claims or shared records. */
export async function clusterNames(store: Store): Promise<string[]> {
  const names = new Set<string>();
  for (const kind of CLUSTER_KINDS) {
    if (kind === 'nodes') continue;
    for (const kv of (await store.list(clusterKeys.kindPrefix(kind))).items) {
      const cluster = parseClusterKey(kv.key)?.cluster;
      if (cluster) names.add(cluster);
    }
  }
  return [...names].sort();
}

/** Per cluster and node: blocks and claims held (for `truss status`), from a list of cluster records. */
export function countAllocations(
  items: Iterable<readonly [string, string]>,
): Record<string, Record<string, { blocks: number; claims: number; member: boolean }>> {
  const out: Record<string, Record<string, { blocks: number; claims: number; member: boolean }>> = {};
  const bump = (cluster: string, node: string, what: 'blocks' | 'claims' | 'member'): void => {
    const byNode = out[cluster] ?? {};
    const c = byNode[node] ?? { blocks: 0, claims: 0, member: false };
    byNode[node] = c;
    out[cluster] = byNode;
    if (what === 'member') c.member = true;
    else c[what]++;
  };
  for (const [key, value] of items) {
    const d = decodeClusterRecord({ key, value }); // a malformed record is the agent's to report
    if (d.kind !== 'blocks' && d.kind !== 'addrs' && d.kind !== 'members') continue;
    bump(d.record.cluster, d.record.node, d.kind === 'blocks' ? 'blocks' : d.kind === 'addrs' ? 'claims' : 'member');
  }
  return out;
}
