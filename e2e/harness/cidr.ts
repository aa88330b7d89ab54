/** Minimal IPv4 arithmetic for assertions ("is this address in that subnet?"). */
export function ipv4ToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`not an IPv4 address: ${ip}`);
  }
  return parts.reduce((acc, p) => acc * 256 + p, 0);
}

export function parseCidr(cidr: string): { base: number; len: number } {
  const [addr, len] = cidr.split('/');
  const n = Number(len);
  if (!addr || !Number.isInteger(n) || n < 0 || n > 32) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const size = 2 ** (32 - n);
  return { base: Math.floor(ipv4ToInt(addr) / size) * size, len: n };
}

export function inCidr(ip: string, cidr: string): boolean {
  const { base, len } = parseCidr(cidr);
  const x = ipv4ToInt(ip);
  return x >= base && x < base + 2 ** (32 - len);
}

/** Whether subnet a lies entirely inside subnet b. */
export const cidrWithin = (a: string, b: string): boolean =>
  parseCidr(a).len >= parseCidr(b).len && inCidr(a.split('/')[0] as string, b);

export const cidrsOverlap = (a: string, b: string): boolean => cidrWithin(a, b) || cidrWithin(b, a);
