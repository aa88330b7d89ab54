/**
 * Default pools: where dynamic pools (`docker network create` without --subnet) come from.
 * Each entry is a base range cut into blocks of one prefix length, like dockerd's
 * `--default-address-pool base=...,size=...`. The CLI flag is
 * `--default-pools 198.18.0.0/15:24,fd00:1::/48:64`.
 */
import { errors } from '../errors.ts';
import type { Prefix } from '../ip.ts';
import { checkCidr, MAX_POOL_LENGTH } from './pool-validation.ts';

export interface DefaultPool {
  /** CIDR of the base range */
  readonly base: string;
  /** prefix length of each pool cut from it */
  readonly size: number;
}

export const DEFAULT_POOLS: readonly DefaultPool[] = [
  { base: '10.201.0.0/16', size: 24 },
  { base: 'fd7a:7275:7373::/48', size: 64 },
];

export interface CompiledDefaultPool {
  readonly base: Prefix;
  readonly size: number;
  /** as configured, for messages */
  readonly text: string;
}

const ENTRY = /^(.+\/[0-9]{1,3}):([0-9]{1,3})$/;

/** Parses the --default-pools flag: comma-separated `CIDR:LEN` entries. */
export function parseDefaultPools(text: string): DefaultPool[] {
  const entries = text
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (entries.length === 0) {
    throw errors.badOption(
      `--default-pools ${JSON.stringify(text)} is empty: give CIDR:LEN entries, e.g. 10.201.0.0/16:24`,
    );
  }
  const pools = entries.map((entry) => {
    const m = ENTRY.exec(entry);
    if (!m) {
      throw errors.badOption(
        `--default-pools entry ${JSON.stringify(entry)} is not CIDR:LEN (e.g. 198.18.0.0/15:24 or fd00:1::/48:64)`,
      );
    }
    return { base: m[1]!, size: Number(m[2]) };
  });
  compileDefaultPools(pools);
  return pools;
}

/** Validates default pools and parses their bases; throws badOption naming the entry. */
export function compileDefaultPools(pools: readonly DefaultPool[]): CompiledDefaultPool[] {
  return pools.map((p) => {
    const text = `${p.base}:${p.size}`;
    let base: Prefix;
    try {
      base = checkCidr(p.base, 'base');
    } catch (e) {
      throw errors.badOption(`--default-pools entry ${text}: ${(e as Error).message}`, e);
    }
    const max = MAX_POOL_LENGTH[base.family];
    if (!Number.isInteger(p.size) || p.size < base.length || p.size > max) {
      throw errors.badOption(
        `--default-pools entry ${text}: the pool size must be a prefix length from ${base.length} (the base's) ` +
          `to ${max}, got ${p.size}`,
      );
    }
    return { base, size: p.size, text };
  });
}
