/**
 * IPAM store keys and pool ids. Layout (values are JSON):
 *   /truss/v1/ipam/pools/<urlencoded poolId>             PoolRecord
 *   /truss/v1/ipam/addrs/<urlencoded poolId>/<address>   AddressRecord (address canonical, bare)
 *   /truss/v1/ipam/pool-seq                              bumped by every pool allocation: the
 *                                                        CAS guard that makes "no overlapping
 *                                                        pool was added meanwhile" checkable
 */
export const IPAM_POOLS_PREFIX = '/truss/v1/ipam/pools/';
export const IPAM_ADDRS_PREFIX = '/truss/v1/ipam/addrs/';
export const IPAM_POOL_SEQ_KEY = '/truss/v1/ipam/pool-seq';

export const poolKey = (poolId: string): string => `${IPAM_POOLS_PREFIX}${encodeURIComponent(poolId)}`;

/** Prefix of every address key of one pool (ends with "/": no pool's prefix is another's). */
export const addrsPrefix = (poolId: string): string => `${IPAM_ADDRS_PREFIX}${encodeURIComponent(poolId)}/`;

/** `address` is the canonical bare form (formatIp). */
export const addrKey = (poolId: string, address: string): string => `${addrsPrefix(poolId)}${address}`;

/** Docker's builtin shape: `<AddressSpace>/<pool>` or `<AddressSpace>/<pool>/<subpool>`. */
export function makePoolId(addressSpace: string, pool: string, subPool?: string): string {
  return subPool === undefined ? `${addressSpace}/${pool}` : `${addressSpace}/${pool}/${subPool}`;
}
