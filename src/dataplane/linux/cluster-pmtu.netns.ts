/**
 * Kernel test (root), issue 17 item 5: path MTU discovery through a relay whose tunnel MTU is
 * smaller than the sender's. Three simulated hosts (truss's bridge, veth, guard and firewall,
 * dockerd's FORWARD DROP), each with wireguard-go and what computeClusterDesired makes of one
 * cluster view, as the reconciler programs it: C and D behind NATs that map per destination (so
 * they are relayed), R a relay whose own underlay link is smaller (MTU 1400: tunnel MTU 1328,
 * 1340 rounded down to WireGuard's 16-byte padding), a router between them (the Internet):
 *
 *   cC .2 ─ C  198.18.221.1 ══(1500)══ .2  router  .6 ══(1500)══ 198.18.221.5  D ─ cD .130
 *                                          .10
 *                                           ║ (1400)
 *                                  198.18.221.9  R  (relay, no container)
 *
 *   cluster subnet 198.18.80.0/20; blocks C .0/26, R .64/26, D .128/26; host addresses .3, .67, .131
 *
 * Containers have their host's tunnel MTU (1440). cC's full-size TCP segments to cD reach R, which
 * forwards trwg0 → trwg0 at 1328 and answers what is larger (DF) with ICMP "fragmentation needed"
 * (mtu 1328) from its host address: inside R's block, so C's WireGuard takes it. Without that
 * address the ICMP leaves from R's underlay address, which C's WireGuard drops (not in R's
 * allowed-ips): a PMTU black hole. Fragments are counted in every namespace (/proc/net/snmp): C
 * fragments the tunnel's own UDP to R until cC has learnt 1328 (R's 1400 link is behind a router;
 * with a wireguard-go that sends without DF, newer than Debian 12's, the router fragments it).
 * That is what a truss without published MTUs gets; the last case is truss's way: the hosts publish
 * their tunnel MTU, C caps its routes to R's and D's blocks at 1328 and answers cC itself, and no
 * link carries a fragment even at first.
 *
 * Run: TRUSS_TEST_NS_PREFIX=x- node --test src/dataplane/linux/cluster-pmtu.netns.ts
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ClusterDesired, type ClusterView, computeClusterDesired } from '../../core/cluster/desired.ts';
import { HOST_OWNER } from '../../core/cluster/host-address.ts';
import type { NodeRecord } from '../../core/cluster/model.ts';
import { computeWireguardMtu } from '../../core/cluster/mtu.ts';
import { type FirewallObject, withRelay } from '../../core/desired.ts';
import { guardFor } from '../../core/guard.ts';
import type { NetworkSpec } from '../../core/model.ts';
import { createExec, type Exec } from './exec.ts';
import { ensureHostAddresses } from './host-address.ts';
import {
  type Ctr,
  capture,
  createScratch,
  listTestNamespaces,
  pingOk,
  randomId,
  run,
  type SimulatedHost,
  simulatedHost,
  type TestNs,
  testEndpoint,
  testNetwork,
} from './netns-testutil.ts';
import { ensureRoutes } from './routes.ts';
import { ensureWireguard } from './wireguard.ts';
import { wireguardMark } from './wireguard-go.ts';
import { ensurePrivateKey } from './wireguard-keys.ts';
import { killWireguardGo } from './wireguard-testutil.ts';

const RUN = randomBytes(2).toString('hex');
const CLUSTER = 'pmtu';
const SUBNET = '198.18.80.0/20';
const PORT = 9000;
/** the bulk transfer, cC → cD */
const BULK = 4 << 20;
const RELAY_MTU = computeWireguardMtu(1400, 4);

interface Host {
  readonly id: string;
  readonly h: SimulatedHost;
  readonly exec: Exec;
  /** its WireGuard device (unique on this machine: wireguard-go's sockets are shared; production: trwg0) */
  readonly dev: string;
  readonly keyFile: string;
  readonly record: NodeRecord;
  readonly block: string;
  readonly underlay: string;
  readonly hostAddress: string;
  readonly tunnelMtu: number;
  /** its container (none on the relay) */
  readonly ctr?: Ctr;
}

type Counters = Record<string, Map<string, number>>;

/** /proc/net/snmp of a namespace: "IpFragCreates" → value. */
async function snmp(ns: TestNs): Promise<Map<string, number>> {
  const lines = (await ns.must(['cat', '/proc/net/snmp'])).trim().split('\n');
  const out = new Map<string, number>();
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const [proto, ...names] = (lines[i] ?? '').split(/\s+/);
    const values = (lines[i + 1] ?? '').split(/\s+/).slice(1);
    for (const [j, n] of names.entries()) out.set(`${proto?.replace(':', '')}${n}`, Number(values[j]));
  }
  return out;
}

/** Per namespace, how much `key` grew from `a` to `b` (only those where it did). */
const grew = (a: Counters, b: Counters, key: string): Record<string, number> =>
  Object.fromEntries(
    Object.keys(b)
      .map((ns) => [ns, (b[ns]?.get(key) ?? 0) - (a[ns]?.get(key) ?? 0)] as const)
      .filter(([, n]) => n !== 0),
  );

/** A TCP sink in `ns` on PORT (node itself): answers each connection with the number of bytes it read. */
function startSink(ns: TestNs): Promise<ChildProcess> {
  const code = `require('node:net').createServer((s) => { let n = 0; s.on('data', (b) => { n += b.length; });
    s.on('end', () => s.end(String(n))); s.on('error', () => {}); }).listen(${PORT}, () => console.log('listening'));`;
  const p = spawn('nsenter', [`--net=${ns.path}`, '--', process.execPath, '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    p.stdout?.on('data', (b: Buffer) => b.toString().includes('listening') && resolve(p));
    p.once('exit', (c) => reject(new Error(`sink exited ${c}`)));
  });
}

/** Sends `bytes` from `ns` to the sink at `to`: the count the sink read, or undefined when it did not finish in time. */
async function send(ns: TestNs, to: string, bytes: number, timeoutMs: number): Promise<number | undefined> {
  const code = `const s = require('node:net').connect(${PORT}, ${JSON.stringify(to)}, () => s.end(Buffer.alloc(${bytes}, 120)));
    let r = ''; s.on('data', (b) => { r += b; }); s.on('end', () => { console.log(r); process.exit(0); });`;
  const r = await run(['nsenter', `--net=${ns.path}`, '--', process.execPath, '-e', code], undefined, timeoutMs);
  return r.code === 0 ? Number(r.stdout.trim()) : undefined;
}

/** The path MTU the kernel of `ns` learnt for `dst` (a cached exception: `ip route get`), if any. */
async function learntMtu(ns: TestNs, dst: string): Promise<number | undefined> {
  const [r] = await ns.ipJson<{ metrics?: { mtu?: number }[] }[]>(['route', 'get', dst]);
  return r?.metrics?.find((m) => m.mtu !== undefined)?.mtu;
}

/** The ICMP lines of a capture, as tcpdump prints them. */
async function icmpLines(file: string): Promise<string[]> {
  const out = (await run(['tcpdump', '-nn', '-r', file, 'icmp'])).stdout;
  return out.split('\n').filter((l) => l.includes('ICMP'));
}

describe('path MTU discovery through a relay with a smaller tunnel MTU (kernel, wireguard-go)', {
  timeout: 120_000,
}, () => {
  const scratch = createScratch();
  after(async () => {
    const mine = (await listTestNamespaces()).filter((n) => scratch.spaces.some((s) => s.name === n));
    assert.deepEqual(mine, [], 'test namespaces left behind');
  });
  const devs: string[] = [];
  const figures: string[] = [];
  let work: string;
  let router: TestNs;
  let C: Host;
  let R: Host;
  let D: Host;
  const ctr = (x: Host): Ctr => x.ctr as Ctr;

  /** h's link to the router, made before anything else on h (the first address of a real host). */
  async function underlay(ns: TestNs, id: string, ip: string, mtu: number): Promise<void> {
    const routerIp = ip.replace(/\d+$/, (n) => String(Number(n) + 1));
    await router.must(
      ['ip', '-batch', '-'],
      `link add ul${id} mtu ${mtu} type veth peer name ul netns ${ns.name} mtu ${mtu}\n` +
        `addr add ${routerIp}/30 dev ul${id}\nlink set ul${id} up\n`,
    );
    await ns.must(
      ['ip', '-batch', '-'],
      `addr add ${ip}/30 dev ul\nlink set ul up\nroute add 198.18.221.0/24 via ${routerIp}\n`,
    );
  }

  async function host(
    id: string,
    o: {
      underlay: string;
      ulMtu: number;
      block: string;
      hostAddress: string;
      ctr?: string;
      record: Partial<NodeRecord>;
    },
  ): Promise<Host> {
    const dev = `trwg${RUN}${id}`;
    devs.push(dev);
    const tunnelMtu = computeWireguardMtu(o.ulMtu, 4);
    const netId = randomId();
    const net: NetworkSpec = {
      ...testNetwork(netId, 80),
      mtu: tunnelMtu,
      cluster: { name: CLUSTER, encrypt: true },
      ipv4: [{ pool: SUBNET, gateway: '198.18.80.1/20', auxAddresses: {} }],
    };
    const ep = o.ctr === undefined ? undefined : { ...testEndpoint(netId), ipv4: `${o.ctr}/20` };
    const h = await simulatedHost(scratch, {
      networks: [net],
      endpoints: ep ? [ep] : [],
      dockerd: 'nf-on',
      prepare: (ns) => underlay(ns, id, o.underlay, o.ulMtu),
    });
    let c: Ctr | undefined;
    if (ep) {
      c = await h.join(`c${id}`, ep, `${o.ctr}/20`, '198.18.80.1');
      const guard = guardFor(net, ep);
      assert.ok(guard);
      await h.dp.ensureGuard(guard);
    }
    const key = await ensurePrivateKey(join(work, id));
    const record: NodeRecord = {
      name: id,
      address: o.underlay,
      wgPublicKey: key.publicKey,
      wgPort: 51820,
      ...o.record,
    };
    return {
      id,
      h,
      exec: createExec({ netns: h.ns.path }),
      dev,
      keyFile: key.file,
      record,
      block: o.block,
      underlay: o.underlay,
      hostAddress: o.hostAddress,
      tunnelMtu,
      ...(c ? { ctr: c } : {}),
    };
  }

  before(async () => {
    work = await fs.mkdtemp(join(tmpdir(), 'truss-pmtu-'));
    scratch.defer(() => fs.rm(work, { recursive: true, force: true }));
    scratch.defer(() => killWireguardGo(devs));
    router = await scratch.ns('router');
    await router.must(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    const behindNat = { nat: 'dependent' } as const;
    C = await host('c', {
      underlay: '198.18.221.1',
      ulMtu: 1500,
      block: '198.18.80.0/26',
      hostAddress: '198.18.80.3',
      ctr: '198.18.80.2',
      record: behindNat,
    });
    D = await host('d', {
      underlay: '198.18.221.5',
      ulMtu: 1500,
      block: '198.18.80.128/26',
      hostAddress: '198.18.80.131',
      ctr: '198.18.80.130',
      record: behindNat,
    });
    R = await host('r', {
      underlay: '198.18.221.9',
      ulMtu: 1400,
      block: '198.18.80.64/26',
      hostAddress: '198.18.80.67',
      record: { relay: true },
    });
    scratch.proc(await startSink(ctr(D).ns));
  });

  after(() => {
    for (const f of figures) process.stdout.write(`# figure: ${f}\n`);
  });

  /** publishMtu: the hosts' records carry their tunnel MTU (truss does; a truss before it did not) */
  let publishMtu = false;
  const view = (self: Host, withHost: boolean): ClusterView => ({
    self: self.id,
    nodes: [C, R, D].map((x) => (publishMtu ? { ...x.record, mtu: x.tunnelMtu } : x.record)),
    members: [C, R, D].map((x) => ({ cluster: CLUSTER, node: x.id })),
    blocks: [C, R, D].map((x) => ({ cluster: CLUSTER, block: x.block, node: x.id })),
    ...(withHost
      ? { hostClaims: [{ cluster: CLUSTER, address: self.hostAddress, node: self.id, owner: HOST_OWNER }] }
      : {}),
  });

  /**
   * What the reconciler does for host x: its firewall (with the relay's FORWARD accept), the
   * device, the host address on it (or none), the routes. The test's device name stands for trwg0.
   */
  async function program(x: Host, withHost: boolean): Promise<ClusterDesired> {
    const local = [{ cluster: CLUSTER, subnets: [SUBNET], encrypt: true, localAddresses: x.ctr ? [x.ctr.ip] : [] }];
    const d = computeClusterDesired(view(x, withHost), local, {
      wireguard: { listenPort: 51820, mtu: x.tunnelMtu },
      vxlan: { mtu: 1450, local: x.underlay },
    });
    assert.deepEqual(d.rejected, []);
    const w = d.wireguard;
    assert.ok(w);
    const fw: FirewallObject = withRelay(
      { ...x.h.desired.firewall, networks: x.h.desired.firewall.networks.map((n) => ({ ...n, peerLinks: [x.dev] })) },
      x.record.relay ? x.dev : undefined,
    );
    await x.h.dp.ensureFirewall(fw);
    await x.h.dp.ensureSysctls(fw);
    await ensureWireguard(x.exec, {
      name: x.dev,
      privateKeyFile: x.keyFile,
      listenPort: w.listenPort,
      mtu: w.mtu,
      peers: w.peers.map((p) => ({ ...p, allowedIps: [...p.allowedIps] })),
    });
    const devices = [{ name: x.dev, mark: wireguardMark(x.dev) }];
    await ensureHostAddresses(
      x.exec,
      (d.hostAddresses ?? []).map((a) => ({ ...a, dev: x.dev })),
      devices,
    );
    await ensureRoutes(
      x.exec,
      d.routes.map((r) => ({ ...r, dev: x.dev })),
    );
    return d;
  }

  async function counters(): Promise<Counters> {
    const out: Counters = { router: await snmp(router) };
    for (const x of [C, R, D]) {
      out[x.id] = await snmp(x.h.ns);
      if (x.ctr) out[`c${x.id}`] = await snmp(x.ctr.ns);
    }
    return out;
  }

  /** Forget what C's container and C learnt of path MTUs (`ip route flush cache` drops the exceptions). */
  async function forget(): Promise<void> {
    for (const ns of [ctr(C).ns, C.h.ns]) await ns.must(['ip', 'route', 'flush', 'cache']);
    assert.equal(await learntMtu(ctr(C).ns, ctr(D).ip), undefined);
    assert.equal(await learntMtu(C.h.ns, R.underlay), undefined);
  }

  it('the relayed path as truss programs it: C and D peer with R only, R carries both blocks at MTU 1328', async (t) => {
    // the relay first: C's and D's first handshakes find it (else WireGuard retries after 5 s)
    const dr = await program(R, true);
    const dc = await program(C, true);
    await program(D, true);
    const peers = (d: ClusterDesired) => d.wireguard?.peers.map((p) => [p.node, p.path, p.via ?? '', p.allowedIps]);
    assert.deepEqual(peers(dc), [
      ['d', 'relayed', 'r', []],
      ['r', 'direct', '', [D.block, R.block]],
    ]);
    assert.deepEqual(peers(dr), [
      ['c', 'learned', '', [C.block]],
      ['d', 'learned', '', [D.block]],
    ]);
    assert.equal(RELAY_MTU, 1328);
    const [link] = await R.h.ns.ipJson<{ mtu: number }[]>(['link', 'show', 'dev', R.dev]);
    assert.equal(link?.mtu, RELAY_MTU);
    const [back] = await R.h.ns.ipJson<{ dev: string; prefsrc: string }[]>(['route', 'get', ctr(C).ip]);
    assert.deepEqual([back?.dev, back?.prefsrc], [R.dev, R.hostAddress], "R's route back to cC: from its host address");
    const t0 = performance.now();
    let ok = false;
    for (let i = 0; i < 40 && !ok; i++) ok = await pingOk(ctr(C), ctr(D).ip);
    assert.ok(ok, 'cC → cD through R');
    t.diagnostic(`first ping cC → cD through R (handshakes included): ${(performance.now() - t0).toFixed(0)} ms`);
    assert.ok(await pingOk(ctr(D), ctr(C).ip), 'cD → cC');
    assert.equal(await learntMtu(ctr(C).ns, ctr(D).ip), undefined, 'nothing learnt yet');
  });

  it("a too-large DF packet: R's ICMP 'fragmentation needed' (mtu 1328) from its host address reaches cC; 4 MB cross", async (t) => {
    const file = join(work, 'cc.pcap');
    const cap = await capture(ctr(C).ns, 'eth0', file);
    const c0 = await counters();
    const t0 = performance.now();
    const got = await send(ctr(C).ns, ctr(D).ip, BULK, 15_000);
    const ms = performance.now() - t0;
    const c1 = await counters();
    await cap.stop();
    assert.equal(got, BULK, 'the whole transfer arrived');
    const icmp = await icmpLines(file);
    const fromRelay = icmp.filter((l) =>
      l.includes(`${R.hostAddress} > ${ctr(C).ip}: ICMP ${ctr(D).ip} unreachable - need to frag (mtu ${RELAY_MTU})`),
    );
    assert.ok(fromRelay.length > 0, `cC got R's ICMP from its host address: ${icmp.join('\n')}`);
    assert.equal(await learntMtu(ctr(C).ns, ctr(D).ip), RELAY_MTU, "cC's route cache learnt the relay's MTU");
    const frag = grew(c0, c1, 'IpFragCreates');
    figures.push(`4 MB cC → cD through R, PMTU discovered on the way: ${ms.toFixed(0)} ms`);
    figures.push(
      `R's ICMP 'need to frag' received by cC: ${fromRelay.length}; the router's to C: ${JSON.stringify(grew(c0, c1, 'IcmpOutDestUnreachs'))}`,
    );
    figures.push(
      `fragments made while discovering (IpFragCreates): ${JSON.stringify(frag)}, reassembled: ${JSON.stringify(grew(c0, c1, 'IpReasmOKs'))}`,
    );
    // why: C's underlay link is 1500 and R's 1400: the first full-size tunnel packets to R (1500) are too
    // big for the router's link to R until cC has learnt 1328 (one round trip). Debian 12's wireguard-go
    // (0.0.20220316) sends its UDP with DF: the router answers "need to frag" (1400) and C's kernel
    // fragments them; the newer ones (0.0.20250522, truss's own) send without DF, as kernel WireGuard
    // does: the router fragments them. Either way only the tunnel's packets, never the containers'.
    assert.ok(
      Object.keys(frag).every((ns) => ns === 'c' || ns === 'router'),
      `only C or the router fragments (the outer UDP to R): ${JSON.stringify(frag)}`,
    );
    // R forwards out of the link it received on: the kernel also sends ICMP redirects (send_redirects,
    // shared_media), which cC ignores (cD is on-link for it: no gateway to redirect)
    const [toD] = await ctr(C).ns.ipJson<{ gateway?: string; dev: string }[]>(['route', 'get', ctr(D).ip]);
    assert.deepEqual([toD?.dev, toD?.gateway], ['eth0', undefined], 'cC still sends to cD on-link');
    figures.push(`R's ICMP redirects to cC meanwhile (ignored): ${grew(c0, c1, 'IcmpOutRedirects').r ?? 0}`);
    t.diagnostic(figures.slice(-4).join('\n'));

    const c2 = await counters();
    const t1 = performance.now();
    assert.equal(await send(ctr(C).ns, ctr(D).ip, BULK, 15_000), BULK);
    figures.push(`4 MB cC → cD through R, PMTU known: ${(performance.now() - t1).toFixed(0)} ms`);
    const c3 = await counters();
    for (const k of ['IpFragCreates', 'IpReasmReqds', 'IcmpOutDestUnreachs'])
      assert.deepEqual(grew(c2, c3, k), {}, `once learnt, nothing fragmented or refused anywhere (${k})`);
  });

  it("without a host address on R its ICMP leaves from R's underlay address: C's WireGuard drops it, the transfer stalls", async (t) => {
    await forget();
    await program(R, false);
    const [back] = await R.h.ns.ipJson<{ prefsrc: string }[]>(['route', 'get', ctr(C).ip]);
    assert.equal(back?.prefsrc, R.underlay, 'the kernel picks the first address of the first link');
    const file = join(work, 'r.pcap');
    const cap = await capture(R.h.ns, R.dev, file);
    const c0 = await counters();
    const got = await send(ctr(C).ns, ctr(D).ip, BULK, 3000);
    const c1 = await counters();
    await cap.stop();
    assert.equal(got, undefined, 'the transfer does not complete (a PMTU black hole)');
    const sent = (await icmpLines(file)).filter((l) =>
      l.includes(`${R.underlay} > ${ctr(C).ip}: ICMP ${ctr(D).ip} unreachable - need to frag (mtu ${RELAY_MTU})`),
    );
    assert.ok(sent.length > 0, 'R sends the ICMP, from its underlay address');
    assert.equal(grew(c0, c1, 'IcmpInDestUnreachs').cc, undefined, 'cC never gets it');
    assert.equal(await learntMtu(ctr(C).ns, ctr(D).ip), undefined, 'cC learns nothing');
    t.diagnostic(
      `R sent ${sent.length} ICMP from ${R.underlay} in 3 s; C fragmented ${grew(c0, c1, 'IpFragCreates').c ?? 0} outer fragments meanwhile`,
    );
    await program(R, true);
  });

  it("with the hosts' tunnel MTUs published, C caps its routes at the path's and answers itself: no link carries a fragment, even at first", async (t) => {
    await forget();
    publishMtu = true;
    const d = await program(C, true);
    assert.deepEqual(
      d.routes.map((r) => [r.dst, r.mtu]),
      [R.block, D.block].sort().map((b) => [b, RELAY_MTU]),
      "R's block and D's (through R) capped at R's tunnel MTU",
    );
    const c0 = await counters();
    const t0 = performance.now();
    assert.equal(await send(ctr(C).ns, ctr(D).ip, BULK, 15_000), BULK);
    const ms = performance.now() - t0;
    const c1 = await counters();
    assert.equal(await learntMtu(ctr(C).ns, ctr(D).ip), RELAY_MTU);
    for (const k of ['IpFragCreates', 'IpReasmReqds'])
      assert.deepEqual(grew(c0, c1, k), {}, `nothing fragmented (${k})`);
    assert.deepEqual(
      Object.keys(grew(c0, c1, 'IcmpOutDestUnreachs')),
      ['c'],
      "only C answered, R and the router didn't",
    );
    figures.push(
      `4 MB cC → cD with route mtu ${RELAY_MTU} on C (first flow): ${ms.toFixed(0)} ms, C's ICMP to cC: ${grew(c0, c1, 'IcmpOutDestUnreachs').c}`,
    );
    t.diagnostic(figures.at(-1) ?? '');
  });
});
