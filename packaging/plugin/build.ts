/**
 * Builds truss as a Docker managed plugin (`npm run package`):
 *
 *   dist/plugin/config.json + dist/plugin/rootfs/   for `docker plugin create truss:VERSION dist/plugin`
 *   dist/truss-plugin-VERSION.tar.gz                the same, under truss-plugin-VERSION/
 *
 * The rootfs holds only what the daemon runs: the pinned Node (node_modules/node, stripped),
 * the esbuild bundle of src/ (+ etcd3's .proto files, read at run time), the tools the
 * dataplane calls (ip, bridge, tc, nft, iptables-nft/-legacy, conntrack, wg, wireguard-go, setsid, env) copied
 * from this machine's Debian packages with the shared libraries `ldd` names and iptables'
 * extension modules, and /etc/iproute2. wireguard-go is the newest Debian offers (unstable's,
 * which scripts/build-plugin.sh unpacks into OWN_WIREGUARD_GO_DIR), whatever this machine's release. Inputs come from the npm registry (lockfile) and
 * Debian packages only (scripts/setup.sh installs them); rootfs/app/MANIFEST lists each file's
 * Debian package and version.
 *
 * Reproducible: fixed mtimes (SOURCE_DATE_EPOCH, default: the last commit's time), sorted
 * names, numeric root owner, normalised modes, `gzip -n`: two builds of the same inputs are
 * byte-identical. Flags: --version V (default: package.json's), --out DIR (default: dist).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { bundleDaemon } from '../bundle.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CONFIG_TEMPLATE = join(REPO_ROOT, 'packaging', 'plugin', 'config.json');
const SEARCH = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];
/**
 * truss's own wireguard-go (scripts/lib/packages.sh truss_ensure_wireguard_go: Debian unstable's,
 * the newest Debian offers), unpacked with its `.packages` ("wireguard-go VERSION"); the rootfs
 * takes it over this machine's release's when it is there: the plugin must not ship whatever
 * wireguard-go the build host's release has (Debian 12's is ~4x slower).
 */
export const OWN_WIREGUARD_GO_DIR = '/usr/local/lib/truss/wireguard-go';

/** A tool: its name on this machine, where it goes in the rootfs, and extra names (symlinks) for it. */
interface Tool {
  readonly name: string;
  readonly dir: '/usr/sbin' | '/usr/bin';
  readonly links?: readonly string[];
}

const xt = (backend: 'nft' | 'legacy'): string[] =>
  ['iptables', 'ip6tables'].flatMap((t) => ['', '-restore', '-save'].map((s) => `${t}-${backend}${s}`));

const TOOLS: readonly Tool[] = [
  { name: 'ip', dir: '/usr/sbin' },
  { name: 'bridge', dir: '/usr/sbin' }, // VXLAN forwarding entries (bridge fdb)
  { name: 'tc', dir: '/usr/sbin' }, // bandwidth limits (tbf, ingress redirect to ifb)
  { name: 'nft', dir: '/usr/sbin' },
  { name: 'xtables-nft-multi', dir: '/usr/sbin', links: xt('nft') },
  { name: 'xtables-legacy-multi', dir: '/usr/sbin', links: xt('legacy') },
  { name: 'conntrack', dir: '/usr/sbin' },
  { name: 'wg', dir: '/usr/bin' },
  { name: 'wireguard-go', dir: '/usr/bin' },
  { name: 'setsid', dir: '/usr/bin' },
  { name: 'env', dir: '/usr/bin' },
];

/** Unsuffixed iptables names: they point at the multi binary this machine's `iptables` alternative uses. */
const IPTABLES_DEFAULT_NAMES = ['iptables', 'ip6tables'].flatMap((t) => ['', '-restore', '-save'].map((s) => t + s));

export interface BuildOptions {
  readonly version?: string;
  /** output directory (default REPO_ROOT/dist): plugin/ and the tarball go there */
  readonly outDir?: string;
  readonly log?: (line: string) => void;
}

export interface BuildResult {
  readonly version: string;
  readonly pluginDir: string;
  readonly tarball: string;
  readonly tarballBytes: number;
  readonly rootfsBytes: number;
  readonly rootfsFiles: number;
  readonly sha256: string;
  readonly ms: number;
}

function sh(argv: readonly string[], opts: { cwd?: string; input?: string } = {}): string {
  const r = spawnSync(argv[0] as string, argv.slice(1), {
    cwd: opts.cwd ?? REPO_ROOT,
    input: opts.input,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    env: { ...process.env, LC_ALL: 'C' },
  });
  if (r.status !== 0) {
    throw new Error(`${argv.join(' ')} failed (exit ${r.status ?? r.signal}): ${r.stderr?.trim() ?? r.error?.message}`);
  }
  return r.stdout;
}

const packageVersion = (): string =>
  (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** A Docker tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}: semver without build metadata (+) fits. */
export function checkVersion(v: string): string {
  if (!/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/.test(v) || v.length > 128) {
    throw new Error(`version ${JSON.stringify(v)}: expected semver MAJOR.MINOR.PATCH[-PRERELEASE] (no +build)`);
  }
  return v;
}

function sourceDateEpoch(): number {
  const env = process.env.SOURCE_DATE_EPOCH;
  if (env && /^\d+$/.test(env)) return Number(env);
  const r = spawnSync('git', ['log', '-1', '--format=%ct'], { cwd: REPO_ROOT, encoding: 'utf8' });
  const t = Number(r.stdout?.trim());
  return r.status === 0 && Number.isInteger(t) && t > 0 ? t : 0;
}

function which(name: string): string {
  if (name === 'wireguard-go' && existsSync(join(OWN_WIREGUARD_GO_DIR, 'usr/bin/wireguard-go')))
    return join(OWN_WIREGUARD_GO_DIR, 'usr/bin/wireguard-go');
  for (const d of SEARCH) {
    const p = join(d, name);
    if (existsSync(p)) return p;
  }
  throw new Error(`${name} not found in ${SEARCH.join(':')}: run scripts/setup.sh (it installs the Debian packages)`);
}

/** Absolute paths of the shared libraries and loader `ldd` names for an ELF file ([] for a static one). */
function lddOf(file: string): string[] {
  const r = spawnSync('ldd', [file], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  if (r.status !== 0) return []; // "not a dynamic executable" (wireguard-go is static Go)
  return [...r.stdout.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/g)].map((m) => m[1] as string);
}

/** merged-/usr: /lib/x → /usr/lib/x, /lib64/x → /usr/lib64/x (the rootfs has lib -> usr/lib symlinks). */
const inUsr = (p: string): string => (/^\/(?:lib|lib64|bin|sbin)\//.test(p) ? `/usr${p}` : p);

/** The bundle goes to /app/lib/truss.mjs and etcd3's protos to /app/proto (packaging/bundle.ts). */
const bundle = (rootfs: string, version: string): Promise<string> => bundleDaemon(join(rootfs, 'app'), version);

/** Every file the rootfs takes from this machine: [path on this machine, path in the rootfs]. */
function machineFiles(): { files: Map<string, string>; links: Map<string, string> } {
  const files = new Map<string, string>(); // rootfs path -> machine path
  const links = new Map<string, string>(); // rootfs path -> symlink target
  const elves: string[] = [];
  const node = realpathSync(join(REPO_ROOT, 'node_modules', 'node', 'bin', 'node'));
  files.set('/usr/local/bin/node', node);
  elves.push(node);
  for (const t of TOOLS) {
    const src = realpathSync(which(t.name));
    files.set(`${t.dir}/${t.name}`, src);
    elves.push(src);
    for (const l of t.links ?? []) links.set(`${t.dir}/${l}`, t.name);
  }
  // iptables, ip6tables, ...-restore, ...-save: the backend this machine's Debian alternative picks
  const multi = realpathSync(which('iptables')).split('/').pop() as string;
  if (!TOOLS.some((t) => t.name === multi))
    throw new Error(`iptables resolves to ${multi}, not an xtables multi binary`);
  for (const n of IPTABLES_DEFAULT_NAMES) links.set(`/usr/sbin/${n}`, multi);
  const libc = lddOf(node).find((l) => /\/libc\.so\.6$/.test(l));
  if (!libc) throw new Error(`ldd ${node}: no libc.so.6`);
  // iptables loads its match/target extensions at run time (ldd cannot see them)
  const xtDir = join(inUsr(dirname(libc)), 'xtables');
  for (const f of readdirSync(xtDir).sort()) {
    if (!f.endsWith('.so')) continue;
    files.set(join(xtDir, f), realpathSync(join(xtDir, f)));
    elves.push(join(xtDir, f));
  }
  for (const e of elves) for (const lib of lddOf(e)) files.set(inUsr(lib), realpathSync(lib));
  const etc = '/etc/iproute2';
  for (const f of readdirSync(etc, { recursive: true }).map(String).sort()) {
    const p = join(etc, f);
    if (statSync(p).isFile()) files.set(p, p);
  }
  return { files, links };
}

/** "wireguard-go 0.0.20260522-1": the package unpacked into OWN_WIREGUARD_GO_DIR (not in dpkg's database). */
function ownPackages(): string {
  try {
    return readFileSync(join(OWN_WIREGUARD_GO_DIR, '.packages'), 'utf8').trim().split('\n').join(', ');
  } catch {
    return 'wireguard-go (version unknown)';
  }
}

/** `dpkg -S` for every machine file: "rootfs-path  package version" lines (provenance, in the rootfs). */
function manifest(files: Map<string, string>): string {
  // why: dpkg knows most libraries by their pre-merged-/usr path (/lib/x86_64-linux-gnu/libc.so.6)
  const srcs = [...new Set([...files.values()].flatMap((f) => [f, f.replace(/^\/usr(?=\/(?:lib|bin|sbin)\/)/, '')]))];
  const r = spawnSync('dpkg', ['-S', ...srcs.sort()], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  const owner = new Map<string, string>();
  for (const line of (r.stdout ?? '').split('\n')) {
    const m = /^([^:]+(?::[a-z0-9]+)?): (.+)$/.exec(line);
    if (m) for (const p of (m[2] as string).split(', ')) owner.set(p, (m[1] as string).split(', ')[0] as string);
  }
  const pkgs = [...new Set(owner.values())].sort();
  const versions = new Map<string, string>();
  if (pkgs.length > 0) {
    const format = ['-f=$', '{binary:Package} $', '{Version}\\n'].join(''); // dpkg-query's own ${...}
    const q = sh(['dpkg-query', '-W', format, ...pkgs]);
    for (const l of q.split('\n')) {
      const [p, v] = l.split(' ');
      if (p && v) versions.set(p.replace(/:amd64$/, ''), v);
    }
  }
  const own = ownPackages();
  const lines = [...files.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([to, from]) => {
      if (from.startsWith(`${OWN_WIREGUARD_GO_DIR}/`)) return `${to}  ${own} (Debian unstable, truss's own)`;
      const pkg = owner.get(from) ?? owner.get(from.replace(/^\/usr/, '')) ?? 'npm';
      const bare = pkg.replace(/:amd64$/, '');
      return `${to}  ${bare}${versions.has(bare) ? ` ${versions.get(bare)}` : ''}`;
    });
  return `${lines.join('\n')}\n`;
}

function writeRootfs(rootfs: string, version: string): { files: Map<string, string>; links: Map<string, string> } {
  const { files, links } = machineFiles();
  for (const d of ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64', 'usr/local/bin', 'etc', 'run', 'var', 'tmp']) {
    mkdirSync(join(rootfs, d), { recursive: true });
  }
  for (const [l, t] of [
    ['bin', 'usr/bin'],
    ['sbin', 'usr/sbin'],
    ['lib', 'usr/lib'],
    ['lib64', 'usr/lib64'],
    ['var/run', '../run'],
  ] as const) {
    symlinkSync(t, join(rootfs, l));
  }
  for (const [to, from] of files) {
    const dst = join(rootfs, to);
    mkdirSync(dirname(dst), { recursive: true });
    copyFileSync(from, dst);
  }
  for (const [to, target] of links) symlinkSync(target, join(rootfs, to));
  // why: node ships with debug info (126 MB); stripped it is 108 MB and runs the same
  sh(['strip', '--strip-all', join(rootfs, 'usr/local/bin/node')]);
  writeFileSync(
    join(rootfs, 'app', 'MANIFEST'),
    `truss ${version}: files taken from this build machine's Debian packages\n${manifest(files)}`,
  );
  return { files, links };
}

/** Fixed modes and mtimes everywhere: the layer `docker plugin create` makes and the tarball do not vary. */
function normalise(root: string, epoch: number): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  const walk = (p: string): void => {
    const st = lstatSync(p);
    if (st.isDirectory()) {
      for (const e of readdirSync(p)) walk(join(p, e));
      chmodSync(p, relative(root, p) === 'rootfs/tmp' ? 0o1777 : 0o755);
    } else if (st.isFile()) {
      chmodSync(p, (st.mode & 0o111) !== 0 ? 0o755 : 0o644);
      bytes += st.size;
      files++;
    }
    lutimesSync(p, epoch, epoch);
  };
  walk(root);
  return { bytes, files };
}

export async function buildPlugin(opts: BuildOptions = {}): Promise<BuildResult> {
  const t0 = performance.now();
  const log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const version = checkVersion(opts.version ?? packageVersion());
  const outDir = resolve(opts.outDir ?? join(REPO_ROOT, 'dist'));
  const pluginDir = join(outDir, 'plugin');
  const rootfs = join(pluginDir, 'rootfs');
  const epoch = sourceDateEpoch();
  rmSync(pluginDir, { recursive: true, force: true });
  mkdirSync(rootfs, { recursive: true });
  log(`package: truss ${version} -> ${pluginDir} (SOURCE_DATE_EPOCH=${epoch})`);
  await bundle(rootfs, version);
  writeRootfs(rootfs, version);
  const config = readFileSync(CONFIG_TEMPLATE, 'utf8').replaceAll('@VERSION@', version);
  JSON.parse(config); // a broken template must fail here, not at `docker plugin create`
  writeFileSync(join(pluginDir, 'config.json'), config);
  const size = normalise(pluginDir, epoch);
  const tarball = join(outDir, `truss-plugin-${version}.tar.gz`);
  const tar = `${tarball.slice(0, -3)}.${process.pid}`;
  sh([
    'tar',
    '-C',
    outDir,
    '--sort=name',
    '--format=gnu',
    `--mtime=@${epoch}`,
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    `--transform=flags=r;s,^plugin,truss-plugin-${version},`,
    '-cf',
    tar,
    'plugin',
  ]);
  sh(['gzip', '-n', '-6', '-f', tar]);
  rmSync(tarball, { force: true });
  sh(['mv', `${tar}.gz`, tarball]);
  const sha256 = createHash('sha256').update(readFileSync(tarball)).digest('hex');
  const result: BuildResult = {
    version,
    pluginDir,
    tarball,
    tarballBytes: statSync(tarball).size,
    rootfsBytes: size.bytes,
    rootfsFiles: size.files,
    sha256,
    ms: Math.round(performance.now() - t0),
  };
  const mb = (n: number): string => (n / 1e6).toFixed(1);
  log(
    `package: rootfs ${mb(result.rootfsBytes)} MB in ${result.rootfsFiles} files; ${tarball} ` +
      `${mb(result.tarballBytes)} MB sha256 ${sha256} (${(result.ms / 1000).toFixed(1)} s)`,
  );
  log(`package: docker plugin create truss:${version} ${pluginDir}`);
  return result;
}

/**
 * A key for every input of a build: the sources, lockfile, this script and the config template
 * by content, the machine files by path, size and mtime, and the version. The e2e suite caches
 * builds under it.
 */
export function buildInputsKey(version: string): string {
  const h = createHash('sha256').update(`${version}\n${sourceDateEpoch()}\n`);
  const srcFiles = readdirSync(join(REPO_ROOT, 'src'), { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.netns.ts'))
    .sort();
  for (const f of [
    ...srcFiles.map((f) => join('src', f)),
    'package.json',
    'package-lock.json',
    'packaging/bundle.ts',
    'packaging/plugin/build.ts',
    'packaging/plugin/config.json',
  ]) {
    h.update(`${f}\n`).update(readFileSync(join(REPO_ROOT, f)));
  }
  const { files } = machineFiles();
  for (const [to, from] of [...files.entries()].sort()) {
    const st = statSync(from);
    h.update(`${to} ${from} ${st.size} ${Math.trunc(st.mtimeMs)}\n`);
  }
  return h.digest('hex').slice(0, 16);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { version: { type: 'string' }, out: { type: 'string' } },
    strict: true,
  });
  buildPlugin({
    ...(values.version !== undefined ? { version: values.version } : {}),
    ...(values.out !== undefined ? { outDir: values.out } : {}),
  }).catch((e: unknown) => {
    process.stderr.write(`package: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
