/**
 * The multi-host benchmark's VXLAN part (bench/cluster.ts --part vxlan): iperf3 TCP throughput
 * of an unencrypted cluster network (truss.encrypt=false, truss's trvx0) ÷ the raw underlay veth
 * between the same two host namespaces, with the baselines that tell where a difference comes
 * from, all made here and gone with the hosts:
 *  - bare: a VXLAN device of our own between the two host namespaces (bnvx0: VNI 4242, UDP port
 *    4790, 198.19.80.0/24, set up as truss sets up trvx0: nolearning, static FDB and neighbour
 *    entries, local = the underlay address, on eth-ul, MTU 1450), iperf3 host to host;
 *  - hop: the same device with a helper namespace behind a veth on a plain bridge on each side
 *    (bnbr1, 198.19.81/82.0/24), the hop a container has and a host does not;
 *  - trussNs: truss's path with iperf3 nsenter-ed into the containers (outside their cgroups).
 * Each repetition runs every condition back to back, the order rotating.
 */
import { containerIp, containerPid, createClusterNetwork, runContainer } from '../e2e/harness/containers.ts';
import { inNetns, run } from '../e2e/harness/exec.ts';
import type { Host } from '../e2e/harness/host.ts';
import { enterNetns, nsPing } from '../e2e/harness/netns-tcp.ts';
import { NETNS_PREFIX } from '../e2e/harness/paths.ts';
import { listProcs, nsIdOfFile, nsIdOfPid } from '../e2e/harness/procs.ts';
import { HOST_UNDERLAY_IF } from '../e2e/harness/underlay.ts';
import { waitFor } from '../e2e/harness/wait.ts';
import { cpuSeconds, machineCpu, startHop, startNsIperfServer, txCounters } from './cluster-baseline.ts';
import { iperfGbps, linkFacts, offloads } from './lib.ts';

/** truss's VXLAN device (naming.VXLAN_DEVICE) and the network this part creates on hosts A and B */
export const TRUSS_VX_DEV = 'trvx0';
const NETWORK = 'benchvx';
const SUBNET = '198.18.96.0/20';
/** the same network in routed mode (-o truss.mode=routed): the trussRouted condition */
const NETWORK_ROUTED = 'benchvxr';
const SUBNET_ROUTED = '198.18.112.0/20';

/** the bare VXLAN device: own VNI, port and addresses (198.19.80.<host index + 1>) */
export const BARE_VX_DEV = 'bnvx0';
const BARE_VNI = 4242;
const BARE_VX_PORT = 4790;
const bareVxIp = (i: number): string => `198.19.80.${i + 1}`;
const bareVxMac = (i: number): string => `02:62:6e:76:78:0${i + 1}`;
const hopVxNet = (i: number): string => `198.19.${81 + i}`;
const hopVxNs = (i: number): string => `${NETNS_PREFIX}bnvxhop${i}`;
/** 1500 underlay − 50 (outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14), as truss computes it */
const VXLAN_MTU = 1450;

/** iperf3 servers: in the container (its own command), nsenter-ed into it, in A's namespace and A's helper */
const CTR_PORT = 5201;
const NS_PORT = 5203;
const HOST_PORT = 5204;

/**
 * truss: iperf3 in the two containers (docker exec); trussNs: the same path, iperf3 nsenter-ed
 * into their network namespaces; raw: host to host over the underlay addresses (eth-ul, MTU
 * 1500); bare: host to host over bnvx0; hop: helper namespace to helper namespace over bnvx0.
 */
export type VxCond = 'truss' | 'trussNs' | 'raw' | 'bare' | 'hop' | 'trussRouted';
export const VX_CONDS: readonly VxCond[] = ['truss', 'raw', 'bare', 'trussNs', 'hop', 'trussRouted'];

export interface VxSample {
  readonly gbps: number;
  /** share of the machine's CPU (all cores) busy during the run, and in softirq */
  readonly busy: number;
  readonly softirq: number;
  /** busy CPU seconds of the whole machine per GB carried */
  readonly cpuPerGB: number;
  /** CPU seconds per GB of the two iperf3 processes (client and server) together */
  readonly iperfCpuPerGB: number;
  /** mean size of what the sending host's device took per packet (GSO: more than the MTU) */
  readonly txPacketBytes: number;
  readonly retransmits: number;
}

export interface VxlanResult {
  readonly samples: Record<VxCond, VxSample[]>;
  /** MTU and offloads of every device on the paths (host A; the container's eth0 from inside it) */
  readonly links: Record<string, string>;
  readonly seconds: number;
  readonly reps: number;
}

export interface VxlanOptions {
  readonly reps: number;
  readonly seconds: number;
  /** one uncounted run of each condition first */
  readonly warmUp: boolean;
  readonly log: (line: string) => void;
}

async function must(h: Host, argv: readonly string[]): Promise<string> {
  const r = await h.exec(argv);
  if (r.code !== 0) throw new Error(`${h.name}: ${argv.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** bnvx0 on both hosts, programmed statically as truss programs trvx0 (vxlan.ts), and the hop namespaces. */
async function startBareVxlan(hs: readonly [Host, Host]): Promise<void> {
  for (const [i, h] of hs.entries()) {
    const peer = 1 - i;
    const other = hs[peer] as Host;
    // as truss: `ip link add trvx0 address <mac> mtu 1450 type vxlan id <vni> local <ul> dev eth-ul dstport 4789 nolearning`
    await must(h, [
      'ip',
      'link',
      'add',
      BARE_VX_DEV,
      'address',
      bareVxMac(i),
      'mtu',
      String(VXLAN_MTU),
      'type',
      'vxlan',
      'id',
      String(BARE_VNI),
      'local',
      h.underlayAddress as string,
      'dev',
      HOST_UNDERLAY_IF,
      'dstport',
      String(BARE_VX_PORT),
      'nolearning',
    ]);
    await must(h, ['ip', 'addr', 'add', `${bareVxIp(i)}/24`, 'dev', BARE_VX_DEV]);
    await must(h, ['ip', 'link', 'set', BARE_VX_DEV, 'up']);
    await must(h, [
      'bridge',
      'fdb',
      'add',
      bareVxMac(peer),
      'dev',
      BARE_VX_DEV,
      'dst',
      other.underlayAddress as string,
      'self',
      'permanent',
    ]);
    await must(h, [
      'ip',
      'neigh',
      'add',
      bareVxIp(peer),
      'lladdr',
      bareVxMac(peer),
      'dev',
      BARE_VX_DEV,
      'nud',
      'permanent',
    ]);
    await startHop(h, {
      ns: hopVxNs(i),
      bridge: 'bnbr1',
      veth: 'bnh1',
      net: hopVxNet(i),
      remote: hopVxNet(peer),
      dev: BARE_VX_DEV,
      via: bareVxIp(peer),
      mtu: VXLAN_MTU,
    });
  }
}

interface Ctx {
  readonly a: Host;
  readonly b: Host;
  readonly serverIp: string;
  readonly serverPid: number;
  /** the server container on the routed-mode network */
  readonly serverIpRouted: string;
  readonly serverPidRouted: number;
  readonly clientPid: number;
  readonly seconds: number;
}

/** pid of the iperf3 server in the namespace `nsId` listening on `port` (its CPU time counts with the client's). */
function iperfServerPid(nsId: string, port: number): number | undefined {
  return listProcs().find((p) => p.netNs === nsId && /^iperf3 -s\b/.test(p.cmdline) && p.cmdline.endsWith(`-p ${port}`))
    ?.pid;
}

/** One iperf3 run B → A; a run that fails or hangs is retried once, and says so. */
async function vxRun(cond: VxCond, c: Ctx, attempt = 1): Promise<VxSample> {
  const common = ['-t', String(c.seconds), ...(c.seconds > 2 ? ['-O', '1'] : []), '--connect-timeout', '5000', '-J'];
  const timeoutMs = (c.seconds + 30) * 1000;
  const dev =
    cond === 'raw'
      ? HOST_UNDERLAY_IF
      : cond === 'truss' || cond === 'trussNs' || cond === 'trussRouted'
        ? TRUSS_VX_DEV
        : BARE_VX_DEV;
  const server = serverPid(cond, c);
  const tx0 = await txCounters(c.b, dev);
  const m0 = machineCpu();
  const s0 = server === undefined ? Number.NaN : cpuSeconds(server);
  const client = (argv: readonly string[], to: string, port: number) =>
    run([...argv, 'iperf3', '-c', to, '-p', String(port), ...common], { timeoutMs });
  const r =
    cond === 'truss'
      ? await c.b.docker(['exec', 'vc', 'iperf3', '-c', c.serverIp, '-p', String(CTR_PORT), ...common], timeoutMs)
      : cond === 'trussRouted'
        ? await c.b.docker(
            ['exec', 'vcr', 'iperf3', '-c', c.serverIpRouted, '-p', String(CTR_PORT), ...common],
            timeoutMs,
          )
        : cond === 'trussNs'
          ? await client(enterNetns({ pid: c.clientPid }, []), c.serverIp, NS_PORT)
          : cond === 'raw'
            ? await client(inNetns(c.b.netnsPath, []), c.a.underlayAddress as string, HOST_PORT)
            : cond === 'bare'
              ? await client(inNetns(c.b.netnsPath, []), bareVxIp(0), HOST_PORT)
              : await client(inNetns(`/run/netns/${hopVxNs(1)}`, []), `${hopVxNet(0)}.2`, HOST_PORT);
  if (r.code !== 0) {
    const why = `iperf3 (vxlan ${cond}) failed: ${r.stderr.trim()} ${r.stdout.slice(0, 500)}`;
    if (attempt > 1) throw new Error(why);
    process.stderr.write(`  ${why}; once more\n`);
    return vxRun(cond, c, attempt + 1);
  }
  const m = machineCpu();
  const serverCpu = server === undefined ? Number.NaN : cpuSeconds(server) - s0;
  const tx = await txCounters(c.b, dev);
  const j = JSON.parse(r.stdout) as {
    end?: { sum_sent?: { retransmits?: number; seconds?: number }; cpu_utilization_percent?: { host_total?: number } };
  };
  const gbps = iperfGbps(r.stdout);
  // the CPU counters also run through iperf3's omitted first second: count its bytes at the same rate
  const gb = (gbps * (c.seconds + (c.seconds > 2 ? 1 : 0))) / 8;
  const span = m.total - m0.total;
  // the client's own CPU: iperf3 -J reports it as a share of the run's wall time
  const clientCpu =
    ((j.end?.cpu_utilization_percent?.host_total ?? Number.NaN) / 100) * (j.end?.sum_sent?.seconds ?? c.seconds);
  return {
    gbps,
    busy: (m.busy - m0.busy) / span,
    softirq: (m.softirq - m0.softirq) / span,
    cpuPerGB: (m.busy - m0.busy) / gb,
    iperfCpuPerGB: (clientCpu + serverCpu) / gb,
    txPacketBytes: (tx.bytes - tx0.bytes) / (tx.packets - tx0.packets),
    retransmits: j.end?.sum_sent?.retransmits ?? Number.NaN,
  };
}

function serverPid(cond: VxCond, c: Ctx): number | undefined {
  const ns =
    cond === 'trussRouted'
      ? nsIdOfPid(c.serverPidRouted, 'net')
      : cond === 'truss' || cond === 'trussNs'
        ? nsIdOfPid(c.serverPid, 'net')
        : cond === 'hop'
          ? (nsIdOfFile(`/run/netns/${hopVxNs(0)}`, 'net') ?? '')
          : (nsIdOfFile(c.a.netnsPath, 'net') ?? '');
  const port = cond === 'truss' || cond === 'trussRouted' ? CTR_PORT : cond === 'trussNs' ? NS_PORT : HOST_PORT;
  return iperfServerPid(ns, port);
}

/** Device facts on host A: MTU and offloads of each link a condition crosses. */
async function linkReport(a: Host, serverPid: number): Promise<Record<string, string>> {
  const tunnelOffloads = ['tx-udp_tnl-segmentation', 'tx-udp_tnl-csum-segmentation'];
  const out: Record<string, string> = {};
  const fact = async (what: string, dev: string | undefined) => {
    if (!dev || (await a.exec(['ip', 'link', 'show', dev])).code !== 0) return;
    const f = await linkFacts(a, dev);
    out[what] = `mtu ${f.mtu}; ${await offloads(a, dev, tunnelOffloads)}`;
  };
  await fact(`${HOST_UNDERLAY_IF} (underlay veth)`, HOST_UNDERLAY_IF);
  await fact(`${TRUSS_VX_DEV} (truss VXLAN)`, TRUSS_VX_DEV);
  await fact(`${BARE_VX_DEV} (bare VXLAN)`, BARE_VX_DEV);
  // the container's veth: its host end is the link whose ifindex the container's eth0 names as its
  // peer (link_index; not /sys/class/net/eth0/iflink: sysfs under nsenter --net is the machine's)
  const ctr = { exec: (argv: readonly string[]) => run(enterNetns({ pid: serverPid }, argv)) };
  const eth0 = (
    JSON.parse((await ctr.exec(['ip', '-j', 'link', 'show', 'eth0'])).stdout || '[]') as {
      mtu?: number;
      link_index?: number;
    }[]
  )[0];
  const links = JSON.parse((await a.exec(['ip', '-j', 'link', 'show'])).stdout || '[]') as {
    ifindex: number;
    ifname: string;
    master?: string;
  }[];
  const veth = links.find((l) => l.ifindex === eth0?.link_index);
  await fact('container veth, host end', veth?.ifname);
  await fact('truss bridge of the network', veth?.master);
  out['container eth0'] = `mtu ${eth0?.mtu ?? '?'}; ${await offloads(ctr, 'eth0', tunnelOffloads)}`;
  return out;
}

/**
 * Creates the unencrypted cluster network on hosts A and B with an iperf3 server container on A
 * and a client container on B, the bare VXLAN baseline and the servers, then measures.
 */
export async function measureVxlan(hs: readonly [Host, Host], o: VxlanOptions): Promise<VxlanResult> {
  const [a, b] = hs;
  for (const h of hs) {
    const r = await createClusterNetwork(h, NETWORK, SUBNET, ['-o', 'truss.encrypt=false']);
    if (r.code !== 0) throw new Error(`${h.name}: docker network create ${NETWORK}: ${r.stderr.trim()}`);
  }
  await runContainer(a, { name: 'vs', network: NETWORK, cmd: ['iperf3', '-s', '-p', String(CTR_PORT)] });
  await runContainer(b, { name: 'vc', network: NETWORK });
  for (const h of hs) {
    const r = await createClusterNetwork(h, NETWORK_ROUTED, SUBNET_ROUTED, [
      '-o',
      'truss.encrypt=false',
      '-o',
      'truss.mode=routed',
    ]);
    if (r.code !== 0) throw new Error(`${h.name}: docker network create ${NETWORK_ROUTED}: ${r.stderr.trim()}`);
  }
  await runContainer(a, { name: 'vsr', network: NETWORK_ROUTED, cmd: ['iperf3', '-s', '-p', String(CTR_PORT)] });
  await runContainer(b, { name: 'vcr', network: NETWORK_ROUTED });
  const c: Ctx = {
    a,
    b,
    serverIp: await containerIp(a, 'vs', NETWORK),
    serverPid: await containerPid(a, 'vs'),
    serverIpRouted: await containerIp(a, 'vsr', NETWORK_ROUTED),
    serverPidRouted: await containerPid(a, 'vsr'),
    clientPid: await containerPid(b, 'vc'),
    seconds: o.seconds,
  };
  await startNsIperfServer(a, c.serverPid, NS_PORT);
  await startBareVxlan(hs);
  await must(a, ['iperf3', '-s', '-D', '-p', String(HOST_PORT)]);
  const hopServer = await run(inNetns(`/run/netns/${hopVxNs(0)}`, ['iperf3', '-s', '-D', '-p', String(HOST_PORT)]));
  if (hopServer.code !== 0) throw new Error(`hop iperf3 -s: ${hopServer.stderr.trim()}`);
  await waitFor(() => nsPing({ pid: c.clientPid }, c.serverIp, 1), 30_000, {
    what: `vc on ${b.name} reaching vs (${c.serverIp}) over ${TRUSS_VX_DEV}`,
    intervalMs: 250,
  });
  const samples: Record<VxCond, VxSample[]> = { truss: [], trussNs: [], raw: [], bare: [], hop: [], trussRouted: [] };
  if (o.warmUp) for (const cond of VX_CONDS) await vxRun(cond, c);
  for (let i = 0; i < o.reps; i++) {
    const k = i % VX_CONDS.length;
    for (const cond of [...VX_CONDS.slice(k), ...VX_CONDS.slice(0, k)]) {
      const s = await vxRun(cond, c);
      samples[cond].push(s);
      o.log(
        `  vxlan rep ${i + 1}/${o.reps} ${cond}: ${s.gbps.toFixed(3)} Gbit/s (cpu busy ${(s.busy * 100).toFixed(0)}%, softirq ${(s.softirq * 100).toFixed(0)}%, ${s.cpuPerGB.toFixed(2)} CPU s/GB, tx pkt ${s.txPacketBytes.toFixed(0)} B, retr ${s.retransmits})`,
      );
    }
  }
  return { samples, links: await linkReport(a, c.serverPid), seconds: o.seconds, reps: o.reps };
}
