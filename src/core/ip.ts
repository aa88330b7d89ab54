/**
 * IPv4/IPv6 addresses and prefixes as bigints. Pure; no node:net.
 * Parsing is strict: IPv4 must be canonical dotted decimal (no leading zeros, which
 * libraries and the kernel read differently: CVE-2021-28918), IPv6 may be any valid
 * RFC 4291 text but never carries a zone id or an embedded IPv4-mapped form.
 */
export type Family = 4 | 6;

export interface Ip {
  readonly family: Family;
  readonly value: bigint;
}

export interface Prefix {
  readonly family: Family;
  /** The address as written (host bits may be set, e.g. a gateway "198.18.0.1/24"). */
  readonly value: bigint;
  readonly length: number;
}

export const bitsOf = (f: Family): number => (f === 4 ? 32 : 128);

const V4_OCTET = /^(0|[1-9][0-9]{0,2})$/;

function parseV4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!V4_OCTET.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseV6(s: string): bigint | undefined {
  if (s.includes('%') || s.includes('.')) return undefined; // zone ids, embedded IPv4
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const split = (h: string): string[] | undefined => {
    if (h === '') return [];
    const g = h.split(':');
    return g.every((x) => V6_GROUP.test(x)) ? g : undefined;
  };
  const head = split(halves[0] ?? '');
  const tail = halves.length === 2 ? split(halves[1] ?? '') : [];
  if (!head || !tail) return undefined;
  const groups = halves.length === 2 ? head.length + tail.length : head.length;
  if (halves.length === 2 ? groups > 7 : groups !== 8) return undefined;
  const all = [...head, ...new Array<string>(8 - groups).fill('0'), ...tail];
  let v = 0n;
  for (const g of all) v = (v << 16n) | BigInt(Number.parseInt(g, 16));
  return v;
}

export function parseIp(s: string): Ip | undefined {
  if (typeof s !== 'string' || s.length === 0 || s.length > 45) return undefined;
  if (s.includes(':')) {
    const v = parseV6(s);
    return v === undefined ? undefined : { family: 6, value: v };
  }
  const v = parseV4(s);
  return v === undefined ? undefined : { family: 4, value: v };
}

export function formatIp(ip: Ip): string {
  if (ip.family === 4) {
    const v = ip.value;
    return [24n, 16n, 8n, 0n].map((sh) => String((v >> sh) & 255n)).join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (>= 2) of zero groups, first one on ties.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export function parsePrefix(s: string): Prefix | undefined {
  if (typeof s !== 'string') return undefined;
  const slash = s.indexOf('/');
  if (slash < 0 || s.indexOf('/', slash + 1) >= 0) return undefined;
  const ip = parseIp(s.slice(0, slash));
  const lenText = s.slice(slash + 1);
  if (!ip || !/^(0|[1-9][0-9]{0,2})$/.test(lenText)) return undefined;
  const length = Number(lenText);
  if (length > bitsOf(ip.family)) return undefined;
  return { family: ip.family, value: ip.value, length };
}

export function formatPrefix(p: Prefix): string {
  return `${formatIp({ family: p.family, value: p.value })}/${p.length}`;
}

export function hostMask(family: Family, length: number): bigint {
  return (1n << BigInt(bitsOf(family) - length)) - 1n;
}

/** The network address of a prefix (host bits cleared). */
export function networkOf(p: Prefix): Prefix {
  return { family: p.family, value: p.value & ~hostMask(p.family, p.length), length: p.length };
}

export function isNetworkAddress(p: Prefix): boolean {
  return (p.value & hostMask(p.family, p.length)) === 0n;
}

export function lastAddress(p: Prefix): bigint {
  return networkOf(p).value | hostMask(p.family, p.length);
}

export function prefixContains(p: Prefix, ip: Ip): boolean {
  return p.family === ip.family && networkOf(p).value === (ip.value & ~hostMask(p.family, p.length));
}

export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  if (a.family !== b.family) return false;
  const shorter = a.length <= b.length ? a : b;
  const other = shorter === a ? b : a;
  return prefixContains(shorter, { family: other.family, value: other.value });
}

export function prefixWithin(inner: Prefix, outer: Prefix): boolean {
  return inner.length >= outer.length && prefixesOverlap(inner, outer);
}

export function ipEquals(a: Ip, b: Ip): boolean {
  return a.family === b.family && a.value === b.value;
}

/** Usable host range of a prefix: IPv4 excludes network and broadcast below /31; IPv6 excludes the subnet-router anycast. */
export function hostRange(p: Prefix): { first: bigint; last: bigint } {
  const net = networkOf(p).value;
  const last = lastAddress(p);
  if (p.family === 4 && p.length < 31) return { first: net + 1n, last: last - 1n };
  if (p.family === 6 && p.length < 127) return { first: net + 1n, last };
  return { first: net, last };
}
