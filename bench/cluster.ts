/**
 * Multi-host benchmark (not part of the test suite): `npm run bench:cluster` (root, like the
 * e2e suite). It starts an underlay with one etcd and simulated hosts, each with its own
 * dockerd and truss (--store etcd://), all through the e2e harness, and asks three questions:
 *
 *  (a) throughput: iperf3 TCP from a container on host B to a container on host A over one
 *      cluster network (truss's WireGuard tunnel, wireguard-go here) ÷ iperf3 between the same
 *      two host namespaces over a bare tunnel of the same implementation that this script
 *      makes itself (bnwg0: own keys, port and 198.19.77.0/24 addresses, truss's tunnel MTU,
 *      wireguard-go started the way truss starts it), with two more conditions for the cause:
 *      the same tunnel behind a veth + bridge hop (no truss), and truss's path with iperf3
 *      nsenter-ed into the containers (outside their cgroups). Order rotated. Target ≥ 0.95.
 *      The CPU the machine spent per run (all cores, from /proc/stat) and the wireguard-go
 *      processes' own CPU time are recorded with each run: on 2 cores the tunnel is CPU-bound.
 *  (b) convergence: `docker run -d` of a TCP server on host A (rotating over the members) →
 *      first successful connection from another member (a probe in a long-lived container on
 *      each other member, a new connect every 50 ms from when `docker run` returns), and until
 *      every other member has connected; for 2, 3 and 5 members of the cluster network. All
 *      hosts run throughout; membership changes by creating/removing the network on hosts, and
 *      the member counts are alternated (2,3,5 then 5,3,2 ...). Growth 5 ÷ 2 hosts ≤ 1.5.
 *  (c) vxlan: iperf3 TCP from a container on host B to a container on host A over an unencrypted
 *      cluster network (truss.encrypt=false, VXLAN) ÷ iperf3 between the two host namespaces
 *      over the raw underlay veth, with a VXLAN device of the script's own between the same
 *      namespaces (bare, and behind a veth + bridge hop) and truss's path nsenter-ed, so that
 *      truss ÷ bare VXLAN and bare VXLAN ÷ raw split the cost (cluster-vxlan.ts). No target: info.
 *
 * Prints tables; a full run also writes bench/results/cluster.json and the "Multi-host" and
 * "Unencrypted cluster networks" sections of docs/benchmarks.md (cluster-report.ts and
 * cluster-vxlan-report.ts; the baselines and counters are in cluster-baseline.ts), and a run of
 * --part vxlan alone its section and the `vxlan` member of cluster.json. `--smoke` (2 hosts,
 * 1 repetition, 2 s of iperf (1 s for vxlan), 1 start, the newest wireguard-go only) only prints, so CI can prove the
 * benchmark still runs (e2e/bench-smoke.e2e.ts).
 * Flags: --smoke, --reps N (throughput and vxlan repetitions, 5), --seconds S (iperf, 10), --runs N
 * (starts per host count per repetition round, 10), --hosts 2,3,5,
 * --part all|throughput|convergence|vxlan.
 */
import { parseArgs } from 'node:util';
import { clusterFixture } from '../e2e/harness/cluster.ts';
import {
  containerIp,
  containerPid,
  createClusterNetwork,
  removeContainers,
  runContainer,
} from '../e2e/harness/containers.ts';
import { inNetns, run } from '../e2e/harness/exec.ts';
import { parseRpcSamples } from '../e2e/harness/figures.ts';
import type { Host } from '../e2e/harness/host.ts';
import { IMAGE } from '../e2e/harness/image.ts';
import { enterNetns, msUntilConnects, nsTcpConnect } from '../e2e/harness/netns-tcp.ts';
import { SINK_CMD, SINK_PORT } from '../e2e/harness/traffic.ts';
import { UNDERLAY_MTU } from '../e2e/harness/underlay.ts';
import { waitFor } from '../e2e/harness/wait.ts';
import {
  BARE,
  BARE_DEV,
  BARE_IPERF_PORT,
  BARE_OTHER,
  cpuSeconds,
  dockerCgroup,
  hopNet,
  hopNs,
  linkMtu,
  machineCpu,
  startBareTunnel,
  startNsIperfServer,
  stopBareTunnel,
  txCounters,
  udpCounters,
  wireguardGoPids,
} from './cluster-baseline.ts';
import {
  CONDS,
  type Cond,
  OLD_CONDS,
  pct,
  type ReportParams,
  report,
  type StartSample,
  type ThroughputSample,
  writeDocs,
} from './cluster-report.ts';
import { measureVxlan } from './cluster-vxlan.ts';
import { mergeVxlanJson, vxlanJson, vxlanLines, writeVxlanDocs } from './cluster-vxlan-report.ts';
import { switchTrussWireguardGo, type WireguardGo, wireguardGoVersions } from './cluster-wggo.ts';
import { iperfGbps, machineFacts, offloads, writeResultsJson } from './lib.ts';

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
if (!['all', 'throughput', 'convergence', 'vxlan'].includes(PART)) throw new Error(`bench/cluster: --part ${PART}?`);
const DO_THROUGHPUT = PART === 'all' || PART === 'throughput';
const DO_CONVERGENCE = PART === 'all' || PART === 'convergence';
const DO_VXLAN = PART === 'all' || PART === 'vxlan';
const DO_WIREGUARD = DO_THROUGHPUT || DO_CONVERGENCE;
/** iperf3 seconds of the VXLAN part: its smoke run only proves that every condition works */
const VX_SECONDS = SMOKE ? 1 : SECONDS;

const CLUSTER = 'bench';
const SUBNET = '198.18.64.0/20';
/** the same cluster in routed mode (-o truss.mode=routed): the trussRouted condition */
const CLUSTER_ROUTED = 'benchr';
const SUBNET_ROUTED = '198.18.80.0/20';
const WG_PORT = 51820;
const TRUSS_DEV = 'trwg0';

const IPERF_PORT = 5201;
/** how long a start may take to become reachable before the run counts as failed */
const CONNECT_LIMIT_MS = 15_000;
const PROBE_STEP_MS = 50;

/** the hosts that started (cluster.hosts) */
let hosts: readonly Host[] = [];
const hostName = (i: number): string => `${SMOKE ? 'cs' : 'cb'}${i + 1}`;

async function must(h: Host, args: readonly string[], timeoutMs = 120_000): Promise<string> {
  const r = await h.docker(args, timeoutMs);
  if (r.code !== 0) throw new Error(`${h.name}: docker ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

// ---------------------------------------------------------------- hosts and membership

const members = new Map<Host, { pid: number; ip: string }>();

/** Joins h to the cluster network, with a long-lived TCP sink `pc` that also serves as its probe. */
async function addMember(h: Host): Promise<void> {
  const r = await createClusterNetwork(h, CLUSTER, SUBNET);
  if (r.code !== 0) throw new Error(`${h.name}: docker network create ${CLUSTER}: ${r.stderr.trim()}`);
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

const NS_IPERF_PORT = 5203;

/** One iperf3 run; a run that fails or hangs (seen once on a loaded machine) is retried once, and says so. */
async function iperfRun(cond: Cond, ctx: ThroughputCtx, attempt = 1): Promise<ThroughputSample> {
  const common = ['-t', String(SECONDS), ...(SECONDS > 2 ? ['-O', '1'] : []), '--connect-timeout', '5000', '-J'];
  const dev = TUNNEL_OF[cond];
  // read per run: truss's wireguard-go is another process after a switch of version
  const [a, b] = wireguardGoPids([hosts[0] as Host, hosts[1] as Host], dev) as [number, number];
  const tx0 = await txCounters(hosts[1] as Host, dev);
  const udp0 = await udpCounters(hosts[0] as Host);
  const before = { m: machineCpu(), a: cpuSeconds(a), b: cpuSeconds(b) };
  const timeoutMs = (SECONDS + 30) * 1000;
  const client = (argv: readonly string[], to: string, port: number) =>
    run([...argv, 'iperf3', '-c', to, '-p', String(port), ...common], { timeoutMs });
  const r =
    cond === 'truss' || cond === 'trussOld' || cond === 'trussRouted'
      ? await (hosts[1] as Host).docker(
          cond === 'trussRouted'
            ? ['exec', 'icr', 'iperf3', '-c', ctx.serverIpRouted, '-p', String(IPERF_PORT), ...common]
            : ['exec', 'ic', 'iperf3', '-c', ctx.serverIp, '-p', String(IPERF_PORT), ...common],
          timeoutMs,
        )
      : cond === 'trussNs'
        ? await client(enterNetns({ pid: ctx.clientPid }, []), ctx.serverIp, NS_IPERF_PORT)
        : cond === 'bare' || cond === 'bareOld'
          ? await client(inNetns((hosts[1] as Host).netnsPath, []), BARE_OF[cond].ip(0), BARE_IPERF_PORT)
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
  /** the server container on the routed-mode cluster network (trussRouted) */
  readonly serverIpRouted: string;
  /** pid of the client container (trussNs enters its network namespace) */
  readonly clientPid: number;
}

/** the tunnel device each condition's traffic goes through */
const TUNNEL_OF: Record<Cond, string> = {
  truss: TRUSS_DEV,
  trussNs: TRUSS_DEV,
  trussOld: TRUSS_DEV,
  trussRouted: TRUSS_DEV,
  bare: BARE_DEV,
  hop: BARE_DEV,
  bareOld: BARE_OTHER.dev,
};
const BARE_OF = { bare: BARE, bareOld: BARE_OTHER } as const;

async function measureThroughput(): Promise<{
  samples: Record<Cond, ThroughputSample[]>;
  mtu: number;
  versions: { newest: WireguardGo; older?: WireguardGo };
}> {
  const [a, b] = [hosts[0] as Host, hosts[1] as Host];
  await runContainer(a, { name: 'is', network: CLUSTER, cmd: ['iperf3', '-s', '-p', String(IPERF_PORT)] });
  await runContainer(b, { name: 'ic', network: CLUSTER });
  for (const h of [a, b]) {
    const r = await createClusterNetwork(h, CLUSTER_ROUTED, SUBNET_ROUTED, ['-o', 'truss.mode=routed']);
    if (r.code !== 0) throw new Error(`${h.name}: docker network create ${CLUSTER_ROUTED}: ${r.stderr.trim()}`);
  }
  await runContainer(a, { name: 'isr', network: CLUSTER_ROUTED, cmd: ['iperf3', '-s', '-p', String(IPERF_PORT)] });
  await runContainer(b, { name: 'icr', network: CLUSTER_ROUTED });
  const mtu = await linkMtu(a, TRUSS_DEV);
  // the bare tunnels run the same wireguard-go as truss: the newest (truss's own), and the older one
  // (not in a smoke run: its phase restarts truss, ~10 s of the smoke's 90 s budget in CI)
  const found = await wireguardGoVersions();
  const versions = SMOKE ? { newest: found.newest } : found;
  await startBareTunnel(a, b, mtu, { ...BARE, wgGo: versions.newest.path });
  if (versions.older) await startBareTunnel(a, b, mtu, { ...BARE_OTHER, wgGo: versions.older.path });
  await startNsIperfServer(a, await containerPid(a, 'is'), NS_IPERF_PORT);
  const ctx: ThroughputCtx = {
    serverIp: await containerIp(a, 'is', CLUSTER),
    serverIpRouted: await containerIp(a, 'isr', CLUSTER_ROUTED),
    clientPid: await containerPid(b, 'ic'),
  };
  const samples: Record<Cond, ThroughputSample[]> = {
    truss: [],
    trussNs: [],
    bare: [],
    hop: [],
    trussOld: [],
    bareOld: [],
    trussRouted: [],
  };
  let running: WireguardGo = versions.newest; // truss's default
  const use = async (w: WireguardGo): Promise<void> => {
    if (w === running) return;
    const t0 = performance.now();
    await switchTrussWireguardGo([a, b], TRUSS_DEV, w);
    await setMembers(2); // every member reaches the others again
    process.stderr.write(
      `  truss: restarted with --wireguard-go ${w.path} (${w.version}) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
    );
    running = w;
  };
  if (!SMOKE) for (const cond of CONDS) await iperfRun(cond, ctx); // warm-up, not counted
  for (let i = 0; i < REPS; i++) {
    // the versions alternate which goes first; the conditions of each rotate
    const phases = versions.older
      ? i % 2 === 0
        ? [versions.newest, versions.older]
        : [versions.older, versions.newest]
      : [versions.newest];
    for (const w of phases) {
      await use(w);
      const conds = w === versions.newest ? CONDS : OLD_CONDS;
      for (const cond of [...conds.slice(i % conds.length), ...conds.slice(0, i % conds.length)]) {
        const s = await iperfRun(cond, ctx);
        samples[cond].push(s);
        process.stderr.write(
          `  throughput rep ${i + 1}/${REPS} ${cond}: ${s.gbps.toFixed(3)} Gbit/s (cpu busy ${pct(s.busy)}, softirq ${pct(s.softirq)}, tun pkt ${s.tunTxPacketBytes.toFixed(0)} B, retr ${s.retransmits}, udp drops ${pct(s.udpRcvbufDrops)})\n`,
        );
      }
    }
  }
  // the rest of the benchmark runs on truss's default (the smoke only proves that every part runs)
  if (!SMOKE) await use(versions.newest);
  return { samples, mtu, versions };
}

// ---------------------------------------------------------------- convergence

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

async function environment(
  mtu: number | undefined,
  versions: { newest: WireguardGo; older?: WireguardGo } | undefined,
): Promise<Record<string, string>> {
  const a = hosts[0] as Host;
  const facts = await machineFacts();
  const w = versions ?? (await wireguardGoVersions());
  const wgGo = `wireguard-go ${w.newest.version} (${w.newest.path})${w.older ? `; older: ${w.older.version} (${w.older.path})` : ''}`;
  const bridge = (await a.exec(['ip', '-j', 'link', 'show', 'type', 'bridge'])).stdout;
  const trussBridge = (JSON.parse(bridge || '[]') as { ifname: string }[]).find((l) => /^trb/.test(l.ifname))?.ifname;
  const veth = (
    JSON.parse((await a.exec(['ip', '-j', 'link', 'show', 'type', 'veth'])).stdout || '[]') as {
      ifname: string;
    }[]
  ).find((l) => /^trv/.test(l.ifname))?.ifname;
  const env: Record<string, string> = {
    ...facts,
    wireguard: `userspace (no WireGuard kernel module): ${wgGo}`,
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

async function main(): Promise<void> {
  const t0 = performance.now();
  const maxHosts = DO_CONVERGENCE ? Math.max(...HOST_COUNTS) : 2;
  const cluster = clusterFixture({
    hosts: Array.from({ length: maxHosts }, (_, i) => hostName(i)),
    truss: { debug: true, wgPort: WG_PORT },
  });
  try {
    await cluster.start();
    hosts = cluster.hosts;
    if (DO_WIREGUARD) await setMembers(2);
    const r: { throughput?: Record<Cond, ThroughputSample[]>; starts?: StartSample[] } = {};
    let mtu: number | undefined;
    let versions: { newest: WireguardGo; older?: WireguardGo } | undefined;
    process.stderr.write(
      `bench/cluster: ${maxHosts} hosts, part ${PART}, ${REPS} throughput reps of ${SECONDS} s, ${RUNS} starts per host count (${HOST_COUNTS.join(',')})${SMOKE ? ' (smoke)' : ''}\n`,
    );
    if (DO_THROUGHPUT) {
      const t = await measureThroughput();
      r.throughput = t.samples;
      mtu = t.mtu;
      versions = t.versions;
    }
    if (DO_CONVERGENCE) r.starts = await measureConvergence();
    // before the VXLAN part adds its own bridge and veths, which environment() would otherwise pick up
    const env = await environment(mtu, versions);
    if (DO_THROUGHPUT) await stopBareTunnel(hosts.slice(0, 2));
    if (versions?.older) await stopBareTunnel(hosts.slice(0, 2), BARE_OTHER);
    const vx = DO_VXLAN
      ? await measureVxlan([hosts[0] as Host, hosts[1] as Host], {
          reps: REPS,
          seconds: VX_SECONDS,
          warmUp: !SMOKE,
          log: (line) => process.stderr.write(`${line}\n`),
        })
      : undefined;
    const vxLines = vx ? vxlanLines(vx) : [];
    const params: ReportParams = {
      reps: REPS,
      seconds: SECONDS,
      runs: RUNS,
      hostCounts: HOST_COUNTS,
      hosts: maxHosts,
      probeStepMs: PROBE_STEP_MS,
    };
    const { lines, verdicts } = DO_WIREGUARD ? report(r, env, params) : { lines: [], verdicts: {} };
    const out = [
      '',
      `MULTI-HOST BENCHMARK${SMOKE ? ' (smoke: figures mean nothing)' : ''}`,
      `kernel ${env.kernel}; CPU ${env.cpu}; ${env.wireguard}`,
      ...lines,
      ...(vx ? ['', 'Unencrypted cluster network (VXLAN):', '', ...vxLines, ''] : []),
      `(${((performance.now() - t0) / 1000).toFixed(0)} s)`,
      '',
    ];
    process.stdout.write(out.join('\n'));
    if (!SMOKE && PART === 'vxlan' && vx) {
      writeVxlanDocs(vxLines, env, vx);
      await mergeVxlanJson(vxlanJson(vx, env));
      process.stdout.write(
        'wrote docs/benchmarks.md (Unencrypted cluster networks) and the vxlan member of bench/results/cluster.json\n',
      );
    }
    if (!SMOKE && PART === 'all') {
      writeDocs(lines, env, r, params);
      if (vx) writeVxlanDocs(vxLines, env, vx);
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
        ...(vx ? { vxlan: vxlanJson(vx, env) } : {}),
      });
      process.stdout.write(
        'wrote docs/benchmarks.md (Multi-host, Unencrypted cluster networks) and bench/results/cluster.json\n',
      );
    }
  } finally {
    await cluster.stop().catch((err: Error) => process.stderr.write(`${err.message}\n`));
  }
}

await main();
