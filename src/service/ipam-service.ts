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
import { HOST_OWNER } from '../core/cluster/host-address.ts';
import type {
  IpamCapabilities,
  IpamDriver,
  RequestAddressInput,
  RequestAddressResult,
  RequestContext,
  RequestPoolInput,
  RequestPoolResult,
} from '../core/contracts.ts';
import { errors } from '../core/errors.ts';
import { formatIp, formatPrefix, type Ip, type Prefix } from '../core/ip.ts';
import {
  allocationRange,
  classifyAddressRequest,
  describeHolder,
  parseRequestedAddress,
} from '../core/ipam/address-selection.ts';
import { type CompiledDefaultPool, compileDefaultPools, type DefaultPool } from '../core/ipam/default-pools.ts';
import { addrKey, addrsPrefix, IPAM_POOL_SEQ_KEY, IPAM_POOLS_PREFIX, makePoolId, poolKey } from '../core/ipam/keys.ts';
import { findOverlap, type HeldPool, pickDynamicPool } from '../core/ipam/pool-selection.ts';
import { type PoolPlan, planPoolRequest } from '../core/ipam/pool-validation.ts';
import { decodeAddressRecord, decodePoolRecord, encodeRecord } from '../core/ipam/records.ts';
import type { AddressKind, AddressRecord, PoolRecord } from '../core/model.ts';
import { fault } from '../obs/fault.ts';
import type { Logger } from '../obs/logger.ts';
import type { Compare, KeyValue, Op, Store } from '../store/store.ts';
import { chooseAddress, withCursor } from './ipam-choose.ts';
import {
  checkAddressSpace,
  GLOBAL_ADDRESS_SPACE,
  LOCAL_ADDRESS_SPACE,
  overlapError,
  poolsExhaustedError,
} from './ipam-errors.ts';
import { addressesByPool, poolsOf } from './ipam-views.ts';
import type { Journal, JournalEntry } from './journal.ts';
import { KeyedLock } from './mutex.ts';

export { DEFAULT_POOLS, type DefaultPool, parseDefaultPools } from '../core/ipam/default-pools.ts';

export { GLOBAL_ADDRESS_SPACE, LOCAL_ADDRESS_SPACE } from './ipam-errors.ts';
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
  /** requests made with a RequestContext journal what undoes or completes them (journal.ts) */
  readonly journal?: Journal;
  /** the --aux-address list of the network using this pool (CIDR), when one does: conflict wording */
  auxAddresses?(pool: string): Promise<readonly string[] | undefined>;
}

/** Release only a record whose createRevision passes this (journal settles: never a re-allocation). */
export type CreatedGuard = (createRevision: number) => boolean;
const ANY: CreatedGuard = () => true;

/** What the IPAM needs of the cluster IPAM (cluster/cluster-ipam.ts). */
export interface ClusterAddressing {
  allocate(cluster: string, subnet: Prefix, specific?: Ip, owner?: string): Promise<Ip>;
  release(cluster: string, ip: Ip): Promise<void>;
}

const RETRY = Symbol('retry');
type Attempt<T> = T | typeof RETRY;
const POOLS_LOCK = '\0pools';

const put = (key: string, value: string): Op => ({ type: 'put', key, value });
type JournalOps = (e: JournalEntry) => Op[];
const del = (key: string): Op => ({ type: 'delete', key });
/** "unchanged since read", also for a key that was absent */
const unchanged = (key: string, kv: KeyValue | undefined): Compare =>
  kv ? { key, modRevision: kv.modRevision } : { key, version: 0 };

export class IpamService implements IpamDriver {
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

  async requestPool(input: RequestPoolInput, ctx?: RequestContext): Promise<RequestPoolResult> {
    const space = checkAddressSpace(input.addressSpace);
    const plan = planPoolRequest(input);
    const j = this.#begin(ctx);
    try {
      return await this.#lock.run(POOLS_LOCK, () =>
        this.#retry('RequestPool', () => this.#tryRequestPool(space, plan, j.ops)),
      );
    } finally {
      j.done();
    }
  }

  async releasePool(poolId: string, ctx?: RequestContext): Promise<void> {
    await this.#journaled(ctx, { kind: 'release-pool', poolId }, async () => {
      await this.releasePoolIf(poolId, ANY);
    });
  }

  /** Release the pool (and its addresses) only if its record passes `guard`; true when released. */
  async releasePoolIf(poolId: string, guard: CreatedGuard): Promise<boolean> {
    return this.#lock.run(poolId, () => this.#retry('ReleasePool', () => this.#tryReleasePool(poolId, guard)));
  }

  async requestAddress(input: RequestAddressInput, ctx?: RequestContext): Promise<RequestAddressResult> {
    const ip = input.address === '' ? undefined : parseRequestedAddress(input.address);
    const holder = classifyAddressRequest(input.options, input.address);
    const cluster = holder.kind === 'gateway' ? undefined : await this.#clusterOf(input.poolId);
    const j = this.#begin(ctx);
    try {
      if (cluster) return await this.#requestClusterAddress(input.poolId, cluster, ip, holder.owner, j.ops);
      const r = await this.#lock.run(input.poolId, () =>
        this.#retry('RequestAddress', () => this.#tryRequestAddress(input.poolId, ip, holder, j.ops)),
      );
      fault('request-address:after-store');
      return r;
    } finally {
      j.done();
    }
  }

  /**
   * Local record first, then the cluster claim: a crash in between leaves a claim nothing
   * backs, which the claim GC reclaims (the other order could leave an address in use
   * without a claim). A failed claim release (etcd down) is logged, not reported: dockerd
   * only logs a failed ReleaseAddress and never sends it again, so an error would help no
   * one; the claim GC releases the claim once etcd is back. Releasing twice is harmless.
   */
  async releaseAddress(poolId: string, address: string, ctx?: RequestContext): Promise<void> {
    const ip = parseRequestedAddress(address);
    const entry: JournalEntry = { kind: 'release-address', poolId, address: formatIp(ip) };
    await this.#journaled(ctx, entry, async () => {
      fault('release-address:before-store');
      await this.releaseAddressIf(poolId, formatIp(ip), ANY);
    });
  }

  /** Release `address` only if its record passes `guard` (and then its cluster claim); true when released. */
  async releaseAddressIf(poolId: string, address: string, guard: CreatedGuard): Promise<boolean> {
    const ip = parseRequestedAddress(address);
    const cluster = await this.#clusterOf(poolId);
    const outcome = await this.#lock.run(poolId, () =>
      this.#retry('ReleaseAddress', () => this.#tryReleaseAddress(poolId, ip, guard)),
    );
    const released = outcome === 'released';
    // dockerd's own release of an absent record still frees the claim (a crash between claim and
    // record); a guarded one (a journal settle) never does: the claim may be someone else's by now
    if (!cluster || outcome === 'kept' || (outcome === 'absent' && guard !== ANY)) return released;
    try {
      await this.#deps.cluster?.ipam.release(cluster.name, ip);
    } catch (e) {
      this.#log.warn('cluster address claim not released; the claim GC releases it when etcd is back', {
        cluster: cluster.name,
        address: formatIp(ip),
        err: e,
      });
    }
    return released;
  }

  /**
   * The create kinds: one journal key per request; each attempt's txn puts the entry (the pool
   * id or address it names is known per attempt), so it commits with the record or not at all.
   */
  #begin(ctx: RequestContext | undefined): { readonly ops: JournalOps; done(): void } {
    const journal = ctx && this.#deps.journal;
    const key = journal?.begin();
    return {
      ops: (e) => (journal && key !== undefined ? [journal.put(key, e)] : []),
      done: () => {
        if (ctx && key !== undefined) journal?.follow(key, ctx);
      },
    };
  }

  /** The release kinds: the entry is durable before the release starts, so a crash cannot lose it. */
  async #journaled(ctx: RequestContext | undefined, entry: JournalEntry, run: () => Promise<void>): Promise<void> {
    const journal = ctx && this.#deps.journal;
    const key = journal ? await journal.record(entry) : undefined;
    try {
      await run();
    } finally {
      if (key !== undefined && ctx) journal?.follow(key, ctx);
    }
  }

  /** Every address the local IPAM holds, by pool CIDR (the claim GC's "in use" view). */
  addressesByPool(): Promise<Map<string, Set<string>>> {
    return addressesByPool(this.#store);
  }

  /** Pools whose CIDR is `pool`, with the revision each was allocated at (journal settles). */
  poolsOf(pool: string): ReturnType<typeof poolsOf> {
    return poolsOf(this.#store, pool);
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
    entry: JournalOps,
  ): Promise<RequestAddressResult> {
    const ipam = this.#deps.cluster?.ipam as ClusterAddressing;
    const ip = await ipam.allocate(cluster.name, cluster.subnet, wanted, owner);
    const holder = { kind: 'endpoint' as const, ...(owner ? { owner } : {}) };
    try {
      return await this.#lock.run(poolId, () =>
        this.#retry('RequestAddress', () => this.#tryRequestAddress(poolId, ip, holder, entry)),
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

  /**
   * Record this host's own address of a cluster network (kind 'host', owner HOST_OWNER: its
   * claim is in etcd already; service/host-addresses.ts) in the local pool of CIDR `pool`,
   * replacing an earlier one of that pool. Idempotent. False when no truss pool has that CIDR
   * (the network's addresses come from another IPAM driver): nothing to record.
   */
  async recordHostAddress(pool: string, ip: Ip): Promise<boolean> {
    const held = [...(await this.poolsOf(pool))].sort((a, b) => b.createRevision - a.createRevision)[0];
    if (!held) return false;
    await this.#lock.run(held.id, () => this.#retry('RecordHostAddress', () => this.#tryRecordHost(held.id, ip)));
    return true;
  }

  // ---------- one attempt each: read, decide, CAS ----------

  async #tryRecordHost(poolId: string, ip: Ip): Promise<Attempt<void>> {
    const kv = await this.#store.get(poolKey(poolId));
    if (!kv) return; // released meanwhile (the network went): nothing to record
    const address = formatIp(ip);
    const key = addrKey(poolId, address);
    const recs = (await this.#store.list(addrsPrefix(poolId))).items.map((a) => ({
      kv: a,
      rec: decodeAddressRecord(a.key, a.value).record,
    }));
    const same = recs.find((r) => r.kv.key === key);
    if (same && same.rec.kind !== 'host') {
      throw errors.addressInUse(
        `host address ${address} is already allocated to ${describeHolder(same.rec)} in pool ${poolId}`,
      );
    }
    const stale = recs.filter((r) => r.rec.kind === 'host' && r.kv.key !== key);
    if (same && stale.length === 0) return;
    const rec: AddressRecord = { poolId, address, kind: 'host', owner: HOST_OWNER };
    const r = await this.#store.txn(
      [unchanged(kv.key, kv), unchanged(key, same?.kv), ...stale.map((s) => unchanged(s.kv.key, s.kv))],
      [
        // rewriting the pool record moves its revision: a ReleasePool read before misses nothing
        put(kv.key, kv.value),
        ...(same ? [] : [put(key, encodeRecord(rec))]),
        ...stale.map((s) => del(s.kv.key)),
      ],
    );
    if (!r.succeeded) return RETRY;
    this.#log.info('ipam host address recorded', { poolId, address, replaced: stale.map((s) => s.rec.address) });
  }

  async #tryRequestPool(space: string, plan: PoolPlan, entry: JournalOps): Promise<Attempt<RequestPoolResult>> {
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
      if (!picked) throw poolsExhaustedError(this.#defaults, plan.family);
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
      [
        put(poolKey(id), encodeRecord(record)),
        put(IPAM_POOL_SEQ_KEY, JSON.stringify({ lastPoolId: id })),
        ...entry({ kind: 'request-pool', poolId: id }),
      ],
    );
    if (!r.succeeded) return RETRY;
    this.#log.info('ipam pool allocated', { poolId: id, dynamic: record.dynamic, revision: r.revision });
    return { poolId: id, pool: cidr, data: {} };
  }

  async #tryReleasePool(poolId: string, guard: CreatedGuard): Promise<Attempt<boolean>> {
    const kv = await this.#store.get(poolKey(poolId));
    if (kv && !guard(kv.createRevision)) return false;
    const { items } = await this.#store.list(addrsPrefix(poolId));
    if (!kv && items.length === 0) return false;
    const r = await this.#store.txn(
      [unchanged(poolKey(poolId), kv)],
      [...(kv ? [del(poolKey(poolId))] : []), ...items.map((a) => del(a.key))],
    );
    if (!r.succeeded) return RETRY;
    this.#log.info('ipam pool released', { poolId, addresses: items.length, revision: r.revision });
    return kv !== undefined;
  }

  async #tryRequestAddress(
    poolId: string,
    wanted: Ip | undefined,
    holder: { readonly kind: AddressKind; readonly owner?: string },
    entry: JournalOps,
  ): Promise<Attempt<RequestAddressResult>> {
    const kv = await this.#store.get(poolKey(poolId));
    if (!kv) {
      throw errors.poolNotFound(`pool ${poolId} does not exist: it was never requested from truss or was released`);
    }
    const pool = decodePoolRecord(kv.key, kv.value);
    const { items } = await this.#store.list(addrsPrefix(poolId));
    const choice = chooseAddress(poolId, pool, items, wanted, holder.kind);
    if (choice.holder) throw await this.#heldError(pool.record.pool, choice.holder);
    const { value, cursor } = choice;
    const address = formatIp({ family: pool.prefix.family, value });
    const rec: AddressRecord = { poolId, address, kind: holder.kind, ...(holder.owner ? { owner: holder.owner } : {}) };
    const key = addrKey(poolId, address);
    const r = await this.#store.txn(
      [unchanged(kv.key, kv), { key, version: 0 }],
      [
        put(key, encodeRecord(rec)),
        put(kv.key, encodeRecord(withCursor(pool.record, cursor))),
        ...entry({ kind: 'request-address', poolId, address }),
      ],
    );
    if (!r.succeeded) return RETRY;
    this.#log.debug('ipam address allocated', { poolId, address, kind: rec.kind, owner: rec.owner });
    return { address: `${address}/${pool.prefix.length}`, data: {} };
  }

  async #tryReleaseAddress(
    poolId: string,
    ip: Ip,
    guard: CreatedGuard,
  ): Promise<Attempt<'released' | 'absent' | 'kept'>> {
    const kv = await this.#store.get(poolKey(poolId));
    const pool = kv ? decodePoolRecord(kv.key, kv.value) : undefined;
    const { value } = ip;
    const address = formatIp(ip);
    const key = addrKey(poolId, address);
    const akv = await this.#store.get(key);
    if (!akv) return 'absent';
    if (!guard(akv.createRevision)) return 'kept';
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
    return 'released';
  }

  /** The conflict for a wanted address already held, saying what holds it. */
  async #heldError(pool: string, rec: AddressRecord): Promise<Error> {
    const aux = rec.kind === 'aux' ? await this.#deps.auxAddresses?.(pool).catch(() => undefined) : undefined;
    const holder = describeHolder(rec, aux?.includes(rec.address));
    return errors.addressInUse(`address ${rec.address} in pool ${rec.poolId} is already allocated to ${holder}`);
  }

  // ---------- helpers ----------

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
}
