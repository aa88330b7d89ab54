/**
 * PoolRecord / AddressRecord as stored (JSON), decoded with checks: a record we cannot
 * read is reported with its key instead of being guessed at.
 */
import { errors } from '../errors.ts';
import { type Ip, type Prefix, parseIp, parsePrefix } from '../ip.ts';
import type { AddressKind, AddressRecord, PoolRecord } from '../model.ts';

export interface DecodedPool {
  readonly record: PoolRecord;
  readonly prefix: Prefix;
  readonly subPrefix?: Prefix;
  readonly cursor?: bigint;
}

export interface DecodedAddress {
  readonly record: AddressRecord;
  readonly ip: Ip;
}

const KINDS: ReadonlySet<AddressKind> = new Set(['gateway', 'aux', 'endpoint', 'host']);

function parseJson(key: string, value: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(value);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {}
  throw errors.internal(`stored IPAM record ${key} is not a JSON object`);
}

const corrupt = (key: string, field: string): Error =>
  errors.internal(`stored IPAM record ${key} has an invalid ${field}; fix or remove it (truss status shows it)`);

export function decodePoolRecord(key: string, value: string): DecodedPool {
  const r = parseJson(key, value) as Partial<Record<keyof PoolRecord, unknown>>;
  if (typeof r.id !== 'string' || typeof r.addressSpace !== 'string') throw corrupt(key, 'id');
  const prefix = typeof r.pool === 'string' ? parsePrefix(r.pool) : undefined;
  if (!prefix || prefix.family !== r.family) throw corrupt(key, 'pool');
  const subPrefix = typeof r.subPool === 'string' ? parsePrefix(r.subPool) : undefined;
  if (r.subPool !== undefined && !subPrefix) throw corrupt(key, 'subPool');
  if (r.cursor !== undefined && (typeof r.cursor !== 'string' || !/^[0-9]+$/.test(r.cursor))) {
    throw corrupt(key, 'cursor');
  }
  const record: PoolRecord = {
    id: r.id,
    addressSpace: r.addressSpace,
    family: prefix.family,
    pool: r.pool as string,
    ...(subPrefix ? { subPool: r.subPool as string } : {}),
    dynamic: r.dynamic === true,
    ...(r.cursor !== undefined ? { cursor: r.cursor as string } : {}),
  };
  return {
    record,
    prefix,
    ...(subPrefix ? { subPrefix } : {}),
    ...(record.cursor !== undefined ? { cursor: BigInt(record.cursor) } : {}),
  };
}

export function decodeAddressRecord(key: string, value: string): DecodedAddress {
  const r = parseJson(key, value) as Partial<Record<keyof AddressRecord, unknown>>;
  const ip = typeof r.address === 'string' ? parseIp(r.address) : undefined;
  if (!ip) throw corrupt(key, 'address');
  if (typeof r.poolId !== 'string') throw corrupt(key, 'poolId');
  if (!KINDS.has(r.kind as AddressKind)) throw corrupt(key, 'kind');
  const record: AddressRecord = {
    poolId: r.poolId,
    address: r.address as string,
    kind: r.kind as AddressKind,
    ...(typeof r.owner === 'string' ? { owner: r.owner } : {}),
  };
  return { record, ip };
}

export const encodeRecord = (r: PoolRecord | AddressRecord): string => JSON.stringify(r);
