/** The IPAM's address spaces and the wording of its pool refusals (split from ipam-service.ts). */
import { errors } from '../core/errors.ts';
import { formatPrefix, type Prefix } from '../core/ip.ts';
import type { CompiledDefaultPool } from '../core/ipam/default-pools.ts';
import type { HeldPool } from '../core/ipam/pool-selection.ts';
import { showValue } from '../core/safe-json.ts';

export const LOCAL_ADDRESS_SPACE = 'TrussLocal';
export const GLOBAL_ADDRESS_SPACE = 'TrussGlobal';

export function checkAddressSpace(space: string): string {
  if (space === LOCAL_ADDRESS_SPACE || space === GLOBAL_ADDRESS_SPACE) return space;
  if (space === '') return LOCAL_ADDRESS_SPACE;
  throw errors.badRequest(
    `AddressSpace ${showValue(space)} is not truss's: use ${LOCAL_ADDRESS_SPACE} or ${GLOBAL_ADDRESS_SPACE}`,
  );
}

export function overlapError(wanted: Prefix, clash: HeldPool): Error {
  const a = formatPrefix(wanted);
  const b = formatPrefix(clash.prefix);
  const what = a === b ? `pool ${a} is already in use` : `pool ${a} overlaps pool ${b}, already in use`;
  return errors.poolOverlap(`${what} (${clash.id}) by another network: choose a --subnet that overlaps no other`);
}

export function poolsExhaustedError(defaults: readonly CompiledDefaultPool[], family: 4 | 6): Error {
  const mine = defaults.filter((d) => d.base.family === family).map((d) => d.text);
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
