/**
 * The multi-host benchmark's baselines and kernel counters: a bare wireguard-go tunnel between
 * two simulated hosts (bnwg0, own keys and port, 198.19.77.0/24), the same tunnel behind a
 * veth + plain bridge hop on each side (bnbr0, helper namespaces), and the counters read around
 * each run (CPU of the machine and of processes, tunnel tx, UDP drops, offloads, Docker's cgroup).
 * Everything here is made by the benchmark and goes with its hosts.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inNetns, runOk } from '../e2e/harness/exec.ts';
import { type Host, inHostMounts } from '../e2e/harness/host.ts';
import { createNetns, deleteNetns } from '../e2e/harness/netns.ts';
import { enterNetns } from '../e2e/harness/netns-tcp.ts';
import { CHILD_PATH, NETNS_PREFIX } from '../e2e/harness/paths.ts';
import { killAllMatching, listProcs, nsIdOfFile, nsIdOfPid } from '../e2e/harness/procs.ts';

/** the bare tunnel: own device, port and addresses (198.19.77.<host index>) */
export const BARE_DEV = 'bnwg0';
export const BARE_PORT = 51821;
export const bareIp = (i: number): string => `198.19.77.${i + 1}`;
/**
 * The bare tunnel plus the hop a container has and a host does not: a helper namespace per
 * host behind a veth on a plain bridge (bnbr0, 198.19.78.0/24 on A, .79 on B), routed
 * through bnwg0, MTU as the tunnel's: no truss, no Docker on the path but the FORWARD accept.
 */
export const HOP_BRIDGE = 'bnbr0';
export const hopNet = (i: number): string => `198.19.${78 + i}`;

export const BARE_IPERF_PORT = 5202;

/** A bare tunnel: device, port, addresses, the wireguard-go it runs, and whether it has the hop. */
export interface BareTunnel {
  readonly dev: string;
  readonly port: number;
  readonly ip: (i: number) => string;
  /** default: the wireguard-go on the children's PATH */
  readonly wgGo?: string;
  readonly hop: boolean;
}
export const BARE: BareTunnel = { dev: BARE_DEV, port: BARE_PORT, ip: bareIp, hop: true };
/** the second bare tunnel, for the other wireguard-go version (bench/cluster-wggo.ts): no hop */
export const BARE_OTHER: BareTunnel = { dev: 'bnwg1', port: 51822, ip: (i) => `198.19.76.${i + 1}`, hop: false };

async function inHost(h: Host, argv: readonly string[], timeoutMs = 15_000): Promise<string> {
  const r = await inHostMounts(h, argv, timeoutMs);
  if (r.code !== 0) throw new Error(`${h.name}: ${argv.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** MTU of a link in the host's namespace. */
export async function linkMtu(h: Host, dev: string): Promise<number> {
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
export async function startBareTunnel(a: Host, b: Host, mtu: number, t: BareTunnel = BARE): Promise<void> {
  const wgGo =
    t.wgGo ?? (await runOk(['sh', '-c', 'command -v wireguard-go'], { env: { PATH: CHILD_PATH } })).stdout.trim();
  const keys: { file: string; pub: string }[] = [];
  for (const h of [a, b]) {
    const priv = (await runOk(['wg', 'genkey'])).stdout.trim();
    const file = join(h.dir, `${t.dev}.key`);
    writeFileSync(file, `${priv}\n`, { mode: 0o600 });
    keys.push({ file, pub: (await runOk(['wg', 'pubkey'], { input: `${priv}\n` })).stdout.trim() });
  }
  for (const [i, h] of [a, b].entries()) {
    const peer = i === 0 ? 1 : 0;
    await inHost(h, ['setsid', '--wait', 'env', '-i', '-C', '/', wgGo, t.dev]);
    await inHost(h, ['ip', 'addr', 'add', `${t.ip(i)}/24`, 'dev', t.dev]);
    await inHost(h, ['ip', 'link', 'set', t.dev, 'mtu', String(mtu), 'up']);
    const other = [a, b][peer] as Host;
    await inHost(h, [
      'wg',
      'set',
      t.dev,
      'private-key',
      (keys[i] as { file: string }).file,
      'listen-port',
      String(t.port),
      'peer',
      (keys[peer] as { pub: string }).pub,
      'endpoint',
      `${other.underlayAddress}:${t.port}`,
      'allowed-ips',
      t.hop ? `${t.ip(peer)}/32,${hopNet(peer)}.0/24` : `${t.ip(peer)}/32`,
    ]);
    if (!t.hop) continue;
    await startHop(h, {
      ns: `${NETNS_PREFIX}bnhop${i}`,
      bridge: HOP_BRIDGE,
      veth: 'bnh0',
      net: hopNet(i),
      remote: hopNet(peer),
      dev: t.dev,
      mtu,
    });
  }
  const srv = await a.exec(['iperf3', '-s', '-D', '-B', t.ip(0), '-p', String(BARE_IPERF_PORT)]);
  if (srv.code !== 0) throw new Error(`${a.name}: iperf3 -s: ${srv.stderr.trim()}`);
  if (!t.hop) return;
  const hop = await runOk(inNetns(hopNs(0), ['iperf3', '-s', '-D', '-p', String(BARE_IPERF_PORT)]));
  if (hop.code !== 0) throw new Error(`hop iperf3 -s: ${hop.stderr.trim()}`);
}

export const hopNs = (i: number): string => `/run/netns/${NETNS_PREFIX}bnhop${i}`;

/**
 * A helper namespace behind a veth on a plain bridge in host h, routed to the other side's
 * helper subnet through a tunnel device: the hop a container has and a host does not.
 */
export interface HopSpec {
  /** the helper namespace's name (NETNS_PREFIX...), the bridge and the veth's host end */
  readonly ns: string;
  readonly bridge: string;
  readonly veth: string;
  /** this side's /24 as "a.b.c" (bridge .1, helper .2) and the other side's */
  readonly net: string;
  readonly remote: string;
  /** the tunnel device the other side's /24 is routed through, and the next hop on it (none: on-link, a TUN) */
  readonly dev: string;
  readonly via?: string;
  readonly mtu: number;
}

export async function startHop(h: Host, spec: HopSpec): Promise<void> {
  const ns = await createNetns(spec.ns);
  h.onStop(() => deleteNetns(spec.ns));
  const { net, bridge, veth } = spec;
  const m = String(spec.mtu);
  const host = async (argv: readonly string[]) => {
    const r = await h.exec(argv);
    if (r.code !== 0) throw new Error(`${h.name}: ${argv.join(' ')}: ${r.stderr.trim()}`);
  };
  await host(['ip', 'link', 'add', bridge, 'mtu', m, 'type', 'bridge']);
  await host(['ip', 'addr', 'add', `${net}.1/24`, 'dev', bridge]);
  await host(['ip', 'link', 'set', bridge, 'up']);
  await host(['ip', 'link', 'add', veth, 'mtu', m, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await host(['ip', 'link', 'set', veth, 'master', bridge, 'up']);
  await host(['ip', 'route', 'add', `${spec.remote}.0/24`, ...(spec.via ? ['via', spec.via] : []), 'dev', spec.dev]);
  // why: dockerd's FORWARD policy is DROP; truss accepts its bridges the same way (first rule of FORWARD)
  for (const dir of ['-i', '-o']) await host(['iptables', '-I', 'FORWARD', '1', dir, bridge, '-j', 'ACCEPT']);
  const inNs = (argv: readonly string[]) => runOk(inNetns(ns, argv));
  await inNs(['ip', 'addr', 'add', `${net}.2/24`, 'dev', 'eth0']);
  await inNs(['ip', 'link', 'set', 'eth0', 'up']);
  await inNs(['ip', 'route', 'add', 'default', 'via', `${net}.1`]);
}

/**
 * `iperf3 -s -D -p port` entered into a container's network namespace only (nsenter --net, so
 * outside its cgroup). The daemon is no child of the container: the host's stop() kills it,
 * else it would outlive the container and keep its namespace.
 */
export async function startNsIperfServer(h: Host, containerPid: number, port: number): Promise<void> {
  const netNs = nsIdOfPid(containerPid, 'net');
  const r = await runOk(enterNetns({ pid: containerPid }, ['iperf3', '-s', '-D', '-p', String(port)]));
  if (r.code !== 0) throw new Error(`${h.name}: iperf3 -s in pid ${containerPid}'s namespace: ${r.stderr.trim()}`);
  h.onStop(async () => {
    await killAllMatching((p) => p.netNs === netNs && /^iperf3 -s -D -p /.test(p.cmdline));
  });
}

/** Deleting the TUN makes wireguard-go exit. */
export async function stopBareTunnel(hs: readonly Host[], t: BareTunnel = BARE): Promise<void> {
  for (const h of hs) await inHostMounts(h, ['ip', 'link', 'del', t.dev]);
}

/** pids of the wireguard-go serving `dev` in each of the hosts' network namespaces. */
export function wireguardGoPids(hs: readonly Host[], dev: string): number[] {
  return hs.map((h) => {
    const ns = nsIdOfFile(h.netnsPath, 'net');
    const p = listProcs().find((q) => q.netNs === ns && new RegExp(`wireguard-go\\s+(-f\\s+)?${dev}$`).test(q.cmdline));
    if (!p) throw new Error(`${h.name}: no wireguard-go for ${dev}`);
    return p.pid;
  });
}

const TICK = 100; // USER_HZ
/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK;
}
/** The machine's CPU time so far, all cores: busy and softirq seconds, and the total. */
export function machineCpu(): { busy: number; softirq: number; total: number } {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  const [idle, iowait, softirq] = [f[3], f[4], f[6]];
  const total = f.reduce((x, y) => x + y, 0) / TICK;
  return { busy: total - ((idle ?? 0) + (iowait ?? 0)) / TICK, softirq: (softirq ?? 0) / TICK, total };
}

/** UDP InDatagrams and RcvbufErrors of a host's namespace (/proc/net/snmp read from inside it). */
export async function udpCounters(h: Host): Promise<{ inDatagrams: number; rcvbufErrors: number }> {
  const lines = (await h.exec(['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp: '));
  const [names, values] = lines.map((l) => l.split(/\s+/).slice(1));
  const get = (k: string): number => Number(values?.[names?.indexOf(k) ?? -1] ?? Number.NaN);
  return { inDatagrams: get('InDatagrams') + get('RcvbufErrors'), rcvbufErrors: get('RcvbufErrors') };
}

/** tx bytes and packets of a link in a host's namespace. */
export async function txCounters(h: Host, dev: string): Promise<{ bytes: number; packets: number }> {
  const r = await h.exec(['ip', '-s', '-j', 'link', 'show', 'dev', dev]);
  const tx = (JSON.parse(r.stdout || '[]') as { stats64?: { tx?: { bytes: number; packets: number } } }[])[0]?.stats64
    ?.tx;
  return tx ?? { bytes: Number.NaN, packets: Number.NaN };
}

/** Where Docker puts containers in the cpu controller, and how many share that parent (cgroup v1 here). */
export function dockerCgroup(): string {
  const dir = '/sys/fs/cgroup/cpu/docker';
  try {
    const shares = readFileSync(join(dir, 'cpu.shares'), 'utf8').trim();
    const n = readdirSync(dir).filter((d) => /^[0-9a-f]{64}$/.test(d)).length;
    return `${dir} (cpu.shares ${shares}, shared by ${n} containers of all the machine's dockerds)`;
  } catch {
    return 'no cgroup v1 cpu/docker parent';
  }
}
