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
import { CHILD_PATH, NETNS_PREFIX } from '../e2e/harness/paths.ts';
import { listProcs, nsIdOfFile } from '../e2e/harness/procs.ts';

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
export async function startBareTunnel(a: Host, b: Host, mtu: number): Promise<void> {
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

export const hopNs = (i: number): string => `/run/netns/${NETNS_PREFIX}bnhop${i}`;

/** Host i's helper namespace behind veth + bridge, with a route to the other side's hop subnet through bnwg0. */
export async function startHop(h: Host, i: number, mtu: number, remote: string): Promise<void> {
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
export async function stopBareTunnel(hs: readonly Host[]): Promise<void> {
  for (const h of hs) await inHostMounts(h, ['ip', 'link', 'del', BARE_DEV]);
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
