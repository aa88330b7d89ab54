/**
 * Test and benchmark support (root): two simulated hosts joined by a veth underlay, each with
 * a wireguard-go device and a "container" namespace behind it, and a measurement of the ping
 * silence across WireGuard key rotations of host A.
 *
 *   cA 198.18.N.2 ─ hA ─ 198.18.(N+2).1/30 ══ 198.18.(N+2).2 ─ hB ─ cB 198.18.(N+1).2
 *
 * Used by wireguard.netns.ts (a few rotations, CI) and bench/rotation.ts (50, docs/benchmarks.md).
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeWireguardMtu } from '../../core/cluster/mtu.ts';
import { createExec, type Exec } from './exec.ts';
import { BUSYBOX, createTestNs, type TestNs } from './netns-testutil.ts';
import { ensureRoutes } from './routes.ts';
import { ensureWireguard, removeWireguard, type WireguardDevice } from './wireguard.ts';
import { ensurePrivateKey, rotatePrivateKey } from './wireguard-keys.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const PORT = 51820;

export interface WgHost {
  readonly ns: TestNs;
  readonly ctr: TestNs;
  readonly exec: Exec;
  readonly dev: string;
  readonly keyDir: string;
  readonly block: string;
  readonly ctrIp: string;
  readonly underlayIp: string;
  publicKey: string;
  readonly keyFile: string;
}

export interface WgPair {
  readonly a: WgHost;
  readonly b: WgHost;
  /** the device spec of host h, peering with the other (current keys) */
  spec(h: WgHost): WireguardDevice;
  close(): Promise<void>;
}

/** Two hosts with devices up and routes via the tunnel; `n` is the third octet of A's block (uses n..n+2). */
export async function createWgPair(n: number): Promise<WgPair> {
  const run = randomBytes(2).toString('hex');
  const work = await fs.mkdtemp(join(tmpdir(), 'truss-wgrot-'));
  const spaces: TestNs[] = [];
  const ns = async (role: string): Promise<TestNs> => {
    const s = await createTestNs(role);
    spaces.push(s);
    return s;
  };
  const ul = `198.18.${n + 2}`;
  async function host(role: 'a' | 'b', octet: number, underlayIp: string): Promise<WgHost> {
    const h = await ns(`rot${role}`);
    const ctr = await ns(`rotc${role}`);
    const keyDir = join(work, role);
    const key = await ensurePrivateKey(keyDir);
    await h.must(
      ['ip', '-batch', '-'],
      `link add v${role} type veth peer name eth0 netns ${ctr.name}\naddr add 198.18.${octet}.1/24 dev v${role}\nlink set v${role} up\n`,
    );
    await h.must(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    await ctr.must(
      ['ip', '-batch', '-'],
      `addr add 198.18.${octet}.2/24 dev eth0\nlink set eth0 up\nroute add default via 198.18.${octet}.1\n`,
    );
    return {
      ns: h,
      ctr,
      exec: createExec({ netns: h.path }),
      dev: `trwg${run}r${role}`,
      keyDir,
      block: `198.18.${octet}.0/24`,
      ctrIp: `198.18.${octet}.2`,
      underlayIp,
      publicKey: key.publicKey,
      keyFile: key.file,
    };
  }
  const a = await host('a', n, `${ul}.1`);
  const b = await host('b', n + 1, `${ul}.2`);
  await a.ns.must(
    ['ip', '-batch', '-'],
    `link add ulrot type veth peer name ulrot netns ${b.ns.name}\naddr add ${ul}.1/30 dev ulrot\nlink set ulrot up\n`,
  );
  await b.ns.must(['ip', '-batch', '-'], `addr add ${ul}.2/30 dev ulrot\nlink set ulrot up\n`);
  const spec = (h: WgHost): WireguardDevice => {
    const o = h === a ? b : a;
    return {
      name: h.dev,
      privateKeyFile: h.keyFile,
      listenPort: PORT,
      mtu: computeWireguardMtu(1500, 4),
      peers: [{ publicKey: o.publicKey, endpoint: `${o.underlayIp}:${PORT}`, allowedIps: [o.block] }],
    };
  };
  for (const h of [b, a]) {
    await ensureWireguard(h.exec, spec(h));
    await ensureRoutes(h.exec, [{ dst: (h === a ? b : a).block, dev: h.dev }]);
  }
  return {
    a,
    b,
    spec,
    async close() {
      for (const h of [a, b]) await removeWireguard(h.exec, h.dev).catch(() => {});
      for (const s of spaces) await s.remove();
      await fs.rm(work, { recursive: true, force: true });
    },
  };
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
  const k = await rotatePrivateKey(p.a.keyDir);
  p.a.publicKey = k.publicKey;
  const applyA = sleep(Math.max(0, -skewMs)).then(() => ensureWireguard(p.a.exec, p.spec(p.a)));
  const applyB = sleep(Math.max(0, skewMs)).then(() => ensureWireguard(p.b.exec, p.spec(p.b)));
  await Promise.all([applyA, applyB]);
  const applied = performance.now();
  for (const end = applied + 15_000; !ping.arrivals.some((t) => t > applied); ) {
    if (performance.now() > end) throw new Error('no ping reply within 15 s of the rotation');
    await sleep(20);
  }
  await sleep(settleMs);
  // from the last reply before the rotation (not earlier: the previous rotation's gap is not this one's)
  const before = ping.arrivals.filter((t) => t <= t0).at(-1) ?? t0;
  const around = ping.arrivals.filter((t) => t >= before);
  let gapMs = 0;
  for (let i = 1; i < around.length; i++) gapMs = Math.max(gapMs, (around[i] ?? 0) - (around[i - 1] ?? 0));
  return { gapMs, skewMs };
}
