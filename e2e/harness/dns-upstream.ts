/**
 * A stand-in for the host's upstream DNS server (what /etc/resolv.conf names), run in a test
 * namespace: `node dns-upstream.ts ADDRESS NAME=IPv4[,NAME=IPv4...]`. It answers A queries for
 * those names (TTL 60) and NXDOMAIN for anything else, over UDP and TCP port 53, and prints
 * `ready` once both listen. Written apart from truss's codec on purpose: the test's DNS is not
 * the code under test. Every query it gets is logged to stdout as `query NAME TYPE`.
 */
import dgram from 'node:dgram';
import net from 'node:net';

const [address, table = ''] = process.argv.slice(2);
if (!address) throw new Error('usage: dns-upstream.ts ADDRESS NAME=IP,...');
const records = new Map(
  table
    .split(',')
    .filter(Boolean)
    .map((kv) => kv.split('=') as [string, string]),
);

function questionEnd(q: Buffer): { name: string; end: number } | undefined {
  const labels: string[] = [];
  let i = 12;
  while (i < q.length) {
    const len = q[i] as number;
    if (len === 0) return { name: labels.join('.').toLowerCase(), end: i + 5 };
    if (len > 63) return undefined;
    labels.push(q.subarray(i + 1, i + 1 + len).toString('latin1'));
    i += 1 + len;
  }
  return undefined;
}

function answer(q: Buffer): Buffer | undefined {
  if (q.length < 17) return undefined;
  const qe = questionEnd(q);
  if (!qe) return undefined;
  const type = q.readUInt16BE(qe.end - 4);
  console.log(`query ${qe.name} ${type}`);
  const ip = type === 1 ? records.get(qe.name) : undefined;
  const known = records.has(qe.name);
  const head = Buffer.alloc(12);
  q.copy(head, 0, 0, 2);
  head.writeUInt16BE(0x8180 | (known ? 0 : 3) | (q.readUInt16BE(2) & 0x0100), 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(ip ? 1 : 0, 6);
  const question = q.subarray(12, qe.end);
  if (!ip) return Buffer.concat([head, question]);
  const rr = Buffer.alloc(16);
  rr.writeUInt16BE(0xc00c, 0);
  rr.writeUInt16BE(1, 2);
  rr.writeUInt16BE(1, 4);
  rr.writeUInt32BE(60, 6);
  rr.writeUInt16BE(4, 10);
  ip.split('.').forEach((o, k) => {
    rr[12 + k] = Number(o);
  });
  return Buffer.concat([head, question, rr]);
}

const udp = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
udp.on('message', (msg, from) => {
  const a = answer(msg);
  if (a) udp.send(a, from.port, from.address);
});
const tcp = net.createServer((s) => {
  let buf = Buffer.alloc(0);
  s.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const a = answer(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      buf = buf.subarray(2 + buf.readUInt16BE(0));
      if (a) s.write(Buffer.concat([Buffer.from([a.length >> 8, a.length & 255]), a]));
    }
  });
  s.on('error', () => {});
});
let up = 0;
const ready = (): void => {
  if (++up === 2) console.log('ready');
};
udp.bind(53, address, ready);
tcp.listen(53, address, ready);
