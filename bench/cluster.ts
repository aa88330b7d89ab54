/**
 * Multi-host benchmark (not part of the test suite): `npm run bench:cluster` (root, like the
 * e2e suite). It starts an underlay with one etcd and simulated hosts, each with its own
 * dockerd and truss (--store etcd://), all through the e2e harness, and asks two questions:
 *
 *  (a) throughput: iperf3 TCP from a container on host B to a container on host A over one
 *      cluster network (truss's WireGuard tunnel, wireguard-go here) ÷ iperf3 between the same
 *      two host namespaces over a bare tunnel of the same implementation that this script
 *      makes itself (bnwg0: own keys, port and 198.19.77.0/24 addresses, truss's tunnel MTU,
 *      wireguard-go started the way truss starts it). Conditions alternated. Target ≥ 0.95.
 *      The CPU the machine spent per run (all cores, from /proc/stat) and the wireguard-go
 *      processes' own CPU time are recorded with each run: on 2 cores the tunnel is CPU-bound.
 *  (b) convergence: `docker run -d` of a TCP server on host A (rotating over the members) →
 *      first successful connection from another member (a probe in a long-lived container on
 *      each other member, a new connect every 50 ms from when `docker run` returns), and until
 *      every other member has connected; for 2, 3 and 5 members of the cluster network. All
 *      hosts run throughout; membership changes by creating/removing the network on hosts, and
 *      the member counts are alternated (2,3,5 then 5,3,2 ...). Growth 5 ÷ 2 hosts ≤ 1.5.
 *
 * Prints tables; a full run also writes bench/results/cluster.json and the "Multi-host"
 * section of docs/benchmarks.md. `--smoke` (2 hosts, 1 repetition, 2 s of iperf, 1 start)
 * only prints, so CI can prove the benchmark still runs (e2e/bench-smoke.e2e.ts).
 * Flags: --smoke, --reps N (throughput pairs, 5), --seconds S (iperf, 10), --runs N (starts
 * per host count per repetition round, 10), --hosts 2,3,5, --part all|throughput|convergence.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { containerIp, containerPid, removeContainers, runContainer } from '../e2e/harness/containers.ts';
import { inNetns, run, runOk } from '../e2e/harness/exec.ts';
import { parseRpcSamples } from '../e2e/harness/figures.ts';
import { type Host, inHostMounts, startHost } from '../e2e/harness/host.ts';
import { IMAGE } from '../e2e/harness/image.ts';
import { createNetns, deleteNetns } from '../e2e/harness/netns.ts';
import { enterNetns, msUntilConnects, nsTcpConnect } from '../e2e/harness/netns-tcp.ts';
import { CHILD_PATH, NETNS_PREFIX } from '../e2e/harness/paths.ts';
import { listProcs, nsIdOfFile } from '../e2e/harness/procs.ts';
import { SINK_CMD, SINK_PORT } from '../e2e/harness/traffic.ts';
import { clusterServeArgs, startUnderlay, UNDERLAY_MTU, type Underlay } from '../e2e/harness/underlay.ts';
import { waitFor } from '../e2e/harness/wait.ts';
import {
  f1,
  iperfGbps,
  machineFacts,
  markdownTable,
  range,
  type Stats,
  stats,
  writeDocSection,
  writeResultsJson,
} from './lib.ts';

const { values: flags } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    reps: { type: 'string' },
    seconds: { type: 'string' },
    runs: { type: 'string' },
    hosts: { type: 'string' },
    part: { type: 'string', default: 'all' },
  },
  strict: true,
});
const SMOKE = flags.smoke === true;
const REPS = Number(flags.reps ?? (SMOKE ? 1 : 5));
const SECONDS = Number(flags.seconds ?? (SMOKE ? 2 : 10));
const RUNS = Number(flags.runs ?? (SMOKE ? 1 : 10));
const HOST_COUNTS = (flags.hosts ?? (SMOKE ? '2' : '2,3,5')).split(',').map(Number);
const PART = flags.part ?? 'all';
for (const [k, v] of Object.entries({ REPS, SECONDS, RUNS })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`bench/cluster: ${k} must be a positive integer, got ${v}`);
}
if (HOST_COUNTS.some((n) => !Number.isInteger(n) || n < 2 || n > 9) || HOST_COUNTS.length === 0)
  throw new Error(`bench/cluster: --hosts wants counts from 2 to 9, got ${flags.hosts}`);
if (!['all', 'throughput', 'convergence'].includes(PART)) throw new Error(`bench/cluster: --part ${PART}?`);
const DO_THROUGHPUT = PART !== 'convergence';
const DO_CONVERGENCE = PART !== 'throughput';

const CLUSTER = 'bench';
const SUBNET = '198.18.64.0/20';
const WG_PORT = 51820;
const TRUSS_DEV = 'trwg0';
/** the bare tunnel: own device, port and addresses (198.19.77.<host index>) */
const BARE_DEV = 'bnwg0';
const BARE_PORT = 51821;
const bareIp = (i: number): string => `198.19.77.${i + 1}`;
/**
 * The bare tunnel plus the hop a container has and a host does not: a helper namespace per
 * host behind a veth on a plain bridge (bnbr0, 198.19.78.0/24 on A, .79 on B), routed
 * through bnwg0, MTU as the tunnel's: no truss, no Docker on the path but the FORWARD accept.
 */
const HOP_BRIDGE = 'bnbr0';
const hopNet = (i: number): string => `198.19.${78 + i}`;

const IPERF_PORT = 5201;
const BARE_IPERF_PORT = 5202;
/** how long a start may take to become reachable before the run counts as failed */
const CONNECT_LIMIT_MS = 15_000;
const PROBE_STEP_MS = 50;
const TRUSS_OPTS = { debug: true, defaultPools: '198.18.128.0/17:24' };

const hosts: Host[] = [];
let underlay: Underlay | undefined;
const hostName = (i: number): string => `${SMOKE ? 'cs' : 'cb'}${i + 1}`;

async function must(h: Host, args: readonly string[], timeoutMs = 120_000): Promise<string> {
  const r = await h.docker(args, timeoutMs);
  if (r.code !== 0) throw new Error(`${h.name}: docker ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

async function inHost(h: Host, argv: readonly string[], timeoutMs = 15_000): Promise<string> {
  const r = await inHostMounts(h, argv, timeoutMs);
  if (r.code !== 0) throw new Error(`${h.name}: ${argv.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

// ---------------------------------------------------------------- hosts and membership

const members = new Map<Host, { pid: number; ip: string }>();

async function startHosts(n: number): Promise<void> {
  underlay = await startUnderlay();
  const ul = underlay;
  const started = await Promise.allSettled(
    Array.from({ length: n }, (_, i) => startHost(hostName(i), { underlay: { of: ul, index: i + 1 } })),
  );
  for (const s of started) if (s.status === 'fulfilled') hosts.push(s.value);
  const bad = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (bad) throw bad.reason;
  await Promise.all(
    hosts.map((h, i) =>
      h.startTruss({
        ...TRUSS_OPTS,
        extraArgs: clusterServeArgs(ul, hostName(i), h.underlayAddress as string, WG_PORT),
      }),
    ),
  );
}

/** Joins h to the cluster network, with a long-lived TCP sink `pc` that also serves as its probe. */
async function addMember(h: Host): Promise<void> {
  await must(h, [
    'network',
    'create',
    '-d',
    'truss',
    '--ipam-driver',
    'truss',
    '-o',
    `truss.cluster=${CLUSTER}`,
    '--subnet',
    SUBNET,
    CLUSTER,
  ]);
  await runContainer(h, { name: 'pc', network: CLUSTER, cmd: SINK_CMD() });
  members.set(h, { pid: await containerPid(h, 'pc'), ip: await containerIp(h, 'pc', CLUSTER) });
}

async function removeMember(h: Host): Promise<void> {
  await removeContainers(h, ['pc']);
  await must(h, ['network', 'rm', CLUSTER]);
  members.delete(h);
}

/** Makes exactly the first n hosts members, then waits until every member reaches every other one. */
async function setMembers(n: number): Promise<void> {
  for (const h of hosts.slice(n)) if (members.has(h)) await removeMember(h);
  for (const h of hosts.slice(0, n)) if (!members.has(h)) await addMember(h);
  const list = [...members.entries()];
  await waitFor(
    async () => {
      const pairs = list.flatMap(([a, pa]) => list.filter(([b]) => b !== a).map(([, pb]) => [pa, pb] as const));
      const ok = await Promise.all(pairs.map(([pa, pb]) => nsTcpConnect({ pid: pa.pid }, pb.ip, SINK_PORT, 1)));
      return ok.every((r) => r.ok);
    },
    60_000,
    { what: `${n} members reaching each other`, intervalMs: 250 },
  );
}

// ---------------------------------------------------------------- throughput

/** MTU of a link in the host's namespace. */
async function linkMtu(h: Host, dev: string): Promise<number> {
  const r = await h.exec(['ip', '-j', 'link', 'show', dev]);
  const mtu = (JSON.parse(r.stdout || '[]') as { mtu?: number }[])[0]?.mtu;
  if (r.code !== 0 || mtu === undefined) throw new Error(`${h.name}: no link ${dev}: ${r.stderr.trim()}`);
  return mtu;
}

/**
 * The baseline: a WireGuard tunnel between the two hosts' namespaces with nothing of truss on
 * its path, wireguard-go started exactly as wireguard.ts starts it (own session, empty
 * environment, cwd /, in the host's mount namespace so its UAPI socket is the host's).
 */
async function startBareTunnel(a: Host, b: Host, mtu: number): Promise<void> {
  const wgGo = (await runOk(['sh', '-c', 'command -v wireguard-go'], { env: { PATH: CHILD_PATH } })).stdout.trim();
  const keys: { file: string; pub: string }[] = [];
  for (const h of [a, b]) {
    const priv = (await runOk(['wg', 'genkey'])).stdout.trim();
    const file = join(h.dir, 'bnwg0.key');
    writeFileSync(file, `${priv}\n`, { mode: 0o600 });
    keys.push({ file, pub: (await runOk(['wg', 'pubkey'], { input: `${priv}\n` })).stdout.trim() });
  }
  for (const [i, h] of [a, b].entries()) {
    const peer = i === 0 ? 1 : 0;
    await inHost(h, ['setsid', '--wait', 'env', '-i', '-C', '/', wgGo, BARE_DEV]);
    await inHost(h, ['ip', 'addr', 'add', `${bareIp(i)}/24`, 'dev', BARE_DEV]);
    await inHost(h, ['ip', 'link', 'set', BARE_DEV, 'mtu', String(mtu), 'up']);
    const other = [a, b][peer] as Host;
    await inHost(h, [
      'wg',
      'set',
      BARE_DEV,
      'private-key',
      (keys[i] as { file: string }).file,
      'listen-port',
      String(BARE_PORT),
      'peer',
      (keys[peer] as { pub: string }).pub,
      'endpoint',
      `${other.underlayAddress}:${BARE_PORT}`,
      'allowed-ips',
      `${bareIp(peer)}/32,${hopNet(peer)}.0/24`,
    ]);
    await startHop(h, i, mtu, hopNet(peer));
  }
  const srv = await a.exec(['iperf3', '-s', '-D', '-B', bareIp(0), '-p', String(BARE_IPERF_PORT)]);
  if (srv.code !== 0) throw new Error(`${a.name}: iperf3 -s: ${srv.stderr.trim()}`);
  const hop = await runOk(inNetns(hopNs(0), ['iperf3', '-s', '-D', '-p', String(BARE_IPERF_PORT)]));
  if (hop.code !== 0) throw new Error(`hop iperf3 -s: ${hop.stderr.trim()}`);
}

const hopNs = (i: number): string => `/run/netns/${NETNS_PREFIX}bnhop${i}`;

/** Host i's helper namespace behind veth + bridge, with a route to the other side's hop subnet through bnwg0. */
async function startHop(h: Host, i: number, mtu: number, remote: string): Promise<void> {
  const ns = await createNetns(`${NETNS_PREFIX}bnhop${i}`);
  h.onStop(() => deleteNetns(`${NETNS_PREFIX}bnhop${i}`));
  const net = hopNet(i);
  const m = String(mtu);
  const host = async (argv: readonly string[]) => {
    const r = await h.exec(argv);
    if (r.code !== 0) throw new Error(`${h.name}: ${argv.join(' ')}: ${r.stderr.trim()}`);
  };
  await host(['ip', 'link', 'add', HOP_BRIDGE, 'mtu', m, 'type', 'bridge']);
  await host(['ip', 'addr', 'add', `${net}.1/24`, 'dev', HOP_BRIDGE]);
  await host(['ip', 'link', 'set', HOP_BRIDGE, 'up']);
  await host(['ip', 'link', 'add', 'bnh0', 'mtu', m, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await host(['ip', 'link', 'set', 'bnh0', 'master', HOP_BRIDGE, 'up']);
  await host(['ip', 'route', 'add', `${remote}.0/24`, 'dev', BARE_DEV]);
  // why: dockerd's FORWARD policy is DROP; truss accepts its bridges the same way (first rule of FORWARD)
  for (const dir of ['-i', '-o']) await host(['iptables', '-I', 'FORWARD', '1', dir, HOP_BRIDGE, '-j', 'ACCEPT']);
  const inNs = (argv: readonly string[]) => runOk(inNetns(ns, argv));
  await inNs(['ip', 'addr', 'add', `${net}.2/24`, 'dev', 'eth0']);
  await inNs(['ip', 'link', 'set', 'eth0', 'up']);
  await inNs(['ip', 'route', 'add', 'default', 'via', `${net}.1`]);
}

/** Deleting the TUN makes wireguard-go exit. */
async function stopBareTunnel(): Promise<void> {
  for (const h of hosts.slice(0, 2)) await inHostMounts(h, ['ip', 'link', 'del', BARE_DEV]);
}

/** pids of the wireguard-go serving `dev` in each of the hosts' network namespaces. */
function wireguardGoPids(hs: readonly Host[], dev: string): number[] {
  return hs.map((h) => {
    const ns = nsIdOfFile(h.netnsPath, 'net');
    const p = listProcs().find((q) => q.netNs === ns && new RegExp(`wireguard-go\\s+(-f\\s+)?${dev}$`).test(q.cmdline));
    if (!p) throw new Error(`${h.name}: no wireguard-go for ${dev}`);
    return p.pid;
  });
}

const TICK = 100; // USER_HZ
/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK;
}
/** The machine's CPU time so far, all cores: busy and softirq seconds, and the total. */
function machineCpu(): { busy: number; softirq: number; total: number } {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  const [idle, iowait, softirq] = [f[3], f[4], f[6]];
  const total = f.reduce((x, y) => x + y, 0) / TICK;
  return { busy: total - ((idle ?? 0) + (iowait ?? 0)) / TICK, softirq: (softirq ?? 0) / TICK, total };
}

/**
 * truss: iperf3 in the two containers (docker exec), as a user runs it; trussNs: the same
 * network path, iperf3 entering the containers' network namespaces only (nsenter), so that it
 * runs in the same cgroup as the baselines' iperf3; bare, hop: the baselines.
 */
type Cond = 'truss' | 'trussNs' | 'bare' | 'hop';
const CONDS: readonly Cond[] = ['truss', 'bare', 'trussNs', 'hop'];
const NS_IPERF_PORT = 5203;
interface ThroughputSample {
  readonly gbps: number;
  /** share of the machine's CPU (all cores) busy during the run, and in softirq */
  readonly busy: number;
  readonly softirq: number;
  /** CPU seconds per GB carried, of the receiving (A) and the sending (B) wireguard-go */
  readonly wgRxCpuPerGB: number;
  readonly wgTxCpuPerGB: number;
  /** mean size of the packets the sending host's tunnel device took in, and the sender's TCP retransmits */
  readonly tunTxPacketBytes: number;
  readonly retransmits: number;
  /** share of the UDP datagrams arriving on host A dropped for a full socket buffer (wireguard-go's) */
  readonly udpRcvbufDrops: number;
}

/** UDP InDatagrams and RcvbufErrors of a host's namespace (/proc/net/snmp read from inside it). */
async function udpCounters(h: Host): Promise<{ inDatagrams: number; rcvbufErrors: number }> {
  const lines = (await h.exec(['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp: '));
  const [names, values] = lines.map((l) => l.split(/\s+/).slice(1));
  const get = (k: string): number => Number(values?.[names?.indexOf(k) ?? -1] ?? Number.NaN);
  return { inDatagrams: get('InDatagrams') + get('RcvbufErrors'), rcvbufErrors: get('RcvbufErrors') };
}

/** tx bytes and packets of a link in a host's namespace. */
async function txCounters(h: Host, dev: string): Promise<{ bytes: number; packets: number }> {
  const r = await h.exec(['ip', '-s', '-j', 'link', 'show', 'dev', dev]);
  const tx = (JSON.parse(r.stdout || '[]') as { stats64?: { tx?: { bytes: number; packets: number } } }[])[0]?.stats64
    ?.tx;
  return tx ?? { bytes: Number.NaN, packets: Number.NaN };
}

/** One iperf3 run; a run that fails or hangs (seen once on a loaded machine) is retried once, and says so. */
async function iperfRun(cond: Cond, ctx: ThroughputCtx, attempt = 1): Promise<ThroughputSample> {
  const common = ['-t', String(SECONDS), ...(SECONDS > 2 ? ['-O', '1'] : []), '--connect-timeout', '5000', '-J'];
  const [a, b] = ctx.wgPids[cond];
  const dev = cond === 'truss' || cond === 'trussNs' ? TRUSS_DEV : BARE_DEV;
  const tx0 = await txCounters(hosts[1] as Host, dev);
  const udp0 = await udpCounters(hosts[0] as Host);
  const before = { m: machineCpu(), a: cpuSeconds(a), b: cpuSeconds(b) };
  const timeoutMs = (SECONDS + 30) * 1000;
  const client = (argv: readonly string[], to: string, port: number) =>
    run([...argv, 'iperf3', '-c', to, '-p', String(port), ...common], { timeoutMs });
  const r =
    cond === 'truss'
      ? await (hosts[1] as Host).docker(
          ['exec', 'ic', 'iperf3', '-c', ctx.serverIp, '-p', String(IPERF_PORT), ...common],
          timeoutMs,
        )
      : cond === 'trussNs'
        ? await client(enterNetns({ pid: ctx.clientPid }, []), ctx.serverIp, NS_IPERF_PORT)
        : cond === 'bare'
          ? await client(inNetns((hosts[1] as Host).netnsPath, []), bareIp(0), BARE_IPERF_PORT)
          : await client(inNetns(hopNs(1), []), `${hopNet(0)}.2`, BARE_IPERF_PORT);
  if (r.code !== 0) {
    const why = `iperf3 (${cond}) failed: ${r.stderr.trim()} ${r.stdout.slice(0, 500)}`;
    if (attempt > 1) throw new Error(why);
    process.stderr.write(`  ${why}; once more\n`);
    return iperfRun(cond, ctx, attempt + 1);
  }
  const m = machineCpu();
  const [wgA, wgB] = [cpuSeconds(a), cpuSeconds(b)];
  const tx = await txCounters(hosts[1] as Host, dev);
  const udp = await udpCounters(hosts[0] as Host);
  const gbps = iperfGbps(r.stdout);
  const retransmits = (JSON.parse(r.stdout) as { end?: { sum_sent?: { retransmits?: number } } }).end?.sum_sent
    ?.retransmits;
  const gb = (gbps * SECONDS) / 8;
  const span = m.total - before.m.total;
  return {
    gbps,
    busy: (m.busy - before.m.busy) / span,
    softirq: (m.softirq - before.m.softirq) / span,
    wgRxCpuPerGB: (wgA - before.a) / gb,
    wgTxCpuPerGB: (wgB - before.b) / gb,
    tunTxPacketBytes: (tx.bytes - tx0.bytes) / (tx.packets - tx0.packets),
    retransmits: retransmits ?? Number.NaN,
    udpRcvbufDrops: (udp.rcvbufErrors - udp0.rcvbufErrors) / (udp.inDatagrams - udp0.inDatagrams),
  };
}

interface ThroughputCtx {
  readonly serverIp: string;
  /** pid of the client container (trussNs enters its network namespace) */
  readonly clientPid: number;
  readonly wgPids: Record<Cond, readonly [number, number]>;
}

async function measureThroughput(): Promise<{ samples: Record<Cond, ThroughputSample[]>; mtu: number }> {
  const [a, b] = [hosts[0] as Host, hosts[1] as Host];
  await runContainer(a, { name: 'is', network: CLUSTER, cmd: ['iperf3', '-s', '-p', String(IPERF_PORT)] });
  await runContainer(b, { name: 'ic', network: CLUSTER });
  const mtu = await linkMtu(a, TRUSS_DEV);
  await startBareTunnel(a, b, mtu);
  const ns = await runOk(
    enterNetns({ pid: await containerPid(a, 'is') }, ['iperf3', '-s', '-D', '-p', String(NS_IPERF_PORT)]),
  );
  if (ns.code !== 0) throw new Error(`iperf3 -s in is's namespace: ${ns.stderr}`);
  const ctx: ThroughputCtx = {
    serverIp: await containerIp(a, 'is', CLUSTER),
    clientPid: await containerPid(b, 'ic'),
    wgPids: {
      truss: wireguardGoPids([a, b], TRUSS_DEV) as [number, number],
      trussNs: wireguardGoPids([a, b], TRUSS_DEV) as [number, number],
      bare: wireguardGoPids([a, b], BARE_DEV) as [number, number],
      hop: wireguardGoPids([a, b], BARE_DEV) as [number, number],
    },
  };
  const samples: Record<Cond, ThroughputSample[]> = { truss: [], trussNs: [], bare: [], hop: [] };
  if (!SMOKE) for (const cond of CONDS) await iperfRun(cond, ctx); // warm-up, not counted
  for (let i = 0; i < REPS; i++) {
    // the order rotates: each condition takes each place in turn
    for (const cond of [...CONDS.slice(i % CONDS.length), ...CONDS.slice(0, i % CONDS.length)]) {
      const s = await iperfRun(cond, ctx);
      samples[cond].push(s);
      process.stderr.write(
        `  throughput rep ${i + 1}/${REPS} ${cond}: ${s.gbps.toFixed(3)} Gbit/s (cpu busy ${pct(s.busy)}, softirq ${pct(s.softirq)}, tun pkt ${s.tunTxPacketBytes.toFixed(0)} B, retr ${s.retransmits}, udp drops ${pct(s.udpRcvbufDrops)})\n`,
      );
    }
  }
  return { samples, mtu };
}

// ---------------------------------------------------------------- convergence

interface StartSample {
  readonly n: number;
  /** the host the container started on, and the members that probed it */
  readonly on: string;
  /** ms from `docker run -d` until it returned (container running) */
  readonly runMs: number;
  /** the same on A right before, with --network none: Docker's own share of a start */
  readonly noneMs: number;
  /** ms from `docker run -d` until the first member connected, and until all had */
  readonly firstMs?: number;
  readonly allMs?: number;
  /** per probing member, ms (undefined: not within CONNECT_LIMIT_MS) */
  readonly byHost: Readonly<Record<string, number | null>>;
  /** the plugin's own time for this start (debug log), ms */
  readonly rpc: Readonly<Record<string, number>>;
}

/** The address truss's IPAM answered in the log since `from` (no docker inspect on the clock). */
function addressFromLog(h: Host, from: number): string | undefined {
  for (const line of h.truss.log().slice(from).split('\n')) {
    if (!line.includes('RequestAddress') || !line.includes('rpc response')) continue;
    try {
      const o = JSON.parse(line) as { body?: { Address?: string } };
      if (o.body?.Address) return o.body.Address.split('/')[0];
    } catch {
      // not JSON
    }
  }
  return undefined;
}

let started = 0;
async function measureStart(n: number, k: number): Promise<StartSample> {
  const list = hosts.slice(0, n);
  const a = list[k % n] as Host;
  const others = list.filter((h) => h !== a);
  const name = `s${started++}`;
  const t00 = performance.now();
  await must(a, ['run', '-d', '--name', `${name}n`, '--network', 'none', IMAGE, 'sleep', '3600']);
  const noneMs = performance.now() - t00;
  await removeContainers(a, [`${name}n`]);
  const from = a.truss.log().length;
  const t0 = performance.now();
  await runContainer(a, { name, network: CLUSTER, cmd: SINK_CMD() });
  const runMs = performance.now() - t0;
  const ip = addressFromLog(a, from) ?? (await containerIp(a, name, CLUSTER));
  const times = await Promise.all(
    others.map((o) => {
      const pid = members.get(o)?.pid as number;
      return msUntilConnects({ pid }, ip, SINK_PORT, t0, CONNECT_LIMIT_MS, PROBE_STEP_MS);
    }),
  );
  const rpc: Record<string, number> = {};
  for (const s of parseRpcSamples(a.truss.log().slice(from))) rpc[s.rpc] = (rpc[s.rpc] ?? 0) + s.durationMs;
  await removeContainers(a, [name]);
  const ok = times.filter((t): t is number => t !== undefined);
  return {
    n,
    on: a.name,
    runMs,
    noneMs,
    ...(ok.length > 0 ? { firstMs: Math.min(...ok) } : {}),
    ...(ok.length === times.length ? { allMs: Math.max(...ok) } : {}),
    byHost: Object.fromEntries(others.map((o, i) => [o.name, times[i] ?? null])),
    rpc,
  };
}

/** RUNS starts per member count, the counts alternated (2,3,5 then 5,3,2 ...), membership changed between. */
async function measureConvergence(): Promise<StartSample[]> {
  const out: StartSample[] = [];
  const counts = [...HOST_COUNTS].sort((x, y) => x - y);
  for (let i = 0; i < RUNS; i++) {
    for (const n of i % 2 === 0 ? counts : [...counts].reverse()) {
      await setMembers(n);
      const s = await measureStart(n, i);
      out.push(s);
      process.stderr.write(
        `  start ${i + 1}/${RUNS} with ${n} hosts (on ${s.on}): run ${s.runMs.toFixed(0)} ms, first ${s.firstMs ?? '-'} ms, all ${s.allMs ?? '-'} ms\n`,
      );
    }
  }
  return out;
}

// ---------------------------------------------------------------- environment and report

const OFFLOADS = [
  'tx-checksumming',
  'scatter-gather',
  'tcp-segmentation-offload',
  'generic-segmentation-offload',
  'generic-receive-offload',
];
const SHORT: Record<string, string> = {
  'tx-checksumming': 'tx-csum',
  'scatter-gather': 'sg',
  'tcp-segmentation-offload': 'tso',
  'generic-segmentation-offload': 'gso',
  'generic-receive-offload': 'gro',
};

/** `ethtool -k` of a link in a host, as "tx-csum on, sg on, tso off, ..." ('' without ethtool). */
async function offloads(h: Host, dev: string): Promise<string> {
  const r = await h.exec(['ethtool', '-k', dev]);
  if (r.code !== 0) return `(ethtool -k: ${r.stderr.trim() || 'unavailable'})`;
  return OFFLOADS.map((k) => {
    const v = new RegExp(`^${k}: (\\w+)`, 'm').exec(r.stdout)?.[1] ?? '?';
    return `${SHORT[k]} ${v}`;
  }).join(', ');
}

async function environment(mtu: number | undefined): Promise<Record<string, string>> {
  const a = hosts[0] as Host;
  const facts = await machineFacts();
  const wgGo = await run(['wireguard-go', '--version'], { env: { ...process.env, PATH: CHILD_PATH } });
  const bridge = (await a.exec(['ip', '-j', 'link', 'show', 'type', 'bridge'])).stdout;
  const trussBridge = (JSON.parse(bridge || '[]') as { ifname: string }[]).find((l) => /^trb/.test(l.ifname))?.ifname;
  const veth = (
    JSON.parse((await a.exec(['ip', '-j', 'link', 'show', 'type', 'veth'])).stdout || '[]') as {
      ifname: string;
    }[]
  ).find((l) => /^trv/.test(l.ifname))?.ifname;
  const env: Record<string, string> = {
    ...facts,
    wireguard: `userspace: ${wgGo.stdout.split('\n')[0]?.trim() ?? 'wireguard-go'} (no WireGuard kernel module)`,
    docker: await must(a, ['version', '--format', '{{.Server.Version}}']),
    iperf3: (await run(['iperf3', '--version'])).stdout.split('\n')[0]?.trim() ?? '',
    underlayMtu: String(UNDERLAY_MTU),
    tunnelMtu: mtu === undefined ? 'n/a' : String(mtu),
    bridgeNfCallIptables:
      (await a.exec(['cat', '/proc/sys/net/bridge/bridge-nf-call-iptables'])).stdout.trim() || 'absent',
    dockerCpuCgroup: dockerCgroup(),
  };
  for (const [what, dev] of [
    ['offloads eth-ul (underlay veth)', 'eth-ul'],
    [`offloads ${TRUSS_DEV} (truss tun)`, TRUSS_DEV],
    [`offloads ${BARE_DEV} (bare tun)`, BARE_DEV],
    ['offloads truss bridge', trussBridge],
    ['offloads container veth (host end)', veth],
  ] as const) {
    if (dev && (await a.exec(['ip', 'link', 'show', dev])).code === 0) env[what] = await offloads(a, dev);
  }
  return env;
}

interface Results {
  readonly throughput?: Record<Cond, ThroughputSample[]>;
  readonly starts?: StartSample[];
}

const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;

const COND_LABEL: Record<Cond, string> = {
  bare: 'bare wireguard-go tunnel, host to host',
  truss: 'truss cluster network, container to container',
  hop: 'bare tunnel + veth/bridge hop each side (no truss)',
  trussNs: 'truss, same path, iperf3 nsenter-ed into the containers (not their cgroups)',
};

function throughputRows(t: Record<Cond, ThroughputSample[]>): { rows: string[][]; ratio: number } {
  const g = (c: Cond) => stats(t[c].map((s) => s.gbps));
  const ratio = g('truss').median / g('bare').median;
  const med = (c: Cond, k: keyof ThroughputSample) => stats(t[c].map((s) => s[k])).median;
  const header = ['measure', 'condition', 'n', 'median', 'min–max', '÷ bare', 'target', 'CPU busy', 'softirq'];
  const rows = [[...header, 'wg-go CPU s/GB rx, tx', 'tun pkt B', 'retr', 'UDP drops A']];
  for (const c of ['bare', 'truss', 'trussNs', 'hop'] as const) {
    if (t[c].length === 0) continue;
    const st = g(c);
    rows.push([
      c === 'bare' ? 'cross-host TCP, iperf3 (Gbit/s)' : '',
      COND_LABEL[c],
      String(st.n),
      f1(st.median),
      range(st),
      c === 'bare' ? '' : (st.median / g('bare').median).toFixed(3),
      c === 'truss' ? '≥ 0.95' : c === 'bare' ? '' : '(info)',
      pct(med(c, 'busy')),
      pct(med(c, 'softirq')),
      `${f1(med(c, 'wgRxCpuPerGB'))}, ${f1(med(c, 'wgTxCpuPerGB'))}`,
      f1(med(c, 'tunTxPacketBytes')),
      f1(med(c, 'retransmits')),
      pct(med(c, 'udpRcvbufDrops')),
    ]);
  }
  return { rows, ratio };
}

function convergenceRows(starts: readonly StartSample[]): { rows: string[][]; growth: Record<string, number> } {
  const counts = [...new Set(starts.map((s) => s.n))].sort((x, y) => x - y);
  const rows = [['measure (ms)', 'hosts', 'n', 'p50', 'p99', 'min–max', 'growth p50', 'target']];
  const of = (n: number, f: (s: StartSample) => number | undefined) =>
    stats(starts.filter((s) => s.n === n).flatMap((s) => (f(s) === undefined ? [] : [f(s) as number])));
  const growth: Record<string, number> = {};
  const lo = counts[0] as number;
  const hi = counts[counts.length - 1] as number;
  for (const [label, key, f] of [
    ['docker run on A → first connect from another host', 'first', (s: StartSample) => s.firstMs],
    ['docker run on A → reachable from every other host', 'all', (s: StartSample) => s.allMs],
    ['docker run -d alone (returns when running)', 'run', (s: StartSample) => s.runMs],
  ] as const) {
    counts.forEach((n, i) => {
      const st: Stats = of(n, f);
      const g = st.median / of(lo, f).median;
      if (n === hi && n !== lo) growth[key] = g;
      const target = n === hi && n !== lo && key === 'all' ? '≤ 1.5' : '';
      rows.push([
        i === 0 ? label : '',
        String(n),
        String(st.n),
        f1(st.median),
        f1(st.p99),
        range(st),
        n === lo ? '' : g.toFixed(3),
        target,
      ]);
    });
  }
  return { rows, growth };
}

/** Where a start's time goes: medians per member count of docker run, the plugin's RPCs, and after. */
function breakdownRows(starts: readonly StartSample[]): string[][] {
  const counts = [...new Set(starts.map((s) => s.n))].sort((x, y) => x - y);
  const rpcs = ['RequestAddress', 'CreateEndpoint', 'Join'];
  const rows = [
    [
      'hosts',
      'docker run -d',
      'same, --network none',
      ...rpcs.map((r) => `${r} (plugin)`),
      'all plugin RPCs',
      'first connect after run returned',
    ],
  ];
  for (const n of counts) {
    const ss = starts.filter((s) => s.n === n);
    const m = (f: (s: StartSample) => number | undefined) =>
      f1(stats(ss.flatMap((s) => (f(s) === undefined ? [] : [f(s) as number]))).median);
    rows.push([
      String(n),
      m((s) => s.runMs),
      m((s) => s.noneMs),
      ...rpcs.map((r) => m((s) => s.rpc[r])),
      m((s) => Object.values(s.rpc).reduce((x, y) => x + y, 0)),
      m((s) => (s.firstMs === undefined ? undefined : s.firstMs - s.runMs)),
    ]);
  }
  return rows;
}

function report(r: Results, env: Record<string, string>): { lines: string[]; verdicts: Record<string, number> } {
  const lines: string[] = [];
  const verdicts: Record<string, number> = {};
  if (r.throughput) {
    const t = throughputRows(r.throughput);
    verdicts.throughput = t.ratio;
    verdicts.throughputPaired = paired(r.throughput, 'truss', 'bare');
    verdicts.hopOverBarePaired = paired(r.throughput, 'hop', 'bare');
    verdicts.trussOverHopPaired = paired(r.throughput, 'truss', 'hop');
    verdicts.trussNsOverBarePaired = paired(r.throughput, 'trussNs', 'bare');
    verdicts.trussNsOverHopPaired = paired(r.throughput, 'trussNs', 'hop');
    lines.push(...markdownTable(t.rows), '', ...throughputFindings(r.throughput), '');
  }
  if (r.starts) {
    const c = convergenceRows(r.starts);
    Object.assign(verdicts, Object.fromEntries(Object.entries(c.growth).map(([k, v]) => [`growth_${k}`, v])));
    lines.push(...markdownTable(c.rows), '', 'Where a start spends its time (medians, ms):', '');
    lines.push(...markdownTable(breakdownRows(r.starts)), '', ...convergenceFindings(r.starts), '');
  }
  lines.push(`Tunnel MTU ${env.tunnelMtu} (underlay ${env.underlayMtu}); ${env.wireguard}.`);
  const verdict = (x: number | undefined, ok: boolean) =>
    x === undefined ? 'not measured' : `${x.toFixed(3)} (${ok ? 'met' : 'missed'})`;
  lines.push(
    '',
    `Verdicts: throughput truss ÷ bare ${verdict(verdicts.throughput, (verdicts.throughput ?? 0) >= 0.95)}, target ≥ 0.95; ` +
      `convergence growth ${Math.min(...HOST_COUNTS)} → ${Math.max(...HOST_COUNTS)} hosts (reachable from all, p50) ` +
      `${verdict(verdicts.growth_all, (verdicts.growth_all ?? 99) <= 1.5)}, target ≤ 1.5.`,
  );
  return { lines, verdicts };
}

/** Median of per-repetition x/y (the conditions of one repetition ran back to back). */
function paired(t: Record<Cond, ThroughputSample[]>, x: Cond, y: Cond): number {
  const n = Math.min(t[x].length, t[y].length);
  return stats(Array.from({ length: n }, (_, i) => (t[x][i]?.gbps ?? 0) / (t[y][i]?.gbps ?? 1))).median;
}

let cgroupNote = "containers and the baselines' iperf3 share one cgroup level";

/** Where Docker puts containers in the cpu controller, and how many share that parent (cgroup v1 here). */
function dockerCgroup(): string {
  const dir = '/sys/fs/cgroup/cpu/docker';
  try {
    const shares = readFileSync(join(dir, 'cpu.shares'), 'utf8').trim();
    const n = readdirSync(dir).filter((d) => /^[0-9a-f]{64}$/.test(d)).length;
    cgroupNote =
      `dockerd (cgroupfs driver, cgroup v1) puts every container in ${dir}/<id>; that parent has cpu.shares ${shares} ` +
      `and held ${n} containers of all the machine's dockerds, so under contention the containers' iperf3 compete as one ` +
      "root-level task against wireguard-go and everything else, while the baselines' iperf3 (and truss (nsenter)) are root-level tasks themselves";
    return `${dir}: cpu.shares ${shares}, ${n} containers`;
  } catch {
    return 'no cgroup v1 cpu/docker parent';
  }
}

function throughputFindings(t: Record<Cond, ThroughputSample[]>): string[] {
  const med = (c: Cond, k: keyof ThroughputSample) => stats(t[c].map((s) => s[k])).median;
  const r = (x: Cond, y: Cond) => paired(t, x, y).toFixed(3);
  const out = [
    `- Per-repetition ratios (median over repetitions; each repetition runs the four conditions back to back): truss ÷ bare ${r('truss', 'bare')},`,
    `  truss (nsenter) ÷ bare ${r('trussNs', 'bare')}, bare+hop ÷ bare ${r('hop', 'bare')}, truss (nsenter) ÷ bare+hop ${r('trussNs', 'hop')}, truss ÷ truss (nsenter) ${r('truss', 'trussNs')}.`,
    `- Every condition is CPU-bound: both cores ${pct(Math.min(...CONDS.map((c) => med(c, 'busy'))))}–${pct(Math.max(...CONDS.map((c) => med(c, 'busy'))))} busy while iperf3 (2 processes) and wireguard-go (2) share them;`,
    `  softirq (forwarding, bridge, veth, conntrack) is ${pct(med('bare', 'softirq'))} of the machine for the bare tunnel, ${pct(med('hop', 'softirq'))} with the hop, ${pct(med('truss', 'softirq'))} for truss.`,
    `- wireguard-go's UDP socket on the receiving host drops ${pct(med('bare', 'udpRcvbufDrops'))} (bare) to ${pct(med('truss', 'udpRcvbufDrops'))} (truss) of the datagrams (UdpRcvbufErrors):`,
    '  the 2022 wireguard-go keeps the default socket buffer and has no TUN offloads, so TCP runs through heavy loss in every condition.',
    `- CPU placement: ${cgroupNote}.`,
  ];
  const [hop, nsHop] = [paired(t, 'hop', 'bare'), paired(t, 'trussNs', 'hop')];
  out.push(
    `- The container's hop without truss: bare+hop ÷ bare ${hop.toFixed(3)} (per packet a forward, a bridge and a veth more on` +
      ' each host, on cores that are already saturated); ' +
      (Math.abs(nsHop - 1) < 0.1
        ? `truss on that path adds nothing measurable beyond it (truss (nsenter) ÷ bare+hop ${nsHop.toFixed(3)}, within this run's noise).`
        : `truss on that path differs from it by truss (nsenter) ÷ bare+hop ${nsHop.toFixed(3)}.`),
  );
  return out;
}

function convergenceFindings(starts: readonly StartSample[]): string[] {
  const counts = [...new Set(starts.map((s) => s.n))].sort((x, y) => x - y);
  const m = (n: number, f: (s: StartSample) => number | undefined) =>
    stats(starts.filter((s) => s.n === n).flatMap((s) => (f(s) === undefined ? [] : [f(s) as number]))).median;
  return counts.map((n) => {
    const [first, run, none] = [m(n, (s) => s.firstMs), m(n, (s) => s.runMs), m(n, (s) => s.noneMs)];
    const plugin = m(n, (s) => Object.values(s.rpc).reduce((x, y) => x + y, 0));
    const after = m(n, (s) => (s.firstMs === undefined ? undefined : s.firstMs - s.runMs));
    return (
      `- ${n} hosts: of the ${f1(first)} ms to the first connect, \`docker run -d\` takes ${f1(run)} ms (the same start with` +
      ` --network none: ${f1(none)} ms; truss's RPCs ${f1(plugin)} ms in all) and the connect succeeds ${f1(after)} ms after it returned.`
    );
  });
}

function writeDocs(lines: readonly string[], env: Record<string, string>, r: Results): void {
  const offl = Object.entries(env)
    .filter(([k]) => k.startsWith('offloads '))
    .map(([k, v]) => `  - ${k.slice('offloads '.length)}: ${v}`);
  const section = [
    '## Multi-host (WireGuard)',
    '',
    `\`npm run bench:cluster\` (bench/cluster.ts), ${new Date().toISOString().slice(0, 10)}, commit ${env.commit}.`,
    `Kernel ${env.kernel}; CPU ${env.cpu}; dockerd ${env.docker}; ${env.iperf3}; Node ${env.node}; bridge-nf-call-iptables in the hosts ${env.bridgeNfCallIptables}.`,
    `Simulated hosts (network namespaces, each with its own dockerd and truss) on one underlay bridge (MTU ${env.underlayMtu}),`,
    `one etcd; WireGuard is ${env.wireguard}.`,
    '',
    ...lines,
    '',
    `- Throughput: iperf3 -t ${SECONDS} (1 s omitted), ${REPS} repetitions; each repetition runs the four conditions back to back, the`,
    '  order rotating, after one warm-up each. truss: iperf3 server container on host A, client container on host B (docker exec),',
    '  one cluster network (truss.cluster, truss IPAM): veth → bridge → trwg0 (wireguard-go) → underlay → trwg0 → bridge → veth.',
    "  truss (nsenter): the same containers' network namespaces and path, iperf3 started with nsenter --net (outside the",
    "  containers' cgroups). Bare: a second wireguard-go tunnel (bnwg0, own keys and port, 198.19.77.0/24, the same MTU, started",
    '  as truss starts wireguard-go) between the same two host namespaces, iperf3 in the host namespaces. Bare + hop: the same',
    '  tunnel, iperf3 in a plain namespace behind a veth on a plain bridge on each host (FORWARD accept as the first rule).',
    '  CPU busy/softirq: share of all cores during the run (/proc/stat); wg-go CPU: user+system seconds of the receiving (A)',
    '  and sending (B) wireguard-go per GB carried; tun pkt: mean packet size into the sending tunnel; retr: iperf3 retransmits;',
    "  UDP drops A: UdpRcvbufErrors ÷ UDP datagrams arriving on host A (wireguard-go's socket).",
    `- Convergence: ${r.starts ? RUNS : 0} starts per host count; all ${hosts.length} hosts run throughout, the first N are members of the`,
    '  cluster network (created/removed between starts; the counts alternate). A start is `docker run -d` of a TCP sink on a',
    '  member (rotating), then every other member connects from a long-lived container on the network (busybox nc under',
    `  nsenter, a new attempt every ${PROBE_STEP_MS} ms from when \`docker run\` returned; the address is read from the plugin's log,`,
    '  not from docker inspect). "first" = the first member to connect, "all" = the last one. The container is removed after.',
    '- Offloads (`ethtool -k`, host A):',
    ...offl,
    `- Docker's cpu cgroup: ${env.dockerCpuCgroup}.`,
    '- Resilience figures (a host leaving, etcd killed, truss kill -9, 30 concurrent starts) are printed by e2e/cluster.e2e.ts',
    '  (E2E FIGURES block), not measured here.',
    '',
  ].join('\n');
  writeDocSection('## Multi-host', section);
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const maxHosts = DO_CONVERGENCE ? Math.max(...HOST_COUNTS) : 2;
  try {
    await startHosts(maxHosts);
    await setMembers(2);
    const r: { throughput?: Record<Cond, ThroughputSample[]>; starts?: StartSample[] } = {};
    let mtu: number | undefined;
    process.stderr.write(
      `bench/cluster: ${maxHosts} hosts, ${REPS} throughput reps of ${SECONDS} s, ${RUNS} starts per host count (${HOST_COUNTS.join(',')})${SMOKE ? ' (smoke)' : ''}\n`,
    );
    if (DO_THROUGHPUT) {
      const t = await measureThroughput();
      r.throughput = t.samples;
      mtu = t.mtu;
    }
    if (DO_CONVERGENCE) r.starts = await measureConvergence();
    const env = await environment(mtu);
    if (DO_THROUGHPUT) await stopBareTunnel();
    const { lines, verdicts } = report(r, env);
    const out = [
      '',
      `MULTI-HOST BENCHMARK${SMOKE ? ' (smoke: figures mean nothing)' : ''}`,
      `kernel ${env.kernel}; CPU ${env.cpu}; ${env.wireguard}`,
      ...lines,
      `(${((performance.now() - t0) / 1000).toFixed(0)} s)`,
      '',
    ];
    process.stdout.write(out.join('\n'));
    if (!SMOKE && PART === 'all') {
      writeDocs(lines, env, r);
      await writeResultsJson('cluster', {
        date: new Date().toISOString(),
        environment: env,
        parameters: {
          reps: REPS,
          iperfSeconds: SECONDS,
          runs: RUNS,
          hostCounts: HOST_COUNTS,
          probeStepMs: PROBE_STEP_MS,
        },
        ratios: verdicts,
        targets: { throughput: '>= 0.95', growth_all: '<= 1.5' },
        samples: r,
      });
      process.stdout.write('wrote docs/benchmarks.md (Multi-host) and bench/results/cluster.json\n');
    }
  } finally {
    const problems: string[] = [];
    for (const h of hosts.splice(0)) await h.stop().catch((err: Error) => problems.push(err.message));
    await underlay?.stop().catch((err: Error) => problems.push(err.message));
    if (problems.length > 0) process.stderr.write(`teardown: ${problems.join('; ')}\n`);
  }
}

await main();
