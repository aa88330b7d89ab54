/** Read-only views of the IPAM's records (the claim GC, journal settles). */
import { IPAM_ADDRS_PREFIX, IPAM_POOLS_PREFIX } from '../core/ipam/keys.ts';
import { decodeAddressRecord, decodePoolRecord } from '../core/ipam/records.ts';
import type { Store } from '../store/store.ts';

/** Every address the local IPAM holds, by pool CIDR. */
export async function addressesByPool(store: Store): Promise<Map<string, Set<string>>> {
  const pools = new Map(
    (await store.list(IPAM_POOLS_PREFIX)).items.map((kv) => {
      const rec = decodePoolRecord(kv.key, kv.value).record;
      return [rec.id, rec.pool];
    }),
  );
  const out = new Map<string, Set<string>>();
  for (const kv of (await store.list(IPAM_ADDRS_PREFIX)).items) {
    const rec = decodeAddressRecord(kv.key, kv.value).record;
    const pool = pools.get(rec.poolId);
    if (pool === undefined) continue;
    const set = out.get(pool) ?? new Set<string>();
    set.add(rec.address);
    out.set(pool, set);
  }
  return out;
}

/** Pools whose CIDR is `pool`, with the revision each was allocated at. */
export async function poolsOf(
  store: Store,
  pool: string,
): Promise<{ readonly id: string; readonly createRevision: number }[]> {
  const { items } = await store.list(IPAM_POOLS_PREFIX);
  return items.flatMap((kv) => {
    const rec = decodePoolRecord(kv.key, kv.value).record;
    return rec.pool === pool ? [{ id: rec.id, createRevision: kv.createRevision }] : [];
  });
}
