/**
 * UDP endpoints in test namespaces, for NAT tests (nat.ts): each is a small node process
 * (udp-peer.ts) under `nsenter --net`, so the datagrams are the namespace's own and the test
 * reads every one it received. On top: a reflector (a STUN server in miniature: it tells each
 * sender the source ip:port it saw), observeMapping() (which outside ip:port a NAT gives one
 * inside port toward several destinations) and punch() (simultaneous open, the way WireGuard
 * peers behind two NATs get a direct path).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { inNetns } from './exec.ts';
import { CHILD_PATH, REPO_ROOT, WORK_DIR } from './paths.ts';
import { sleep, waitFor } from './wait.ts';

/** "ip:port" */
export type Endpoint = string;

export interface Datagram {
  readonly from: Endpoint;
  readonly data: string;
  /** performance.now() when the suite read it */
  readonly atMs: number;
}

export interface UdpPeer {
  /** the bound address, as the socket reports it ("0.0.0.0:40000") */
  readonly local: Endpoint;
  /** every datagram received so far, oldest first */
  received(): readonly Datagram[];
  send(to: Endpoint, data: string): void;
  /** The first datagram (already received or later) matching pred; throws after timeoutMs. */
  waitFor(pred: (d: Datagram) => boolean, timeoutMs: number, what: string): Promise<Datagram>;
  /** Ends the process (closes its stdin, then SIGKILL if it lingers). Idempotent. */
  close(): Promise<void>;
}

const SCRIPT = join(REPO_ROOT, 'e2e', 'harness', 'udp-peer.ts');

/**
 * A UDP socket bound to `bind` ("0.0.0.0:40000"; port 0 = any) in the namespace at netnsPath;
 * with reflect, it answers each datagram with `seen <source ip:port>`.
 */
export async function openUdp(netnsPath: string, bind: Endpoint, opts: { reflect?: boolean } = {}): Promise<UdpPeer> {
  const argv = inNetns(netnsPath, [
    process.execPath,
    SCRIPT,
    bind,
    opts.reflect ? 'reflect' : 'quiet',
    `${WORK_DIR}/udp`,
  ]);
  const child: ChildProcess = spawn(argv[0] as string, argv.slice(1), {
    env: { ...process.env, PATH: CHILD_PATH },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const got: Datagram[] = [];
  let local: Endpoint | undefined;
  let failure = '';
  let exited = false;
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    failure += d;
  });
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    const o = JSON.parse(line) as { ready?: string; from?: string; data?: string; error?: string; sendError?: string };
    if (o.ready) local = o.ready;
    else if (o.from !== undefined) got.push({ from: o.from, data: o.data ?? '', atMs: performance.now() });
    else failure += `${o.error ?? o.sendError ?? line}\n`;
  });
  const closed = new Promise<void>((resolve) => {
    child.on('close', () => {
      exited = true;
      resolve();
    });
    child.on('error', (err) => {
      failure += err.message;
      exited = true;
      resolve();
    });
  });
  child.stdin?.on('error', () => {});
  let done: Promise<void> | undefined;
  const peer: UdpPeer = {
    get local() {
      return local as Endpoint;
    },
    received: () => got,
    send(to, data) {
      child.stdin?.write(`${JSON.stringify({ to, data })}\n`);
    },
    waitFor: (pred, timeoutMs, what) =>
      waitFor(
        () => {
          const d = got.find(pred);
          if (d) return d;
          if (exited) throw new Error(`udp peer ${bind} exited: ${failure.trim()}`);
          return undefined;
        },
        timeoutMs,
        { what: `${what} at ${bind}`, intervalMs: 20 },
      ),
    close() {
      done ??= (async () => {
        child.stdin?.end();
        const killer = setTimeout(() => child.kill('SIGKILL'), 2000);
        await closed;
        clearTimeout(killer);
      })();
      return done;
    },
  };
  try {
    await waitFor(
      () => {
        if (exited) throw new Error(`exited: ${failure.trim()}`);
        return local !== undefined;
      },
      10_000,
      { what: `udp peer bound to ${bind} in ${netnsPath}`, intervalMs: 20 },
    );
  } catch (err) {
    await peer.close();
    throw err;
  }
  return peer;
}

/** What a reflector said it saw: the sender's outside ip:port. */
const seenBy = (d: Datagram): Endpoint | undefined => /^seen (\S+)$/.exec(d.data)?.[1];

/**
 * The reflexive endpoint of `peer` toward each reflector: sends a probe to each (every 100 ms
 * until it answers) and returns, in the order given, the source ip:port each reflector saw.
 */
export async function reflexive(peer: UdpPeer, reflectors: readonly Endpoint[], timeoutMs = 5000): Promise<Endpoint[]> {
  const out: Endpoint[] = [];
  for (const r of reflectors) {
    const answered = (d: Datagram): boolean => d.from === r && seenBy(d) !== undefined;
    const since = peer.received().length;
    const fresh = (d: Datagram): boolean => answered(d) && peer.received().indexOf(d) >= since;
    const deadline = performance.now() + timeoutMs;
    let seen: Datagram | undefined;
    while (!seen && performance.now() < deadline) {
      peer.send(r, 'probe');
      seen = await peer.waitFor(fresh, 100, `an answer from ${r}`).catch(() => undefined);
    }
    if (!seen) throw new Error(`reflector ${r} did not answer ${peer.local} within ${timeoutMs} ms`);
    out.push(seenBy(seen) as Endpoint);
  }
  return out;
}

/**
 * Which outside ip:port one inside port gets toward each reflector: opens `bind` in the
 * namespace at netnsPath, asks each reflector, closes. All equal = endpoint-independent mapping.
 */
export async function observeMapping(
  netnsPath: string,
  bind: Endpoint,
  reflectors: readonly Endpoint[],
): Promise<Endpoint[]> {
  const peer = await openUdp(netnsPath, bind);
  try {
    return await reflexive(peer, reflectors);
  } finally {
    await peer.close();
  }
}

export interface PunchResult {
  /** a received a datagram from b's target endpoint (and b from a's) */
  readonly aReceived: boolean;
  readonly bReceived: boolean;
  /** ms from the first send until both had received; undefined when they did not */
  readonly ms: number | undefined;
}

export interface PunchOptions {
  /** give up after this long (default 3000 ms) */
  readonly timeoutMs?: number;
  /** one datagram each way per interval (default 50 ms) */
  readonly intervalMs?: number;
  /** a sends alone this long before b starts (default 0): one side's keepalives start first */
  readonly aHeadStartMs?: number;
}

/**
 * Simultaneous open: a sends to `bOutside` and b to `aOutside` (each the other's reflexive
 * endpoint, as a reachable peer would have told them), every intervalMs, until both received
 * a datagram from the other's endpoint or timeoutMs passed.
 */
export async function punch(
  a: UdpPeer,
  aOutside: Endpoint,
  b: UdpPeer,
  bOutside: Endpoint,
  opts: PunchOptions = {},
): Promise<PunchResult> {
  const { timeoutMs = 3000, intervalMs = 50, aHeadStartMs = 0 } = opts;
  const fromB = (d: Datagram): boolean => d.from === bOutside && d.data.startsWith('punch ');
  const fromA = (d: Datagram): boolean => d.from === aOutside && d.data.startsWith('punch ');
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < timeoutMs) {
    a.send(bOutside, `punch a ${n}`);
    if (performance.now() - t0 >= aHeadStartMs) b.send(aOutside, `punch b ${n}`);
    n++;
    await sleep(intervalMs);
    if (a.received().some(fromB) && b.received().some(fromA)) break;
  }
  const aGot = a.received().find(fromB);
  const bGot = b.received().find(fromA);
  const ms = aGot && bGot ? Math.round(Math.max(aGot.atMs, bGot.atMs) - t0) : undefined;
  return { aReceived: aGot !== undefined, bReceived: bGot !== undefined, ms };
}
