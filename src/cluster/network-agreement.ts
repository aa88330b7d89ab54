/**
 * Agreeing on a cluster network's settings (agent.ts's join): every host keeps its own copy of
 * the network record, and the oldest copy in etcd is the cluster's.
 */
import { type ClusterNetworkRecord, clusterKeys } from '../core/cluster/model.ts';
import { decodeClusterRecord } from '../core/cluster/records.ts';
import { errors } from '../core/errors.ts';
import type { Store } from '../store/store.ts';

const { network: networkKey } = clusterKeys;

/**
 * Publish this host's copy of the network record (networks/<self>/<cluster>) and check it
 * against the cluster's: the oldest well-formed copy (lowest createRevision) of any host.
 * Two hosts creating it at once with different settings both see the same oldest copy;
 * the other one withdraws its copy and fails.
 */
export async function agreeOnNetwork(store: Store, rec: ClusterNetworkRecord, self: string): Promise<void> {
  const key = networkKey(rec.name, self);
  const value = JSON.stringify(rec);
  const mine = await store.get(key);
  if (!mine) await store.txn([{ key, version: 0 }], [{ type: 'put', key, value }]);
  const items = (await store.list(clusterKeys.kindPrefix('networks'))).items;
  const oldest = items
    .map((kv) => ({ d: decodeClusterRecord(kv), rev: kv.createRevision }))
    .flatMap(({ d, rev }) => (d.kind === 'networks' && d.record.name === rec.name ? [{ r: d.record, rev }] : []))
    .sort((a, b) => a.rev - b.rev)[0]?.r;
  if (!oldest || oldest.fingerprint === rec.fingerprint) {
    // a copy of an earlier join with other settings (not the cluster's): brought up to date
    if (mine && mine.value !== value) {
      await store.txn([{ key, modRevision: mine.modRevision }], [{ type: 'put', key, value }]);
    }
    return;
  }
  const now = await store.get(key);
  if (!mine && now) await store.txn([{ key, modRevision: now.modRevision }], [{ type: 'delete', key }]);
  throw errors.networkConflict(
    `cluster network ${rec.name} already exists with other settings (subnets ${oldest.subnets.join(',')}, ` +
      `encrypt ${oldest.encrypt}); this host asked for subnets ${rec.subnets.join(',')}, encrypt ${rec.encrypt}: ` +
      'create it with the same options on every host',
  );
}
