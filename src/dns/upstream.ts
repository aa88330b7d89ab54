/**
 * One DNS exchange with an upstream server, for the queries truss does not answer itself: the
 * query's bytes go out unchanged and the reply's bytes come back unchanged. UDP uses a new socket
 * per query (a fresh random source port each time, RFC 5452 §9.2, and no id mapping to get
 * wrong); TCP one connection per message (RFC 7766 length prefix). Either resolves to undefined
 * on timeout or error, never rejects: the caller answers SERVFAIL.
 */
import dgram from 'node:dgram';
import net from 'node:net';

export interface Upstream {
  readonly address: string;
  readonly port: number;
}

/** Splits a TCP byte stream into DNS messages (16-bit big-endian length prefix, RFC 1035 §4.2.2). */
export class FrameReader {
  #buf: Buffer = Buffer.alloc(0);

  /** the whole messages `chunk` completes */
  push(chunk: Buffer): Buffer[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: Buffer[] = [];
    while (this.#buf.length >= 2) {
      const len = this.#buf.readUInt16BE(0);
      if (this.#buf.length < 2 + len) break;
      out.push(this.#buf.subarray(2, 2 + len));
      this.#buf = this.#buf.subarray(2 + len);
    }
    return out;
  }
}

export function frame(msg: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(2 + msg.length);
  out.writeUInt16BE(msg.length, 0);
  out.set(msg, 2);
  return out;
}

/** the reply belongs to the query: same id (the two first bytes) */
const sameId = (query: Uint8Array, reply: Uint8Array): boolean =>
  reply.length >= 2 && reply[0] === query[0] && reply[1] === query[1];

/** Tracks what an exchange opened, so that close() can end exchanges still in flight. */
export type Inflight = Set<{ close(): void }>;

export function exchangeUdp(
  query: Uint8Array,
  up: Upstream,
  timeoutMs: number,
  inflight: Inflight,
): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket(net.isIPv6(up.address) ? 'udp6' : 'udp4');
    const handle = { close: () => done(undefined) };
    inflight.add(handle);
    const timer = setTimeout(() => done(undefined), timeoutMs);
    function done(reply: Buffer | undefined): void {
      clearTimeout(timer);
      if (!inflight.delete(handle)) return;
      try {
        sock.close();
      } catch {
        // already closed by an error
      }
      resolve(reply);
    }
    sock.on('error', () => done(undefined));
    // only the upstream's own reply to this query: anything else on the port is ignored (spoofing)
    sock.on('message', (msg, rinfo) => {
      if (rinfo.address === up.address && rinfo.port === up.port && sameId(query, msg)) done(msg);
    });
    sock.send(query, up.port, up.address, (err) => {
      if (err) done(undefined);
    });
  });
}

export function exchangeTcp(
  query: Uint8Array,
  up: Upstream,
  timeoutMs: number,
  inflight: Inflight,
): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: up.address, port: up.port });
    const handle = { close: () => done(undefined) };
    inflight.add(handle);
    const timer = setTimeout(() => done(undefined), timeoutMs);
    const reader = new FrameReader();
    function done(reply: Buffer | undefined): void {
      clearTimeout(timer);
      if (!inflight.delete(handle)) return;
      sock.destroy();
      resolve(reply);
    }
    sock.on('error', () => done(undefined));
    sock.on('close', () => done(undefined));
    sock.on('data', (chunk) => {
      for (const msg of reader.push(chunk)) {
        if (sameId(query, msg)) return done(msg);
      }
    });
    sock.on('connect', () => sock.write(frame(query)));
  });
}
