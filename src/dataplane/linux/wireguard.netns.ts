/**
 * Kernel tests (root) with REAL TRAFFIC through userspace WireGuard (this kernel has no
 * wireguard module): three simulated hosts joined by veth "underlays", each with a
 * wireguard-go device, a "container" namespace behind each, routes via the tunnel.
 *
 *   cA 198.18.210.2 ─ hA ─ ulab 198.18.200.1/30 ══ 198.18.200.2 ulba ─ hB ─ cB 198.18.211.2
 *                      └── ulac fd00:200::1/126 ══ fd00:200::2 ulca ─ hC ─ cC 198.18.212.2
 *
 * wireguard-go's sockets live in /var/run/wireguard, shared by every netns of this mount
 * namespace, so each host's device has its own name (production: trwg0 per host). A's peers mix
 * IPv4 and IPv6, which the newest wireguard-go gets wrong (core/wireguard-impl.ts mixedFamilyBug):
 * A runs an older one when installed. TRUSS_TEST_WIREGUARD_GO=PATH runs PATH on every host instead.
 * Run: node --test --test-concurrency=1 'src/**\/*.netns.ts' (npm run test:kernel).
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { computeWireguardMtu } from '../../core/cluster/mtu.ts';
import { chooseWireguardGo, mixedFamilyBug } from '../../core/wireguard-impl.ts';
import { createExec } from './exec.ts';
import { BUSYBOX, capture, createScratch, pingOk, run, serveHi, type TestNs, tcpHi } from './netns-testutil.ts';
import { ensureRoutes, listRoutes, removeRoute } from './routes.ts';
import {
  detectWireguard,
  ensureWireguard,
  findWireguardGo,
  readWireguard,
  removeWireguard,
  UAPI_DIR,
  type WireguardDevice,
  type WireguardPeer,
  wireguardMark,
} from './wireguard.ts';
import { ensurePrivateKey, rotatePrivateKey } from './wireguard-keys.ts';
import { eventually, killWireguardGo, TEST_WIREGUARD_GO, type WgHost, wgGoPids, wgHost } from './wireguard-testutil.ts';

const RUN = randomBytes(2).toString('hex');
const PORT = 51820;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const ms = (t: number): string => `${t.toFixed(1)} ms`;

interface Host extends WgHost {
  /** every command its exec ran */
  readonly log: string[][];
}

describe('WireGuard between simulated hosts (kernel, wireguard-go)', { timeout: 240_000 }, () => {
  const scratch = createScratch();
  const devNames: string[] = [];
  let work: string;
  let A: Host;
  let B: Host;
  let C: Host;
  const figures: string[] = [];

  async function host(role: string, n: number): Promise<Host> {
    const log: string[][] = [];
    const dev = `trwg${RUN}-${role}`;
    devNames.push(dev);
    const h = await wgHost(
      scratch,
      { host: `h${role}`, ctr: `c${role}`, link: `v${role}`, gateway: `198.18.${n}.1/24`, ctrIp: `198.18.${n}.2` },
      {
        dev,
        keyDir: join(work, role, 'wireguard'),
        block: `198.18.${n}.0/24`,
        onCommand: (a, stdin) => log.push([...a, ...(stdin ? [stdin] : [])]),
      },
    );
    return Object.assign(h, { log });
  }

  const peer = (h: Host, endpoint: string, extra: Partial<WireguardPeer> = {}): WireguardPeer => ({
    publicKey: h.publicKey,
    endpoint,
    allowedIps: [h.block],
    ...extra,
  });
  const spec = (h: Host, mtu: number, peers: WireguardPeer[]): WireguardDevice => ({
    name: h.dev,
    privateKeyFile: h.keyFile,
    listenPort: PORT,
    mtu,
    peers,
  });
  const MTU_A = Math.min(computeWireguardMtu(1500, 4), computeWireguardMtu(1500, 6)); // A has a v6 peer
  const specA = (over: { b?: Partial<WireguardPeer>; c?: Partial<WireguardPeer> | null } = {}): WireguardDevice =>
    spec(A, MTU_A, [
      peer(B, '198.18.200.2:51820', over.b),
      ...(over.c === null ? [] : [peer(C, '[fd00:200::2]:51820', over.c ?? {})]),
    ]);
  const specB = (extra: Partial<WireguardPeer> = {}): WireguardDevice =>
    spec(B, computeWireguardMtu(1500, 4), [peer(A, '198.18.200.1:51820', extra)]);
  const specC = (): WireguardDevice => spec(C, computeWireguardMtu(1500, 6), [peer(A, '[fd00:200::1]:51820')]);
  const writes = (h: Host): string[][] => h.log.filter((a) => a.includes('set') || a.includes('-batch'));
  const peerState = async (from: Host, to: Host) =>
    (await readWireguard(from.exec, from.dev))?.peers.find((p) => p.publicKey === to.publicKey);

  before(async () => {
    work = await fs.mkdtemp(join(tmpdir(), 'truss-wg-'));
    scratch.defer(() => fs.rm(work, { recursive: true, force: true }));
    scratch.defer(() => killWireguardGo(devNames));
    A = await host('a', 210);
    B = await host('b', 211);
    C = await host('c', 212);
    await A.ns.must(
      ['ip', '-batch', '-'],
      [
        `link add ulab type veth peer name ulba netns ${B.ns.name}`,
        `link add ulac type veth peer name ulca netns ${C.ns.name}`,
        'addr add 198.18.200.1/30 dev ulab',
        'addr add fd00:200::1/126 dev ulac nodad',
        'link set ulab up',
        'link set ulac up',
        '',
      ].join('\n'),
    );
    await B.ns.must(['ip', '-batch', '-'], 'addr add 198.18.200.2/30 dev ulba\nlink set ulba up\n');
    await C.ns.must(['ip', '-batch', '-'], 'addr add fd00:200::2/126 dev ulca nodad\nlink set ulca up\n');
  });

  after(() => {
    for (const f of figures) process.stdout.write(`# figure: ${f}\n`);
  });

  it('detects userspace WireGuard here (no kernel module) and leaves no probe link', async () => {
    assert.equal(await detectWireguard(A.exec), 'userspace');
    const links = await A.ns.ipJson<{ ifname: string }[]>(['link', 'show']);
    assert.ok(!links.some((l) => l.ifname.startsWith('trwgp')));
  });

  it('creates marked wireguard-go devices (responders first), routes via them; ping and TCP cross', async (t) => {
    for (const [h, s] of [
      [B, specB()],
      [C, specC()],
      [A, specA()],
    ] as const) {
      const t0 = performance.now();
      const r = await ensureWireguard(h.exec, s);
      figures.push(`ensureWireguard create ${h.dev}: ${ms(performance.now() - t0)}`);
      assert.equal(r.created, true);
      const [l] = await h.ns.ipJson<
        { ifalias?: string; mtu: number; flags: string[]; linkinfo: { info_kind: string } }[]
      >(['-d', 'link', 'show', 'dev', h.dev]);
      assert.equal(l?.linkinfo.info_kind, 'tun');
      assert.equal(l?.ifalias, wireguardMark(h.dev));
      assert.equal(l?.mtu, s.mtu);
      assert.ok(l?.flags.includes('UP'));
      const st = await readWireguard(h.exec, h.dev);
      assert.equal(st?.publicKey, h.publicKey);
      assert.equal(st?.listenPort, PORT);
    }
    const t0 = performance.now();
    await ensureRoutes(A.exec, [
      { dst: B.block, dev: A.dev },
      { dst: C.block, dev: A.dev },
    ]);
    figures.push(`ensureRoutes (2 routes, create): ${ms(performance.now() - t0)}`);
    await ensureRoutes(B.exec, [{ dst: A.block, dev: B.dev }]);
    await ensureRoutes(C.exec, [{ dst: A.block, dev: C.dev }]);
    const first = await eventually('cA → cB ping', () => pingOk(A.ctr, B.ctrIp));
    figures.push(`first ping through a fresh tunnel (handshake included): ${ms(first)}`);
    await eventually('cA → cC ping (IPv6 underlay)', () => pingOk(A.ctr, C.ctrIp));
    assert.ok(await pingOk(B.ctr, A.ctrIp));
    scratch.proc(serveHi(B.ctr, 8080));
    await eventually('TCP cA → cB', () => tcpHi(A.ctr, B.ctrIp, 8080));
    assert.ok((await peerState(A, B))?.latestHandshake, 'A and B have a session');
    t.diagnostic(`A's routes: ${JSON.stringify(await listRoutes(A.exec))}`);
  });

  it('the wireguard-go daemon: own session, empty environment, no key on its command line', async () => {
    const [pid] = wgGoPids(A.dev);
    assert.ok(pid !== undefined);
    // fields after "(comm) ": state ppid pgrp session
    const stat = (p: number | 'self'): string[] =>
      readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    const [daemon, self] = [stat(pid), stat('self')];
    assert.notEqual(daemon[3], self[3], 'not in our session (setsid)');
    assert.notEqual(daemon[2], self[2], 'not in our process group');
    assert.equal(daemon[1], '1', 'reparented to init: nothing of truss is its parent');
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
    assert.deepEqual(
      env.filter((e) => !/^WG_(TUN_FD|UAPI_FD|PROCESS_FOREGROUND)=/.test(e)),
      [],
      'nothing inherited (only what wireguard-go hands its daemon child)',
    );
    const key = (await fs.readFile(A.keyFile, 'utf8')).trim();
    assert.ok(!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(key));
    const keyHex = Buffer.from(key, 'base64').toString('hex');
    const logged = A.log.map((a) => a.join(' '));
    assert.ok(
      !logged.some((a) => a.includes(key) || a.includes(keyHex)),
      'no command (or logged socket request) carried the key',
    );
    assert.ok(
      logged.some((a) => a.includes('private_key=(redacted)')),
      'the key went over the socket',
    );
  });

  it('A, whose peers mix IPv4 and IPv6, runs a wireguard-go without the mixed-family bug; B and C the newest', async (t) => {
    // why: wireguard-go 0.0.20231211…0.0.20250522 sends IPv6 datagrams of such a device to a
    // corrupted address (core/wireguard-impl.ts mixedFamilyBug): C's handshakes were lost, the
    // cA → cC pings failed 2 runs in 3. The admin's --wireguard-go wins whatever its version.
    if (TEST_WIREGUARD_GO !== undefined) return t.skip('TRUSS_TEST_WIREGUARD_GO chose the binary');
    const found = await findWireguardGo(A.exec);
    const exe = (h: Host): string => readlinkSync(`/proc/${wgGoPids(h.dev)[0]}/exe`);
    const newest = chooseWireguardGo(found);
    assert.equal(exe(B), newest?.path);
    assert.equal(exe(C), newest?.path);
    const sound = found.filter((c) => !mixedFamilyBug(c.version));
    if (sound.length === 0) return t.skip('no wireguard-go without the bug installed');
    assert.equal(exe(A), chooseWireguardGo(sound)?.path);
  });

  it('the underlay carries only UDP to the WireGuard port, never the marker sent through the tunnel', async () => {
    const marker = `TRUSS-MARKER-${randomBytes(8).toString('hex')}`;
    const ul = join(work, 'underlay.pcap');
    const inner = join(work, 'inner.pcap');
    const [capUl, capIn] = await Promise.all([capture(B.ns, 'ulba', ul), capture(B.ctr, 'eth0', inner)]);
    scratch.proc(
      spawn(
        'nsenter',
        [
          `--net=${B.ctr.path}`,
          '--',
          BUSYBOX,
          'nc',
          '-ll',
          '-p',
          '8081',
          '-e',
          BUSYBOX,
          'sh',
          '-c',
          'read l; echo "got $l"',
        ],
        { stdio: 'ignore' },
      ),
    );
    await eventually('marker echoed', async () => {
      const r = await A.ctr.run([BUSYBOX, 'nc', '-w', '1', B.ctrIp, '8081'], `${marker}\n`, 3000);
      return r.stdout.includes(`got ${marker}`);
    });
    await Promise.all([capUl.stop(), capIn.stop()]);
    assert.ok((await fs.readFile(inner)).includes(marker), 'control: the marker is visible inside the container');
    assert.ok(!(await fs.readFile(ul)).includes(marker), 'the marker never appears on the underlay');
    const lines = (await run(['tcpdump', '-nn', '-r', ul])).stdout.split('\n').filter((l) => / IP /.test(l));
    assert.ok(lines.length >= 4, 'the capture saw the tunnel traffic');
    const wg = /IP 198\.18\.200\.[12]\.51820 > 198\.18\.200\.[12]\.51820: UDP, length \d+$/;
    assert.deepEqual(
      lines.filter((l) => !wg.test(l)),
      [],
      'every IPv4 packet on the underlay is WireGuard UDP',
    );
  });

  it('ensure twice changes nothing: no write, same handshakes, peers not re-added', async () => {
    const before = await Promise.all([peerState(A, B), peerState(A, C), peerState(B, A)]);
    for (const h of [A, B, C]) h.log.length = 0;
    // a restarted truss: fresh Execs (nothing cached) adopt the running devices
    const cases = [
      [A, specA(), [B.block, C.block]],
      [B, specB(), [A.block]],
      [C, specC(), [A.block]],
    ] as const;
    for (const [h, s, blocks] of cases) {
      const exec = createExec({ netns: h.ns.path, onCommand: (a) => h.log.push([...a]) });
      const t0 = performance.now();
      assert.deepEqual(await ensureWireguard(exec, s), { created: false, changes: [] });
      figures.push(`ensureWireguard no-op ${h.dev}: ${ms(performance.now() - t0)}`);
      assert.deepEqual(
        await ensureRoutes(
          exec,
          blocks.map((dst) => ({ dst, dev: h.dev })),
        ),
        [],
      );
    }
    for (const h of [A, B, C]) assert.deepEqual(writes(h), [], `${h.dev}: reads only`);
    const afterIt = await Promise.all([peerState(A, B), peerState(A, C), peerState(B, A)]);
    assert.deepEqual(
      afterIt.map((p) => p?.latestHandshake),
      before.map((p) => p?.latestHandshake),
    );
    assert.ok(await pingOk(A.ctr, B.ctrIp));
  });

  it("changing one peer's allowed-ips leaves the other peer's session (and its own) alone", async () => {
    const hsB = (await peerState(A, B))?.latestHandshake;
    const hsC = (await peerState(A, C))?.latestHandshake;
    const rxB = (await peerState(A, B))?.rxBytes ?? 0;
    A.log.length = 0;
    const r = await ensureWireguard(A.exec, specA({ c: { allowedIps: [C.block, '198.18.213.0/24'] } }));
    assert.deepEqual(r.changes, [`peer ${C.publicKey.slice(0, 8)}… allowed-ips`]);
    const sets = A.log.filter((a) => a.includes('set'));
    assert.equal(sets.length, 1);
    const hex = (k: string): string => Buffer.from(k, 'base64').toString('hex');
    assert.ok(sets[0]?.join('\n').includes(hex(C.publicKey)), 'C is set');
    assert.ok(!sets[0]?.join('\n').includes(hex(B.publicKey)), 'B is not mentioned');
    assert.ok(await pingOk(A.ctr, B.ctrIp));
    assert.ok(await pingOk(A.ctr, C.ctrIp));
    const b = await peerState(A, B);
    assert.equal(b?.latestHandshake, hsB, 'no new handshake with B');
    assert.ok((b?.rxBytes ?? 0) > rxB, 'and B traffic flows on the old session');
    assert.equal((await peerState(A, C))?.latestHandshake, hsC, 'C kept its session too');
    assert.deepEqual((await peerState(A, C))?.allowedIps, [C.block, '198.18.213.0/24']);
  });

  it('survives the death of the process that made it (kill -9 of its process group) and is adopted', async () => {
    const D = await scratch.ns('hd');
    const name = `trwg${RUN}-d`;
    devNames.push(name);
    const key = await ensurePrivateKey(join(work, 'd'));
    const s: WireguardDevice = { name, privateKeyFile: key.file, listenPort: PORT, mtu: 1440, peers: [] };
    const script = join(work, 'manager.mjs');
    await fs.writeFile(
      script,
      [
        `import { createExec } from ${JSON.stringify(new URL('./exec.ts', import.meta.url).href)};`,
        `import { ensureWireguard } from ${JSON.stringify(new URL('./wireguard.ts', import.meta.url).href)};`,
        `await ensureWireguard(createExec({ netns: ${JSON.stringify(D.path)} }), ${JSON.stringify(s)});`,
        "process.stdout.write('ready\\n');",
        'setInterval(() => {}, 1000);',
      ].join('\n'),
    );
    const child = spawn(process.execPath, [script], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
    scratch.proc(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (b: Buffer) => b.toString().includes('ready') && resolve());
      child.once('exit', (c) => reject(new Error(`manager exited ${c}`)));
    });
    process.kill(-(child.pid as number), 'SIGKILL'); // the whole process group, as a Ctrl-C or a crash would
    await new Promise((r) => child.once('exit', r));
    await sleep(300);
    assert.equal(wgGoPids(name).length, 1, 'wireguard-go still runs');
    const exec = createExec({ netns: D.path });
    assert.equal((await readWireguard(exec, name))?.publicKey, key.publicKey, 'device intact');
    assert.deepEqual(await ensureWireguard(exec, s), { created: false, changes: [] }, 'adopted as is');
    await removeWireguard(exec, name);
    assert.deepEqual(wgGoPids(name), []);
  });

  /**
   * Rotates A's key, then, `delayMs` later (the new public key's trip through the store), tells
   * B and C. Returns the longest silence of a 10/s ping cA → cB.
   */
  async function rotateAndMeasure(
    keepalive: number,
    delayMs: number,
  ): Promise<{ gap: number; resume: number; applied: number }> {
    const arrivals: number[] = [];
    const pinger = spawn('nsenter', [`--net=${A.ctr.path}`, '--', BUSYBOX, 'ping', '-i', '0.1', B.ctrIp], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    scratch.proc(pinger);
    pinger.stdout?.on('data', (b: Buffer) => {
      for (const l of b.toString().split('\n')) if (l.includes('seq=')) arrivals.push(performance.now());
    });
    await sleep(500);
    // why: "B learns at once" means before A's first handshake with the new key; with the ping running,
    // A may start that handshake while B is still being configured (~150 ms, seconds on a loaded
    // machine), be refused, and retry only after REKEY_TIMEOUT (5 s): hold the ping until B and C know
    const atOnce = delayMs === 0;
    if (atOnce) pinger.kill('SIGSTOP');
    const t0 = performance.now();
    const k = await rotatePrivateKey(A.keyDir);
    A.publicKey = k.publicKey;
    const ra = await ensureWireguard(A.exec, specA({ c: { allowedIps: [C.block, '198.18.213.0/24'] } }));
    // B does not know the new key yet: no handshake, so A restarts its side of those it nudged (restartCrossed)
    assert.deepEqual(
      ra.changes.filter((c) => !c.includes('handshake restarted')),
      ['private key replaced'],
    );
    await sleep(delayMs);
    const extra = keepalive > 0 ? { keepaliveSeconds: keepalive } : {};
    const rb = await ensureWireguard(B.exec, specB(extra)); // the new public key reached B (the store's job)
    assert.ok(rb.changes.some((c) => c.endsWith('added')) && rb.changes.some((c) => c.endsWith('removed')));
    const bKnows = performance.now();
    await ensureWireguard(C.exec, specC());
    const applied = performance.now() - t0;
    if (atOnce) pinger.kill('SIGCONT');
    // from when traffic could flow again (B knows the key; a held ping runs again) to the first reply
    const ready = atOnce ? t0 + applied : bKnows;
    await eventually('traffic after rotation', async () => arrivals.some((a) => a > t0 + applied), 15_000);
    await sleep(300);
    pinger.kill('SIGKILL');
    const around = arrivals.filter((a) => a > t0 - 1000);
    let gap = 0;
    for (let i = 1; i < around.length; i++) gap = Math.max(gap, (around[i] ?? 0) - (around[i - 1] ?? 0));
    const resume = (arrivals.find((a) => a > ready) ?? Number.POSITIVE_INFINITY) - ready;
    const what = `rotation, B told ${delayMs} ms after A, keepalive ${keepalive || 'off'} on B's entry`;
    figures.push(
      `${what}: A+B+C configured in ${ms(applied)}, longest ping silence ${ms(gap)}, first reply ${ms(resume)} after B knew`,
    );
    return { gap, resume, applied };
  }

  it('key rotation on A: traffic resumes within seconds once B knows the new key', async () => {
    // B learns at once: A's first handshake with the new key already finds B updated. The silence is
    // the (held) configuration of A, B and C — seconds on a loaded machine — plus a round trip: the
    // bound is on what comes after the configuration (the issue-13 flake: 6.0 s against a flat 2 s)
    const now = await rotateAndMeasure(0, 0);
    assert.ok(now.resume < 1500 && now.gap < now.applied + 2000, JSON.stringify(now));
    assert.ok(await pingOk(A.ctr, C.ctrIp), 'C follows too');
    // B learns 1 s later: A's first try was refused and A would retry only after REKEY_TIMEOUT (5 s),
    // but B starts a handshake the moment it learns (planWireguard's nudge): replies within a round
    // trip or two of B knowing, not ~4 s later
    const late = await rotateAndMeasure(0, 1000);
    assert.ok(late.resume < 1500, JSON.stringify(late));
    // same, with a persistent keepalive on B's new entry
    const keepalive = await rotateAndMeasure(25, 1000);
    assert.ok(keepalive.resume < 1500, JSON.stringify(keepalive));
    assert.equal((await peerState(B, A))?.keepaliveSeconds, 25);
  });

  it('throughput: tunnel vs bare underlay veth (iperf3, 1 stream, 3 s)', async () => {
    const iperf = async (server: TestNs, client: TestNs, ip: string): Promise<number> => {
      const srv = spawn('nsenter', [`--net=${server.path}`, '--', 'iperf3', '-s', '-1', '-p', '5301'], {
        stdio: 'ignore',
      });
      scratch.proc(srv);
      let bps = 0;
      await eventually(
        `iperf3 to ${ip}`,
        async () => {
          const r = await client.run(['iperf3', '-c', ip, '-p', '5301', '-t', '3', '-J'], undefined, 20_000);
          if (r.code !== 0) return false;
          bps =
            (JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second?: number } } }).end?.sum_received
              ?.bits_per_second ?? 0;
          return bps > 0;
        },
        25_000,
      );
      return bps;
    };
    const tunnel = await iperf(B.ctr, A.ctr, B.ctrIp);
    const bare = await iperf(B.ns, A.ns, '198.18.200.2');
    figures.push(`iperf3 through wireguard-go: ${(tunnel / 1e9).toFixed(3)} Gbit/s`);
    figures.push(`iperf3 bare underlay veth: ${(bare / 1e9).toFixed(3)} Gbit/s (${(bare / tunnel).toFixed(1)}×)`);
    assert.ok(tunnel > 0 && bare > 0);
  });

  it('removing a peer stops traffic to its prefix, and only there', async () => {
    const r = await ensureWireguard(A.exec, specA({ c: null }));
    assert.deepEqual(r.changes, [`peer ${C.publicKey.slice(0, 8)}… removed`]);
    assert.equal(await pingOk(A.ctr, C.ctrIp), false);
    assert.ok(await pingOk(A.ctr, B.ctrIp));
    assert.equal((await readWireguard(A.exec, A.dev))?.peers.length, 1);
  });

  it('refuses a same-named device it does not own and leaves it alone', async () => {
    const name = `trwg${RUN}-x`;
    await A.ns.must(['ip', 'tuntap', 'add', 'dev', name, 'mode', 'tun']);
    await A.ns.must(['ip', 'link', 'set', name, 'alias', 'someone-elses-vpn']);
    const s: WireguardDevice = { name, privateKeyFile: A.keyFile, listenPort: 51999, mtu: 1440, peers: [] };
    await assert.rejects(ensureWireguard(A.exec, s), { code: 'TRUSS_ERR_KERNEL_OBJECT_FOREIGN' });
    await removeWireguard(A.exec, name);
    const [l] = await A.ns.ipJson<{ ifalias?: string }[]>(['link', 'show', 'dev', name]);
    assert.equal(l?.ifalias, 'someone-elses-vpn');
    await A.ns.must(['ip', 'tuntap', 'del', 'dev', name, 'mode', 'tun']);
  });

  it('removeWireguard leaves no device, process or socket; again is success; routes go with removeRoute', async () => {
    for (const h of [A, B, C]) {
      const t0 = performance.now();
      await removeWireguard(h.exec, h.dev);
      figures.push(`removeWireguard ${h.dev}: ${ms(performance.now() - t0)}`);
      assert.equal(await readWireguard(h.exec, h.dev), undefined);
      assert.deepEqual(wgGoPids(h.dev), []);
      assert.equal(existsSync(join(UAPI_DIR, `${h.dev}.sock`)), false);
      await removeWireguard(h.exec, h.dev);
      // the device's removal took its routes with it; removeRoute of a gone route is success
      for (const r of [A.block, B.block, C.block]) await removeRoute(h.exec, r);
      assert.deepEqual(await listRoutes(h.exec), []);
    }
  });

  it('leaves nothing behind: namespaces, wireguard-go processes, sockets', async () => {
    const socks = readdirSync(UAPI_DIR).filter((f) => f.includes(`trwg${RUN}`));
    assert.deepEqual(socks, []);
    for (const n of devNames) assert.deepEqual(wgGoPids(n), [], n);
  });
});
