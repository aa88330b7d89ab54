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
import { errors } from '../core/errors.ts';
import {
  bitsOf,
  formatIp,
  formatPrefix,
  hostRange,
  type Ip,
  type Prefix,
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

  /** Allocate an address for an endpoint on this host: `specific` or the next free one. */
  async allocate(cluster: string, subnet: Prefix, specific?: Ip, owner?: string): Promise<Ip> {
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

  async #nextFree(cluster: string, subnet: Prefix): Promise<Ip> {
    const len = this.#blockLength(subnet);
    const { items } = await this.#d.store.list(addrsPrefix(cluster));
    const taken = new Set(items.map((kv) => (JSON.parse(kv.value) as AddressClaim).address));
    const range = hostRange(subnet);
    const free = (b: Prefix): Ip | undefined => {
      const size = 1n << BigInt(bitsOf(b.family) - b.length);
      for (let v = b.value; v < b.value + size; v++) {
        if (v < range.first || v > range.last) continue;
        const ip = { family: b.family, value: v };
        if (!taken.has(formatIp(ip))) return ip;
      }
      return undefined;
    };
    const blocks = await this.blocks(cluster);
    for (const [cidr, node] of blocks) {
      if (node !== this.#d.node) continue;
      const ip = free(parsePrefix(cidr) as Prefix);
      if (ip) return ip;
    }
    // claim the first unclaimed block of the subnet
    const step = 1n << BigInt(bitsOf(subnet.family) - len);
    const end = subnet.value + (1n << BigInt(bitsOf(subnet.family) - subnet.length));
    for (let v = subnet.value; v < end; v += step) {
      const b: Prefix = { family: subnet.family, value: v, length: len };
      if (blocks.has(formatPrefix(b))) continue;
      if (!free(b)) continue;
      if (await this.#claimBlock(cluster, formatPrefix(b))) return free(b) as Ip;
      return this.#nextFree(cluster, subnet); // lost the race for this block: look again
    }
    throw errors.addressExhausted(`cluster network ${cluster} (${formatPrefix(subnet)}) has no free block left`);
  }
}
