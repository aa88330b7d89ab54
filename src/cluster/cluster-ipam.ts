/**
 * ClusterIpam: addresses of a cluster network, unique across hosts. Each host claims
 * address blocks (blocks/<self>/<cluster>/<block>, written only if nothing under blocks/
 * changed since the host read it, so two hosts never claim overlapping blocks) and hands out
 * addresses only from its own blocks, each one claimed with create-if-absent on
 * addrs/<self>/<cluster>/<ip> (and only if no host recorded it as a shared address since it
 * was read). A host that restarts keeps its blocks and claims (they are not tied to a lease).
 * Peers route a block to the host that owns it. Every call needs the shared store: while it
 * is down, allocations fail fast with its error and nothing else is disturbed.
 *
 * Every record read is checked (core/cluster/records.ts): a malformed one, or one under a key
 * that is not its owner's, is ignored and affects nothing but itself. Overlapping blocks of
 * different hosts (only a hostile or broken writer makes them) are decided by age: the older
 * claim (lower createRevision) is the block; the newer one is ignored.
 */

import { HOST_OWNER, isHostClaim } from '../core/cluster/host-address.ts';
import type { AddressClaim, BlockRecord } from '../core/cluster/model.ts';
import { clusterKeys, isValidNodeName, LEGACY_CLUSTER_PREFIX, SHARED_OWNER } from '../core/cluster/model.ts';
import { recordsOf } from '../core/cluster/records.ts';
import { errors, isTrussError } from '../core/errors.ts';
import {
  bitsOf,
  formatIp,
  formatPrefix,
  hostRange,
  type Ip,
  type Prefix,
  parseIp,
  parsePrefix,
  prefixContains,
  prefixesOverlap,
} from '../core/ip.ts';
import type { Logger } from '../obs/logger.ts';
import type { Compare, KeyValue, Store } from '../store/store.ts';

export { SHARED_OWNER };

const { block: blockKey, addr: addrKey, shared: sharedKey, addrsOf } = clusterKeys;
const BLOCKS = clusterKeys.kindPrefix('blocks');
const SHARED = clusterKeys.kindPrefix('shared');

export interface ClusterIpamDeps {
  readonly store: Store;
  readonly node: string;
  readonly log: Logger;
  /** block prefix length per family (default /26 for IPv4: 64 addresses; /122 for IPv6) */
  readonly blockLength?: { readonly 4: number; readonly 6: number };
}

/** A cluster's blocks as read at `revision`: every well-formed record, and who holds what. */
interface BlockView {
  readonly revision: number;
  readonly all: readonly BlockRecord[];
  /** block CIDR -> owner, for the blocks that count (an overlapping newer claim does not) */
  readonly owners: ReadonlyMap<string, string>;
}

/**
 * The blocks that count: oldest first (createRevision, then key order), a block is kept unless
 * an older kept block of another host overlaps it.
 */
export function effectiveBlocks(all: readonly BlockRecord[]): BlockRecord[] {
  const byAge = [...all].sort(
    (a, b) => (a.createRevision ?? Number.MAX_SAFE_INTEGER) - (b.createRevision ?? Number.MAX_SAFE_INTEGER),
  );
  const kept: { r: BlockRecord; p: Prefix }[] = [];
  for (const r of byAge) {
    const p = parsePrefix(r.block);
    if (!p) continue;
    if (kept.some((k) => k.r.node !== r.node && prefixesOverlap(k.p, p))) continue;
    kept.push({ r, p });
  }
  return kept.map((k) => k.r);
}

const MAX_ATTEMPTS = 32;

/** The block (of `length`) containing `ip`. */
export function blockOf(ip: Ip, length: number): Prefix {
  const host = (1n << BigInt(bitsOf(ip.family) - length)) - 1n;
  return { family: ip.family, value: ip.value & ~host, length };
}

export class ClusterIpam {
  readonly #d: ClusterIpamDeps;
  /** per cluster: the block the last address came from (tried first next time) */
  readonly #lastBlock = new Map<string, string>();
  /** per cluster: the tail of this host's queued allocations */
  readonly #queues = new Map<string, Promise<Ip>>();
  constructor(deps: ClusterIpamDeps) {
    this.#d = deps;
  }

  #blockLength(subnet: Prefix): number {
    const want = this.#d.blockLength?.[subnet.family] ?? (subnet.family === 4 ? 26 : 122);
    return Math.max(want, subnet.length);
  }

  /** Blocks of a cluster: block CIDR -> owning node (the blocks that count, see effectiveBlocks). */
  async blocks(cluster: string): Promise<Map<string, string>> {
    return new Map((await this.#blockView(cluster)).owners);
  }

  async #blockView(cluster: string): Promise<BlockView> {
    const { items, revision } = await this.#d.store.list(BLOCKS);
    const all = recordsOf('blocks', items)
      .map((d) => d.record)
      .filter((b) => b.cluster === cluster);
    // blocks of hosts not upgraded yet (or not moved yet, migrate.ts) are taken all the same
    const legacy = (await this.#d.store.list(`${LEGACY_CLUSTER_PREFIX}blocks/${cluster}/`)).items.flatMap(
      (kv) => legacyBlock(kv, cluster) ?? [],
    );
    const both = [...all, ...legacy];
    return { revision, all: both, owners: new Map(effectiveBlocks(both).map((b) => [b.block, b.node])) };
  }

  /** Shared addresses of a cluster (any host's record of them), as read at `revision`. */
  async #shared(cluster: string): Promise<{ readonly revision: number; readonly ips: ReadonlySet<string> }> {
    const { items, revision } = await this.#d.store.list(SHARED);
    const ips = recordsOf('shared', items)
      .map((d) => d.record)
      .filter((c) => c.cluster === cluster)
      .map((c) => c.address);
    return { revision, ips: new Set(ips) };
  }

  /**
   * Record an address every host shares (gateway, aux) under this host's shared/ prefix; refused
   * when the host owning its block already gave it to an endpoint.
   */
  async reserveShared(cluster: string, subnet: Prefix, ip: Ip): Promise<void> {
    if (!prefixContains(subnet, ip)) throw errors.addressOutOfPool(`${formatIp(ip)} is not in ${formatPrefix(subnet)}`);
    const text = formatIp(ip);
    const key = sharedKey(cluster, text, this.#d.node);
    if (await this.#d.store.get(key)) return;
    const owner = [...(await this.blocks(cluster))].find(([b]) => {
      const p = parsePrefix(b);
      return p !== undefined && prefixContains(p, ip);
    })?.[1];
    const theirs = owner !== undefined ? addrKey(cluster, text, owner) : undefined;
    const claim: AddressClaim = { cluster, address: text, node: this.#d.node };
    const guard: Compare[] = theirs ? [{ key: theirs, version: 0 }] : [];
    const r = await this.#d.store.txn(
      [{ key, version: 0 }, ...guard],
      [{ type: 'put', key, value: JSON.stringify(claim) }],
    );
    if (r.succeeded || (await this.#d.store.get(key))) return;
    throw errors.addressInUse(`${text} of cluster network ${cluster} is already used by host ${owner}`);
  }

  /**
   * Allocate an address for an endpoint on this host: `specific` or the next free one. This
   * host's allocations in one cluster queue behind each other: they would all pick the same
   * next free address and spend their attempts racing each other (other hosts allocate from
   * their own blocks, so cross-host races are rare: unclaimed blocks only).
   */
  allocate(cluster: string, subnet: Prefix, specific?: Ip, owner?: string): Promise<Ip> {
    const go = (): Promise<Ip> => this.#allocate(cluster, subnet, specific, owner);
    const prev = this.#queues.get(cluster);
    // behind one that found the store unavailable, fail at once too (no queue of timeouts)
    const run = prev
      ? prev.then(go, (e: unknown) => (isTrussError(e) && e.kind === 'unavailable' ? Promise.reject(e) : go()))
      : go();
    this.#queues.set(cluster, run);
    const forget = (): void => {
      if (this.#queues.get(cluster) === run) this.#queues.delete(cluster);
    };
    run.then(forget, forget);
    return run;
  }

  async #allocate(cluster: string, subnet: Prefix, specific?: Ip, owner?: string): Promise<Ip> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      let ip: Ip;
      let sharedRevision: number;
      if (specific) {
        await this.#ensureBlockFor(cluster, subnet, specific);
        const shared = await this.#shared(cluster);
        if (shared.ips.has(formatIp(specific))) {
          throw errors.addressInUse(
            `${formatIp(specific)} of cluster network ${cluster} is already used (host ${SHARED_OWNER}: a gateway or aux address)`,
          );
        }
        ip = specific;
        sharedRevision = shared.revision;
      } else {
        ({ ip, sharedRevision } = await this.#nextFree(cluster, subnet));
      }
      const key = addrKey(cluster, formatIp(ip), this.#d.node);
      const claim: AddressClaim = { cluster, address: formatIp(ip), node: this.#d.node, ...(owner ? { owner } : {}) };
      const r = await this.#d.store.txn(
        [
          { key, version: 0 },
          { key: SHARED, prefixModRevisionAtMost: sharedRevision },
        ],
        [{ type: 'put', key, value: JSON.stringify(claim) }],
      );
      if (r.succeeded) return ip;
      const held = specific ? await this.#d.store.get(key) : undefined;
      if (held) {
        const byHost = recordsOf('addrs', [held]).some((d) => isHostClaim(d.record));
        throw errors.addressInUse(
          `${formatIp(ip)} of cluster network ${cluster} is already used ` +
            (byHost ? `by this host itself (its host address, truss status)` : `(host ${this.#d.node})`),
        );
      }
    }
    throw errors.storeConflict(`could not claim an address in cluster network ${cluster}: too much contention, retry`);
  }

  /**
   * This host's own address in `subnet` (core/cluster/host-address.ts): its existing claim with the
   * host owner (the lowest, should there be more), else the next free address of its blocks,
   * claimed like a container's with that owner. Idempotent: a restart, a repeated create and a
   * repair all find the same claim. Callers serialise per cluster (service/host-addresses.ts).
   */
  async claimHost(cluster: string, subnet: Prefix): Promise<Ip> {
    const prefix = addrsOf(cluster, this.#d.node);
    const mine = recordsOf('addrs', (await this.#d.store.list(prefix)).items)
      .map((d) => d.record)
      .filter((c) => isHostClaim(c))
      .map((c) => parseIp(c.address))
      .filter((ip): ip is Ip => ip !== undefined && prefixContains(subnet, ip))
      .sort((a, b) => (a.value < b.value ? -1 : 1));
    const have = mine[0];
    if (have) return have;
    const ip = await this.allocate(cluster, subnet, undefined, HOST_OWNER);
    this.#d.log.info('cluster host address claimed', { cluster, address: formatIp(ip) });
    return ip;
  }

  /** Release this host's claim on an address; unknown = nothing to do. */
  async release(cluster: string, ip: Ip): Promise<void> {
    const key = addrKey(cluster, formatIp(ip), this.#d.node);
    const cur = await this.#d.store.get(key);
    if (!cur) return;
    await this.#d.store.txn([{ key, modRevision: cur.modRevision }], [{ type: 'delete', key }]);
  }

  async #ensureBlockFor(cluster: string, subnet: Prefix, ip: Ip): Promise<void> {
    if (!prefixContains(subnet, ip)) {
      throw errors.addressOutOfPool(`${formatIp(ip)} is not in cluster network ${cluster} (${formatPrefix(subnet)})`);
    }
    const want = blockOf(ip, this.#blockLength(subnet));
    const block = formatPrefix(want);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const view = await this.#blockView(cluster);
      if (view.owners.get(block) === this.#d.node) return;
      const other = view.all.find((b) => {
        const p = parsePrefix(b.block);
        return p !== undefined && prefixesOverlap(p, want) && b.node !== this.#d.node;
      });
      if (other) {
        throw errors.addressInUse(
          `${formatIp(ip)} lies in block ${other.block} of host ${other.node}; pick an address of this host's blocks`,
        );
      }
      if (await this.#claimBlock(cluster, block, view.revision)) return;
    }
    throw errors.storeConflict(
      `could not claim block ${block} in cluster network ${cluster}: too much contention, retry`,
    );
  }

  /** Claim `block`, unless any block record (of any host, any cluster) was written since `revision`. */
  async #claimBlock(cluster: string, block: string, revision: number): Promise<boolean> {
    const key = blockKey(cluster, block, this.#d.node);
    const rec: BlockRecord = { cluster, block, node: this.#d.node };
    const r = await this.#d.store.txn(
      [
        { key: BLOCKS, prefixModRevisionAtMost: revision },
        { key, version: 0 },
      ],
      [{ type: 'put', key, value: JSON.stringify(rec) }],
    );
    if (r.succeeded) this.#d.log.info('cluster block claimed', { cluster, block });
    return r.succeeded;
  }

  /**
   * The next free address of this host's blocks, else of the first unclaimed block (claimed
   * now). Only the claims of the block being looked at are read (see #takenIn), starting
   * with the block that gave the last address: the cost does not grow with the cluster.
   */
  async #nextFree(cluster: string, subnet: Prefix): Promise<{ ip: Ip; sharedRevision: number }> {
    const len = this.#blockLength(subnet);
    const range = hostRange(subnet);
    const free = (b: Prefix, taken: ReadonlySet<string>): Ip | undefined => {
      const size = 1n << BigInt(bitsOf(b.family) - b.length);
      for (let v = b.value; v < b.value + size; v++) {
        if (v < range.first || v > range.last) continue;
        const ip = { family: b.family, value: v };
        if (!taken.has(formatIp(ip))) return ip;
      }
      return undefined;
    };
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const view = await this.#blockView(cluster);
      const shared = await this.#shared(cluster);
      const hint = this.#lastBlock.get(cluster);
      const mine = [...view.owners].filter(([, node]) => node === this.#d.node).map(([cidr]) => cidr);
      if (hint !== undefined && mine.includes(hint)) mine.unshift(hint);
      for (const cidr of new Set(mine)) {
        const b = parsePrefix(cidr) as Prefix;
        if (!prefixContains(subnet, b)) continue;
        const ip = free(b, await this.#takenIn(cluster, b, shared.ips));
        if (ip) {
          this.#lastBlock.set(cluster, cidr);
          return { ip, sharedRevision: shared.revision };
        }
      }
      // claim the first block of the subnet that no block record overlaps
      const taken = view.all.map((r) => parsePrefix(r.block)).filter((p) => p !== undefined);
      const step = 1n << BigInt(bitsOf(subnet.family) - len);
      const end = subnet.value + (1n << BigInt(bitsOf(subnet.family) - subnet.length));
      let lost = false;
      for (let v = subnet.value; v < end && !lost; v += step) {
        const b: Prefix = { family: subnet.family, value: v, length: len };
        if (taken.some((t) => prefixesOverlap(t, b))) continue;
        const ip = free(b, await this.#takenIn(cluster, b, shared.ips));
        if (!ip) continue;
        if (await this.#claimBlock(cluster, formatPrefix(b), view.revision)) {
          this.#lastBlock.set(cluster, formatPrefix(b));
          return { ip, sharedRevision: shared.revision };
        }
        lost = true; // a block record changed meanwhile: look again
      }
      if (!lost) break;
    }
    throw errors.addressExhausted(`cluster network ${cluster} (${formatPrefix(subnet)}) has no free block left`);
  }

  /**
   * The taken addresses of one of this host's blocks: its claims and the shared addresses.
   * Claims are keyed by address text, so the block's claims are listed by the longest text
   * prefix all its addresses share ("198.18.64." for a /26: at most a /24's worth) and the few
   * outside the block are dropped.
   */
  async #takenIn(cluster: string, block: Prefix, shared: ReadonlySet<string>): Promise<Set<string>> {
    const { items } = await this.#d.store.list(addrsOf(cluster, this.#d.node) + textPrefixOf(block));
    const out = new Set<string>(shared);
    // a malformed record under this host's own key still holds its address: never hand it out twice
    for (const kv of items) out.add(kv.key.slice(addrsOf(cluster, this.#d.node).length));
    return out;
  }
}

/** A block record of the layout before owner prefixes, if well-formed. */
function legacyBlock(kv: KeyValue, cluster: string): BlockRecord | undefined {
  try {
    const v = JSON.parse(kv.value) as Partial<BlockRecord> | null;
    const p = typeof v?.block === 'string' ? parsePrefix(v.block) : undefined;
    if (!v || v.cluster !== cluster || typeof v.node !== 'string' || !isValidNodeName(v.node) || !p) return undefined;
    return { cluster, block: formatPrefix(p), node: v.node, createRevision: kv.createRevision };
  } catch {
    return undefined;
  }
}

const textPrefixes = new Map<string, string>();
/** The longest string every address of `block` starts with (blocks above 4096 addresses: ''). */
function textPrefixOf(block: Prefix): string {
  const key = formatPrefix(block);
  const known = textPrefixes.get(key);
  if (known !== undefined) return known;
  const size = 1n << BigInt(bitsOf(block.family) - block.length);
  let common: string | undefined;
  if (size <= 4096n) {
    for (let v = block.value; v < block.value + size; v++) {
      const t = formatIp({ family: block.family, value: v });
      if (common === undefined) common = t;
      else {
        let i = 0;
        while (i < common.length && i < t.length && common[i] === t[i]) i++;
        common = common.slice(0, i);
      }
    }
  }
  textPrefixes.set(key, common ?? '');
  return common ?? '';
}
