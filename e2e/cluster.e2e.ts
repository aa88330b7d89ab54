/**
 * Multi-host (cluster) networks end to end: three simulated hosts c1, c2, c3 (one dockerd and
 * one truss each, for the whole file) on one underlay bridge (underlay.ts: 198.18.255.0/24) with
 * one etcd. truss serves with --store etcd://198.18.255.254:2379 and each host's own node name
 * and underlay address; the cluster network `blue` (198.18.64.0/20) is created on every host
 * and carried between hosts by WireGuard (wireguard-go here). Real traffic proves it: TCP to
 * the image's tsink and ping in every host pair, a payload marker that crosses the underlay
 * only encrypted, a port policy enforced on the receiving host (no SYN delivered), traffic that
 * survives a kill -9 of truss and of etcd, and a host whose departure removes it as a peer.
 * Tests run in order and share memoised fixtures, so one failure does not hide the rest. The
 * last test removes everything and checks that no host keeps anything of truss.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { captureSyns, type SynCounts } from './harness/capture.ts';
import { churn } from './harness/churn.ts';
import { inCidr } from './harness/cidr.ts';
import { clusterFixture, nodeName } from './harness/cluster.ts';
import { routeCovers, trussRoutes, WG_DEV, wgPeers, wgPublicKey } from './harness/cluster-state.ts';
import {
  allAddresses,
  containerIp,
  containerPid,
  createClusterNetwork,
  createTrussNetwork,
  removeContainers,
  runContainer,
} from './harness/containers.ts';
import { etcdKeys } from './harness/etcd-keys.ts';
import {
  createPlusJoinMs,
  median,
  parseRpcSamples,
  percentile,
  printFigures,
  rpcFigureLines,
} from './harness/figures.ts';
import { type Host, inHostMounts } from './harness/host.ts';
import { IMAGE } from './harness/image.ts';
import {
  assertRemovedEverything,
  isTrussWireguardGo,
  TRUSS_ROUTE_PROTO,
  trussKernelObjects,
  waitNoTrussLeftovers,
} from './harness/leftovers.ts';
import { listNetns } from './harness/netns.ts';
import { msUntilConnects } from './harness/netns-tcp.ts';
import { memoOnce } from './harness/once.ts';
import { isAlive, listProcs, nsIdOfFile, waitExit } from './harness/procs.ts';
import { assertTcp, pingProbe, SINK_CMD, SINK_PORT, serverSaw, tcpConnect } from './harness/traffic.ts';
import { pcapContains, readPcap, startPcap, UNDERLAY_ADDRESS } from './harness/underlay.ts';
import { sleep, waitFor } from './harness/wait.ts';

const BLUE = 'blue';
const BLUE_SUBNET = '198.18.64.0/20';
const WG_PORT = 51820;
/** 1500 underlay - 60 (IPv4 + UDP + WireGuard header and tag) */
const TUNNEL_MTU = 1440;
const MAX_GAP_MS = 1000;
/** The bound for "fails fast" when etcd is down. */
const FAST_MS = 10_000;
/** F9 across the hosts: rounds, and concurrent `docker run`s per host per round (the plan: 20 × 50) */
const F9_ROUNDS = Number(process.env.E2E_F9_HOSTS_ROUNDS ?? 1);
const F9_PARALLEL = Number(process.env.E2E_F9_HOSTS_PARALLEL ?? 8);
/** the plan's hard deadline for CreateEndpoint+Join */
const ATTACH_MAX_MS = 20_000;
/** Servers on two ports for the port policy test (the image's tsink). */
const SRV_CMD = ['sh', '-c', 'nc -ll -p 80 -e /bin/tsink & nc -ll -p 8080 -e /bin/tsink & wait'];

const cluster = clusterFixture({ hosts: ['c1', 'c2', 'c3'], truss: { debug: true, wgPort: WG_PORT } });
const figures: string[] = [];
const c1 = () => cluster.host('c1');
const c2 = () => cluster.host('c2');
const c3 = () => cluster.host('c3');

const once = memoOnce();

const inHost = inHostMounts;

/** The other hosts' public keys, as the host's own truss should have made them its peers. */
async function expectedPeers(h: Host, members: readonly Host[]): Promise<string[]> {
  const keys: string[] = [];
  for (const m of members) if (m !== h) keys.push(await wgPublicKey(m));
  return keys.sort();
}

const ipOf = (h: Host, ctr: string, net = BLUE) => containerIp(h, ctr, net);

/** Docker's endpoint ids on `net` of the host's containers. */
async function dockerEndpointIds(h: Host, net: string): Promise<string[]> {
  const ids = (await h.docker(['ps', '-aq'])).stdout.split(/\s+/).filter(Boolean);
  if (ids.length === 0) return [];
  const fmt = `{{with index .NetworkSettings.Networks "${net}"}}{{.EndpointID}}{{end}}`;
  const r = await h.docker(['inspect', '-f', fmt, ...ids]);
  return r.stdout.split(/\s+/).filter(Boolean);
}

const loadAverage = (): string =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');

/** Every (host, container, ip) on `net` across the hosts; fails on a duplicate address. */
async function assertDistinctAddresses(net: string, hs: readonly Host[]): Promise<Map<string, string>> {
  const seen = new Map<string, string>();
  for (const h of hs) {
    for (const a of await allAddresses(h)) {
      if (a.network !== net) continue;
      const who = `${nodeName(h)}/${a.container}`;
      const prev = seen.get(a.ip);
      assert.equal(prev, undefined, `duplicate address ${a.ip} on ${net}: ${prev} and ${who}`);
      seen.set(a.ip, who);
    }
  }
  return seen;
}

async function assertPing(from: Host, fromCtr: string, ip: string) {
  const r = await from.docker(['exec', fromCtr, 'ping', '-c', '3', '-i', '0.2', '-W', '2', ip], 30_000);
  assert.equal(r.code, 0, `ping ${nodeName(from)}/${fromCtr} -> ${ip}: ${r.stdout}${r.stderr}`);
}

/** Waits until truss on h reports its kernel state in sync. */
const waitInSync = (h: Host, timeoutMs = 30_000) =>
  waitFor(async () => (await h.trussStatus()).kernel.inSync, timeoutMs, { what: `${h.name}: kernel.inSync` });

/** Waits until every member has exactly the other members as WireGuard peers. */
async function waitMesh(members: readonly Host[], timeoutMs = 20_000): Promise<void> {
  for (const h of members) {
    const want = await expectedPeers(h, members);
    await waitFor(
      async () => {
        const got = await wgPeers(h);
        if (JSON.stringify(got) === JSON.stringify(want)) return true;
        throw new Error(JSON.stringify({ got, want }));
      },
      timeoutMs,
      { what: `${h.name}: WireGuard peers = the other members` },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n--- truss log tail (${h.name}) ---\n${h.truss.logTail()}`);
    });
  }
}

/** What each host's tunnel looks like (wg show, truss routes), appended to a failure. */
async function diagnostics(): Promise<string> {
  const out: string[] = [];
  for (const h of cluster.hosts) {
    const wg = await inHost(h, ['wg', 'show', WG_DEV]);
    const routes = await h.exec(['ip', 'route', 'show', 'proto', String(TRUSS_ROUTE_PROTO)]);
    out.push(
      `--- ${h.name} (${h.underlayAddress}): wg show ${WG_DEV}\n${wg.stdout}${wg.stderr}--- routes:\n${routes.stdout}`,
    );
  }
  return out.join('\n');
}

/**
 * Where a container-to-container path loses packets: neighbour entries on both ends, both
 * containers' routes, a capture on b while pinging again (which of trwg0, bridge, veth each echo
 * request and reply crossed), b's firewall counters and conntrack entries, plus the tunnels.
 */
async function pathDiagnostics(a: Host, from: string, b: Host, to: string, ip: string): Promise<string> {
  const mac = (await b.docker(['exec', to, 'cat', '/sys/class/net/eth0/address'])).stdout.trim();
  const src = (await a.docker(['exec', from, 'ip', 'neigh'])).stdout.trim();
  const dst = (await b.exec(['ip', 'neigh', 'show', 'to', ip])).stdout.trim();
  const toView = await b.docker(['exec', to, 'sh', '-c', 'ip -4 addr show eth0; ip route; ip neigh']);
  const capture = inHost(b, ['timeout', '4', 'tcpdump', '-lnni', 'any', '-c', '40', 'icmp or arp']);
  await sleep(500);
  const now = await a.docker(['exec', from, 'ping', '-c', '2', '-W', '1', ip]);
  const cap = await capture;
  const nft = await b.exec(['nft', 'list', 'ruleset']);
  const ipt = await b.exec(['iptables-save', '-c']);
  const ct = await b.exec(['conntrack', '-L', '-p', 'icmp']);
  return (
    `${to}'s MAC ${mac}; ${b.name} neighbour entry for ${ip}: ${dst || '(none)'}\n` +
    `${from}'s neighbours:\n${src}\n${to}'s address, routes, neighbours:\n${toView.stdout}${toView.stderr}` +
    `ping now: exit ${now.code}\n--- ${b.name} capture during it:\n${cap.stdout}${cap.stderr}` +
    `--- ${b.name} nft list ruleset:\n${nft.stdout}${nft.stderr}--- ${b.name} iptables-save -c:\n${ipt.stdout}` +
    `--- ${b.name} conntrack -L -p icmp:\n${ct.stdout}${ct.stderr}\n${await diagnostics()}`
  );
}

async function withDiagnostics<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    (err as Error).message += `\n${await diagnostics()}`;
    throw err;
  }
}

let rpcFiguresTaken = false;
/** c1's per-RPC durations from its debug log (taken once, while the host still exists). */
function takeRpcFigures(): void {
  const h = cluster.hosts[0];
  if (rpcFiguresTaken || !h) return;
  rpcFiguresTaken = true;
  figures.push(...rpcFigureLines(h.truss.log()).map((l) => `c1 ${l}`));
}

// ---------------------------------------------------------------- fixtures

/** blue on all three hosts: c1 first, then c2 and c3 together (both join an existing record). */
const blue = () =>
  once('blue', async () => {
    const first = await createClusterNetwork(c1(), BLUE, BLUE_SUBNET);
    assert.equal(first.code, 0, `docker network create ${BLUE} on c1: ${first.stderr}\n${c1().truss.logTail()}`);
    const rest = await Promise.all([c2(), c3()].map((h) => createClusterNetwork(h, BLUE, BLUE_SUBNET)));
    rest.forEach((r, i) => {
      assert.equal(r.code, 0, `docker network create ${BLUE} on c${i + 2}: ${r.stderr}`);
    });
  });

const WORKERS_PER_HOST = 10;
/** w<host>-<i>: sinks on blue, 10 per host, all 30 started at once. */
const workerName = (h: Host, i: number) => `w${nodeName(h).slice(1)}-${i}`;
const workers = () =>
  once('workers', async () => {
    await blue();
    const starts = cluster.hosts.flatMap((h) =>
      Array.from({ length: WORKERS_PER_HOST }, (_, i) =>
        runContainer(h, { name: workerName(h, i), network: BLUE, cmd: SINK_CMD() }),
      ),
    );
    const results = await Promise.allSettled(starts);
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.deepEqual(
      failed.map((f) => (f.reason as Error).message),
      [],
      `${failed.length} of ${starts.length} concurrent docker runs failed`,
    );
  });

/** psrv on c2 (blue) listening on 80 and 8080, for the port policy test. */
const policyServer = () =>
  once('psrv', async () => {
    await workers();
    await runContainer(c2(), { name: 'psrv', network: BLUE, cmd: SRV_CMD });
  });

// ---------------------------------------------------------------- cross-host flow

/**
 * A long-lived TCP flow from a container on one host to a tsink on another (flows.ts does the
 * same within one host): the client sends `flow-NAME` and a 64-byte line every 20 ms; progress
 * is the size of /tmp/flow-NAME in the server container, read through /proc/<pid>/root.
 */
const FLOW_CLIENT = `name=$1; ip=$2; port=$3
{ echo "$name"; while :; do echo 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde; usleep 20000; done; } | nc "$ip" "$port" &
echo $! > "/tmp/c$name.pid"
wait`;

interface CrossFlow {
  bytes(): number;
  stop(): Promise<void>;
}

async function startCrossFlow(from: Host, fromCtr: string, to: Host, toCtr: string, ip: string): Promise<CrossFlow> {
  const name = `flow-${randomBytes(4).toString('hex')}`;
  const file = `/proc/${await containerPid(to, toCtr)}/root/tmp/${name}`;
  const bytes = (): number => {
    try {
      return statSync(file).size;
    } catch {
      return 0;
    }
  };
  const r = await from.docker(['exec', '-d', fromCtr, 'sh', '-c', FLOW_CLIENT, 'sh', name, ip, String(SINK_PORT)]);
  if (r.code !== 0) throw new Error(`docker exec ${fromCtr} (flow client): ${r.stderr.trim()}`);
  const flow: CrossFlow = {
    bytes,
    stop: async () => {
      await from.docker(['exec', fromCtr, 'sh', '-c', `kill "$(cat /tmp/c${name}.pid)"`], 15_000);
    },
  };
  try {
    await waitFor(() => bytes() > 256, 10_000, { what: `flow ${fromCtr} -> ${toCtr} (${ip}) carrying data` });
  } catch (err) {
    await flow.stop();
    throw err;
  }
  return flow;
}

/** Samples the flow every 50 ms; returns the longest time without growth, in ms. */
function watchGrowth(flow: CrossFlow): { stop(): Promise<{ maxStallMs: number; gained: number }> } {
  let running = true;
  let last = flow.bytes();
  const first = last;
  let lastGrowth = performance.now();
  let maxStall = 0;
  const loop = (async () => {
    while (running) {
      await sleep(50);
      const b = flow.bytes();
      const now = performance.now();
      if (b > last) {
        maxStall = Math.max(maxStall, now - lastGrowth);
        lastGrowth = now;
        last = b;
      }
    }
    maxStall = Math.max(maxStall, performance.now() - lastGrowth);
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { maxStallMs: Math.round(maxStall), gained: last - first };
    },
  };
}

// ---------------------------------------------------------------- the suite

describe('truss cluster networks across three hosts (WireGuard, etcd)', { timeout: 15 * 60_000 }, () => {
  before(() => cluster.start());

  after(async () => {
    takeRpcFigures();
    if (figures.length > 0) printFigures(figures);
    await cluster.stop();
  });

  it('0. the underlay connects the hosts, and etcd answers from every host', async () => {
    for (const h of cluster.hosts) {
      for (const o of cluster.hosts) {
        if (o === h) continue;
        const r = await h.exec(['busybox', 'ping', '-c', '1', '-W', '2', o.underlayAddress as string]);
        assert.equal(r.code, 0, `${h.name} -> ${o.name} over the underlay: ${r.stdout}${r.stderr}`);
      }
      const v = await h.exec(['curl', '-s', '--max-time', '2', `${cluster.underlay.etcd.url}/version`]);
      assert.match(v.stdout, /etcdserver/, `${h.name}: etcd /version: ${v.stdout}${v.stderr}`);
      const link = await h.exec(['ip', '-j', 'link', 'show', 'eth-ul']);
      assert.equal((JSON.parse(link.stdout || '[]') as { mtu?: number }[])[0]?.mtu, 1500, `${h.name}: underlay MTU`);
    }
  });

  it('1. creates blue on all three hosts; refuses a conflicting subnet, and a cluster network in two modes', {
    timeout: 120_000,
  }, async () => {
    await blue();
    for (const h of cluster.hosts) {
      const link = await h.exec(['ip', '-j', '-d', 'link', 'show', WG_DEV]);
      assert.equal(link.code, 0, `${h.name}: no ${WG_DEV}: ${link.stderr}\n${h.truss.logTail()}`);
      const [l] = JSON.parse(link.stdout) as { ifalias?: string; mtu: number }[];
      assert.equal(l?.ifalias, `truss:wg:${WG_DEV}`, `${h.name}: ${WG_DEV} must carry truss's mark`);
      assert.equal(l?.mtu, TUNNEL_MTU, `${h.name}: ${WG_DEV} MTU`);
      const wgGo = listProcs().filter((p) => p.netNs === nsIdOfFile(h.netnsPath, 'net') && isTrussWireguardGo(p));
      assert.equal(wgGo.length, 1, `${h.name}: one wireguard-go for ${WG_DEV}, found: ${wgGo.map((p) => p.cmdline)}`);
    }

    // Same cluster name, another subnet: refused on c3, naming the conflict; nothing created.
    const conflict = await createTrussNetwork(c3(), [
      '-o',
      `truss.cluster=${BLUE}`,
      '--subnet',
      '198.18.80.0/20',
      'blue2',
    ]);
    assert.notEqual(conflict.code, 0, 'blue2 (truss.cluster=blue, another subnet) must be refused');
    assert.match(conflict.stderr, /blue/, `the error must name the cluster network: ${conflict.stderr}`);
    assert.match(
      conflict.stderr,
      /198\.18\.64\.0\/20|198\.18\.80\.0\/20/,
      `the error must name the conflicting subnet: ${conflict.stderr}`,
    );
    assert.notEqual((await c3().docker(['network', 'inspect', 'blue2'])).code, 0, 'blue2 must not exist');

    // The same cluster name in the other mode: green is unencrypted (VXLAN) on c1, so c2 may not
    // make it encrypted; the error names the setting. c1's green (and its trvx0) then goes.
    const vx = await createClusterNetwork(c1(), 'green', '198.18.96.0/20', ['-o', 'truss.encrypt=false']);
    assert.equal(vx.code, 0, `green (truss.encrypt=false) on c1: ${vx.stderr}`);
    const wg = await createClusterNetwork(c2(), 'green', '198.18.96.0/20');
    assert.notEqual(wg.code, 0, 'green encrypted on c2 while it is unencrypted on c1 must be refused');
    assert.match(wg.stderr, /green/, `the error must name the cluster network: ${wg.stderr}`);
    assert.match(wg.stderr, /encrypt false/, `the error must name the differing setting: ${wg.stderr}`);
    assert.equal((await c1().docker(['network', 'rm', 'green'])).code, 0, 'docker network rm green on c1');
    await waitFor(async () => (await c1().exec(['ip', 'link', 'show', 'trvx0'])).code !== 0, 10_000, {
      what: 'c1: trvx0 gone with green',
    });

    await waitFor(
      async () => {
        const s = JSON.stringify(await c3().trussStatus());
        return !s.includes('198.18.80.') && !s.includes('blue2');
      },
      10_000,
      { what: 'c3: truss status without blue2 / 198.18.80.0/20' },
    );
    for (const h of cluster.hosts) await waitInSync(h);
  });

  it('2. gives 30 containers started at once on three hosts 30 distinct addresses', { timeout: 240_000 }, async () => {
    const t0 = performance.now();
    await workers();
    figures.push(
      `30 concurrent docker run (10 per host, 3 hosts): all running after ${(performance.now() - t0).toFixed(0)} ms`,
    );
    const seen = await assertDistinctAddresses(BLUE, cluster.hosts);
    assert.equal(seen.size, 3 * WORKERS_PER_HOST, `30 addresses expected, got ${seen.size}: ${[...seen.keys()]}`);
    const gateway = (
      await c1().docker(['network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Gateway}}{{end}}', BLUE])
    ).stdout.trim();
    for (const [ip, who] of seen) {
      assert.ok(inCidr(ip, BLUE_SUBNET), `${who}: ${ip} outside ${BLUE_SUBNET}`);
      assert.notEqual(ip, gateway, `${who} got the gateway address`);
    }
    // Every host with containers is a WireGuard peer of the others (peers are the members that
    // own address blocks), and its containers are routed to it through the tunnel.
    await withDiagnostics(() => waitMesh(cluster.hosts));
    const blueIps = new Map<Host, string[]>();
    for (const h of cluster.hosts)
      blueIps.set(
        h,
        (await allAddresses(h)).filter((a) => a.network === BLUE).map((a) => a.ip),
      );
    for (const h of cluster.hosts) {
      const routes = await waitFor(
        async () => {
          const rs = await trussRoutes(h);
          const missing = cluster.hosts
            .filter((o) => o !== h)
            .flatMap((o) => (blueIps.get(o) ?? []).filter((ip) => routeCovers(rs, ip)?.dev !== WG_DEV));
          if (missing.length === 0) return rs;
          throw new Error(`no route via ${WG_DEV} to ${missing.join(' ')}; truss routes: ${JSON.stringify(rs)}`);
        },
        10_000,
        { what: `${h.name}: truss routes (proto ${TRUSS_ROUTE_PROTO}) via ${WG_DEV} to the other hosts' containers` },
      );
      for (const own of blueIps.get(h) ?? []) {
        assert.equal(routeCovers(routes, own), undefined, `${h.name} routes its own container ${own} into the tunnel`);
      }
      const mtu = await h.docker(['exec', workerName(h, 0), 'cat', '/sys/class/net/eth0/mtu']);
      assert.equal(mtu.stdout.trim(), String(TUNNEL_MTU), `${h.name}: container MTU must be the tunnel's`);
    }
  });

  it('3. TCP and ping between containers on different hosts, in every host pair', { timeout: 180_000 }, async () => {
    await workers();
    const pairs = cluster.hosts.flatMap((a) => cluster.hosts.filter((b) => b !== a).map((b) => [a, b] as const));
    await withDiagnostics(() =>
      Promise.all(
        pairs.map(async ([a, b], k) => {
          const to = workerName(b, k % WORKERS_PER_HOST);
          const ip = await ipOf(b, to);
          await assertTcp(a, workerName(a, 0), b, to, ip);
          await assertPing(a, workerName(a, 1), ip);
        }),
      ),
    );
  });

  it('3b. an address freed on c2 and given to a new container there is reachable from c1 at once', {
    timeout: 120_000,
  }, async () => {
    await workers();
    const [a, b] = [c1(), c2()];
    const from = { pid: await containerPid(a, workerName(a, 9)) };
    await runContainer(b, { name: 'reuse-1', network: BLUE, cmd: SINK_CMD() });
    const ip = await ipOf(b, 'reuse-1');
    await assertTcp(a, workerName(a, 9), b, 'reuse-1', ip);
    await removeContainers(b, ['reuse-1']);
    const t0 = performance.now();
    await runContainer(b, { name: 'reuse-2', network: BLUE, cmd: SINK_CMD() });
    const ip2 = await ipOf(b, 'reuse-2');
    const ms = await msUntilConnects(from, ip2, SINK_PORT, t0, 5000, 100);
    if (ms === undefined) {
      const mac = (await b.docker(['exec', 'reuse-2', 'cat', '/sys/class/net/eth0/address'])).stdout.trim();
      const neigh = (await b.exec(['ip', 'neigh', 'show', 'to', ip2])).stdout.trim();
      assert.fail(
        `c1 -> c2 reuse-2 (${ip2}${ip2 === ip ? ', the address reuse-1 had' : ''}) did not connect within 5 s of docker run; ` +
          `reuse-2's MAC ${mac}, c2's neighbour entry: ${neigh || '(none)'}`,
      );
    }
    figures.push(
      `address reused on c2 (${ip2 === ip ? 'same' : 'other'} address): c1 connects ${ms} ms after docker run`,
    );
    await removeContainers(b, ['reuse-2']);
  });

  it('4. between hosts the underlay carries only WireGuard UDP, never the payload', { timeout: 120_000 }, async () => {
    await workers();
    const ul = cluster.underlay;
    const [a, b] = [c1(), c2()];
    const to = workerName(b, 2);
    const ip = await ipOf(b, to);
    const marker = `MARKER-${randomBytes(8).toString('hex')}`;
    const onUnderlay = await ul.pcap();
    // the control: inside the tunnel, on the receiving host, the same bytes are in clear
    const inTunnel = await startPcap(b.netnsPath, WG_DEV, join(ul.dir, `tunnel-${Date.now()}.pcap`)).catch(
      async (err: Error) => {
        await onUnderlay.stop();
        throw err;
      },
    );
    let ok = false;
    try {
      for (let i = 0; i < 3; i++) {
        const r = await tcpConnect(a, workerName(a, 2), ip, SINK_PORT, 3, `${marker}-${i}`);
        ok ||= r.ok;
      }
    } finally {
      await Promise.all([onUnderlay.stop(), inTunnel.stop()]);
    }
    assert.ok(ok, 'the marker connections must succeed');
    assert.ok(await serverSaw(b, to, `${marker}-0`), 'the receiver must have got the marker');
    const ulFile = await onUnderlay.stop();
    const tunFile = await inTunnel.stop();
    assert.ok(pcapContains(tunFile, marker), `control: the marker must be visible inside ${WG_DEV} on ${b.name}`);
    assert.equal(pcapContains(ulFile, marker), false, 'the marker crossed the underlay in clear');

    const packets = await readPcap(ulFile);
    const hostIps = new Set(cluster.hosts.map((h) => h.underlayAddress as string));
    const strays: string[] = [];
    let wireguard = 0;
    for (const p of packets) {
      if (p.proto === 'ARP') continue;
      const etcd = p.src === UNDERLAY_ADDRESS || p.dst === UNDERLAY_ADDRESS;
      if (etcd && p.proto === 'TCP') continue; // hosts <-> etcd (the store), not host to host
      const between = p.src !== undefined && p.dst !== undefined && hostIps.has(p.src) && hostIps.has(p.dst);
      if (between && p.proto === 'UDP' && (p.srcPort === WG_PORT || p.dstPort === WG_PORT)) wireguard++;
      else strays.push(p.line);
    }
    assert.ok(
      wireguard >= 6,
      `the capture must hold the WireGuard packets (saw ${wireguard}):\n${packets.map((p) => p.line).join('\n')}`,
    );
    assert.deepEqual(strays, [], `only UDP to port ${WG_PORT} between hosts may cross the underlay`);
    figures.push(`underlay capture during 3 marker connections c1 -> c2: ${wireguard} WireGuard UDP packets, 0 other`);
  });

  it('5. a port policy on c2 applies to connections from c1 (no SYN to the denied port)', {
    timeout: 120_000,
  }, async () => {
    await policyServer();
    const [a, b] = [c1(), c2()];
    const ip = await ipOf(b, 'psrv');
    const setR = await b.truss.cli(['policy', 'set', BLUE, '--ingress', 'tcp/80', '--state-dir', b.stateDir]);
    assert.equal(setR.code, 0, `truss policy set ${BLUE} --ingress tcp/80 on c2: ${setR.stderr}${setR.stdout}`);
    let counts: SynCounts | undefined;
    try {
      const cap = await captureSyns(await containerPid(b, 'psrv'), [80, 8080]);
      let r80: Awaited<ReturnType<typeof tcpConnect>>;
      let r8080: Awaited<ReturnType<typeof tcpConnect>>;
      try {
        [r8080, r80] = await Promise.all([
          tcpConnect(a, workerName(a, 3), ip, 8080, 2),
          tcpConnect(a, workerName(a, 4), ip, 80, 3),
        ]);
        await sleep(100);
      } finally {
        counts = await cap.stop();
      }
      assert.ok(r80.ok, `c1 -> c2 psrv:80 must connect under tcp/80: ${r80.output}`);
      assert.equal(r8080.ok, false, `c1 -> c2 psrv:8080 must be blocked under tcp/80: ${r8080.output}`);
      assert.equal(counts.dropped, 0, 'tcpdump dropped packets: the SYN count proves nothing');
      assert.ok((counts.byPort.get(80) ?? 0) >= 1, `no SYN to :80 reached psrv (control): ${counts.lines.join('\n')}`);
      assert.equal(counts.byPort.get(8080) ?? 0, 0, `a SYN to :8080 reached psrv:\n${counts.lines.join('\n')}`);
      assert.equal(await serverSaw(b, 'psrv', r8080.token), false, 'psrv must not have received the :8080 token');
      // c3 is held to the same policy on c2
      const r3 = await tcpConnect(c3(), workerName(c3(), 3), ip, 8080, 2);
      assert.equal(r3.ok, false, `c3 -> c2 psrv:8080 must be blocked too: ${r3.output}`);
    } finally {
      const clr = await b.truss.cli(['policy', 'clear', BLUE, '--state-dir', b.stateDir]);
      assert.equal(clr.code, 0, `truss policy clear ${BLUE} on c2: ${clr.stderr}${clr.stdout}`);
    }
    await waitFor(async () => (await tcpConnect(a, workerName(a, 3), ip, 8080, 2)).ok, 5000, {
      what: 'c1 -> c2 psrv:8080 connecting again after policy clear',
    });
  });

  it('6. kill -9 of c2 truss: cross-host traffic continues; after restart c2 converges and works', {
    timeout: 180_000,
  }, async () => {
    await workers();
    const [a, b] = [c1(), c2()];
    const ip = await ipOf(b, workerName(b, 0));
    const wgBefore = listProcs().filter((p) => p.netNs === nsIdOfFile(b.netnsPath, 'net') && isTrussWireguardGo(p));
    const probe = pingProbe(a, workerName(a, 0), ip, 10);
    await sleep(1500);
    const pid = b.truss.pid();
    assert.ok(pid, 'c2 truss must be running');
    process.kill(pid, 'SIGKILL'); // the daemon only, as `kill -9 <pid>` would: not its process group
    assert.ok(await waitExit(pid, 5000), 'c2 truss must be dead');
    assert.ok(wgBefore.length === 1 && isAlive(wgBefore[0]?.pid as number), 'wireguard-go must outlive truss');
    await sleep(3000);
    const t0 = performance.now();
    await b.startTruss();
    // timed while the probe still runs: the figure is the restart's, not the probe's length
    const inSync = waitInSync(b).then(() => performance.now() - t0);
    inSync.catch(() => {}); // awaited below; a probe failure must not leave it unhandled
    const p = await probe;
    if (p.received === 0) {
      const why = await pathDiagnostics(a, workerName(a, 0), b, workerName(b, 0), ip);
      assert.fail(`probe c1/${workerName(a, 0)} -> c2/${workerName(b, 0)} got no replies:\n${p.output}\n${why}`);
    }
    assert.ok(
      p.maxGapMs <= MAX_GAP_MS,
      `c1 -> c2 gap of ${p.maxGapMs} ms across the kill -9 and restart of c2's truss`,
    );
    figures.push(`c2 truss restart after kill -9: kernel.inSync ${(await inSync).toFixed(0)} ms after start`);
    await waitMesh(cluster.hosts);
    const wgAfter = listProcs().filter((q) => q.netNs === nsIdOfFile(b.netnsPath, 'net') && isTrussWireguardGo(q));
    assert.deepEqual(
      wgAfter.map((q) => q.pid),
      wgBefore.map((q) => q.pid),
      'the restarted truss must adopt the running wireguard-go, not start another',
    );

    await runContainer(b, { name: 'k2', network: BLUE, cmd: SINK_CMD() });
    const k2 = await ipOf(b, 'k2');
    await assertTcp(a, workerName(a, 5), b, 'k2', k2);
    await assertTcp(c3(), workerName(c3(), 5), b, 'k2', k2);
    await assertTcp(b, 'k2', a, workerName(a, 5), await ipOf(a, workerName(a, 5)));
    await assertDistinctAddresses(BLUE, cluster.hosts);
  });

  it('6b. truss keys rotate on c1: peers follow within seconds, cross-host traffic resumes', {
    timeout: 120_000,
  }, async () => {
    await workers();
    const [a, b] = [c1(), c2()];
    const ip = await ipOf(b, workerName(b, 1));
    const oldKey = await wgPublicKey(a);
    const probe = pingProbe(a, workerName(a, 1), ip, 12);
    await sleep(1500);
    const r = await a.truss.cli(['keys', 'rotate', '--state-dir', a.stateDir]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(async () => (await wgPublicKey(a)) !== oldKey, 10_000, { what: "c1's device using its new key" });
    const key = await wgPublicKey(a);
    assert.ok(r.stdout.includes(key), `the CLI must print the new public key: ${r.stdout}`);
    for (const h of [b, c3()]) {
      await waitFor(async () => (await wgPeers(h)).includes(key), 10_000, {
        what: `${h.name} peering with c1's new key`,
      });
      assert.ok(!(await wgPeers(h)).includes(oldKey), `${h.name} must drop c1's old key`);
    }
    const p = await probe;
    figures.push(`key rotation on c1: longest c1 -> c2 ping gap ${p.maxGapMs.toFixed(0)} ms`);
    assert.ok(p.received > 0, `no replies across the rotation:\n${p.output}`);
    if (p.maxGapMs > 6000) {
      // seen once in 11 runs (10.4 s, against ~100 ms): when did each host change its device?
      const changes = cluster.hosts.map((h) => {
        const lines = h.truss
          .log()
          .split('\n')
          .filter((l) => l.includes('wireguard changed'));
        return `--- ${h.name}: wireguard changes\n${lines.slice(-6).join('\n')}`;
      });
      assert.fail(
        `c1 -> c2 stalled ${p.maxGapMs} ms across the key rotation\n${changes.join('\n')}\n${await diagnostics()}`,
      );
    }
    await assertTcp(a, workerName(a, 1), b, workerName(b, 1), ip);
  });

  it('7. kill -9 of etcd: established traffic continues, a new container fails fast, then works again', {
    timeout: 240_000,
  }, async () => {
    await workers();
    const ul = cluster.underlay;
    const [a, b] = [c1(), c3()];
    const to = workerName(b, 6);
    const ip = await ipOf(b, to);
    const flow = await startCrossFlow(a, workerName(a, 6), b, to, ip);
    const growth = watchGrowth(flow);
    const probe = pingProbe(a, workerName(a, 7), await ipOf(c2(), workerName(c2(), 7)), 10);
    let outcome = '';
    let g: { maxStallMs: number; gained: number };
    try {
      await sleep(1000);
      await ul.etcd.kill('SIGKILL');
      assert.equal(ul.etcd.running(), false, 'etcd must be dead');
      await sleep(500);
      const t0 = performance.now();
      const r = await a.docker(
        ['run', '-d', '--name', 'x1', '--network', BLUE, IMAGE, ...SINK_CMD()],
        FAST_MS + 20_000,
      );
      const ms = performance.now() - t0;
      outcome =
        r.code === 0
          ? `succeeded in ${ms.toFixed(0)} ms (address ${await ipOf(a, 'x1')})`
          : `failed in ${ms.toFixed(0)} ms: ${r.stderr.trim()}`;
      process.stdout.write(`# etcd down: docker run on c1 ${outcome}\n`);
      figures.push(`etcd down: new container on c1 ${outcome.split('\n')[0]}`);
      assert.ok(ms <= FAST_MS, `docker run with etcd down must return within ${FAST_MS} ms, took ${ms.toFixed(0)} ms`);
      if (r.code !== 0) {
        assert.match(r.stderr, /etcd|store|cluster/i, `the error must say what is missing: ${r.stderr}`);
        await a.docker(['rm', '-f', 'x1']);
      }
      await sleep(2000);
    } finally {
      g = await growth.stop();
      await flow.stop();
      if (!ul.etcd.running()) await ul.etcd.restart();
    }
    const p = await probe;
    assert.ok(g.gained > 0, 'the c1 -> c3 flow must carry data while etcd is down');
    assert.ok(g.maxStallMs <= MAX_GAP_MS, `the c1 -> c3 flow stalled for ${g.maxStallMs} ms with etcd down`);
    assert.ok(p.maxGapMs <= MAX_GAP_MS, `c1 -> c2 ping gap of ${p.maxGapMs} ms with etcd down:\n${p.output}`);
    // etcd is back: new containers work again, across hosts, with no duplicate address
    const t1 = performance.now();
    let n = 0;
    const name = await waitFor(
      async () => {
        const nm = `e1-${n++}`;
        const r = await a.docker(['run', '-d', '--name', nm, '--network', BLUE, IMAGE, ...SINK_CMD()], 30_000);
        if (r.code === 0) return nm;
        await a.docker(['rm', '-f', nm]);
        throw new Error(r.stderr.trim());
      },
      30_000,
      { what: 'a new container on blue (c1) after etcd restarted', intervalMs: 1000 },
    );
    figures.push(`etcd restarted: first new container on c1 running ${(performance.now() - t1).toFixed(0)} ms later`);
    await runContainer(b, { name: 'e3', network: BLUE, cmd: SINK_CMD() });
    const [e1, e3] = [await ipOf(a, name), await ipOf(b, 'e3')];
    await assertTcp(a, name, b, 'e3', e3);
    await assertTcp(b, 'e3', a, name, e1);
    await assertDistinctAddresses(BLUE, cluster.hosts);
    for (const h of cluster.hosts) await waitInSync(h);
  });

  it('7b. truss doctor across hosts: a live peer, then c3 down: BLOCKED, naming c3 and its handshake, as nc fails', {
    timeout: 120_000,
  }, async () => {
    await workers();
    const [a, z] = [c1(), c3()];
    const [from, to] = [workerName(a, 1), workerName(z, 1)];
    const ip = await ipOf(z, to);
    const doctor = async () => {
      const args = ['doctor', from, ip, `${SINK_PORT}/tcp`, '--state-dir', a.stateDir];
      const [text, json] = await Promise.all([a.truss.cli(args), a.truss.cli([...args, '--json'])]);
      console.log(`$ truss ${args.slice(0, 4).join(' ')}  (on c1, exit ${text.code})\n${text.stdout}${text.stderr}`);
      const walk = JSON.parse(json.stdout) as {
        verdict: string;
        summary: string;
        steps: { id: string; status: string }[];
      };
      return { code: text.code, out: text.stdout + text.stderr, walk };
    };
    // healthy: the tunnel is fine; the port policy is c3's to judge (UNKNOWN), and nc connects
    const live = await doctor();
    assert.equal(live.walk.steps.find((s) => s.id === 'tunnel')?.status, 'ok', live.out);
    assert.equal(live.walk.verdict, 'unknown', live.out);
    assert.match(live.walk.summary, /port policy is enforced on c3/);
    assert.ok((await tcpConnect(a, from, ip, SINK_PORT, 3)).ok, `c1/${from} -> c3/${to} connects while c3 is up`);

    // c3 down: its truss and its wireguard-go killed (its lease and blocks stay: c1 keeps it as a peer)
    const key = await wgPublicKey(z);
    const wg = listProcs().filter((p) => p.netNs === nsIdOfFile(z.netnsPath, 'net') && isTrussWireguardGo(p));
    const pid = z.truss.pid();
    assert.ok(pid && wg.length === 1, 'c3 runs truss and one wireguard-go');
    for (const p of [pid, ...wg.map((w) => w.pid)]) process.kill(p, 'SIGKILL');
    for (const p of [pid, ...wg.map((w) => w.pid)]) assert.ok(await waitExit(p, 5000), `pid ${p} on c3 must exit`);
    try {
      // c1 forgets its session with c3 (as after a restart of c1's WireGuard): truss re-adds the
      // peer, which can never handshake now (waiting 180 s for the old one to age is not worth CI time)
      const rm = await inHost(a, ['wg', 'set', WG_DEV, 'peer', key, 'remove']);
      assert.equal(rm.code, 0, `wg set ${WG_DEV} peer c3 remove on c1: ${rm.stderr}`);
      const rec = await a.truss.cli(['reconcile', '--state-dir', a.stateDir]);
      assert.equal(rec.code, 0, `truss reconcile on c1: ${rec.stderr}${rec.stdout}`);
      assert.ok((await wgPeers(a)).includes(key), 'truss on c1 re-added c3 as a WireGuard peer');
      const down = await doctor();
      const nc = await tcpConnect(a, from, ip, SINK_PORT, 2);
      assert.equal(nc.ok, false, `c1/${from} -> c3/${to} must fail while c3 is down: ${nc.output}`);
      assert.equal(down.code, 1, down.out);
      assert.equal(down.walk.verdict, 'blocked', down.out);
      assert.match(
        down.walk.summary,
        /^cluster peer c3 \(198\.18\.255\.\d+:51820\) has never completed a WireGuard handshake: is truss/,
      );
    } finally {
      await z.startTruss();
      await waitInSync(z);
      await waitMesh(cluster.hosts);
    }
    await waitFor(async () => (await tcpConnect(a, from, ip, SINK_PORT, 2)).ok, 30_000, {
      what: `c1/${from} -> c3/${to} connecting again once c3 is back`,
    });
    const back = await doctor();
    assert.equal(back.walk.steps.find((s) => s.id === 'tunnel')?.status, 'ok', back.out);
  });

  it(`F9. ${F9_ROUNDS} × ${F9_PARALLEL} parallel docker run, mixed, rm -f on blue on all three hosts at once`, {
    timeout: 120_000 + F9_ROUNDS * F9_PARALLEL * 15_000,
  }, async () => {
    await workers();
    const logAt = cluster.hosts.map((h) => h.truss.log().length);
    const t0 = performance.now();
    const r = await churn(cluster.hosts, {
      network: BLUE,
      rounds: F9_ROUNDS,
      parallel: F9_PARALLEL,
      prefix: 'f9-',
      onPhase: async () => void (await assertDistinctAddresses(BLUE, cluster.hosts)),
    });
    const took = performance.now() - t0;
    const logs = cluster.hosts.map((h, i) => h.truss.log().slice(logAt[i]));
    const attach = logs.flatMap((l) => createPlusJoinMs(parseRpcSamples(l)));
    const s = (v: number) => `${(v / 1000).toFixed(2)} s`;
    figures.push(
      `F9 across 3 hosts (${F9_ROUNDS} × ${F9_PARALLEL} per host + mixed, ${r.started} containers in ${s(took)}, ` +
        `load ${loadAverage()}): CreateEndpoint+Join n=${attach.length} p50 ${s(percentile(attach, 50))}, ` +
        `p95 ${s(percentile(attach, 95))}, p99 ${s(percentile(attach, 99))}, max ${s(Math.max(...attach))}`,
    );
    assert.deepEqual(r.failures, [], `${r.failures.length} of ${r.started + r.failures.length} docker runs failed`);
    assert.deepEqual(r.duplicates, [], 'an address on two containers at once');
    const exists = logs.flatMap((l, i) => (/file exists/i.test(l) ? [cluster.hosts[i]?.name] : []));
    assert.deepEqual(exists, [], '"file exists" in the truss log');
    assert.ok(Math.max(...attach) <= ATTACH_MAX_MS, `CreateEndpoint+Join max ${s(Math.max(...attach))}`);
    assert.equal(attach.length, r.started, 'one CreateEndpoint+Join per started container in the logs');
    // nothing of theirs is left: truss keeps only Docker's live endpoints, etcd no claim on their addresses
    for (const h of cluster.hosts) {
      await waitInSync(h);
      const live = new Set(await dockerEndpointIds(h, BLUE));
      const kept = (await h.trussStatus()).endpoints.map((e) => (e as { id: string }).id);
      assert.deepEqual(
        kept.filter((id) => !live.has(id)),
        [],
        `${h.name}: truss endpoints Docker does not have`,
      );
      assert.equal(kept.length, live.size, `${h.name}: truss keeps every endpoint Docker has`);
    }
    const inUse = new Set((await Promise.all(cluster.hosts.map(allAddresses))).flat().map((a) => a.ip));
    const gone = [...r.addresses].filter((ip) => !inUse.has(ip));
    await waitFor(
      async () => {
        const keys = await etcdKeys(cluster.underlay, '/truss/v2/addrs/');
        const claimed = keys.filter((k) => k.includes(`/${BLUE}/`)).map((k) => k.slice(k.lastIndexOf('/') + 1));
        // the live containers' claims are there: the key layout is the one read here
        assert.ok(
          claimed.some((ip) => inUse.has(ip)),
          `no claim of a live container in etcd: ${keys.join(' ')}`,
        );
        const left = claimed.filter((ip) => gone.includes(ip));
        if (left.length === 0) return true;
        throw new Error(`claims left in etcd: ${left.join(' ')}`);
      },
      10_000,
      { what: "no claim in etcd on the removed containers' addresses" },
    );
  });

  it('measures cross-host start-to-connect and ping RTT (printed, not asserted)', { timeout: 240_000 }, async () => {
    await workers();
    const runs = 10;
    const toFirst: number[] = [];
    const runMs: number[] = [];
    const order: [Host, Host][] = [
      [c2(), c1()],
      [c3(), c2()],
      [c1(), c3()],
    ];
    for (let i = 0; i < runs; i++) {
      const [hostA, hostB] = order[i % order.length] as [Host, Host];
      const from = { pid: await containerPid(hostB, workerName(hostB, 8)) };
      const name = `f-${i}`;
      const t0 = performance.now();
      await runContainer(hostA, { name, network: BLUE, cmd: SINK_CMD() });
      runMs.push(performance.now() - t0);
      const ip = await ipOf(hostA, name);
      const ms = await msUntilConnects(from, ip, SINK_PORT, t0, 10_000, 100);
      if (ms !== undefined) toFirst.push(ms);
      process.stdout.write(
        `# start-to-connect (run on ${nodeName(hostA)}, connect from ${nodeName(hostB)}) ${ip}: ${ms ?? '>10000'} ms\n`,
      );
      if (process.env.TRUSS_E2E_DEBUG_CONNECT) {
        const d = await hostB.docker(['exec', workerName(hostB, 8), 'ip', 'neigh']);
        const n = await hostA.exec(['ip', 'neigh']);
        const c = await hostA.docker(['exec', name, 'ip', 'link', 'show', 'eth0']);
        process.stdout.write(
          `# B ctr neigh:\n${d.stdout}# A host neigh:\n${n.stdout}# A ctr:\n${c.stdout}\n${await diagnostics()}\n`,
        );
      }
      await removeContainers(hostA, [name]);
    }
    // a first ping resolves the neighbour (a proxied ARP answer may be delayed up to proxy_delay)
    const rtt = async (h: Host, ctr: string, ip: string): Promise<number> => {
      await h.docker(['exec', ctr, 'ping', '-c', '2', '-W', '2', ip], 30_000);
      const r = await h.docker(['exec', ctr, 'ping', '-c', '20', '-i', '0.05', '-W', '1', ip], 30_000);
      return Number(/= [\d.]+\/([\d.]+)\//.exec(r.stdout)?.[1] ?? Number.NaN);
    };
    const a = c1();
    const same = await rtt(a, workerName(a, 9), await ipOf(a, workerName(a, 8)));
    const cross = await rtt(a, workerName(a, 9), await ipOf(c2(), workerName(c2(), 8)));
    figures.push(
      `docker run on host A -> first TCP round trip from a container on host B (n=${toFirst.length}/${runs}): ` +
        `p50 ${median(toFirst).toFixed(0)} ms, p99 ${percentile(toFirst, 99).toFixed(0)} ms ` +
        `(docker run -d alone: p50 ${median(runMs).toFixed(0)} ms)`,
      `ping RTT avg of 20: same host ${same.toFixed(3)} ms, cross-host (WireGuard, wireguard-go) ${cross.toFixed(3)} ms, ratio ${(cross / same).toFixed(1)}`,
    );
  });

  it('8. blue removed on c3: c1 and c2 drop c3 as a peer and its routes within seconds', {
    timeout: 180_000,
  }, async () => {
    await workers();
    const gone = c3();
    const key = await wgPublicKey(gone);
    const addrs = (await allAddresses(gone)).filter((x) => x.network === BLUE).map((x) => x.ip);
    assert.ok(addrs.length > 0, 'c3 must have containers on blue');
    for (const h of [c1(), c2()]) assert.ok((await wgPeers(h)).includes(key), `${h.name} must have c3 as a peer first`);
    const ids = (await gone.docker(['ps', '-aq'])).stdout.split(/\s+/).filter(Boolean);
    await removeContainers(gone, ids);
    const t0 = performance.now();
    const rm = await gone.docker(['network', 'rm', BLUE]);
    assert.equal(rm.code, 0, `docker network rm ${BLUE} on c3: ${rm.stderr}`);
    for (const h of [c1(), c2()]) {
      await waitFor(
        async () => {
          const peers = await wgPeers(h);
          const routes = await trussRoutes(h);
          const left = addrs.map((ip) => routeCovers(routes, ip)?.dst).filter((d) => d !== undefined);
          if (!peers.includes(key) && left.length === 0) return true;
          throw new Error(JSON.stringify({ peerStillThere: peers.includes(key), routes: [...new Set(left)] }));
        },
        10_000,
        { what: `${h.name}: c3 no longer a WireGuard peer, no route to c3's blocks`, intervalMs: 100 },
      );
    }
    figures.push(
      `c3 leaves blue: gone from c1's and c2's peers and routes after ${(performance.now() - t0).toFixed(0)} ms`,
    );
    await waitMesh([c1(), c2()]);
    await waitFor(async () => (await trussKernelObjects(gone.netnsPath)).every((o) => !o.includes(WG_DEV)), 10_000, {
      what: `c3: ${WG_DEV} and its wireguard-go gone with its last cluster network`,
    });
    await assertTcp(c1(), workerName(c1(), 0), c2(), workerName(c2(), 1), await ipOf(c2(), workerName(c2(), 1)));
  });

  it('9. everything removed on every host leaves nothing of truss; etcd and the underlay stop', {
    timeout: 300_000,
  }, async () => {
    // this run's wireguard-go processes (other checkouts may run their own suites on this machine)
    const ours = new Set(cluster.hosts.map((h) => nsIdOfFile(h.netnsPath, 'net')));
    const wgPids = listProcs()
      .filter((p) => isTrussWireguardGo(p) && ours.has(p.netNs))
      .map((p) => p.pid);
    await assertRemovedEverything(cluster.hosts);
    await waitNoTrussLeftovers(cluster.hosts);
    const names = cluster.hosts.map((h) => h.name);
    takeRpcFigures();
    const ul = cluster.underlay;
    const etcdPid = ul.etcd.pid();
    await cluster.stop();
    assert.ok(etcdPid === undefined || !isAlive(etcdPid), 'etcd must be stopped');
    const left = listNetns().filter((n) => names.includes(n) || n === ul.name);
    assert.deepEqual(left, [], 'the hosts and the underlay namespaces must be gone');
    assert.deepEqual(wgPids.filter(isAlive), [], 'no wireguard-go of this run may survive');
  });
});
