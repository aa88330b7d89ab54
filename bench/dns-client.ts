/**
 * A tiny DNS client for bench/names.ts, run inside a container's network namespace (nsenter
 * --net): `node dns-client.ts SERVER NAME COUNT` sends COUNT A queries for NAME to SERVER:53 over
 * UDP, one at a time, and prints one JSON line: each answered query's round trip in µs, how many
 * went unanswered or failed, and the first answer's address. Why not busybox nslookup in a shell
 * loop: a process start per query (and busybox date has no %N to time it inside) would cost more
 * than the lookup measured. Written apart from truss's DNS codec on purpose (like
 * e2e/harness/dns-upstream.ts): the measuring side is not the code under test.
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';

const [server = '', name = '', countText = '1'] = process.argv.slice(2);
if (server === '' || name === '') throw new Error('usage: dns-client.ts SERVER NAME COUNT');
const count = Number(countText);
const TIMEOUT_MS = 2000;

function query(id: number): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head.writeUInt16BE(0x0100, 2); // RD, as a stub resolver asks
  head.writeUInt16BE(1, 4);
  const labels = name
    .split('.')
    .filter(Boolean)
    .map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')]));
  const tail = Buffer.alloc(5);
  tail.writeUInt16BE(1, 1); // A
  tail.writeUInt16BE(1, 3); // IN
  return Buffer.concat([head, ...labels, tail]);
}

/** The index just past a (possibly compressed) name starting at i. */
function skipName(r: Buffer, i: number): number {
  while (i < r.length) {
    const b = r[i] as number;
    if (b === 0) return i + 1;
    if (b >= 0xc0) return i + 2;
    i += b + 1;
  }
  return i;
}

/** The first A record's address of a response (after its question), or '' when none. */
function firstA(r: Buffer): string {
  let i = skipName(r, 12) + 4;
  for (let n = r.readUInt16BE(6); n > 0 && i < r.length; n--) {
    i = skipName(r, i);
    if (i + 10 > r.length) break;
    const type = r.readUInt16BE(i);
    const len = r.readUInt16BE(i + 8);
    if (type === 1 && len === 4) return [...r.subarray(i + 10, i + 14)].join('.');
    i += 10 + len;
  }
  return '';
}

const sock = dgram.createSocket('udp4');
await new Promise<void>((resolve) => sock.connect(53, server, resolve));
const us: number[] = [];
let failed = 0;
let answer = '';
for (let k = 0; k < count; k++) {
  const id = randomInt(0, 0x10000);
  const t0 = process.hrtime.bigint();
  const reply = await new Promise<Buffer | undefined>((resolve) => {
    const timer = setTimeout(() => done(undefined), TIMEOUT_MS);
    const onMessage = (m: Buffer): void => {
      if (m.length >= 12 && m.readUInt16BE(0) === id) done(m);
    };
    const done = (m: Buffer | undefined): void => {
      clearTimeout(timer);
      sock.off('message', onMessage);
      resolve(m);
    };
    sock.on('message', onMessage);
    sock.send(query(id));
  });
  const t1 = process.hrtime.bigint();
  // answered: NOERROR with at least one record
  if (reply && (reply.readUInt16BE(2) & 0x000f) === 0 && reply.readUInt16BE(6) > 0) {
    us.push(Number(t1 - t0) / 1000);
    if (answer === '') answer = firstA(reply);
  } else failed++;
}
sock.close();
process.stdout.write(`${JSON.stringify({ us, failed, answer })}\n`);
