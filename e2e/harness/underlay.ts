/**
 * The physical network between simulated hosts, for multi-host tests: namespace
 * truss-e2e-ul holding a bridge (ulbr0, 198.18.255.254/24, MTU 1500) and ONE etcd listening on
 * 198.18.255.254:2379. attach() gives a host a veth into it: `eth-ul` (198.18.255.N/24, MTU
 * 1500) in the host's namespace, `ul-<host>` on the bridge. With `family: 6` the same with IPv6
 * only (fd00:255::fe/64 and etcd at [fd00:255::fe]:2379, hosts fd00:255::N). Cluster traffic is on-link, so
 * hosts get no default route. etcd can be killed and restarted (same data dir) for outage
 * tests; pcap() records what crosses the bridge. stop() removes all of it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { inNetns, type RunOptions, type RunResult, run, runOk } from './exec.ts';
import { createNetns, deleteNetns } from './netns.ts';
import { CHILD_PATH, NETNS_PREFIX, WORK_DIR } from './paths.ts';
import { isAlive, killAllMatching, waitExit } from './procs.ts';
import { sleep, waitFor } from './wait.ts';

export const UNDERLAY_NETNS = `${NETNS_PREFIX}ul`;
export const UNDERLAY_BRIDGE = 'ulbr0';
/** The underlay's own address: etcd's. Hosts are 198.18.255.N (N = 1..253). */
export const UNDERLAY_ADDRESS = '198.18.255.254';
export const UNDERLAY_PREFIX_LEN = 24;
/** The host side of a host's underlay veth. */
export const HOST_UNDERLAY_IF = 'eth-ul';
export const UNDERLAY_MTU = 1500;
/** An IPv6-only underlay's own address (etcd's there); hosts are fd00:255::N. */
export const UNDERLAY_ADDRESS6 = 'fd00:255::fe';
export const UNDERLAY_PREFIX_LEN6 = 64;

export interface UnderlayOptions {
  /** etcd's client port on UNDERLAY_ADDRESS (default 2379). */
  readonly etcdPort?: number;
  /** false: no etcd in the underlay (a test runs its own, e.g. etcdIn a host's namespace) */
  readonly etcd?: boolean;
  /**
   * 6: an IPv6-only underlay: the bridge and etcd at UNDERLAY_ADDRESS6, each host's `eth-ul` at
   * fd00:255::<index>/64 with no IPv4 address. Default 4 (IPv4 only, as described above).
   */
  readonly family?: 4 | 6;
}

export interface Etcd {
  /** host:port, as truss's --store etcd://... wants it */
  readonly endpoint: string;
  /** http://host:port */
  readonly url: string;
  readonly dataDir: string;
  readonly logFile: string;
  pid(): number | undefined;
  running(): boolean;
  /** Sends signal (default SIGKILL: an outage, not a shutdown) and waits until it exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same data dir (the cluster's state survives) and waits until healthy. */
  restart(): Promise<void>;
  /** GET /health from inside the underlay: true when etcd says it is healthy. */
  healthy(): Promise<boolean>;
}

export interface UnderlayAttachment {
  /** the host's underlay address (bare IP) */
  readonly address: string;
  /** the host-side interface name (HOST_UNDERLAY_IF) */
  readonly ifname: string;
  /** the bridge-side interface name, in the underlay namespace */
  readonly peer: string;
}

export interface Pcap {
  /** Stops tcpdump (SIGINT, so the file is complete) and returns the file's path. Idempotent. */
  stop(): Promise<string>;
}

export interface Underlay {
  readonly name: string;
  readonly netnsPath: string;
  readonly bridge: string;
  readonly dir: string;
  readonly etcd: Etcd;
  /**
   * Adds a veth from the bridge into the named network namespace (a host's): `eth-ul` there
   * with 198.18.255.<index>/24, up, MTU 1500. Deleting that namespace removes the pair.
   */
  attach(netnsName: string, index: number, peerSuffix: string): Promise<UnderlayAttachment>;
  /** Runs argv in the underlay's namespace. */
  exec(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Records packets crossing the bridge, on all its ports (full size), into a pcap file under dir; always stop() it. */
  pcap(filter?: string): Promise<Pcap>;
  stop(): Promise<void>;
}

const env = (): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD')) e[k] = v;
  e.PATH = CHILD_PATH;
  return e;
};

/**
 * tcpdump writing every packet on `iface` in the namespace at netnsPath to `file`: immediate
 * mode and -U, so each packet reaches the file as it comes (none is left in the ring buffer at
 * SIGINT); -s 0 keeps whole packets, so a payload search sees every byte.
 */
export async function startPcap(netnsPath: string, iface: string, file: string, filter = ''): Promise<Pcap> {
  const argv = inNetns(netnsPath, ['tcpdump', '-i', iface, '-n', '--immediate-mode', '-U', '-s', '0', '-w', file]);
  if (filter) argv.push(filter);
  const child: ChildProcess = spawn(argv[0] as string, argv.slice(1), {
    env: env(),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  let exited = false;
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const closed = new Promise<void>((resolve) => {
    child.on('close', () => {
      exited = true;
      resolve();
    });
    child.on('error', () => {
      exited = true;
      resolve();
    });
  });
  let done: Promise<string> | undefined;
  const pcap: Pcap = {
    stop() {
      done ??= (async () => {
        await sleep(200); // the last packets in flight
        if (!exited) child.kill('SIGINT');
        const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await closed;
        clearTimeout(killer);
        return file;
      })();
      return done;
    },
  };
  try {
    await waitFor(
      () => {
        if (exited) throw new Error(`tcpdump exited: ${stderr.trim()}`);
        return stderr.includes('listening on');
      },
      10_000,
      { what: `tcpdump listening on ${iface}`, intervalMs: 50 },
    );
  } catch (err) {
    await pcap.stop();
    throw err;
  }
  return pcap;
}

/** One packet of a pcap file as `tcpdump -r FILE -n -q -tt` prints it. */
export interface PcapLine {
  readonly line: string;
  /** 'UDP' | 'TCP' | 'ICMP' | 'ARP' | 'IP6' | 'other' */
  readonly proto: string;
  readonly src?: string;
  readonly srcPort?: number;
  readonly dst?: string;
  readonly dstPort?: number;
}

/** Parses `tcpdump -n -q` lines ("IP 198.18.255.1.51820 > 198.18.255.2.51820: UDP, length 148"). */
export function parsePcapLines(text: string): PcapLine[] {
  const out: PcapLine[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const ip = /\bIP (\d+\.\d+\.\d+\.\d+)(?:\.(\d+))? > (\d+\.\d+\.\d+\.\d+)(?:\.(\d+))?: (\w+)/.exec(line);
    if (ip) {
      const [, src, sp, dst, dp, kind] = ip;
      const proto = ['UDP', 'TCP', 'ICMP'].includes(kind?.toUpperCase() ?? '')
        ? (kind as string).toUpperCase()
        : 'other';
      out.push({
        line,
        proto,
        src: src as string,
        dst: dst as string,
        ...(sp ? { srcPort: Number(sp) } : {}),
        ...(dp ? { dstPort: Number(dp) } : {}),
      });
    } else if (/\bARP\b/.test(line)) out.push({ line, proto: 'ARP' });
    else if (/\bIP6\b/.test(line)) out.push({ line, proto: 'IP6' });
    else out.push({ line, proto: 'other' });
  }
  return out;
}

/** Reads a pcap file back: one parsed line per packet. */
export async function readPcap(file: string): Promise<PcapLine[]> {
  const r = await run(['tcpdump', '-r', file, '-n', '-q', '-tt'], { env: env(), timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`tcpdump -r ${file}: ${r.stderr.trim()}`);
  return parsePcapLines(r.stdout);
}

/** Whether the bytes of a pcap file contain `text` anywhere (headers or payload). */
export const pcapContains = (file: string, text: string): boolean =>
  readFileSync(file).includes(Buffer.from(text, 'utf8'));

export async function startUnderlay(opts: UnderlayOptions = {}): Promise<Underlay> {
  const name = UNDERLAY_NETNS;
  const dir = join(WORK_DIR, 'underlay');
  await killAllMatching((p) => p.cmdline.includes(`${dir}/`));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const netnsPath = await createNetns(name); // deletes a stale one of the same name first
  const ul = (argv: readonly string[]) => runOk(inNetns(netnsPath, argv), { env: env() });
  const v6 = opts.family === 6;
  const etcd = etcdIn(netnsPath, dir, opts.etcdPort ?? 2379, [v6 ? UNDERLAY_ADDRESS6 : UNDERLAY_ADDRESS]);
  let stopped: Promise<void> | undefined;
  const underlay: Underlay = {
    name,
    netnsPath,
    bridge: UNDERLAY_BRIDGE,
    dir,
    etcd,
    async attach(netnsName, index, peerSuffix) {
      if (!Number.isInteger(index) || index < 1 || index > 253) throw new Error(`underlay index ${index}: use 1..253`);
      const peer = `ul-${peerSuffix}`.slice(0, 15);
      const address = v6 ? `fd00:255::${index}` : `198.18.255.${index}`;
      const mtu = ['mtu', String(UNDERLAY_MTU)];
      await ul([
        'ip',
        'link',
        'add',
        peer,
        ...mtu,
        'type',
        'veth',
        'peer',
        'name',
        HOST_UNDERLAY_IF,
        'netns',
        netnsName,
      ]);
      await ul(['ip', 'link', 'set', peer, 'master', UNDERLAY_BRIDGE, 'up']);
      const inHost = (argv: readonly string[]) => runOk(['ip', '-n', netnsName, ...argv], { env: env() });
      await inHost(['link', 'set', HOST_UNDERLAY_IF, 'mtu', String(UNDERLAY_MTU)]);
      // IPv4-only: no IPv6 at all; IPv6-only: no router solicitations (nothing routes here)
      const sysctl = v6
        ? ['sysctl', '-qw', `net.ipv6.conf.${HOST_UNDERLAY_IF}.router_solicitations=0`]
        : ['sysctl', '-qw', `net.ipv6.conf.${HOST_UNDERLAY_IF}.disable_ipv6=1`];
      await runOk(inNetns(`/run/netns/${netnsName}`, sysctl), { env: env() });
      if (v6) await inHost(['addr', 'add', `${address}/${UNDERLAY_PREFIX_LEN6}`, 'dev', HOST_UNDERLAY_IF, 'nodad']);
      else await inHost(['addr', 'add', `${address}/${UNDERLAY_PREFIX_LEN}`, 'dev', HOST_UNDERLAY_IF]);
      await inHost(['link', 'set', HOST_UNDERLAY_IF, 'up']);
      return { address, ifname: HOST_UNDERLAY_IF, peer };
    },
    exec: (argv, o) => run(inNetns(netnsPath, argv), { env: env(), ...o }),
    // why `any`: frames the bridge forwards port to port never pass the bridge device itself;
    // every port sees them (each packet is recorded twice: in on one port, out on another)
    pcap: (filter = '') => startPcap(netnsPath, 'any', join(dir, `ul-${Date.now()}.pcap`), filter),
    stop() {
      stopped ??= stopUnderlay(underlay);
      return stopped;
    },
  };
  try {
    // one family only: IPv4 without router solicitations or MLD reports in the captures; IPv6 without IPv4
    if (!v6) await ul(['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    await ul(['ip', 'link', 'add', UNDERLAY_BRIDGE, 'mtu', String(UNDERLAY_MTU), 'type', 'bridge']);
    if (v6)
      await ul(['ip', 'addr', 'add', `${UNDERLAY_ADDRESS6}/${UNDERLAY_PREFIX_LEN6}`, 'dev', UNDERLAY_BRIDGE, 'nodad']);
    else await ul(['ip', 'addr', 'add', `${UNDERLAY_ADDRESS}/${UNDERLAY_PREFIX_LEN}`, 'dev', UNDERLAY_BRIDGE]);
    await ul(['ip', 'link', 'set', UNDERLAY_BRIDGE, 'up']);
    if (opts.etcd !== false) await etcd.restart();
  } catch (err) {
    await underlay.stop().catch(() => {});
    throw err;
  }
  return underlay;
}

async function stopUnderlay(u: Underlay): Promise<void> {
  const problems: string[] = [];
  await u.etcd.kill('SIGTERM').catch((err: Error) => problems.push(err.message));
  await deleteNetns(u.name).catch((err: Error) => problems.push(err.message)); // takes the bridge and veths
  const left = await killAllMatching((p) => p.cmdline.includes(`${u.dir}/`));
  if (left.length > 0) problems.push(`processes survived SIGKILL: ${left.map((p) => p.pid).join(' ')}`);
  const logs = join(WORK_DIR, 'logs', u.name);
  mkdirSync(logs, { recursive: true });
  if (existsSync(u.etcd.logFile)) copyFileSync(u.etcd.logFile, join(logs, 'etcd.log'));
  try {
    rmSync(u.dir, { recursive: true, force: true, maxRetries: 3 });
  } catch (err) {
    problems.push(`rm -rf ${u.dir}: ${(err as Error).message}`);
  }
  if (problems.length > 0) throw new Error(`underlay teardown: ${problems.join('; ')}`);
}

/**
 * An etcd (one member) in the namespace at netnsPath, data and log under dir, listening for
 * clients on every address of `listen` (port `port`); endpoint and url name the first.
 * With `environment`, etcd gets no flags at all: it is configured by those ETCD_* variables only
 * (plus ETCD_DATA_DIR=dataDir unless given), as Debian's etcd.service configures it from its
 * Environment= lines and /etc/default/etcd; `listen` and `port` must then say where they make it
 * listen (they only name the endpoint and the health check).
 */
export function etcdIn(
  netnsPath: string,
  dir: string,
  port: number,
  listen: readonly string[] = [UNDERLAY_ADDRESS],
  environment?: Readonly<Record<string, string>>,
): Etcd {
  const dataDir = join(dir, 'etcd-data');
  const logFile = join(dir, 'etcd.log');
  const hostPart = (a: string | undefined): string => (a?.includes(':') ? `[${a}]` : `${a}`);
  const url = `http://${hostPart(listen[0])}:${port}`;
  let child: ChildProcess | undefined;
  const pid = (): number | undefined => (child?.pid !== undefined && isAlive(child.pid) ? child.pid : undefined);
  const healthy = async (): Promise<boolean> => {
    // -g: the brackets of an IPv6 URL are not a curl glob
    const r = await run(inNetns(netnsPath, ['curl', '-sg', '--max-time', '1', `${url}/health`]), { env: env() });
    return r.code === 0 && /"health"\s*:\s*"true"/.test(r.stdout);
  };
  const self: Etcd = {
    endpoint: `${hostPart(listen[0])}:${port}`,
    url,
    dataDir,
    logFile,
    pid,
    running: () => pid() !== undefined,
    healthy,
    async kill(signal = 'SIGKILL') {
      const p = pid();
      if (p === undefined) return;
      process.kill(p, signal);
      if (!(await waitExit(p, 10_000))) {
        process.kill(p, 'SIGKILL');
        await waitExit(p, 5000);
      }
    },
    async restart() {
      if (pid() !== undefined) throw new Error('etcd is already running');
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      const flags = [
        '--name',
        'ul',
        '--data-dir',
        dataDir,
        '--listen-client-urls',
        listen.map((a) => `http://${hostPart(a)}:${port}`).join(','),
        '--advertise-client-urls',
        url,
        // peers: this namespace's own loopback (a one-member cluster); never the machine's ports
        '--listen-peer-urls',
        'http://127.0.0.1:2380',
        '--initial-advertise-peer-urls',
        'http://127.0.0.1:2380',
        '--initial-cluster',
        'ul=http://127.0.0.1:2380',
        // ignored once the data dir holds a member: a restart keeps the cluster's state
        '--initial-cluster-state',
        'new',
      ];
      const argv = inNetns(netnsPath, ['etcd', ...(environment ? [] : flags)]);
      const out = openSync(logFile, 'a');
      const childEnv = environment ? { ...env(), ETCD_DATA_DIR: dataDir, ...environment } : env();
      child = spawn(argv[0] as string, argv.slice(1), { env: childEnv, stdio: ['ignore', out, out], detached: true });
      child.unref();
      closeSync(out);
      try {
        await waitFor(
          async () => {
            if (pid() === undefined) throw new Error('etcd exited');
            return healthy();
          },
          30_000,
          { what: `etcd healthy at ${url}`, intervalMs: 100 },
        );
      } catch (err) {
        const log = existsSync(logFile) && statSync(logFile).size > 0 ? readFileSync(logFile, 'utf8') : '';
        throw new Error(`${(err as Error).message}\n--- etcd log tail ---\n${log.split('\n').slice(-20).join('\n')}`);
      }
    },
  };
  return self;
}
