/**
 * The IPAM driver's use cases: pools and addresses, held in the store.
 *
 * Every decision is read → decide (pure, core/ipam) → compare-and-swap txn, so two
 * requests, in this process or another sharing the store, can never take the same pool or
 * address; the loser re-reads and decides again (bounded). Within this process, requests
 * on one pool (and all pool requests) also queue behind each other, so concurrent Docker
 * calls do not spend their attempts racing each other. Every result is durable in the
 * store before the promise resolves.
 *
 * CAS guards (keys in core/ipam/keys.ts):
 * - pool allocation compares the pool-seq key, which every allocation bumps: no pool was
 *   added between our read of all pools and our write, so "overlaps nothing" still holds;
 * - address allocation compares the pool record's modRevision and rewrites the record
 *   (its next-free cursor): no address came or went meanwhile, and a concurrent
 *   ReleasePool (which compares the same modRevision) cannot leave an orphan address.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { errors } from '../core/errors.ts';
import { formatIp, formatPrefix, hostRange, type Ip, type Prefix } from '../core/ip.ts';
import {
  allocationRange,
  checkRequestedAddress,
  classifyAddressRequest,
  describeHolder,
  parseRequestedAddress,
  pickNextFree,
} from '../core/ipam/address-selection.ts';
import { type CompiledDefaultPool, compileDefaultPools, type DefaultPool } from '../core/ipam/default-pools.ts';
import {
  addrKey,
  addrsPrefix,
  IPAM_ADDRS_PREFIX,
  IPAM_POOL_SEQ_KEY,
  IPAM_POOLS_PREFIX,
  makePoolId,
  poolKey,
} from '../core/ipam/keys.ts';
import { findOverlap, type HeldPool, pickDynamicPool } from '../core/ipam/pool-selection.ts';
import { type PoolPlan, planPoolRequest } from '../core/ipam/pool-validation.ts';
import { type DecodedPool, decodeAddressRecord, decodePoolRecord, encodeRecord } from '../core/ipam/records.ts';
import type { AddressKind, AddressRecord, PoolRecord } from '../core/model.ts';
import type {
  IpamCapabilities,
  IpamService,
  RequestAddressInput,
  RequestAddressResult,
  RequestPoolInput,
  RequestPoolResult,
} from '../core/ports.ts';
import { showValue } from '../core/safe-json.ts';
import { fault } from '../obs/fault.ts';
import type { Logger } from '../obs/logger.ts';
import type { Compare, KeyValue, Op, Store } from '../store/store.ts';

export { DEFAULT_POOLS, type DefaultPool, parseDefaultPools } from '../core/ipam/default-pools.ts';

export const LOCAL_ADDRESS_SPACE = 'TrussLocal';
export const GLOBAL_ADDRESS_SPACE = 'TrussGlobal';
/** CAS attempts per request before giving up with TRUSS_ERR_STORE_CONFLICT. */
export const MAX_ATTEMPTS = 50;

export interface IpamServiceDeps {
  readonly store: Store;
  readonly log: Logger;
  readonly defaultPools: readonly DefaultPool[];
  /**
   * Cluster networks: the pool of a cluster network (known once CreateNetwork with
   * truss.cluster has run) hands out endpoint addresses through the cluster IPAM, so
   * they are unique across hosts; the local record is kept as well.
   */
  readonly cluster?: {
    readonly ipam: ClusterAddressing;
    /** the truss.cluster name of the local network using this pool (CIDR), if any */
    clusterForPool(pool: string): Promise<string | undefined>;
  };
}

/** What the IPAM needs of the cluster IPAM (cluster/cluster-ipam.ts). */
export interface ClusterAddressing {
  allocate(cluster: string, subnet: Prefix, specific?: Ip, owner?: string): Promise<Ip>;
  release(cluster: string, ip: Ip): Promise<void>;
}

const RETRY = Symbol('retry');
type Attempt<T> = T | typeof RETRY;
const POOLS_LOCK = '\0pools';

const put = (key: string, value: string): Op => ({ type: 'put', key, value });
const del = (key: string): Op => ({ type: 'delete', key });
/** "unchanged since read", also for a key that was absent */
const unchanged = (key: string, kv: KeyValue | undefined): Compare =>
  kv ? { key, modRevision: kv.modRevision } : { key, version: 0 };

/** Serialises async work per key; idle keys are forgotten. */
class KeyedLock {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const gate = Promise.withResolvers<void>();
    const tail = prev.then(() => gate.promise);
    this.#tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      gate.resolve();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

export class IpamServiceImpl implements IpamService {
  readonly #store: Store;
  readonly #log: Logger;
  readonly #defaults: readonly CompiledDefaultPool[];
  readonly #lock = new KeyedLock();
  readonly #deps: IpamServiceDeps;

  constructor(deps: IpamServiceDeps) {
    this.#deps = deps;
    this.#store = deps.store;
    this.#log = deps.log;
    this.#defaults = compileDefaultPools(deps.defaultPools);
  }

  capabilities(): IpamCapabilities {
    return { requiresMacAddress: false, requiresRequestReplay: false };
  }

  defaultAddressSpaces(): { local: string; global: string } {
    return { local: LOCAL_ADDRESS_SPACE, global: GLOBAL_ADDRESS_SPACE };
  }

  async requestPool(input: RequestPoolInput): Promise<RequestPoolResult> {
    const space = checkAddressSpace(input.addressSpace);
    const plan = planPoolRequest(input);
    return this.#lock.run(POOLS_LOCK, () => this.#retry('RequestPool', () => this.#tryRequestPool(space, plan)));
  }

  async releasePool(poolId: string): Promise<void> {
    await this.#lock.run(poolId, () => this.#retry('ReleasePool', () => this.#tryReleasePool(poolId)));
  }

  async requestAddress(input: RequestAddressInput): Promise<RequestAddressResult> {
    const ip = input.address === '' ? undefined : parseRequestedAddress(input.address);
    const holder = classifyAddressRequest(input.options, input.address);
    const cluster = holder.kind === 'gateway' ? undefined : await this.#clusterOf(input.poolId);
    if (cluster) return this.#requestClusterAddress(input.poolId, cluster, ip, holder.owner);
    const r = await this.#lock.run(input.poolId, () =>
      this.#retry('RequestAddress', () => this.#tryRequestAddress(input.poolId, ip, holder)),
    );
    fault('request-address:after-store');
    return r;
  }

  /**
   * Local record first, then the cluster claim: a crash in between leaves a claim nothing
   * backs, which the claim GC reclaims (the other order could leave an address in use
   * without a claim). A failed claim release (etcd down) is logged, not reported: dockerd
   * only logs a failed ReleaseAddress and never sends it again, so an error would help no
   * one; the claim GC releases the claim once etcd is back. Releasing twice is harmless.
   */
  async releaseAddress(poolId: string, address: string): Promise<void> {
    const ip = parseRequestedAddress(address);
    const cluster = await this.#clusterOf(poolId);
    fault('release-address:before-store');
    await this.#lock.run(poolId, () => this.#retry('ReleaseAddress', () => this.#tryReleaseAddress(poolId, ip)));
    if (!cluster) return;
    try {
      await this.#deps.cluster?.ipam.release(cluster.name, ip);
    } catch (e) {
      this.#log.warn('cluster address claim not released; the claim GC releases it when etcd is back', {
        cluster: cluster.name,
        address: formatIp(ip),
        err: e,
      });
    }
  }

  /** Every address the local IPAM holds, by pool CIDR (the claim GC's "in use" view). */
  async addressesByPool(): Promise<Map<string, Set<string>>> {
    const pools = new Map((await this.#heldPoolRecords()).map((p) => [p.id, p.pool]));
    const out = new Map<string, Set<string>>();
    for (const kv of (await this.#store.list(IPAM_ADDRS_PREFIX)).items) {
      const rec = decodeAddressRecord(kv.key, kv.value).record;
      const pool = pools.get(rec.poolId);
      if (pool === undefined) continue;
      const set = out.get(pool) ?? new Set<string>();
      set.add(rec.address);
      out.set(pool, set);
    }
    return out;
  }

  async #clusterOf(poolId: string): Promise<{ name: string; subnet: Prefix } | undefined> {
    if (!this.#deps.cluster) return undefined;
    const kv = await this.#store.get(poolKey(poolId));
    if (!kv) return undefined;
    const pool = decodePoolRecord(kv.key, kv.value);
    const name = await this.#deps.cluster.clusterForPool(pool.record.pool);
    return name === undefined ? undefined : { name, subnet: pool.prefix };
  }

  /** Claim in the cluster first (fails fast while etcd is down), then record locally. */
  async #requestClusterAddress(
    poolId: string,
    cluster: { name: string; subnet: Prefix },
    wanted: Ip | undefined,
    owner: string | undefined,
  ): Promise<RequestAddressResult> {
    const ipam = this.#deps.cluster?.ipam as ClusterAddressing;
    const ip = await ipam.allocate(cluster.name, cluster.subnet, wanted, owner);
    const holder = { kind: 'endpoint' as const, ...(owner ? { owner } : {}) };
    try {
      return await this.#lock.run(poolId, () =>
        this.#retry('RequestAddress', () => this.#tryRequestAddress(poolId, ip, holder)),
      );
    } catch (e) {
      await ipam.release(cluster.name, ip).catch(() => {});
      throw e;
    }
  }

  /**
   * Release the endpoint allocation of `address` (bare or CIDR) in whichever truss pool holds
   * it: used by the endpoint GC when Docker's ReleaseAddress never reached truss. Gateway and
   * aux addresses are never touched. Returns the pool ids it released from.
   */
  async releaseEndpointAddress(address: string, allocatedBefore = Number.POSITIVE_INFINITY): Promise<string[]> {
    const ip = parseRequestedAddress(address);
    const released: string[] = [];
    for (const held of await this.#heldPools()) {
      const kv = await this.#store.get(addrKey(held.id, formatIp(ip)));
      if (!kv || decodeAddressRecord(kv.key, kv.value).record.kind !== 'endpoint') continue;
      if (kv.createRevision >= allocatedBefore) continue; // handed to a newer endpoint meanwhile
      await this.releaseAddress(held.id, formatIp(ip));
      released.push(held.id);
    }
    return released;
  }

  // ---------- one attempt each: read, decide, CAS ----------

  async #tryRequestPool(space: string, plan: PoolPlan): Promise<Attempt<RequestPoolResult>> {
    const seq = await this.#store.get(IPAM_POOL_SEQ_KEY);
    const held = await this.#heldPools();
    let pool: Prefix;
    let subPool: Prefix | undefined;
    if (plan.kind === 'explicit') {
      // Docker sends the same explicit request again only after releasing it (no request
      // replay: requiresRequestReplay is false; the overlap loop is for dynamic pools), so
      // a held identical pool is another network's: refuse it like any overlap.
      const clash = findOverlap(plan.pool, held);
      if (clash) throw overlapError(plan.pool, clash);
      pool = plan.pool;
      subPool = plan.subPool;
    } else {
      const picked = pickDynamicPool(
        this.#defaults,
        plan.family,
        held.map((h) => h.prefix),
      );
      if (!picked) throw this.#exhaustedError(plan.family);
      pool = picked;
    }
    const cidr = formatPrefix(pool);
    const sub = subPool ? formatPrefix(subPool) : undefined;
    const id = makePoolId(space, cidr, sub);
    const record: PoolRecord = {
      id,
      addressSpace: space,
      family: pool.family,
      pool: cidr,
      ...(sub !== undefined ? { subPool: sub } : {}),
      dynamic: plan.kind === 'dynamic',
    };
    const r = await this.#store.txn(
      [unchanged(IPAM_POOL_SEQ_KEY, seq), { key: poolKey(id), version: 0 }],
      [put(poolKey(id), encodeRecord(record)), put(IPAM_POOL_SEQ_KEY, JSON.stringify({ lastPoolId: id }))],
    );
    if (!r.succeeded) return RETRY;
    this.#log.info('ipam pool allocated', { poolId: id, dynamic: record.dynamic, revision: r.revision });
    return { poolId: id, pool: cidr, data: {} };
  }

  async #tryReleasePool(poolId: string): Promise<Attempt<void>> {
    const kv = await this.#store.get(poolKey(poolId));
    const { items } = await this.#store.list(addrsPrefix(poolId));
    if (!kv && items.length === 0) return;
    const r = await this.#store.txn(
      [unchanged(poolKey(poolId), kv)],
      [...(kv ? [del(poolKey(poolId))] : []), ...items.map((a) => del(a.key))],
    );
    if (!r.succeeded) return RETRY;
    this.#log.info('ipam pool released', { poolId, addresses: items.length, revision: r.revision });
  }

  async #tryRequestAddress(
    poolId: string,
    wanted: Ip | undefined,
    holder: { readonly kind: AddressKind; readonly owner?: string },
  ): Promise<Attempt<RequestAddressResult>> {
    const kv = await this.#store.get(poolKey(poolId));
    if (!kv) {
      throw errors.poolNotFound(`pool ${poolId} does not exist: it was never requested from truss or was released`);
    }
    const pool = decodePoolRecord(kv.key, kv.value);
    const { items } = await this.#store.list(addrsPrefix(poolId));
    const { value, cursor } = chooseAddress(poolId, pool, items, wanted, holder.kind);
    const address = formatIp({ family: pool.prefix.family, value });
    const rec: AddressRecord = { poolId, address, kind: holder.kind, ...(holder.owner ? { owner: holder.owner } : {}) };
    const key = addrKey(poolId, address);
    const r = await this.#store.txn(
      [unchanged(kv.key, kv), { key, version: 0 }],
      [put(key, encodeRecord(rec)), put(kv.key, encodeRecord(withCursor(pool.record, cursor)))],
    );
    if (!r.succeeded) return RETRY;
    this.#log.debug('ipam address allocated', { poolId, address, kind: rec.kind, owner: rec.owner });
    return { address: `${address}/${pool.prefix.length}`, data: {} };
  }

  async #tryReleaseAddress(poolId: string, ip: Ip): Promise<Attempt<void>> {
    const kv = await this.#store.get(poolKey(poolId));
    const pool = kv ? decodePoolRecord(kv.key, kv.value) : undefined;
    const { value } = ip;
    const address = formatIp(ip);
    const key = addrKey(poolId, address);
    const akv = await this.#store.get(key);
    if (!akv) return;
    const compares = [unchanged(key, akv)];
    const ops = [del(key)];
    // The cursor moves to the released address, so next-free walks on past it: the address
    // freed last is the last one handed out again.
    const range = pool && allocationRange(pool.prefix, pool.subPrefix);
    if (kv && pool && range && value >= range.first && value <= range.last) {
      compares.push(unchanged(kv.key, kv));
      ops.push(put(kv.key, encodeRecord(withCursor(pool.record, value.toString()))));
    }
    const r = await this.#store.txn(compares, ops);
    if (!r.succeeded) return RETRY;
    this.#log.debug('ipam address released', { poolId, address });
  }

  // ---------- helpers ----------

  async #heldPoolRecords(): Promise<PoolRecord[]> {
    const { items } = await this.#store.list(IPAM_POOLS_PREFIX);
    return items.map((kv) => decodePoolRecord(kv.key, kv.value).record);
  }

  async #heldPools(): Promise<HeldPool[]> {
    const { items } = await this.#store.list(IPAM_POOLS_PREFIX);
    return items.map((kv) => {
      const d = decodePoolRecord(kv.key, kv.value);
      return { id: d.record.id, prefix: d.prefix };
    });
  }

  async #retry<T>(what: string, attempt: () => Promise<Attempt<T>>): Promise<T> {
    for (let i = 1; i <= MAX_ATTEMPTS; i++) {
      const r = await attempt();
      if (r !== RETRY) return r;
      this.#log.debug('ipam write conflict, retrying', { rpc: what, attempt: i });
      // why: the other writer is another process or host sharing the store; jitter spreads us apart
      await sleep(Math.random() * Math.min(50, 2 ** i));
    }
    throw errors.storeConflict(
      `${what} lost ${MAX_ATTEMPTS} compare-and-swap races against concurrent IPAM changes; retry the command`,
    );
  }

  #exhaustedError(family: 4 | 6): Error {
    const mine = this.#defaults.filter((d) => d.base.family === family).map((d) => d.text);
    if (mine.length === 0) {
      return errors.poolExhausted(
        `no default IPv${family} pools are configured (--default-pools): pass an explicit --subnet`,
      );
    }
    return errors.poolExhausted(
      `all default IPv${family} pools are in use (${mine.join(', ')}): remove unused networks, ` +
        'pass an explicit --subnet, or add ranges with --default-pools',
    );
  }
}

function checkAddressSpace(space: string): string {
  if (space === LOCAL_ADDRESS_SPACE || space === GLOBAL_ADDRESS_SPACE) return space;
  if (space === '') return LOCAL_ADDRESS_SPACE;
  throw errors.badRequest(
    `AddressSpace ${showValue(space)} is not truss's: use ${LOCAL_ADDRESS_SPACE} or ${GLOBAL_ADDRESS_SPACE}`,
  );
}

function overlapError(wanted: Prefix, clash: HeldPool): Error {
  const a = formatPrefix(wanted);
  const b = formatPrefix(clash.prefix);
  const what = a === b ? `pool ${a} is already in use` : `pool ${a} overlaps pool ${b}, already in use`;
  return errors.poolOverlap(`${what} (${clash.id}) by another network: choose a --subnet that overlaps no other`);
}

function exhaustedAddressError(pool: DecodedPool, used: number): Error {
  const where = pool.record.subPool ? `sub-pool (--ip-range) ${pool.record.subPool} of ` : '';
  return errors.addressExhausted(
    `no free address left in ${where}pool ${pool.record.id} (${used} allocated): ` +
      'release addresses or use a larger --subnet / --ip-range',
  );
}

/**
 * The address to allocate: the wanted one if it is acceptable and free, else the gateway's
 * first free host address or the next free one after the cursor. Throws the user-facing
 * error otherwise. `items` are the pool's address keys, which end in the canonical address
 * text: candidates are looked up by text, the stored addresses are never all parsed.
 */
function chooseAddress(
  id: string,
  pool: DecodedPool,
  items: readonly KeyValue[],
  wantedIp: Ip | undefined,
  kind: AddressKind,
): { readonly value: bigint; readonly cursor: string | undefined } {
  const text = (v: bigint): string => formatIp({ family: pool.prefix.family, value: v });
  if (wantedIp !== undefined) {
    checkRequestedAddress(pool.prefix, wantedIp, id); // refuses an address of the other family (L4)
    const wanted = wantedIp.value;
    const existing = items.find((a) => a.key === addrKey(id, text(wanted)));
    if (existing) {
      const holder = describeHolder(decodeAddressRecord(existing.key, existing.value).record);
      throw errors.addressInUse(`address ${text(wanted)} in pool ${id} is already allocated to ${holder}`);
    }
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

function withCursor(record: PoolRecord, cursor: string | undefined): PoolRecord {
  return cursor === undefined ? record : { ...record, cursor };
}
