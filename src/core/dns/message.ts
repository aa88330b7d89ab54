/**
 * The DNS wire format, as little of it as truss's responder needs (RFC 1035 §4, EDNS RFC 6891):
 * read one query, and write the reply to it. Pure, on Uint8Array; it never throws on input: a
 * query that cannot be read is a `malformed` result (with the id when there is a header to answer
 * with FORMERR), and one that is well formed but not a plain one-question IN query truss could
 * answer is `other` (the responder forwards it unchanged, so the upstream decides).
 *
 * The reply echoes the question's bytes as sent (not re-encoded): stub and forwarding resolvers
 * compare the question, case included (0x20 randomisation), so the echo must be exact. Answer
 * names are a compression pointer to that question (RFC 1035 §4.1.4).
 */
import { parseIp } from '../ip.ts';

export const TYPE_A = 1;
export const TYPE_AAAA = 28;
export const TYPE_OPT = 41;
export const CLASS_IN = 1;

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export type Rcode = typeof RCODE_NOERROR | typeof RCODE_FORMERR | typeof RCODE_SERVFAIL | typeof RCODE_NXDOMAIN;

/** plain DNS over UDP without EDNS (RFC 1035 §2.3.4) */
export const UDP_PLAIN_MAX = 512;
/** the EDNS size truss advertises and never exceeds over UDP (DNS flag day 2020: no fragments) */
export const EDNS_UDP_SIZE = 1232;
/** a TCP message's 16-bit length prefix bounds it (RFC 1035 §4.2.2) */
export const TCP_MAX = 65535;

const HEADER = 12;
const QR = 0x8000;
const AA = 0x0400;
const TC = 0x0200;
const RD = 0x0100;
const RA = 0x0080;
const CD = 0x0010;
const OPCODE_MASK = 0x7800;
/** EDNS flags (the low 16 bits of the OPT TTL): DNSSEC OK, copied to the reply (RFC 3225 §3) */
const EDNS_DO = 0x8000;

export interface DnsQuestion {
  /** presentation form without the trailing dot ("web.blue"); "" for the root; odd bytes escaped (\. \DDD) */
  readonly name: string;
  readonly type: number;
  readonly qclass: number;
}

export interface DnsQuery {
  readonly id: number;
  /** the header's flag word as sent (opcode, RD, CD are copied to the reply) */
  readonly flags: number;
  readonly question: DnsQuestion;
  /** the question section's bytes as sent (name, type, class) */
  readonly questionBytes: Uint8Array;
  /** the query's OPT record, when it had one */
  readonly edns?: { readonly udpSize: number; readonly version: number; readonly flags: number };
}

export type ParsedQuery =
  | { readonly kind: 'query'; readonly query: DnsQuery }
  /** well formed, but not a standard one-question IN query (opcode, count, class, EDNS version) */
  | { readonly kind: 'other'; readonly id: number; readonly why: string }
  /** `id` only when a whole header was read and it is a query: answer FORMERR; otherwise drop */
  | { readonly kind: 'malformed'; readonly id?: number; readonly flags?: number; readonly why: string };

const u16 = (b: Uint8Array, o: number): number => ((b[o] as number) << 8) | (b[o + 1] as number);
const u32 = (b: Uint8Array, o: number): number => u16(b, o) * 0x10000 + u16(b, o + 2);

/** A name's presentation text, or why it cannot be read. Labels only: a pointer has nothing before it to point at. */
function readQuestionName(b: Uint8Array, start: number): { name: string; end: number } | string {
  const labels: string[] = [];
  let o = start;
  for (;;) {
    if (o >= b.length) return 'question name runs past the message';
    const len = b[o] as number;
    if ((len & 0xc0) === 0xc0) return 'compression pointer in the question name';
    if ((len & 0xc0) !== 0) return 'unknown label type in the question name';
    o += 1;
    if (len === 0) break;
    if (o + len > b.length) return 'question label runs past the message';
    labels.push(labelText(b.subarray(o, o + len)));
    o += len;
    if (o - start > 255) return 'question name longer than 255 octets';
  }
  return { name: labels.join('.'), end: o };
}

/** RFC 4343 presentation: '.' and '\' escaped, bytes outside printable ASCII as \DDD (so they match no container name). */
function labelText(bytes: Uint8Array): string {
  let s = '';
  for (const c of bytes) {
    if (c === 0x2e || c === 0x5c) s += `\\${String.fromCharCode(c)}`;
    else if (c <= 0x20 || c >= 0x7f) s += `\\${String(c).padStart(3, '0')}`;
    else s += String.fromCharCode(c);
  }
  return s;
}

/** The offset after a name in a resource record (pointers allowed there), or undefined past the end. */
function skipName(b: Uint8Array, start: number): number | undefined {
  let o = start;
  for (;;) {
    if (o >= b.length) return undefined;
    const len = b[o] as number;
    if ((len & 0xc0) === 0xc0) return o + 2 <= b.length ? o + 2 : undefined;
    if ((len & 0xc0) !== 0) return undefined;
    o += 1 + len;
    if (len === 0) return o;
  }
}

/** Read one DNS query. Never throws. */
export function parseQuery(b: Uint8Array): ParsedQuery {
  if (b.length < HEADER) return { kind: 'malformed', why: 'shorter than a DNS header' };
  const id = u16(b, 0);
  const flags = u16(b, 2);
  // a response sent to us is dropped, never answered: two responders must not echo each other
  if (flags & QR) return { kind: 'malformed', why: 'a response, not a query' };
  const bad = (why: string): ParsedQuery => ({ kind: 'malformed', id, flags, why });
  const qd = u16(b, 4);
  const an = u16(b, 6);
  const ns = u16(b, 8);
  const ar = u16(b, 10);
  if ((flags & OPCODE_MASK) !== 0) return { kind: 'other', id, why: 'opcode is not QUERY' };
  if (qd !== 1) return { kind: 'other', id, why: `${qd} questions` };

  const q = readQuestionName(b, HEADER);
  if (typeof q === 'string') return bad(q);
  if (q.end + 4 > b.length) return bad('question type and class run past the message');
  const question: DnsQuestion = { name: q.name, type: u16(b, q.end), qclass: u16(b, q.end + 2) };
  const questionBytes = b.slice(HEADER, q.end + 4);

  // answer and authority records are unusual in a query but legal: skip them to reach the OPT record
  let o = q.end + 4;
  let edns: { udpSize: number; version: number; flags: number } | undefined;
  for (let i = 0; i < an + ns + ar; i++) {
    const nameEnd = skipName(b, o);
    if (nameEnd === undefined || nameEnd + 10 > b.length) return bad('a record runs past the message');
    const type = u16(b, nameEnd);
    const rdlen = u16(b, nameEnd + 8);
    if (nameEnd + 10 + rdlen > b.length) return bad('record data runs past the message');
    if (type === TYPE_OPT && i >= an + ns) {
      if (edns !== undefined) return bad('more than one OPT record'); // RFC 6891 §6.1.1: FORMERR
      const ttl = u32(b, nameEnd + 4);
      edns = { udpSize: u16(b, nameEnd + 2), version: (ttl >>> 16) & 0xff, flags: ttl & 0xffff };
    }
    o = nameEnd + 10 + rdlen;
  }
  if (o !== b.length) return bad('trailing bytes after the last record');
  // the upstream answers what truss does not know how to: BADVERS, other classes (CH "version.bind")
  if (edns !== undefined && edns.version !== 0) return { kind: 'other', id, why: `EDNS version ${edns.version}` };
  if (question.qclass !== CLASS_IN) return { kind: 'other', id, why: `class ${question.qclass}` };
  const query: DnsQuery = { id, flags, question, questionBytes, ...(edns ? { edns } : {}) };
  return { kind: 'query', query };
}

/** The largest reply the client accepts over UDP: its EDNS size (at least 512), at most ours. */
export function udpLimit(q: Pick<DnsQuery, 'edns'>): number {
  if (q.edns === undefined) return UDP_PLAIN_MAX;
  return Math.min(Math.max(q.edns.udpSize, UDP_PLAIN_MAX), EDNS_UDP_SIZE);
}

export interface Reply {
  readonly rcode: Rcode;
  /** AA: truss is the authority for the names it answers */
  readonly authoritative: boolean;
  /** bare IPs: an A record for each IPv4, an AAAA for each IPv6 (others are skipped) */
  readonly addresses: readonly string[];
  readonly ttl: number;
}

function header(id: number, queryFlags: number, rcode: number, extra: number, counts: readonly number[]): Uint8Array {
  const out = new Uint8Array(HEADER);
  const flags = QR | (queryFlags & (OPCODE_MASK | RD | CD)) | RA | extra | (rcode & 0xf);
  const words = [id, flags, ...counts];
  for (const [i, w] of words.entries()) {
    out[i * 2] = (w >> 8) & 0xff;
    out[i * 2 + 1] = w & 0xff;
  }
  return out;
}

function addressRecord(ip: string, ttl: number): Uint8Array | undefined {
  const p = parseIp(ip);
  if (p === undefined) return undefined;
  const size = p.family === 4 ? 4 : 16;
  const rr = new Uint8Array(12 + size);
  const words = [0xc000 | HEADER, p.family === 4 ? TYPE_A : TYPE_AAAA, CLASS_IN, (ttl >>> 16) & 0xffff, ttl & 0xffff];
  for (const [i, w] of words.entries()) {
    rr[i * 2] = w >> 8;
    rr[i * 2 + 1] = w & 0xff;
  }
  rr[10] = 0;
  rr[11] = size;
  for (let i = 0; i < size; i++) rr[12 + i] = Number((p.value >> BigInt((size - 1 - i) * 8)) & 0xffn);
  return rr;
}

/** our OPT record: root name, type 41, class = our UDP size, TTL = ext rcode 0, version 0, the DO bit copied */
function optRecord(queryEdnsFlags: number): Uint8Array {
  const doBit = queryEdnsFlags & EDNS_DO;
  return Uint8Array.of(0, 0, TYPE_OPT, EDNS_UDP_SIZE >> 8, EDNS_UDP_SIZE & 0xff, 0, 0, doBit >> 8, 0, 0, 0);
}

/**
 * The reply to `q`. When it would exceed `maxSize` (udpLimit() for UDP, TCP_MAX for TCP) it is
 * sent without answers and with TC set, so that the client retries over TCP (RFC 2181 §9).
 */
export function buildReply(q: DnsQuery, r: Reply, maxSize: number): Uint8Array {
  const answers = r.addresses
    .map((a) => addressRecord(a, Math.max(0, Math.min(r.ttl, 0x7fffffff))))
    .filter((a): a is Uint8Array => a !== undefined);
  const opt = q.edns === undefined ? undefined : optRecord(q.edns.flags);
  const tail = (opt?.length ?? 0) + q.questionBytes.length + HEADER;
  const full = tail + answers.reduce((n, a) => n + a.length, 0);
  const truncated = full > maxSize;
  const kept = truncated ? [] : answers;
  const flags = (r.authoritative ? AA : 0) | (truncated ? TC : 0);
  const parts = [header(q.id, q.flags, r.rcode, flags, [1, kept.length, 0, opt ? 1 : 0]), q.questionBytes, ...kept];
  if (opt) parts.push(opt);
  return concat(parts);
}

/** A reply with no question, for a query whose question could not be read (FORMERR) or was not parsed (SERVFAIL). */
export function buildHeaderReply(id: number, queryFlags: number, rcode: Rcode): Uint8Array {
  return header(id, queryFlags, rcode, 0, [0, 0, 0, 0]);
}

/** The id and flag word of a message, when it has a header (to answer one truss only forwarded). */
export function readHeader(b: Uint8Array): { id: number; flags: number } | undefined {
  return b.length < HEADER ? undefined : { id: u16(b, 0), flags: u16(b, 2) };
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
