/**
 * The host preflight, probing half: read-only looks at this host for `truss serve` and
 * `truss doctor` (core/preflight.ts turns them into checks). Nothing here changes the kernel:
 * programs are looked up on the search path, nf_tables is asked with a dry-run transaction
 * (`nft -c`, checked and never committed), dockerd's rules are read with iptables-*-save (the
 * legacy one only when /proc/net/ip_tables_names shows a filter table, so no module is
 * loaded), sysctls and directories are tested with access(2). Every probe runs in parallel;
 * the serve path costs a few processes (~30 ms here).
 */
import { constants, existsSync, promises as fs, statSync } from 'node:fs';
import { connect } from 'node:net';
import { release } from 'node:os';
import { dirname, join } from 'node:path';
import type { HostFacts, IptBackendName } from '../../core/preflight.ts';
import { PROBED_PROGRAMS } from '../../core/preflight.ts';
import { createExec, type Exec } from './exec.ts';
import { parseBackend } from './iptables.ts';
import { canOpen, findWireguardGo } from './wireguard.ts';

export interface HostProbeOptions {
  readonly socket: string;
  readonly stateDir: string;
  readonly iptables?: string;
  readonly procSys?: string;
  /** --wireguard-go: the admin's wireguard-go (the only one asked for its version then) */
  readonly wireguardGo?: string;
  /** etcd endpoints (HOST:PORT) to try a TCP connection to; none = not probed */
  readonly etcdEndpoints?: readonly string[];
  readonly etcdTimeoutMs?: number;
  /** tests: an Exec with its own search path */
  readonly exec?: Exec;
}

const NFT_PROBE =
  'table inet truss_preflight {\n  chain forward {\n    type filter hook forward priority filter - 10; policy accept;\n  }\n}\n';

async function nftUsable(exec: Exec): Promise<HostFacts['nftables']> {
  if (!exec.which('nft')) return { ok: false, error: "the program 'nft' was not found" };
  try {
    await exec.run('nft', ['-c', '-f', '-'], { stdin: NFT_PROBE, timeoutMs: 5000 });
    return { ok: true };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
}

const exists = (path: string): Promise<boolean> =>
  fs.access(path).then(
    () => true,
    () => false,
  );

/** DOCKER chains in the filter table of one backend: true/false, or undefined when it cannot be read. */
async function dockerChains(
  exec: Exec,
  save: string | undefined,
  backend: IptBackendName,
): Promise<boolean | undefined> {
  if (!save) return undefined;
  if (backend === 'legacy') {
    // why: reading a legacy table that is not there would load ip_tables; its names file tells without
    const names = await fs.readFile('/proc/net/ip_tables_names', 'utf8').catch(() => '');
    if (!names.split('\n').includes('filter')) return false;
  }
  try {
    const { stdout } = await exec.run(save, ['-t', 'filter'], { timeoutMs: 5000 });
    return /^:DOCKER\b/m.test(stdout);
  } catch {
    return backend === 'nf_tables' ? false : undefined; // nft: no ip filter table yet
  }
}

function sibling(exec: Exec, base: string, names: readonly string[]): string | null {
  for (const n of names) {
    const p = exec.which(join(dirname(base), n)) ?? exec.which(n);
    if (p) return p;
  }
  return null;
}

/** The lock legacy iptables (and dockerd's) take with -w; a managed plugin mounts the host's here. */
const XTABLES_LOCK = '/run/xtables.lock';

function isCharDevice(path: string): boolean {
  try {
    return statSync(path).isCharacterDevice();
  } catch {
    return false;
  }
}

async function iptablesFacts(exec: Exec, configured: string): Promise<HostFacts['iptables']> {
  const path = exec.which(configured);
  if (!path) return { configured, path: null, restore: null, dockerRules: {} };
  let backend: IptBackendName | undefined;
  try {
    backend = parseBackend((await exec.run(path, ['-V'], { timeoutMs: 5000 })).stdout);
  } catch {
    backend = undefined;
  }
  const tag = backend === 'nf_tables' ? 'nft' : 'legacy';
  const restore = backend ? sibling(exec, path, [`iptables-${tag}-restore`, 'iptables-restore']) : null;
  const [nfTables, legacy] = await Promise.all([
    dockerChains(exec, sibling(exec, path, ['iptables-nft-save']) ?? undefined, 'nf_tables'),
    dockerChains(exec, sibling(exec, path, ['iptables-legacy-save']) ?? undefined, 'legacy'),
  ]);
  return {
    configured,
    path,
    ...(backend ? { backend } : {}),
    ...(isCharDevice(XTABLES_LOCK) ? { lockPlaceholder: true } : {}),
    restore,
    dockerRules: {
      ...(nfTables !== undefined ? { nf_tables: nfTables } : {}),
      ...(legacy !== undefined ? { legacy } : {}),
    },
  };
}

/** The kernel has WireGuard: loaded, built in, or a module to load (read-only: no probe link). */
async function kernelWireguard(): Promise<boolean> {
  if (await exists('/sys/module/wireguard')) return true;
  const dir = `/lib/modules/${release()}`;
  for (const f of ['modules.builtin', 'modules.dep']) {
    const text = await fs.readFile(join(dir, f), 'utf8').catch(() => '');
    if (/(^|\/)wireguard\.ko/m.test(text)) return true;
  }
  return false;
}

async function readKey(root: string, key: string): Promise<string | null> {
  return fs.readFile(join(root, key), 'utf8').then(
    (t) => t.trim(),
    () => null,
  );
}

/** Whether `path` could be created/written: the nearest existing ancestor (or itself) is writable. */
async function writableDir(path: string): Promise<{ writable: boolean; error?: string }> {
  let p = path;
  for (;;) {
    try {
      await fs.access(p, constants.W_OK | constants.X_OK);
      return { writable: true };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' || dirname(p) === p) return { writable: false, error: `${p}: ${code ?? String(e)}` };
      p = dirname(p);
    }
  }
}

/** A bounded TCP connect to HOST:PORT (IPv6 as [ADDR]:PORT). */
export function tcpReachable(endpoint: string, timeoutMs: number): Promise<boolean> {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(endpoint);
  if (!m) return Promise.resolve(false);
  return new Promise((resolve) => {
    const s = connect({ host: m[1] as string, port: Number(m[2]) });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export async function probeEtcd(
  endpoints: readonly string[],
  timeoutMs = 2000,
): Promise<NonNullable<HostFacts['etcd']>> {
  const ok = await Promise.all(endpoints.map((e) => tcpReachable(e, timeoutMs)));
  return { endpoints, reachable: endpoints.filter((_, i) => ok[i]) };
}

/** br_netfilter is loaded now (asked again per request: dockerd may load it after truss started). */
export function bridgeNetfilterLoaded(procSys = '/proc/sys'): () => boolean {
  const key = join(procSys, 'net/bridge/bridge-nf-call-iptables');
  return () => existsSync(key);
}

/** Every probe, in parallel. Read-only. */
export async function probeHost(opts: HostProbeOptions): Promise<HostFacts> {
  const exec = opts.exec ?? createExec({ spareProcesses: false });
  const procSys = opts.procSys ?? '/proc/sys';
  const programs = Object.fromEntries(PROBED_PROGRAMS.map((p) => [p, exec.which(p) ?? null]));
  const procSysWritable = fs.access(join(procSys, 'net/ipv4/ip_forward'), constants.W_OK).then(
    () => ({ path: procSys, writable: true }),
    (e: NodeJS.ErrnoException) => ({ path: procSys, writable: false, error: e.code ?? String(e) }),
  );
  const dirs = Promise.all(
    (
      [
        ['--socket', dirname(opts.socket)],
        ['--state-dir', opts.stateDir],
      ] as const
    ).map(async ([flag, path]) => ({ flag, path, ...(await writableDir(path)) })),
  );
  const [nftables, iptables, kernel, tun, brNetfilter, ipv6Forwarding, ps, ds, etcd] = await Promise.all([
    nftUsable(exec),
    iptablesFacts(exec, opts.iptables ?? 'iptables'),
    kernelWireguard(),
    canOpen('/dev/net/tun'),
    exists(join(procSys, 'net/bridge/bridge-nf-call-iptables')),
    readKey(procSys, 'net/ipv6/conf/all/forwarding'),
    procSysWritable,
    dirs,
    opts.etcdEndpoints?.length ? probeEtcd(opts.etcdEndpoints, opts.etcdTimeoutMs) : undefined,
  ]);
  return {
    programs,
    nftables,
    iptables,
    // which wireguard-go would run (its version: one process per binary), only where it would run
    wireguard: { kernel, tun, ...(!kernel && tun ? { go: await findWireguardGo(exec, opts.wireguardGo) } : {}) },
    brNetfilter,
    ipv6Forwarding,
    procSys: ps,
    dirs: ds,
    ...(etcd ? { etcd } : {}),
  };
}
