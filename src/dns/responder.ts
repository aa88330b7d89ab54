/**
 * truss's DNS responder (issue 16). Docker's embedded DNS (127.0.0.11 in a container) answers the
 * names it knows and forwards the rest to the container's upstream servers from inside the
 * container, so those queries cross the truss bridge; nft there redirects each known upstream's
 * port 53 to one listener here, on the network's gateway address, one port per upstream (the port
 * says which upstream the query was meant for). A listener answers A/AAAA for the truss names the
 * querying container may see (lookup) and relays every other query, bytes unchanged, to that
 * upstream, and its reply, bytes unchanged, back.
 *
 * sync() makes the open listeners (UDP and TCP each) exactly the list it is given; a bind that
 * fails is logged and tried again on the next sync(). Nothing here throws to the caller.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Resolution } from '../core/dns/answer.ts';
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
} from '../core/dns/message.ts';
import type { Logger } from '../obs/logger.ts';
import { exchangeTcp, exchangeUdp, FrameReader, frame, type Inflight, type Upstream } from './upstream.ts';

export interface DnsListener {
  /** the network's gateway IP (v4 or v6) the redirected queries arrive at */
  readonly address: string;
  readonly port: number;
  /** the bare IP the queries were addressed to, and where the others go */
  readonly upstream: string;
}

export interface DnsResponderOptions {
  readonly log: Logger;
  /** source: the querying container's address */
  readonly lookup: (source: string, q: { readonly name: string; readonly type: number }) => Resolution;
  /** how long an upstream has to reply (Docker's embedded DNS waits 4 s per server: extIOTimeout) */
  readonly timeoutMs?: number;
  /** the TTL of truss's answers: short, containers come and go */
  readonly ttl?: number;
  /** the upstreams' port (53; tests point it at their own server) */
  readonly upstreamPort?: number;
  /** a TCP client connection idle this long is closed (RFC 7766 §6.2.3) */
  readonly tcpIdleMs?: number;
  /** upstream exchanges at once; beyond, SERVFAIL at once (Docker's embedded DNS: maxConcurrent 1024) */
  readonly maxInflight?: number;
}

export interface DnsCounters {
  /** queries truss answered itself (answers, no-data, FORMERR) */
  answered: number;
  /** queries relayed to the upstream and its reply relayed back */
  forwarded: number;
  /** upstream timeouts or errors (answered SERVFAIL), and malformed queries dropped */
  failed: number;
}

interface Open {
  readonly listener: DnsListener;
  readonly udp: dgram.Socket;
  readonly tcp: net.Server;
  readonly clients: Set<net.Socket>;
}

const keyOf = (l: DnsListener): string => `${l.address}|${l.port}|${l.upstream}`;
/** a link-local source carries its zone (fe80::1%br0); the catalog has bare IPs */
const bare = (a: string): string => a.replace(/%.*$/, '');

export class DnsResponder {
  readonly #log: Logger;
  readonly #lookup: DnsResponderOptions['lookup'];
  readonly #timeoutMs: number;
  readonly #ttl: number;
  readonly #upstreamPort: number;
  readonly #tcpIdleMs: number;
  readonly #maxInflight: number;
  readonly #open = new Map<string, Open>();
  readonly #inflight: Inflight = new Set();
  readonly #counters: DnsCounters = { answered: 0, forwarded: 0, failed: 0 };
  #syncing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(o: DnsResponderOptions) {
    this.#log = o.log;
    this.#lookup = o.lookup;
    this.#timeoutMs = o.timeoutMs ?? 4000;
    this.#ttl = o.ttl ?? 1;
    this.#upstreamPort = o.upstreamPort ?? 53;
    this.#tcpIdleMs = o.tcpIdleMs ?? 10_000;
    this.#maxInflight = o.maxInflight ?? 1024;
  }

  get counters(): Readonly<DnsCounters> {
    return { ...this.#counters };
  }

  /** the listeners open now */
  listening(): DnsListener[] {
    return [...this.#open.values()].map((o) => o.listener);
  }

  /** Open and close listeners to match `want` exactly. Resolves when done; never rejects. */
  sync(want: readonly DnsListener[]): Promise<void> {
    const next = this.#syncing.then(() => this.#apply(want));
    this.#syncing = next.catch(() => {});
    return this.#syncing;
  }

  async #apply(want: readonly DnsListener[]): Promise<void> {
    if (this.#closed) return;
    const wanted = new Map(want.map((l) => [keyOf(l), l]));
    for (const [key, o] of this.#open) {
      if (wanted.has(key)) continue;
      this.#open.delete(key);
      await closeOpen(o);
    }
    for (const [key, l] of wanted) {
      if (this.#open.has(key)) continue;
      const o = await this.#bind(l);
      if (o) this.#open.set(key, o);
    }
  }

  /** Both sockets of a listener, or neither (a half-open listener would answer only some clients). */
  async #bind(l: DnsListener): Promise<Open | undefined> {
    const family = net.isIPv6(l.address) ? 'udp6' : 'udp4';
    const udp = dgram.createSocket({ type: family });
    const clients = new Set<net.Socket>();
    const tcp = net.createServer((s) => this.#serveTcp(s, l, clients));
    const o: Open = { listener: l, udp, tcp, clients };
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind({ address: l.address, port: l.port, exclusive: true }, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host: l.address, port: l.port, exclusive: true }, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      this.#log.warn('dns listener bind failed', { ...l, code: err.code, error: err.message });
      await closeOpen(o);
      return undefined;
    }
    udp.on('error', (e) => this.#log.warn('dns udp socket error', { ...l, error: e.message }));
    tcp.on('error', (e) => this.#log.warn('dns tcp listener error', { ...l, error: e.message }));
    udp.on('message', (msg, rinfo) => {
      void this.#handle(msg, bare(rinfo.address), l.upstream, 'udp').then((reply) => {
        if (reply) udp.send(reply, rinfo.port, rinfo.address, () => {});
      });
    });
    this.#log.debug('dns listener open', { ...l });
    return o;
  }

  #serveTcp(s: net.Socket, l: DnsListener, clients: Set<net.Socket>): void {
    clients.add(s);
    s.setTimeout(this.#tcpIdleMs, () => s.destroy());
    s.on('error', () => s.destroy());
    s.on('close', () => clients.delete(s));
    const reader = new FrameReader();
    const source = bare(s.remoteAddress ?? '');
    s.on('data', (chunk) => {
      // several messages per connection, answered as each is ready (RFC 7766 §6.2.1.1: ids pair them)
      for (const msg of reader.push(chunk)) {
        void this.#handle(msg, source, l.upstream, 'tcp').then((reply) => {
          if (reply && !s.destroyed) s.write(frame(reply));
        });
      }
    });
  }

  /** The reply to one message, or undefined to send none. Never rejects. */
  async #handle(
    msg: Uint8Array,
    source: string,
    upstream: string,
    proto: 'udp' | 'tcp',
  ): Promise<Uint8Array | undefined> {
    const p = parseQuery(msg);
    if (p.kind === 'malformed') {
      if (p.id === undefined) {
        this.#counters.failed++;
        return undefined;
      }
      this.#counters.answered++;
      return buildHeaderReply(p.id, p.flags ?? 0, RCODE_FORMERR);
    }
    if (p.kind === 'query') {
      const r = this.#resolve(source, p.query);
      if (r.kind !== 'forward') {
        this.#counters.answered++;
        const addresses = r.kind === 'answer' ? r.addresses : [];
        const limit = proto === 'udp' ? udpLimit(p.query) : TCP_MAX;
        return buildReply(p.query, { rcode: RCODE_NOERROR, authoritative: true, addresses, ttl: this.#ttl }, limit);
      }
    }
    const up: Upstream = { address: upstream, port: this.#upstreamPort };
    const exchange = proto === 'udp' ? exchangeUdp : exchangeTcp;
    // a flood must not take every file descriptor: one socket per exchange in flight
    const reply =
      this.#inflight.size < this.#maxInflight ? await exchange(msg, up, this.#timeoutMs, this.#inflight) : undefined;
    if (reply) {
      this.#counters.forwarded++;
      return reply;
    }
    this.#counters.failed++;
    if (this.#log.isDebug()) this.#log.debug('dns upstream failed', { upstream, proto, source });
    if (this.#closed) return undefined;
    if (p.kind === 'query') {
      return buildReply(p.query, { rcode: RCODE_SERVFAIL, authoritative: false, addresses: [], ttl: 0 }, TCP_MAX);
    }
    const h = readHeader(msg);
    return h && buildHeaderReply(h.id, h.flags, RCODE_SERVFAIL);
  }

  #resolve(source: string, q: DnsQuery): Resolution {
    try {
      return this.#lookup(source, { name: q.question.name, type: q.question.type });
    } catch (e) {
      // a lookup bug must not take names away from the container: its upstream still answers
      this.#log.warn('dns lookup failed', { source, error: (e as Error).message });
      return { kind: 'forward' };
    }
  }

  /** Close every listener and end the exchanges in flight. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#syncing;
    for (const h of [...this.#inflight]) h.close();
    const all = [...this.#open.values()];
    this.#open.clear();
    await Promise.all(all.map(closeOpen));
  }
}

async function closeOpen(o: Open): Promise<void> {
  for (const s of o.clients) s.destroy();
  await Promise.all([
    new Promise<void>((resolve) => {
      try {
        o.udp.close(() => resolve());
      } catch {
        resolve(); // never bound, or already closed
      }
    }),
    new Promise<void>((resolve) => {
      if (!o.tcp.listening) return resolve();
      o.tcp.close(() => resolve());
    }),
  ]);
}
