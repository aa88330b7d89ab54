/**
 * Throwaway network namespaces for the kernel tests (*.netns.ts, root): CNI testutils.NewNS
 * in small. Every namespace is named truss-t-<random>; a suite makes its namespaces and
 * processes through one Scratch (createScratch), which takes them down in the suite's `after`,
 * and each file ends by asserting that no truss-t-* namespace is left. The fixtures the suites
 * share: a simulated Docker host with truss's bridges and "containers" (simulatedHost), and a
 * host routing for one container (routedHost, the tunnels' tests). Nothing here touches the
 * namespace the test runner itself lives in.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { computeDesired, type DesiredKernel } from '../../core/desired.ts';
import type { EndpointSpec, NetworkSpec } from '../../core/model.ts';
import { bridgeName, hostVethName, macFor, peerVethName } from '../../core/naming.ts';
import type { OnCommand } from './exec.ts';
import { createLinuxDataplane, type LinuxDataplane } from './linux-dataplane.ts';

/** TRUSS_TEST_NS_PREFIX lets two checkouts run kernel tests side by side. */
export const TEST_NS_PREFIX = process.env.TRUSS_TEST_NS_PREFIX ?? 'truss-t-';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs argv (no shell); never throws on exit != 0. */
export function run(argv: readonly string[], stdin?: string, timeoutMs = 15_000): Promise<RunResult> {
  return new Promise((resolve) => {
    const [file, ...args] = argv as [string, ...string[]];
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.on('error', (e) => resolve({ code: 127, stdout, stderr: e.message }));
    child.on('close', (code) => resolve({ code: code ?? 128, stdout, stderr }));
    child.stdin.on('error', () => {});
    child.stdin.end(stdin ?? '');
  });
}

/** Runs argv and throws with its stderr on exit != 0. */
export async function must(argv: readonly string[], stdin?: string): Promise<string> {
  const r = await run(argv, stdin);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} → ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

export interface TestNs {
  readonly name: string;
  readonly path: string;
  /** argv run inside the namespace (nsenter --net) */
  argv(cmd: readonly string[]): string[];
  run(cmd: readonly string[], stdin?: string, timeoutMs?: number): Promise<RunResult>;
  must(cmd: readonly string[], stdin?: string): Promise<string>;
  /** `ip -j <args>` parsed */
  ipJson<T = Record<string, unknown>[]>(args: readonly string[]): Promise<T>;
  remove(): Promise<void>;
}

export async function createTestNs(role: string): Promise<TestNs> {
  const name = `${TEST_NS_PREFIX}${randomBytes(3).toString('hex')}-${role}`.slice(0, 40);
  await must(['ip', 'netns', 'add', name]);
  const path = `/run/netns/${name}`;
  const argv = (cmd: readonly string[]): string[] => ['nsenter', `--net=${path}`, '--', ...cmd];
  const ns: TestNs = {
    name,
    path,
    argv,
    run: (cmd, stdin, timeoutMs) => run(argv(cmd), stdin, timeoutMs),
    must: (cmd, stdin) => must(argv(cmd), stdin),
    ipJson: async <T>(args: readonly string[]) => JSON.parse(await must(argv(['ip', '-j', ...args]))) as T,
    remove: async () => {
      await run(['ip', 'netns', 'del', name]);
    },
  };
  await ns.must(['ip', 'link', 'set', 'lo', 'up']);
  return ns;
}

/**
 * What a suite sets up and must take down again: scratch namespaces, the processes it starts,
 * and any other teardown. close() runs the deferred work (newest first), kills the processes,
 * then removes the namespaces (newest first); again is a no-op.
 */
export interface Scratch {
  /** A fresh namespace (createTestNs), removed at close. */
  ns(role: string): Promise<TestNs>;
  /** A process (a server, a pinger) SIGKILLed at close. */
  proc<P extends ChildProcess>(p: P): P;
  /** Teardown run first at close (stop a daemon, close a dataplane, remove a temp dir). */
  defer(fn: () => unknown): void;
  /** Every namespace made, oldest first (removed ones too). */
  readonly spaces: readonly TestNs[];
  close(): Promise<void>;
}

/** A Scratch closed by its owner (outside node:test: benchmarks, helpers that own a close()). */
export function scratchPool(): Scratch {
  const spaces: TestNs[] = [];
  const live: TestNs[] = [];
  const procs: ChildProcess[] = [];
  const deferred: (() => unknown)[] = [];
  return {
    spaces,
    ns: async (role) => {
      const s = await createTestNs(role);
      spaces.push(s);
      live.push(s);
      return s;
    },
    proc: (p) => {
      procs.push(p);
      return p;
    },
    defer: (fn) => {
      deferred.push(fn);
    },
    close: async () => {
      for (const fn of deferred.splice(0).reverse()) await fn();
      for (const p of procs.splice(0)) p.kill('SIGKILL');
      for (const s of live.splice(0).reverse()) await s.remove();
    },
  };
}

/**
 * A Scratch for the suite whose describe body calls it: closed in that suite's `after` hook
 * (hooks run in the order they are registered: call it before an `after` that checks the leftovers).
 */
export function createScratch(): Scratch {
  const scratch = scratchPool();
  after(() => scratch.close());
  return scratch;
}

export async function listTestNamespaces(): Promise<string[]> {
  const out = await must(['ip', '-j', 'netns', 'list']);
  const list = out.trim() === '' ? [] : (JSON.parse(out) as { name: string }[]);
  return list.map((n) => n.name).filter((n) => n.startsWith(TEST_NS_PREFIX));
}

export const randomId = (): string => randomBytes(32).toString('hex');

/** Records every kernel command the dataplane runs, to tell reads from writes. */
export function commandRecorder(): { onCommand: OnCommand; argvs: string[][]; writes(): string[][]; reset(): void } {
  const argvs: string[][] = [];
  const isWrite = (a: readonly string[]): boolean =>
    a.includes('-batch') ||
    a.includes('-w') ||
    a.includes('-f') ||
    a.at(-1) === '-i' ||
    a.includes('del') ||
    a.includes('--noflush');
  return {
    onCommand: (argv) => {
      argvs.push([...argv]);
    },
    argvs,
    // `iptables -w -S` reads: -w is "wait for the lock" there, not sysctl's "write"
    writes: () => argvs.filter((a) => isWrite(a) && !a.includes('-S') && !a.includes('-V')),
    reset: () => {
      argvs.length = 0;
    },
  };
}

// ---------- a simulated Docker host with "containers" (traffic tests) ----------

export const BUSYBOX = '/usr/bin/busybox';

/** A truss network spec on 198.18.<n>.0/24 (and fd00:<n>::/64 with v6). */
export const testNetwork = (id: string, n: number, opts: { internal?: boolean; v6?: boolean } = {}): NetworkSpec => ({
  id,
  bridge: bridgeName(id),
  bridgeNamed: false,
  mtu: 1500,
  internal: opts.internal ?? false,
  nat: !opts.internal,
  ipv4: [{ pool: `198.18.${n}.0/24`, gateway: `198.18.${n}.1/24`, auxAddresses: {} }],
  ipv6: opts.v6 ? [{ pool: `fd00:${n}::/64`, gateway: `fd00:${n}::1/64`, auxAddresses: {} }] : [],
  options: {},
});

export const testEndpoint = (networkId: string): EndpointSpec => {
  const id = randomId();
  return { networkId, id, hostVeth: hostVethName(id), peerVeth: peerVethName(id), mac: macFor(id), options: {} };
};

export interface Ctr {
  readonly ns: TestNs;
  readonly ip: string;
  readonly ip6?: string;
}

/**
 * Docker's part of Join, done to namespace `c`: move the peer in from `host`, rename it eth0,
 * address it, route via the gateway. `v6` is [address/len, gateway].
 */
export async function joinContainer(
  host: TestNs,
  c: TestNs,
  e: EndpointSpec,
  ip: string,
  gw: string,
  v6?: readonly [string, string],
): Promise<Ctr> {
  await host.must(['ip', 'link', 'set', e.peerVeth, 'netns', c.name]);
  const lines = [`link set ${e.peerVeth} name eth0`, `addr add ${ip} dev eth0`, 'link set eth0 up'];
  if (v6) lines.push(`addr add ${v6[0]} dev eth0 nodad`, `route add default via ${v6[1]}`);
  lines.push(`route add default via ${gw}`);
  await c.must(['ip', '-batch', '-'], `${lines.join('\n')}\n`);
  return { ns: c, ip: ip.split('/')[0] as string, ...(v6 ? { ip6: v6[0].split('/')[0] as string } : {}) };
}

/** What dockerd does to a host: FORWARD policy DROP (v4 and v6), br_netfilter calls on. */
export async function dockerdHostPolicy(host: TestNs, bridgeNf = '1'): Promise<void> {
  await host.must(['iptables', '-w', '-P', 'FORWARD', 'DROP']);
  await host.must(['ip6tables', '-w', '-P', 'FORWARD', 'DROP']);
  await host.must([
    'sysctl',
    '-q',
    '-w',
    `net.bridge.bridge-nf-call-iptables=${bridgeNf}`,
    `net.bridge.bridge-nf-call-ip6tables=${bridgeNf}`,
  ]);
}

/**
 * A persistent busybox server in `s` that answers every connection to `port` with "hi" and
 * closes; with `sink`, it then reads until the client closes (a long-lived flow's far end).
 */
export const serveHi = (s: TestNs, port = 8080, opts: { sink?: boolean } = {}): ChildProcess => {
  const prog = opts.sink ? [BUSYBOX, 'sh', '-c', 'echo hi; exec cat >/dev/null'] : [BUSYBOX, 'echo', 'hi'];
  return spawn('nsenter', [`--net=${s.path}`, '--', BUSYBOX, 'nc', '-ll', '-p', `${port}`, '-e', ...prog], {
    stdio: 'ignore',
  });
};

const nsOf = (from: Ctr | TestNs): TestNs => ('ns' in from ? from.ns : from);

/** One echo request with a 1 s deadline. */
export async function pingOk(from: Ctr | TestNs, to: string): Promise<boolean> {
  const args = [BUSYBOX, 'ping', ...(to.includes(':') ? ['-6'] : []), '-c1', '-W1', to];
  return (await nsOf(from).run(args)).code === 0;
}

/** A TCP connection to a serveHi server that reads "hi" within 1 s. */
export async function tcpHi(from: Ctr | TestNs, to: string, port = 8080): Promise<boolean> {
  return (await nsOf(from).run([BUSYBOX, 'nc', '-w', '1', to, `${port}`])).stdout.trim() === 'hi';
}

/** tcpdump -w in a namespace; resolves once it listens. -Z root: the pcap goes to a 0700 temp dir. */
export async function capture(ns: TestNs, dev: string, file: string): Promise<{ stop(): Promise<void> }> {
  const p = spawn('nsenter', [`--net=${ns.path}`, '--', 'tcpdump', '-i', dev, '-U', '-n', '-Z', 'root', '-w', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  await new Promise<void>((resolve, reject) => {
    p.stderr?.on('data', (b: Buffer) => {
      err += b.toString();
      if (err.includes('listening on')) resolve();
    });
    p.once('exit', (c) => reject(new Error(`tcpdump exited ${c}`)));
  });
  return {
    stop: async () => {
      // why: packets reach tcpdump up to ~1 s late (its buffer timeout, even with --immediate-mode
      // here); at SIGINT it drops what it has not read yet
      await sleep(1500);
      const done = new Promise((r) => p.once('exit', r));
      p.kill('SIGINT');
      await done;
    },
  };
}

// ---------- a simulated Docker host: truss's bridges and veths, "containers" joined ----------

export interface SimulatedHost {
  readonly ns: TestNs;
  readonly dp: LinuxDataplane;
  /** the kernel objects of the networks and endpoints; its bridges and veths are programmed */
  readonly desired: DesiredKernel;
  /** Docker's part of Join (joinContainer) for `e`, into a fresh scratch namespace `role`. */
  join(role: string, e: EndpointSpec, ip: string, gw: string, v6?: readonly [string, string]): Promise<Ctr>;
  /** The truss firewall and its sysctls for `desired`, as the reconciler applies them. */
  ensureFirewall(): Promise<void>;
}

export interface SimulatedHostOptions {
  readonly networks: readonly NetworkSpec[];
  readonly endpoints: readonly EndpointSpec[];
  /** dockerd's part (dockerdHostPolicy) once the bridges exist; 'nf-off': br_netfilter calls off */
  readonly dockerd?: 'nf-on' | 'nf-off';
  readonly onCommand?: OnCommand;
  /** Runs on the fresh host namespace before truss makes anything in it. */
  readonly prepare?: (host: TestNs) => Promise<void>;
}

/** A host namespace with truss's bridges and veths for `o.networks` and `o.endpoints` (closed with `scratch`). */
export async function simulatedHost(scratch: Scratch, o: SimulatedHostOptions): Promise<SimulatedHost> {
  const ns = await scratch.ns('host');
  const dp = createLinuxDataplane({ netns: ns.path, ...(o.onCommand ? { onCommand: o.onCommand } : {}) });
  scratch.defer(() => dp.close());
  await o.prepare?.(ns);
  const desired = computeDesired(o.networks, o.endpoints);
  for (const b of desired.bridges) await dp.ensureBridge(b);
  for (const v of desired.veths) await dp.ensureVeth(v);
  if (o.dockerd) await dockerdHostPolicy(ns, o.dockerd === 'nf-off' ? '0' : '1');
  return {
    ns,
    dp,
    desired,
    join: async (role, e, ip, gw, v6) => joinContainer(ns, await scratch.ns(role), e, ip, gw, v6),
    ensureFirewall: async () => {
      await dp.ensureFirewall(desired.firewall);
      await dp.ensureSysctls(desired.firewall);
    },
  };
}

// ---------- a simulated host routing for one "container" (the cluster tunnels' tests) ----------

export interface RoutedHost {
  readonly ns: TestNs;
  readonly ctr: TestNs;
}

/** Roles of the two namespaces, the host's link and address (a.b.c.d/len), the container's address and MTU. */
export interface RoutedHostOptions {
  readonly host: string;
  readonly ctr: string;
  readonly link: string;
  readonly gateway: string;
  readonly ctrIp: string;
  readonly ctrMtu?: number;
}

/**
 * Namespaces `host` and `ctr` (closed with `scratch`) joined by a veth: `link` with the address
 * `gateway` on the host, which forwards IPv4; eth0 with `ctrIp` in the "container", its default
 * route via the gateway.
 */
export async function routedHost(scratch: Scratch, o: RoutedHostOptions): Promise<RoutedHost> {
  const ns = await scratch.ns(o.host);
  const ctr = await scratch.ns(o.ctr);
  const [gw, len] = o.gateway.split('/') as [string, string];
  await ns.must(
    ['ip', '-batch', '-'],
    `link add ${o.link} type veth peer name eth0 netns ${ctr.name}\naddr add ${o.gateway} dev ${o.link}\nlink set ${o.link} up\n`,
  );
  await ns.must(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  const mtu = o.ctrMtu === undefined ? '' : `link set eth0 mtu ${o.ctrMtu}\n`;
  await ctr.must(
    ['ip', '-batch', '-'],
    `addr add ${o.ctrIp}/${len} dev eth0\n${mtu}link set eth0 up\nroute add default via ${gw}\n`,
  );
  return { ns, ctr };
}
