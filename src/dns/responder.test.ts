import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Resolution } from '../core/dns/answer.ts';
import { parseQuery } from '../core/dns/message.ts';
import { createLogger } from '../obs/logger.ts';
import { type DnsListener, DnsResponder } from './responder.ts';
import { FrameReader, frame } from './upstream.ts';

/** a query for `name` (type A unless told), id `id`, optionally with an EDNS OPT of `edns` bytes */
function query(id: number, name: string, type = 1, edns?: number): Buffer {
  const labels = name.split('.').flatMap((l) => [l.length, ...Buffer.from(l)]);
  const opt = edns === undefined ? [] : [0, 0, 41, edns >> 8, edns & 0xff, 0, 0, 0, 0, 0, 0];
  return Buffer.from([
    id >> 8,
    id & 0xff,
    1,
    0,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
    edns === undefined ? 0 : 1,
    ...labels,
    0,
    0,
    type,
    0,
    1,
    ...opt,
  ]);
}
const idOf = (b: Uint8Array): number => ((b[0] as number) << 8) | (b[1] as number);
const rcodeOf = (b: Uint8Array): number => (b[3] as number) & 0xf;
const tcOf = (b: Uint8Array): boolean => ((b[2] as number) & 0x02) !== 0;
const ancountOf = (b: Uint8Array): number => ((b[6] as number) << 8) | (b[7] as number);

/** A port free for both UDP and TCP on `address`. */
async function freePort(address: string): Promise<number> {
  for (;;) {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen({ host: address, port: 0 }, r));
    const port = (srv.address() as net.AddressInfo).port;
    const udp = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
    const ok = await new Promise<boolean>((r) => {
      udp.once('error', () => r(false));
      udp.bind(port, address, () => r(true));
    });
    await new Promise<void>((r) => srv.close(() => r()));
    await new Promise<void>((r) => udp.close(() => r()));
    if (ok) return port;
  }
}

/**
 * A fake upstream on `address`, UDP and TCP on one port. It records what it received and replies
 * to a query for "slow.example" never, to "big.example" over UDP with TC set, and to anything
 * else with the query's bytes, QR set and a marker (ancount 0x7777) so the test sees the relay.
 */
async function fakeUpstream(address: string) {
  const port = await freePort(address);
  const received: { proto: string; bytes: Buffer }[] = [];
  const reply = (q: Buffer, proto: string): Buffer | undefined => {
    received.push({ proto, bytes: Buffer.from(q) });
    const p = parseQuery(q);
    const name = p.kind === 'query' ? p.query.question.name : '';
    if (name === 'slow.example') return undefined;
    const r = Buffer.from(q);
    r[2] = ((r[2] as number) | 0x80) & 0xff;
    if (name === 'big.example' && proto === 'udp') r[2] = (r[2] as number) | 0x02;
    r[6] = 0x77;
    r[7] = 0x77;
    return r;
  };
  const udp = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
  udp.on('message', (m, rinfo) => {
    const r = reply(m, 'udp');
    if (r) udp.send(r, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => udp.bind(port, address, r));
  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((s) => {
    sockets.add(s);
    const reader = new FrameReader();
    s.on('error', () => {});
    s.on('data', (c) => {
      for (const m of reader.push(c)) {
        const r = reply(m, 'tcp');
        if (r) s.write(frame(r));
      }
    });
  });
  await new Promise<void>((r) => tcp.listen({ host: address, port }, r));
  return {
    port,
    received,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => udp.close(() => r()));
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}

/** One UDP exchange from a fresh client socket; undefined after `waitMs` without a reply. */
function askUdp(address: string, port: number, msg: Buffer, waitMs = 2000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
    const t = setTimeout(() => {
      s.close();
      resolve(undefined);
    }, waitMs);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.send(msg, port, address);
  });
}

/** Several messages on one TCP connection, written at once; the replies by id. */
function askTcp(address: string, port: number, msgs: Buffer[]): Promise<Map<number, Buffer>> {
  return new Promise((resolve, reject) => {
    const out = new Map<number, Buffer>();
    const reader = new FrameReader();
    const s = net.connect({ host: address, port }, () => s.write(Buffer.concat(msgs.map(frame))));
    s.on('error', reject);
    s.on('data', (c) => {
      for (const m of reader.push(c)) out.set(idOf(m), m);
      if (out.size === msgs.length) {
        s.destroy();
        resolve(out);
      }
    });
  });
}

const KNOWN: Record<string, Resolution> = {
  web: { kind: 'answer', addresses: ['198.18.0.10'] },
  six: { kind: 'answer', addresses: ['fd00::6'] },
  db: { kind: 'nodata' },
  many: { kind: 'answer', addresses: Array.from({ length: 100 }, (_, i) => `198.18.1.${i + 1}`) },
};

for (const family of ['127.0.0.1', '::1'] as const) {
  describe(`DnsResponder on ${family}`, () => {
    let up: Awaited<ReturnType<typeof fakeUpstream>>;
    let dns: DnsResponder;
    let listener: DnsListener;
    const sources: string[] = [];

    before(async () => {
      up = await fakeUpstream(family);
      dns = new DnsResponder({
        log: createLogger('error', () => {}),
        lookup: (source, q) => {
          sources.push(source);
          const r = KNOWN[q.name.toLowerCase()];
          if (r?.kind !== 'answer') return r ?? { kind: 'forward' };
          return { kind: 'answer', addresses: r.addresses.filter((a) => a.includes(':') === (q.type === 28)) };
        },
        timeoutMs: 300,
        upstreamPort: up.port,
      });
      listener = { address: family, port: await freePort(family), upstream: family };
      await dns.sync([listener]);
      assert.deepEqual(dns.listening(), [listener]);
    });
    after(async () => {
      await dns.close();
      await up.close();
    });

    it('answers a truss name over UDP, authoritative, from lookup given the source address', async () => {
      const r = (await askUdp(family, listener.port, query(0x101, 'web')))!;
      assert.equal(idOf(r), 0x101);
      assert.equal(r[2], 0x85, 'QR | AA | RD');
      assert.equal(ancountOf(r), 1);
      assert.deepEqual([...r.subarray(-4)], [198, 18, 0, 10]);
      assert.equal(sources.at(-1), family);
      const six = (await askUdp(family, listener.port, query(0x102, 'six', 28)))!;
      assert.equal(ancountOf(six), 1);
      const nodata = (await askUdp(family, listener.port, query(0x103, 'db')))!;
      assert.equal(rcodeOf(nodata), 0);
      assert.equal(ancountOf(nodata), 0);
      assert.equal(up.received.length, 0, 'nothing went upstream');
    });

    it('relays other names to the upstream and back, bytes unchanged, over UDP and TCP', async () => {
      const q = query(0x201, 'example.com', 1, 4096);
      const r = (await askUdp(family, listener.port, q))!;
      assert.deepEqual(up.received.at(-1), { proto: 'udp', bytes: q });
      assert.equal(ancountOf(r), 0x7777, 'the upstream reply itself');
      assert.deepEqual(r.subarray(12), q.subarray(12));
      const before = dns.counters.forwarded;
      const replies = await askTcp(family, listener.port, [query(0x202, 'example.org'), query(0x203, 'web')]);
      assert.equal(ancountOf(replies.get(0x202)!), 0x7777);
      assert.equal(ancountOf(replies.get(0x203)!), 1, 'answered locally on the same connection');
      assert.deepEqual(up.received.at(-1), { proto: 'tcp', bytes: query(0x202, 'example.org') });
      assert.equal(dns.counters.forwarded, before + 1);
    });

    it('sets TC on a UDP answer too large for the client, and answers it whole over TCP', async () => {
      const udp = (await askUdp(family, listener.port, query(0x301, 'many')))!;
      assert.ok(tcOf(udp));
      assert.equal(ancountOf(udp), 0);
      const edns = (await askUdp(family, listener.port, query(0x302, 'many', 1, 4096)))!;
      assert.ok(tcOf(edns), '100 × 16 bytes exceed 1232 too');
      const tcp = (await askTcp(family, listener.port, [query(0x303, 'many')])).get(0x303)!;
      assert.ok(!tcOf(tcp));
      assert.equal(ancountOf(tcp), 100);
    });

    it("relays an upstream's truncated UDP reply as is, and the client's TCP retry over TCP", async () => {
      const udp = (await askUdp(family, listener.port, query(0x311, 'big.example')))!;
      assert.ok(tcOf(udp));
      const tcp = (await askTcp(family, listener.port, [query(0x312, 'big.example')])).get(0x312)!;
      assert.ok(!tcOf(tcp));
      assert.equal(up.received.at(-1)?.proto, 'tcp');
    });

    it('answers SERVFAIL when the upstream does not reply in time, over UDP and TCP', async () => {
      const failed = dns.counters.failed;
      const t0 = Date.now();
      const r = (await askUdp(family, listener.port, query(0x401, 'slow.example')))!;
      assert.equal(idOf(r), 0x401);
      assert.equal(rcodeOf(r), 2);
      assert.ok(Date.now() - t0 >= 250, 'after the timeout');
      const tcp = (await askTcp(family, listener.port, [query(0x402, 'slow.example')])).get(0x402)!;
      assert.equal(rcodeOf(tcp), 2);
      assert.equal(dns.counters.failed, failed + 2);
    });

    it('answers FORMERR when it can read an id, and drops what it cannot', async () => {
      const bad = Buffer.from([0x05, 0x01, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1]);
      const r = (await askUdp(family, listener.port, bad))!;
      assert.equal(idOf(r), 0x501);
      assert.equal(rcodeOf(r), 1);
      const failed = dns.counters.failed;
      assert.equal(await askUdp(family, listener.port, Buffer.from([1, 2, 3]), 200), undefined);
      assert.equal(dns.counters.failed, failed + 1);
    });
  });
}

describe('DnsResponder.sync', () => {
  it('opens and closes listeners to match the list, idempotently', async () => {
    const dns = new DnsResponder({ log: createLogger('error', () => {}), lookup: () => ({ kind: 'forward' }) });
    const a = { address: '127.0.0.1', port: await freePort('127.0.0.1'), upstream: '198.18.0.53' };
    const b = { address: '127.0.0.1', port: await freePort('127.0.0.1'), upstream: '198.18.0.54' };
    await dns.sync([a, b]);
    await dns.sync([b, a]);
    assert.equal(dns.listening().length, 2);
    await dns.sync([b]);
    assert.deepEqual(dns.listening(), [b]);
    await assert.rejects(askTcp('127.0.0.1', a.port, [query(1, 'x')]), /ECONNREFUSED/);
    await dns.close();
    assert.deepEqual(dns.listening(), []);
    await assert.rejects(askTcp('127.0.0.1', b.port, [query(1, 'x')]), /ECONNREFUSED/);
  });

  it('logs a failed bind, never throws, and binds on the next sync', async () => {
    const lines: string[] = [];
    const dns = new DnsResponder({
      log: createLogger('info', (l) => lines.push(l)),
      lookup: () => ({ kind: 'nodata' }),
    });
    const port = await freePort('127.0.0.1');
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.listen({ host: '127.0.0.1', port }, r));
    const l = { address: '127.0.0.1', port, upstream: '198.18.0.53' };
    await dns.sync([l]);
    assert.deepEqual(dns.listening(), []);
    assert.match(lines.join(''), /dns listener bind failed.*EADDRINUSE/);
    assert.equal(await askUdp('127.0.0.1', port, query(7, 'x'), 200), undefined, 'no half-open listener');
    await new Promise<void>((r) => squatter.close(() => r()));
    await dns.sync([l]);
    assert.deepEqual(dns.listening(), [l]);
    assert.equal(rcodeOf((await askUdp('127.0.0.1', port, query(8, 'x')))!), 0);
    await dns.close();
  });
});

describe('DnsResponder limits', () => {
  it('answers SERVFAIL at once beyond maxInflight upstream exchanges', async () => {
    const up = await fakeUpstream('127.0.0.1');
    const dns = new DnsResponder({
      log: createLogger('error', () => {}),
      lookup: () => ({ kind: 'forward' }),
      timeoutMs: 1000,
      upstreamPort: up.port,
      maxInflight: 1,
    });
    const l = { address: '127.0.0.1', port: await freePort('127.0.0.1'), upstream: '127.0.0.1' };
    await dns.sync([l]);
    const first = askUdp('127.0.0.1', l.port, query(1, 'slow.example'));
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    const second = (await askUdp('127.0.0.1', l.port, query(2, 'slow.example')))!;
    assert.equal(rcodeOf(second), 2);
    assert.ok(Date.now() - t0 < 500, 'not after the timeout');
    assert.equal(rcodeOf((await first)!), 2);
    assert.equal(up.received.length, 1);
    await dns.close();
    await up.close();
  });
});
