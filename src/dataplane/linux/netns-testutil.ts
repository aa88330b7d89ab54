/**
 * Throwaway network namespaces for the kernel tests (*.netns.ts, root): CNI testutils.NewNS
 * in small. Every namespace is named truss-t-<random>; tests delete theirs in `after`, and
 * each file ends by asserting that no truss-t-* namespace is left. Nothing here touches
 * the namespace the test runner itself lives in.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { EndpointSpec, NetworkSpec } from '../../core/model.ts';
import { bridgeName, hostVethName, macFor, peerVethName } from '../../core/naming.ts';
import type { OnCommand } from './exec.ts';

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
    a.includes('-batch') || a.includes('-w') || a.includes('-f') || a.includes('del') || a.includes('--noflush');
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
