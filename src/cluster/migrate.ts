/**
 * Moving a host's records from the layout before owner prefixes (/truss/v1/cluster/, keyed by
 * cluster and CIDR or IP) to the owner layout (/truss/v2/, model.ts). Run by the agent at every
 * start, right after it registered: only what the legacy records say is this host's moves.
 *
 * - blocks/<cluster>/<cidr> and addrs/<cluster>/<ip> of this host: moved, each in one txn that
 *   puts the new key (if absent) and deletes the old one (if unchanged). Blocks stay unique:
 *   hosts on the new layout never claim a block that overlaps a legacy block (cluster-ipam).
 * - shared claims (node '*') and the network record of a cluster this host has networks of:
 *   copied under this host's prefixes (shared/, networks/); the legacy ones are left for the
 *   hosts not upgraded yet.
 * - nodes/ and members/ are under the old process's lease: they expire by themselves.
 * A move needs write access to /truss/v1/cluster/: upgrade every host before turning on RBAC
 * (docs/cluster.md). Once every host runs this version, `etcdctl del --prefix /truss/v1/cluster/`.
 */
import { clusterKeys, LEGACY_CLUSTER_PREFIX, SHARED_OWNER } from '../core/cluster/model.ts';
import { decodeClusterRecord } from '../core/cluster/records.ts';
import type { KeyValue, Store } from '../store/store.ts';

export interface MigrateResult {
  /** legacy records moved (or copied) under this host's prefixes */
  readonly moved: number;
  /** legacy records of this host deleted because the new key already existed (a move cut short) */
  readonly dropped: number;
}

/** The legacy record of `kv` as the key it moves to under `self`, and whether the old one goes. */
function target(kv: KeyValue, self: string, clusters: ReadonlySet<string>): { key: string; move: boolean } | undefined {
  const rest = kv.key.slice(LEGACY_CLUSTER_PREFIX.length).split('/');
  const [kind, cluster, item] = rest;
  if (cluster === undefined) return undefined;
  let v: { node?: unknown } | null;
  try {
    v = JSON.parse(kv.value) as { node?: unknown } | null;
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  if (kind === 'networks' && rest.length === 2 && clusters.has(cluster)) {
    return { key: clusterKeys.network(cluster, self), move: false };
  }
  if (rest.length !== 3 || item === undefined) return undefined;
  if (kind === 'blocks' && v.node === self) return { key: clusterKeys.block(cluster, item, self), move: true };
  if (kind === 'addrs' && v.node === self) return { key: clusterKeys.addr(cluster, item, self), move: true };
  if (kind === 'addrs' && v.node === SHARED_OWNER && clusters.has(cluster)) {
    return { key: clusterKeys.shared(cluster, item, self), move: false };
  }
  return undefined;
}

/** The value under the new key: the legacy one, with `node` the owner for shared claims. */
function newValue(kv: KeyValue, key: string, self: string): string | undefined {
  const v = JSON.parse(kv.value) as Record<string, unknown>;
  const value = JSON.stringify(key.startsWith(clusterKeys.kindPrefix('shared')) ? { ...v, node: self } : v);
  // only a record the new layout accepts is written: anything else stays where it was
  return decodeClusterRecord({ key, value }).kind === 'malformed' ? undefined : value;
}

/** Move `self`'s legacy records (see the header); `clusters`: the cluster networks this host has. */
export async function migrateLegacy(store: Store, self: string, clusters: readonly string[]): Promise<MigrateResult> {
  const local = new Set(clusters);
  const { items } = await store.list(LEGACY_CLUSTER_PREFIX);
  let moved = 0;
  let dropped = 0;
  for (const kv of items) {
    const t = target(kv, self, local);
    if (!t) continue;
    const value = newValue(kv, t.key, self);
    if (value === undefined) continue;
    const old = t.move ? [{ type: 'delete' as const, key: kv.key }] : [];
    const r = await store.txn(
      [
        { key: kv.key, modRevision: kv.modRevision },
        { key: t.key, version: 0 },
      ],
      [{ type: 'put', key: t.key, value }, ...old],
    );
    if (r.succeeded) {
      moved++;
      continue;
    }
    if (t.move && (await store.get(t.key))) {
      const d = await store.txn([{ key: kv.key, modRevision: kv.modRevision }], old);
      if (d.succeeded) dropped++;
    }
  }
  return { moved, dropped };
}
