/**
 * ClusterIpam: addresses of a cluster network, unique across hosts. Each host claims
 * address blocks (create-if-absent on blocks/<cluster>/<block>) and hands out addresses
 * only from its own blocks, each one claimed with create-if-absent on addrs/<cluster>/<ip>:
 * two hosts can never hold the same address, also under concurrent starts, and a host
 * that restarts keeps its blocks and claims (they are not tied to a lease). Peers route a
 * block to the host that owns it. Every call needs the shared store: while it is down,
 * allocations fail fast with its error and nothing else is disturbed.
 */

import type { AddressClaim, BlockRecord } from '../core/cluster/model.ts';
import { clusterKeys, SHARED_OWNER } from '../core/cluster/model.ts';
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
} from '../core/ip.ts';
import type { Logger } from '../obs/logger.ts';
import type { Store } from '../store/store.ts';

export { SHARED_OWNER };

const { blocksPrefix, addrsPrefix, block: blockKey, addr: addrKey } = clusterKeys;

export interface ClusterIpamDeps {
  readonly store: Store;
  readonly node: string;
  readonly log: Logger;
  /** block prefix length per family (default /26 for IPv4: 64 addresses; /122 for IPv6) */
  readonly blockLength?: { readonly 4: number; readonly 6: number };
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

  /** Blocks of a cluster: block CIDR -> owning node. */
  async blocks(cluster: string): Promise<Map<string, string>> {
    const { items } = await this.#d.store.list(blocksPrefix(cluster));
    return new Map(
      items.map((kv) => [(JSON.parse(kv.value) as BlockRecord).block, (JSON.parse(kv.value) as BlockRecord).node]),
    );
  }

  /** Claim an address every host shares (gateway, aux): recorded once, owned by no host. */
  async reserveShared(cluster: string, subnet: Prefix, ip: Ip): Promise<void> {
    if (!prefixContains(subnet, ip)) throw errors.addressOutOfPool(`${formatIp(ip)} is not in ${formatPrefix(subnet)}`);
    const key = addrKey(cluster, formatIp(ip));
    const claim: AddressClaim = { cluster, address: formatIp(ip), node: SHARED_OWNER };
    const r = await this.#d.store.txn([{ key, version: 0 }], [{ type: 'put', key, value: JSON.stringify(claim) }]);
    if (r.succeeded) return;
    const cur = await this.#d.store.get(key);
    const holder = cur ? (JSON.parse(cur.value) as AddressClaim).node : undefined;
    if (holder !== SHARED_OWNER) {
      throw errors.addressInUse(`${formatIp(ip)} of cluster network ${cluster} is already used by host ${holder}`);
    }
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
      const ip = specific ?? (await this.#nextFree(cluster, subnet));
      if (specific) await this.#ensureBlockFor(cluster, subnet, specific);
      const key = addrKey(cluster, formatIp(ip));
      const claim: AddressClaim = { cluster, address: formatIp(ip), node: this.#d.node, ...(owner ? { owner } : {}) };
      const r = await this.#d.store.txn([{ key, version: 0 }], [{ type: 'put', key, value: JSON.stringify(claim) }]);
      if (r.succeeded) return ip;
      if (specific) {
        const cur = await this.#d.store.get(key);
        const holder = cur ? (JSON.parse(cur.value) as AddressClaim).node : 'another host';
        throw errors.addressInUse(`${formatIp(ip)} of cluster network ${cluster} is already used (host ${holder})`);
      }
    }
    throw errors.storeConflict(`could not claim an address in cluster network ${cluster}: too much contention, retry`);
  }

  /** Release this host's claim on an address; unknown or someone else's = nothing to do. */
  async release(cluster: string, ip: Ip): Promise<void> {
    const key = addrKey(cluster, formatIp(ip));
    const cur = await this.#d.store.get(key);
    if (!cur || (JSON.parse(cur.value) as AddressClaim).node !== this.#d.node) return;
    await this.#d.store.txn([{ key, modRevision: cur.modRevision }], [{ type: 'delete', key }]);
  }

  async #ensureBlockFor(cluster: string, subnet: Prefix, ip: Ip): Promise<void> {
    if (!prefixContains(subnet, ip)) {
      throw errors.addressOutOfPool(`${formatIp(ip)} is not in cluster network ${cluster} (${formatPrefix(subnet)})`);
    }
    const block = formatPrefix(blockOf(ip, this.#blockLength(subnet)));
    const owner = (await this.blocks(cluster)).get(block);
    if (owner === this.#d.node) return;
    if (owner !== undefined) {
      throw errors.addressInUse(
        `${formatIp(ip)} lies in block ${block} of host ${owner}; pick an address of this host's blocks`,
      );
    }
    if (!(await this.#claimBlock(cluster, block))) await this.#ensureBlockFor(cluster, subnet, ip);
  }

  async #claimBlock(cluster: string, block: string): Promise<boolean> {
    const key = blockKey(cluster, block);
    const rec: BlockRecord = { cluster, block, node: this.#d.node };
    const r = await this.#d.store.txn([{ key, version: 0 }], [{ type: 'put', key, value: JSON.stringify(rec) }]);
    if (r.succeeded) this.#d.log.info('cluster block claimed', { cluster, block });
    return r.succeeded;
  }

  /**
   * The next free address of this host's blocks, else of the first unclaimed block (claimed
   * now). Only the claims of the block being looked at are read (see #claimsIn), starting
   * with the block that gave the last address: the cost does not grow with the cluster.
   */
  async #nextFree(cluster: string, subnet: Prefix): Promise<Ip> {
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
    const blocks = await this.blocks(cluster);
    const hint = this.#lastBlock.get(cluster);
    const mine = [...blocks].filter(([, node]) => node === this.#d.node).map(([cidr]) => cidr);
    if (hint !== undefined && mine.includes(hint)) mine.unshift(hint);
    for (const cidr of new Set(mine)) {
      const b = parsePrefix(cidr) as Prefix;
      if (!prefixContains(subnet, b)) continue;
      const ip = free(b, await this.#claimsIn(cluster, b));
      if (ip) {
        this.#lastBlock.set(cluster, cidr);
        return ip;
      }
    }
    // claim the first unclaimed block of the subnet
    const step = 1n << BigInt(bitsOf(subnet.family) - len);
    const end = subnet.value + (1n << BigInt(bitsOf(subnet.family) - subnet.length));
    for (let v = subnet.value; v < end; v += step) {
      const b: Prefix = { family: subnet.family, value: v, length: len };
      if (blocks.has(formatPrefix(b))) continue;
      const ip = free(b, await this.#claimsIn(cluster, b));
      if (!ip) continue;
      if (await this.#claimBlock(cluster, formatPrefix(b))) {
        this.#lastBlock.set(cluster, formatPrefix(b));
        return ip;
      }
      return this.#nextFree(cluster, subnet); // lost the race for this block: look again
    }
    throw errors.addressExhausted(`cluster network ${cluster} (${formatPrefix(subnet)}) has no free block left`);
  }

  /**
   * The claimed addresses of one block. Claims are keyed by address text, so the block's
   * claims are listed by the longest text prefix all its addresses share ("198.18.64." for a
   * /26: at most a /24's worth) and the few outside the block are dropped.
   */
  async #claimsIn(cluster: string, block: Prefix): Promise<Set<string>> {
    const prefix = addrsPrefix(cluster) + textPrefixOf(block);
    const { items } = await this.#d.store.list(prefix);
    const out = new Set<string>();
    for (const kv of items) {
      const text = kv.key.slice(addrsPrefix(cluster).length);
      const ip = parseIp(text);
      if (ip && prefixContains(block, ip)) out.add(text);
    }
    return out;
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
