/**
 * ReleaseRetry (M1): Docker only logs a failed ReleaseAddress or ReleasePool and never asks
 * again, so a release that failed because the state disk was full would leak its address or
 * pool for good. This wrapper around the IPAM remembers such releases (in memory: the disk
 * is full) and retries them after each full reconcile pass until they commit.
 *
 * Only TRUSS_ERR_STORE_FULL is retried: SQLite rolled that transaction back, so the address
 * or pool is certainly still held and nobody else can have been given it. A queued release
 * is dropped when Docker requests the same pool again or is handed the same address (it
 * would otherwise take it from its new holder). Endpoints whose DeleteEndpoint failed are
 * the endpoint GC's (endpoint-gc.ts): they are unjoined, and reclaimed after the grace.
 */

import type { IpamDriver, RequestAddressInput, RequestContext, RequestPoolInput } from '../core/contracts.ts';
import { isTrussError } from '../core/errors.ts';
import { formatIp, parsePrefix } from '../core/ip.ts';
import type { Logger } from '../obs/logger.ts';

/** at most this many remembered releases (a full disk under a release storm) */
const MAX_QUEUED = 10_000;

type Release = { readonly poolId: string; readonly address?: string };

const keyOf = (r: Release): string => (r.address === undefined ? r.poolId : `${r.poolId} ${r.address}`);
const bare = (cidr: string): string => {
  const p = parsePrefix(cidr);
  return p ? formatIp(p) : cidr;
};

export class ReleaseRetry implements IpamDriver {
  readonly #ipam: IpamDriver;
  readonly #log: Logger;
  readonly #queue = new Map<string, Release>();
  constructor(ipam: IpamDriver, log: Logger) {
    this.#ipam = ipam;
    this.#log = log;
  }

  capabilities(): ReturnType<IpamDriver['capabilities']> {
    return this.#ipam.capabilities();
  }

  defaultAddressSpaces(): { local: string; global: string } {
    return this.#ipam.defaultAddressSpaces();
  }

  async requestPool(input: RequestPoolInput, ctx?: RequestContext): ReturnType<IpamDriver['requestPool']> {
    const r = await this.#ipam.requestPool(input, ctx);
    this.#forgetPool(r.poolId);
    return r;
  }

  async requestAddress(input: RequestAddressInput, ctx?: RequestContext): ReturnType<IpamDriver['requestAddress']> {
    const r = await this.#ipam.requestAddress(input, ctx);
    this.#queue.delete(keyOf({ poolId: input.poolId, address: bare(r.address) }));
    return r;
  }

  releasePool(poolId: string, ctx?: RequestContext): Promise<void> {
    return this.#release({ poolId }, () => this.#ipam.releasePool(poolId, ctx));
  }

  releaseAddress(poolId: string, address: string, ctx?: RequestContext): Promise<void> {
    return this.#release({ poolId, address: bare(address) }, () => this.#ipam.releaseAddress(poolId, address, ctx));
  }

  /** Releases waiting for a retry (status, tests). */
  pending(): number {
    return this.#queue.size;
  }

  /** Retry every remembered release once; returns how many committed. */
  async retry(): Promise<number> {
    let done = 0;
    for (const [key, r] of [...this.#queue]) {
      try {
        if (r.address === undefined) await this.#ipam.releasePool(r.poolId);
        else await this.#ipam.releaseAddress(r.poolId, r.address);
        this.#queue.delete(key);
        if (r.address === undefined) this.#forgetPool(r.poolId);
        done++;
        this.#log.info('retried release committed', { ...r });
      } catch (err) {
        if (isTrussError(err) && err.code === 'TRUSS_ERR_STORE_FULL') continue;
        this.#queue.delete(key);
        this.#log.warn('retried release failed; dropped', { ...r, err });
      }
    }
    return done;
  }

  async #release(r: Release, run: () => Promise<void>): Promise<void> {
    try {
      await run();
      this.#queue.delete(keyOf(r));
    } catch (err) {
      if (isTrussError(err) && err.code === 'TRUSS_ERR_STORE_FULL' && this.#queue.size < MAX_QUEUED) {
        this.#queue.set(keyOf(r), r);
        this.#log.warn('release failed on a full state disk; retrying after each full pass', { ...r });
      }
      throw err;
    }
  }

  #forgetPool(poolId: string): void {
    for (const [key, r] of this.#queue) if (r.poolId === poolId) this.#queue.delete(key);
  }
}
