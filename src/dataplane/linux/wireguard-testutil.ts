/**
 * Test and benchmark support (root) for WireGuard through wireguard-go: a simulated host with a
 * key and a "container" behind it (wgHost), the wireguard-go daemons of a test found and killed
 * (wgGoPids, killWireguardGo), and two such hosts joined by a veth underlay with a measurement
 * of the ping silence across WireGuard key rotations of host A:
 *
 *   cA 198.18.N.2 ─ hA ─ 198.18.(N+2).1/30 ══ 198.18.(N+2).2 ─ hB ─ cB 198.18.(N+1).2
 *
 * Used by wireguard.netns.ts, wireguard-rotation.netns.ts, hostile-peers.netns.ts and bench/rotation.ts (50 rotations,
 * docs/benchmarks.md).
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { computeWireguardMtu } from '../../core/cluster/mtu.ts';
import { createExec, type Exec, type OnCommand } from './exec.ts';
import {
  BUSYBOX,
  type RoutedHost,
  type RoutedHostOptions,
  routedHost,
  type Scratch,
  scratchPool,
} from './netns-testutil.ts';
import { ensureRoutes } from './routes.ts';
import {
  detectWireguardImpl,
  ensureWireguard,
  readWireguard,
  removeWireguard,
  UAPI_DIR,
  type WireguardDevice,
} from './wireguard.ts';
import { ensurePrivateKey, rotatePrivateKey } from './wireguard-keys.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `f` every 50 ms until it holds; its time in ms, or an error naming `what` after `timeoutMs`. */
export async function eventually(what: string, f: () => Promise<boolean>, timeoutMs = 8000): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    if (await f()) return performance.now() - t0;
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
const PORT = 51820;

/**
 * TRUSS_TEST_WIREGUARD_GO=/path/to/wireguard-go: the tests' hosts use that binary (the admin's
 * --wireguard-go) instead of the one truss would choose, to compare two wireguard-go versions
 * without touching what is installed. Unset: truss's own choice.
 */
export const TEST_WIREGUARD_GO = process.env.TRUSS_TEST_WIREGUARD_GO || undefined;

/** An Exec whose WireGuard probe (cached per Exec) already chose TEST_WIREGUARD_GO, when set. */
export async function wgExec(netns: string, onCommand?: OnCommand): Promise<Exec> {
  const exec = createExec({ netns, ...(onCommand ? { onCommand } : {}) });
  if (TEST_WIREGUARD_GO !== undefined) await detectWireguardImpl(exec, { wireguardGo: TEST_WIREGUARD_GO });
  return exec;
}

/** Live (non-zombie) wireguard-go processes serving `name`. */
export function wgGoPids(name: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      const state = readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]?.[0];
      if (basename(argv[0] ?? '') === 'wireguard-go' && argv[1] === name && state !== 'Z') pids.push(Number(d));
    } catch {} // gone meanwhile
  }
  return pids;
}

/** Kills the wireguard-go daemons of these devices and removes their UAPI sockets (a suite's teardown). */
export async function killWireguardGo(names: readonly string[]): Promise<void> {
  for (const name of names) for (const pid of wgGoPids(name)) process.kill(pid, 'SIGKILL');
  await sleep(200);
  for (const name of names) await fs.rm(join(UAPI_DIR, `${name}.sock`), { force: true });
}

export interface WgHost extends RoutedHost {
  readonly exec: Exec;
  /** its WireGuard device's name (unique on this machine: wireguard-go's sockets are shared) */
  readonly dev: string;
  readonly keyDir: string;
  /** the container's block, what a peer routes to this host */
  readonly block: string;
  readonly ctrIp: string;
  publicKey: string;
  readonly keyFile: string;
}

/** A routed host (routedHost) with a WireGuard private key in `keyDir`, for device `dev`. */
export async function wgHost(
  scratch: Scratch,
  routed: RoutedHostOptions,
  o: { dev: string; keyDir: string; block: string; onCommand?: OnCommand },
): Promise<WgHost> {
  const key = await ensurePrivateKey(o.keyDir);
  const h = await routedHost(scratch, routed);
  const exec = await wgExec(h.ns.path, o.onCommand);
  return {
    ...h,
    exec,
    dev: o.dev,
    keyDir: o.keyDir,
    block: o.block,
    ctrIp: routed.ctrIp,
    publicKey: key.publicKey,
    keyFile: key.file,
  };
}

/** A WgHost of a pair: `underlayIp` is where its peer reaches it. */
export interface PairHost extends WgHost {
  readonly underlayIp: string;
}

export interface WgPair {
  readonly a: PairHost;
  readonly b: PairHost;
  /** the device spec of host h, peering with the other (current keys) */
  spec(h: PairHost): WireguardDevice;
  close(): Promise<void>;
}

/** Two hosts with devices up and routes via the tunnel; `n` is the third octet of A's block (uses n..n+2). */
export async function createWgPair(n: number): Promise<WgPair> {
  const run = randomBytes(2).toString('hex');
  const work = await fs.mkdtemp(join(tmpdir(), 'truss-wgrot-'));
  const scratch = scratchPool();
  const ul = `198.18.${n + 2}`;
  const host = async (role: 'a' | 'b', octet: number, underlayIp: string): Promise<PairHost> => ({
    ...(await wgHost(
      scratch,
      {
        host: `rot${role}`,
        ctr: `rotc${role}`,
        link: `v${role}`,
        gateway: `198.18.${octet}.1/24`,
        ctrIp: `198.18.${octet}.2`,
      },
      { dev: `trwg${run}r${role}`, keyDir: join(work, role), block: `198.18.${octet}.0/24` },
    )),
    underlayIp,
  });
  // why: a pair that fails half made is nobody's to close: its namespaces and wireguard-go go here
  const hosts: PairHost[] = [];
  const abandon = async (e: unknown): Promise<never> => {
    for (const h of hosts) await removeWireguard(h.exec, h.dev).catch(() => {});
    await scratch.close().catch(() => {});
    await fs.rm(work, { recursive: true, force: true });
    throw e;
  };
  const a = await host('a', n, `${ul}.1`).catch(abandon);
  hosts.push(a);
  const b = await host('b', n + 1, `${ul}.2`).catch(abandon);
  hosts.push(b);
  const spec = (h: PairHost): WireguardDevice => {
    const o = h === a ? b : a;
    return {
      name: h.dev,
      privateKeyFile: h.keyFile,
      listenPort: PORT,
      mtu: computeWireguardMtu(1500, 4),
      peers: [{ publicKey: o.publicKey, endpoint: `${o.underlayIp}:${PORT}`, allowedIps: [o.block] }],
    };
  };
  await connect(a, b, ul, spec).catch(abandon);
  return {
    a,
    b,
    spec,
    async close() {
      for (const h of [a, b]) await removeWireguard(h.exec, h.dev).catch(() => {});
      await scratch.close();
      await fs.rm(work, { recursive: true, force: true });
    },
  };
}

/** The pair's underlay veth, then each host's device and route to the other's block. */
async function connect(a: PairHost, b: PairHost, ul: string, spec: (h: PairHost) => WireguardDevice): Promise<void> {
  await a.ns.must(
    ['ip', '-batch', '-'],
    `link add ulrot type veth peer name ulrot netns ${b.ns.name}\naddr add ${ul}.1/30 dev ulrot\nlink set ulrot up\n`,
  );
  await b.ns.must(['ip', '-batch', '-'], `addr add ${ul}.2/30 dev ulrot\nlink set ulrot up\n`);
  for (const h of [b, a]) {
    await ensureWireguard(h.exec, spec(h));
    await ensureRoutes(h.exec, [{ dst: (h === a ? b : a).block, dev: h.dev }]);
  }
}

/** A ping cA → cB every `intervalMs`, recording when each reply arrived. Always stop() it. */
export function startPing(p: WgPair, intervalMs: number): { arrivals: number[]; stop(): void } {
  const arrivals: number[] = [];
  const args = [`--net=${p.a.ctr.path}`, '--', BUSYBOX, 'ping', '-i', String(intervalMs / 1000), p.b.ctrIp];
  const child: ChildProcess = spawn('nsenter', args, { stdio: ['ignore', 'pipe', 'ignore'] });
  child.stdout?.on('data', (buf: Buffer) => {
    for (const l of buf.toString().split('\n')) if (l.includes('seq=')) arrivals.push(performance.now());
  });
  return { arrivals, stop: () => child.kill('SIGKILL') };
}

export interface RotationResult {
  /** longest silence between two ping replies around the rotation, ms */
  readonly gapMs: number;
  /** B applied the new key skewMs after A (negative: before) */
  readonly skewMs: number;
  /** handshakes restarted: the two hosts' nudges crossed, or one sent and heard nothing back (ensureWireguard's changes) */
  readonly restarts: number;
}

/**
 * Rotates A's key and applies the new key on A and on B (their reconcilers, fed by the store's
 * watch), B `skewMs` after A (negative: before). Returns the longest ping silence around it,
 * once replies came back and `settleMs` more passed. Throws if traffic does not resume in 15 s.
 */
export async function rotateOnce(
  p: WgPair,
  ping: { readonly arrivals: readonly number[] },
  skewMs: number,
  settleMs = 300,
): Promise<RotationResult> {
  const t0 = performance.now();
  const snap = async () =>
    (await Promise.all([p.a, p.b].map((h) => readWireguard(h.exec, h.dev))))
      .map((s) =>
        s?.peers.map((x) => `${x.publicKey.slice(0, 4)} rx ${x.rxBytes} tx ${x.txBytes} hs ${x.latestHandshake}`),
      )
      .join(' | ');
  const s0 = await snap();
  const k = await rotatePrivateKey(p.a.keyDir);
  p.a.publicKey = k.publicKey;
  const applyA = sleep(Math.max(0, -skewMs)).then(() => ensureWireguard(p.a.exec, p.spec(p.a)));
  const applyB = sleep(Math.max(0, skewMs)).then(() => ensureWireguard(p.b.exec, p.spec(p.b)));
  const changes = (await Promise.all([applyA, applyB])).flatMap((r) => r.changes);
  const restarts = changes.filter((c) => c.includes('handshake restarted')).length;
  const applied = performance.now();
  const s1 = await snap();
  for (const end = applied + 15_000; !ping.arrivals.some((t) => t > applied); ) {
    if (performance.now() > end) {
      const show = async (h: PairHost) => JSON.stringify(await readWireguard(h.exec, h.dev));
      throw new Error(
        `no ping reply within 15 s of the rotation (skew ${skewMs} ms; changes: ${changes.join('; ')})\n` +
          `before: ${s0}\nafter ensure: ${s1}\nnow: ${await snap()}\n` +
          `A ${p.a.publicKey}: ${await show(p.a)}\nB ${p.b.publicKey}: ${await show(p.b)}`,
      );
    }
    await sleep(20);
  }
  await sleep(settleMs);
  // from the last reply before the rotation (not earlier: the previous rotation's gap is not this one's)
  const before = ping.arrivals.filter((t) => t <= t0).at(-1) ?? t0;
  const around = ping.arrivals.filter((t) => t >= before);
  let gapMs = 0;
  for (let i = 1; i < around.length; i++) gapMs = Math.max(gapMs, (around[i] ?? 0) - (around[i - 1] ?? 0));
  return { gapMs, skewMs, restarts };
}
