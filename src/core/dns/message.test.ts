import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  buildHeaderReply,
  buildReply,
  type DnsQuery,
  parseQuery,
  RCODE_FORMERR,
  RCODE_NOERROR,
  RCODE_SERVFAIL,
  readHeader,
  TCP_MAX,
  udpLimit,
} from './message.ts';

/** bytes from a list of numbers and ASCII strings (each string contributes its char codes) */
const bytes = (...parts: (number | string)[]): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'number' ? [p] : [...p].map((c) => c.charCodeAt(0)))));

/**
 * Fixture 1: a plain query, as `dig +noedns web.blue A` sends it.
 *   12 34        id 0x1234
 *   01 00        flags: RD
 *   00 01 ×1, then an/ns/ar 00 00
 *   03 w e b 04 b l u e 00   QNAME web.blue
 *   00 01        QTYPE A
 *   00 01        QCLASS IN
 */
const QUERY_A = bytes(0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'web', 4, 'blue', 0, 0, 1, 0, 1);
/**
 * Its reply, with one A record 198.18.0.5, TTL 600:
 *   12 34        id copied
 *   85 80        QR | AA | RD (copied) | RA, rcode 0
 *   00 01 00 01 00 00 00 00   one question, one answer
 *   (the question's 14 bytes, echoed)
 *   c0 0c        name: pointer to offset 12 (the question name)
 *   00 01 00 01  type A, class IN
 *   00 00 02 58  TTL 600
 *   00 04 c6 12 00 05   rdlength 4, 198.18.0.5
 */
// biome-ignore format: one line per section
const REPLY_A = bytes(
  0x12, 0x34, 0x85, 0x80, 0, 1, 0, 1, 0, 0, 0, 0,
  3, 'web', 4, 'blue', 0, 0, 1, 0, 1,
  0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x02, 0x58, 0, 4, 198, 18, 0, 5,
);

/**
 * Fixture 2: an EDNS query (what Docker's embedded DNS forwards: `dig api AAAA` with DO, AD set).
 *   ab cd        id
 *   01 20        flags: RD | AD
 *   00 01 00 00 00 00 00 01   one question, one additional
 *   03 a p i 00  QNAME api
 *   00 1c 00 01  AAAA, IN
 *   00           OPT: root name
 *   00 29        type 41 (OPT)
 *   10 00        class = UDP payload size 4096
 *   00 00 80 00  TTL = ext-rcode 0, version 0, flags DO
 *   00 00        rdlength 0
 */
// biome-ignore format: one line per section
const QUERY_EDNS = bytes(
  0xab, 0xcd, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1,
  3, 'api', 0, 0, 28, 0, 1,
  0, 0, 41, 0x10, 0x00, 0, 0, 0x80, 0, 0, 0,
);
/**
 * Its NODATA reply (truss knows "api" but has no IPv6 for it):
 *   ab cd 85 80  QR | AA | RD | RA (AD is not copied), NOERROR
 *   00 01 00 00 00 00 00 01   the question, no answer, our OPT
 *   (the question's 9 bytes)
 *   00 00 29 04 d0 00 00 80 00 00 00   OPT: size 1232, DO copied
 */
// biome-ignore format: one line per section
const REPLY_EDNS_NODATA = bytes(
  0xab, 0xcd, 0x85, 0x80, 0, 1, 0, 0, 0, 0, 0, 1,
  3, 'api', 0, 0, 28, 0, 1,
  0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0,
);

function mustQuery(b: Uint8Array): DnsQuery {
  const p = parseQuery(b);
  assert.equal(p.kind, 'query', JSON.stringify(p));
  return (p as { query: DnsQuery }).query;
}

describe('parseQuery', () => {
  it('reads fixture 1: id, flags, the question', () => {
    const q = mustQuery(QUERY_A);
    assert.equal(q.id, 0x1234);
    assert.equal(q.flags, 0x0100);
    assert.deepEqual(q.question, { name: 'web.blue', type: 1, qclass: 1 });
    assert.deepEqual(q.questionBytes, QUERY_A.subarray(12));
    assert.equal(q.edns, undefined);
    assert.equal(udpLimit(q), 512);
  });

  it('reads fixture 2: the OPT record', () => {
    const q = mustQuery(QUERY_EDNS);
    assert.deepEqual(q.question, { name: 'api', type: 28, qclass: 1 });
    assert.deepEqual(q.edns, { udpSize: 4096, version: 0, flags: 0x8000 });
    assert.equal(udpLimit(q), 1232, 'capped at our size');
    assert.equal(udpLimit({ edns: { udpSize: 100, version: 0, flags: 0 } }), 512, 'never below 512');
  });

  it('keeps the case as sent in the bytes and the name', () => {
    const q = mustQuery(bytes(0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'WeB', 0, 0, 1, 0, 1));
    assert.equal(q.question.name, 'WeB');
  });

  it('escapes dots and odd bytes inside a label so they match no container name', () => {
    const q = mustQuery(bytes(0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'a.b', 2, 0x07, 0xff, 0, 0, 1, 0, 1));
    assert.equal(q.question.name, 'a\\.b.\\007\\255');
  });

  it('reads the root name as ""', () => {
    assert.equal(mustQuery(bytes(0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1)).question.name, '');
  });

  it('calls well-formed queries it does not answer "other" (the responder forwards them)', () => {
    const cases: [Uint8Array, RegExp][] = [
      [bytes(0, 7, 0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1), /opcode/], // UPDATE
      [bytes(0, 7, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 1), /2 questions/],
      [bytes(0, 7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0), /0 questions/],
      [bytes(0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'version', 4, 'bind', 0, 0, 16, 0, 3), /class 3/], // CH TXT
      [
        bytes(0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 'x', 0, 0, 1, 0, 1, 0, 0, 41, 4, 0, 0, 1, 0, 0, 0, 0),
        /EDNS version 1/,
      ],
    ];
    for (const [b, why] of cases) {
      const p = parseQuery(b);
      assert.equal(p.kind, 'other');
      assert.equal(p.kind === 'other' && p.id, 7);
      assert.match(p.kind === 'other' ? p.why : '', why);
    }
  });

  it('reports malformed input with the id when a whole query header was read, never throwing', () => {
    const hdr = [0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    const cases: [Uint8Array, RegExp, boolean][] = [
      [new Uint8Array(0), /shorter than a DNS header/, false],
      [bytes(0, 9, 1), /shorter/, false],
      [bytes(0, 9, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1), /a response/, false],
      [bytes(...hdr, 0xc0, 0x0c, 0, 1, 0, 1), /compression pointer in the question/, true],
      [bytes(...hdr, 0x40, 0, 0, 1, 0, 1), /unknown label type/, true],
      [bytes(...hdr, 5, 'ab'), /label runs past/, true],
      [bytes(...hdr, 1, 'a'), /name runs past/, true],
      [bytes(...hdr, 1, 'a', 0, 0, 1), /type and class run past/, true],
      [bytes(...hdr, 1, 'a', 0, 0, 1, 0, 1, 0xff), /trailing bytes/, true],
      [bytes(0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 41), /record runs past/, true],
      [
        bytes(0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 41, 2, 0, 0, 0, 0, 0, 0, 5, 1),
        /data runs past/,
        true,
      ],
      [
        bytes(
          0,
          9,
          1,
          0,
          0,
          1,
          0,
          0,
          0,
          0,
          0,
          2,
          0,
          0,
          1,
          0,
          1,
          ...[0, 0, 41, 2, 0, 0, 0, 0, 0, 0, 0],
          ...[0, 0, 41, 2, 0, 0, 0, 0, 0, 0, 0],
        ),
        /more than one OPT/,
        true,
      ],
      [
        bytes(...hdr, ...Array.from({ length: 5 }, () => [63, 'x'.repeat(63)]).flat(), 0, 0, 1, 0, 1),
        /longer than 255/,
        true,
      ],
    ];
    for (const [b, why, withId] of cases) {
      const p = parseQuery(b);
      assert.equal(p.kind, 'malformed', `${why}: ${JSON.stringify(p)}`);
      if (p.kind !== 'malformed') continue;
      assert.match(p.why, why);
      assert.equal(p.id, withId ? 9 : undefined, String(why));
    }
  });

  it('never throws on arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
        const p = parseQuery(b);
        assert.ok(['query', 'other', 'malformed'].includes(p.kind));
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on a valid header followed by arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(3), (tail, ar) => {
        const p = parseQuery(bytes(0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, ar, ...tail));
        assert.ok(['query', 'other', 'malformed'].includes(p.kind));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('buildReply', () => {
  it('round-trips fixture 1 to its byte-exact reply', () => {
    const q = mustQuery(QUERY_A);
    const r = buildReply(q, { rcode: RCODE_NOERROR, authoritative: true, addresses: ['198.18.0.5'], ttl: 600 }, 512);
    assert.deepEqual(r, REPLY_A);
  });

  it('round-trips fixture 2 to its NODATA reply with our OPT', () => {
    const q = mustQuery(QUERY_EDNS);
    const r = buildReply(q, { rcode: RCODE_NOERROR, authoritative: true, addresses: [], ttl: 600 }, udpLimit(q));
    assert.deepEqual(r, REPLY_EDNS_NODATA);
  });

  it('writes AAAA records from IPv6 text and skips what is not an IP', () => {
    const q = mustQuery(QUERY_A);
    const r = buildReply(
      q,
      { rcode: RCODE_NOERROR, authoritative: true, addresses: ['fd00::1:2', 'junk'], ttl: 5 },
      512,
    );
    assert.equal(r[7], 1, 'one answer');
    const rr = r.subarray(12 + 14);
    assert.deepEqual([...rr.subarray(0, 12)], [0xc0, 0x0c, 0, 28, 0, 1, 0, 0, 0, 5, 0, 16]);
    assert.deepEqual([...rr.subarray(12)], [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2]);
  });

  it('sets TC and drops the answers when they exceed the UDP limit; TCP takes them all', () => {
    const q = mustQuery(QUERY_A);
    const addresses = Array.from({ length: 40 }, (_, i) => `198.18.1.${i + 1}`); // 12 + 14 + 40 × 16 = 666 > 512
    const udp = buildReply(q, { rcode: RCODE_NOERROR, authoritative: true, addresses, ttl: 1 }, udpLimit(q));
    assert.equal(udp.length, 12 + 14);
    assert.equal(udp[2], 0x87, 'QR | AA | TC | RD');
    assert.equal(udp[7], 0, 'no answers');
    const tcp = buildReply(q, { rcode: RCODE_NOERROR, authoritative: true, addresses, ttl: 1 }, TCP_MAX);
    assert.equal(tcp.length, 12 + 14 + 40 * 16);
    assert.equal(tcp[7], 40);
    assert.equal((tcp[2] as number) & 0x02, 0, 'no TC');
  });

  it('copies opcode, RD and CD but not AD; sets RA; AA only when authoritative', () => {
    const q = mustQuery(bytes(0, 2, 0x01, 0x30, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'x', 0, 0, 1, 0, 1)); // RD | AD | CD
    const r = buildReply(q, { rcode: RCODE_SERVFAIL, authoritative: false, addresses: [], ttl: 0 }, 512);
    assert.deepEqual([...r.subarray(2, 4)], [0x81, 0x92]);
  });
});

describe('buildHeaderReply and readHeader', () => {
  it('answers FORMERR with the id and no question', () => {
    const r = buildHeaderReply(0xbeef, 0x0100, RCODE_FORMERR);
    assert.deepEqual([...r], [0xbe, 0xef, 0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(readHeader(r), { id: 0xbeef, flags: 0x8181 });
    assert.equal(readHeader(r.subarray(0, 11)), undefined);
  });
});
