/**
 * Which address a RequestAddress gets (pure over one read of the pool): the wanted one if it is
 * acceptable and free, else the gateway's first free host address or the next free one after
 * the pool's cursor. Split from ipam-service.ts, which does the reading and the CAS write.
 */
import { errors } from '../core/errors.ts';
import { formatIp, hostRange, type Ip } from '../core/ip.ts';
import { allocationRange, checkRequestedAddress, pickNextFree } from '../core/ipam/address-selection.ts';
import { addrKey, addrsPrefix } from '../core/ipam/keys.ts';
import { type DecodedPool, decodeAddressRecord } from '../core/ipam/records.ts';
import type { AddressKind, AddressRecord, PoolRecord } from '../core/model.ts';
import type { KeyValue } from '../store/store.ts';

/** The address is free, or held by `holder` (the caller words the conflict). */
export type Choice =
  | { readonly value: bigint; readonly cursor: string | undefined; readonly holder?: undefined }
  | { readonly holder: AddressRecord };

function exhaustedAddressError(pool: DecodedPool, used: number): Error {
  const where = pool.record.subPool ? `sub-pool (--ip-range) ${pool.record.subPool} of ` : '';
  return errors.addressExhausted(
    `no free address left in ${where}pool ${pool.record.id} (${used} allocated): ` +
      'release addresses or use a larger --subnet / --ip-range',
  );
}

/**
 * `items` are the pool's address keys, which end in the canonical address text: candidates are
 * looked up by text, the stored addresses are never all parsed. Throws the user-facing error
 * when the wanted address is unacceptable or the pool is full.
 */
export function chooseAddress(
  id: string,
  pool: DecodedPool,
  items: readonly KeyValue[],
  wantedIp: Ip | undefined,
  kind: AddressKind,
): Choice {
  const text = (v: bigint): string => formatIp({ family: pool.prefix.family, value: v });
  if (wantedIp !== undefined) {
    checkRequestedAddress(pool.prefix, wantedIp, id); // refuses an address of the other family (L4)
    const wanted = wantedIp.value;
    const existing = items.find((a) => a.key === addrKey(id, text(wanted)));
    if (existing) return { holder: decodeAddressRecord(existing.key, existing.value).record };
    return { value: wanted, cursor: pool.record.cursor };
  }
  const prefix = addrsPrefix(id);
  const taken = new Set(items.map((a) => a.key.slice(prefix.length)));
  const isTaken = (v: bigint): boolean => taken.has(text(v));
  // The gateway takes the first free host address of the whole pool (--ip-range is for
  // containers); everything else walks the allocation range on from the cursor.
  if (kind === 'gateway') {
    const free = pickNextFree(hostRange(pool.prefix), isTaken, taken.size);
    if (free === undefined) throw exhaustedAddressError(pool, taken.size);
    return { value: free, cursor: pool.record.cursor };
  }
  const range = allocationRange(pool.prefix, pool.subPrefix);
  const free = range && pickNextFree(range, isTaken, taken.size, pool.cursor);
  if (free === undefined) throw exhaustedAddressError(pool, taken.size);
  return { value: free, cursor: free.toString() };
}

export function withCursor(record: PoolRecord, cursor: string | undefined): PoolRecord {
  return cursor === undefined ? record : { ...record, cursor };
}
