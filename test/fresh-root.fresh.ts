/**
 * README command 1 on a fresh host: a minimal Debian root (debootstrap --variant=minbase, which
 * has apt but no Node, no npm, none of the daemon's programs) gets the project's source, and
 * `scripts/run.sh doctor` must set the host up from nothing (scripts/prepare.sh: Debian packages,
 * npm from Debian's nodejs/npm, `npm ci` with the pinned Node, the bundle) and reach a passing
 * `truss doctor` (exit 0). A second run must find everything done.
 *
 * Run as root by `scripts/test.sh fresh` (node --test test/fresh-root.fresh.ts; the unit and e2e
 * globs do not pick it up). Needs debootstrap (scripts/setup.sh installs it) and the Debian
 * mirror and npm registry. The chroot shares this host's network namespace: only `doctor` runs
 * there, never `truss serve`. Everything runs in a private mount namespace (`unshare -m`), so
 * nothing stays mounted even if the test is killed; the root is removed afterwards.
 *
 * The bare debootstrap result (nothing of the project) is cached for CACHE_DAYS as a tarball under
 * /var/cache/truss-test/ (debootstrap takes ~95 s here, unpacking the tarball ~2 s);
 * TRUSS_FRESH_NO_CACHE=1 bypasses the cache. Environment of the test machine, not of the product:
 * npm in the root trusts this host's CA bundle (NODE_EXTRA_CA_CERTS, for a TLS-intercepting proxy),
 * apt takes this host's settings for its mirror (hostAptSettings), and proxy / npm registry
 * variables set here are passed through.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SUITE = process.env.TRUSS_FRESH_SUITE ?? 'bookworm';
const MIRROR = 'http://deb.debian.org/debian';
const CACHE_DIR = '/var/cache/truss-test';
const CACHE_DAYS = 7;
/** where the project goes inside the root */
const PROJECT = '/opt/truss';
const HOST_CA = '/etc/ssl/certs/ca-certificates.crt';
const CA_IN_ROOT = '/root/host-ca-certificates.crt';
const PINNED_NODE = `v${(JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: { node: string } }).dependencies.node}`;
const PASS_THROUGH = /^(https?_proxy|no_proxy|npm_config_(https_proxy|proxy|noproxy|registry))$/i;
const RUN_TIMEOUT_MS = 30 * 60_000;
/** truss's own wireguard-go (scripts/lib/packages.sh TRUSS_WIREGUARD_GO_DIR) */
const OWN_WIREGUARD_GO = '/usr/local/lib/truss/wireguard-go';

interface Result {
  code: number | null;
  output: string;
  seconds: number;
}

/** Runs argv in its own process group, output to `log`; on timeout the whole group is killed. */
function run(argv: string[], log: string, timeoutMs = RUN_TIMEOUT_MS): Promise<Result> {
  const start = performance.now();
  return new Promise((res, rej) => {
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => {
      output += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      output += b.toString();
    });
    const timer = setTimeout(() => {
      output += `\n[fresh-root: ${argv[0]} timed out after ${timeoutMs / 1000} s: killed]\n`;
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    }, timeoutMs);
    child.on('error', rej);
    child.on('close', (code) => {
      clearTimeout(timer);
      writeFileSync(log, output);
      res({ code, output, seconds: Math.round((performance.now() - start) / 100) / 10 });
    });
  });
}

const tail = (text: string, lines = 60): string => text.trimEnd().split('\n').slice(-lines).join('\n');

function arch(): string {
  return spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout.trim() || 'amd64';
}

/** The bare minbase root in `dir`: from the cache when fresh, else debootstrap (then cached). */
async function baseRoot(dir: string, work: string): Promise<{ how: string; seconds: number }> {
  const cache = join(CACHE_DIR, `debootstrap-minbase-${SUITE}-${arch()}.tar.gz`);
  const fresh = existsSync(cache) && Date.now() - statSync(cache).mtimeMs < CACHE_DAYS * 86_400_000;
  if (fresh && process.env.TRUSS_FRESH_NO_CACHE !== '1') {
    const r = await run(['tar', '--numeric-owner', '-xpzf', cache, '-C', dir], join(work, 'untar.log'));
    assert.equal(r.code, 0, `unpacking ${cache} failed:\n${tail(r.output)}`);
    return { how: `cached debootstrap (${cache})`, seconds: r.seconds };
  }
  // why: debootstrap mounts proc and sys in the target; a private mount namespace drops them
  // even if it is killed half-way
  const r = await run(
    ['unshare', '--mount', '--propagation', 'private', '--', 'debootstrap', '--variant=minbase', SUITE, dir, MIRROR],
    join(work, 'debootstrap.log'),
  );
  assert.equal(r.code, 0, `debootstrap ${SUITE} failed (exit ${r.code}):\n${tail(r.output)}`);
  mkdirSync(CACHE_DIR, { recursive: true });
  const partial = `${cache}.partial`;
  const t = await run(['tar', '--numeric-owner', '-czf', partial, '-C', dir, '.'], join(work, 'tar.log'));
  if (t.code === 0) renameSync(partial, cache);
  else rmSync(partial, { force: true });
  return { how: `debootstrap --variant=minbase ${SUITE} ${MIRROR}`, seconds: r.seconds };
}

/** The project's files as git knows them (tracked and untracked-not-ignored): no node_modules, no dist. */
function copyProject(root: string): number {
  const ls = spawnSync('git', ['-C', REPO_ROOT, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    encoding: 'utf8',
  });
  assert.equal(ls.status, 0, `git ls-files failed in ${REPO_ROOT} (the test copies a git checkout): ${ls.stderr}`);
  const files = ls.stdout.split('\0').filter((f) => f !== '' && existsSync(join(REPO_ROOT, f)));
  const dest = join(root, PROJECT);
  mkdirSync(dest, { recursive: true });
  const pack = spawnSync('tar', ['-C', REPO_ROOT, '--null', '-T', '-', '-cf', '-'], {
    input: files.join('\0'),
    maxBuffer: 1 << 30,
  });
  assert.equal(pack.status, 0, `tar of the project failed: ${pack.stderr}`);
  const unpack = spawnSync('tar', ['-C', dest, '-xf', '-'], { input: pack.stdout });
  assert.equal(unpack.status, 0, `untar into the root failed: ${unpack.stderr}`);
  return files.length;
}

/**
 * This machine's apt settings for its mirror, e.g. `Acquire::Check-Valid-Until "false"` where the
 * mirror is a frozen snapshot older than the clock: without them apt in the root refuses the
 * snapshot's expired Debian unstable Release file, and prepare.sh falls back to the release's
 * wireguard-go (seen here: the fallback works, but the test is of the newest).
 */
function hostAptSettings(root: string): void {
  const dir = '/etc/apt/apt.conf.d';
  for (const f of existsSync(dir) ? readdirSync(dir) : []) {
    const text = readFileSync(join(dir, f), 'utf8');
    if (/^\s*Acquire::Check-(Valid-Until|Date)\b/m.test(text)) writeFileSync(join(root, dir, f), text);
  }
}

/**
 * The private apt lists of Debian unstable that scripts/lib/unstable.sh keeps (scripts/setup.sh
 * fetched them on this machine), copied into the root like the cached debootstrap: prepare.sh's
 * `apt-get update` still runs and checks them against the mirror (If-Modified-Since), but does not
 * download the ~20 MB index again (~30 s here). TRUSS_FRESH_NO_CACHE=1 leaves them out.
 */
function seedUnstableLists(root: string): void {
  const lists = '/var/cache/truss-unstable/lists';
  if (process.env.TRUSS_FRESH_NO_CACHE === '1' || !existsSync(lists)) return;
  mkdirSync(join(root, lists, 'partial'), { recursive: true });
  for (const f of readdirSync(lists)) {
    if (/_(InRelease|Packages(\.\w+)?)$/.test(f)) copyFileSync(join(lists, f), join(root, lists, f));
  }
}

/** What the host adds to a fresh root: no service starts, DNS, its mirror's apt settings and (for npm only) its CAs. */
function setUpRoot(root: string): void {
  hostAptSettings(root);
  seedUnstableLists(root);
  const policy = join(root, 'usr/sbin/policy-rc.d');
  writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  const resolv = join(root, 'etc/resolv.conf');
  rmSync(resolv, { force: true });
  writeFileSync(resolv, readFileSync('/etc/resolv.conf'));
  if (existsSync(HOST_CA)) copyFileSync(HOST_CA, join(root, CA_IN_ROOT));
}

/** The commands run in the root, in a private mount namespace: proc, sys (read-only), dev. */
function chrootArgv(root: string, command: string): string[] {
  const env = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root', 'LANG=C.UTF-8'];
  if (existsSync(HOST_CA)) env.push(`NODE_EXTRA_CA_CERTS=${CA_IN_ROOT}`);
  for (const [k, v] of Object.entries(process.env)) if (PASS_THROUGH.test(k) && v) env.push(`${k}=${v}`);
  const q = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;
  const script = [
    'set -e',
    `mount -t proc proc ${q(`${root}/proc`)}`,
    `mount --bind /sys ${q(`${root}/sys`)}`,
    `mount -o remount,bind,ro ${q(`${root}/sys`)}`,
    `mount --bind /dev ${q(`${root}/dev`)}`,
    `exec chroot ${q(root)} /usr/bin/env -i ${env.map(q).join(' ')} /bin/bash -c ${q(command)}`,
  ].join('\n');
  return ['unshare', '--mount', '--propagation', 'private', '--', 'bash', '-c', script];
}

/** Kills what still runs inside `root` (nothing should): returns their command lines. */
function killLeftovers(root: string): string[] {
  const left: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readlinkSync(`/proc/${pid}/root`) !== root) continue;
      left.push(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim());
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  return left;
}

const mountsUnder = (dir: string): string[] =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === dir || m.startsWith(`${dir}/`));

const ROOT_REQUIRED = process.getuid?.() !== 0 ? 'needs root (chroot, mounts, apt)' : undefined;

describe(`a fresh Debian root (${SUITE}, minbase): scripts/run.sh doctor`, { skip: ROOT_REQUIRED }, () => {
  let work = '';
  let root = '';
  const timings: string[] = [];
  let first: Result | undefined;
  let second: Result | undefined;
  let probe: Result | undefined;
  let service: Result | undefined;
  let plugin: Result | undefined;
  const started = performance.now();

  before(
    async () => {
      assert.ok(
        spawnSync('sh', ['-c', 'command -v debootstrap']).status === 0,
        'debootstrap not found: run scripts/setup.sh (it installs debootstrap)',
      );
      work = mkdtempSync(join(tmpdir(), 'truss-fresh-'));
      root = join(work, 'root');
      mkdirSync(root);
      const base = await baseRoot(root, work);
      timings.push(`base root ${base.seconds} s (${base.how})`);
      const n = copyProject(root);
      timings.push(`${n} project files copied to ${PROJECT}`);
      setUpRoot(root);
      first = await run(chrootArgv(root, `${PROJECT}/scripts/run.sh doctor`), join(work, 'first.log'));
      timings.push(`first scripts/run.sh doctor ${first.seconds} s (exit ${first.code})`);
      second = await run(chrootArgv(root, `${PROJECT}/scripts/run.sh doctor`), join(work, 'second.log'));
      timings.push(`second scripts/run.sh doctor ${second.seconds} s (exit ${second.code})`);
      const programs = 'ip tc bridge nft iptables ip6tables conntrack wg setsid nsenter sysctl modprobe';
      // the newest wireguard-go Debian offers (unstable's) in truss's own dir: newer than this
      // release's package (apt's candidate from the root's own lists), and it runs
      const wgGo =
        `own=${OWN_WIREGUARD_GO}; new=$(cut -d' ' -f2 "$own/.packages"); ` +
        `rel=$(apt-cache show --no-all-versions wireguard-go | sed -n 's/^Version: //p'); ` +
        `"$own/usr/bin/wireguard-go" --version | head -1; ` +
        `dpkg --compare-versions "$new" gt "$rel" && echo "wireguard-go package $new newer than $SUITE's $rel"`;
      probe = await run(
        chrootArgv(
          root,
          `cd ${PROJECT} && node_modules/node/bin/node -v && test -s dist/app/lib/truss.mjs && echo bundle-ok && ` +
            `for p in ${programs}; do command -v "$p" >/dev/null || echo "missing: $p"; done; ` +
            wgGo.replace('$SUITE', SUITE),
        ),
        join(work, 'probe.log'),
      );
      // README's other two installs, from the same fresh root: the service (install.sh: no systemd
      // runs in a chroot, so it installs and says how to start) and the managed plugin's build
      service = await run(
        chrootArgv(root, `${PROJECT}/scripts/install.sh && cd / && truss version && truss doctor`),
        join(work, 'install.log'),
      );
      timings.push(`scripts/install.sh + truss doctor from / ${service.seconds} s (exit ${service.code})`);
      plugin = await run(
        chrootArgv(
          root,
          `${PROJECT}/scripts/build-plugin.sh && cd ${PROJECT} && test -s dist/plugin/config.json && ` +
            'test -x dist/plugin/rootfs/usr/local/bin/node && test -s dist/plugin/rootfs/app/lib/truss.mjs && echo plugin-ok',
        ),
        join(work, 'plugin.log'),
      );
      timings.push(`scripts/build-plugin.sh ${plugin.seconds} s (exit ${plugin.code})`);
    },
    { timeout: 45 * 60_000 },
  );

  after(() => {
    const left = root ? killLeftovers(root) : [];
    const mounted = root ? mountsUnder(root) : [];
    timings.push(`total ${Math.round((performance.now() - started) / 1000)} s`);
    process.stdout.write(`# fresh-root test's time: ${timings.join('; ')}\n`);
    if (work && mounted.length === 0) {
      // --one-file-system: never descend into a mount (a bind of /dev or /sys), should one remain
      spawnSync('rm', ['-rf', '--one-file-system', work]);
    }
    assert.deepEqual(left, [], 'processes were left running in the fresh root (killed)');
    assert.deepEqual(mounted, [], `mounts left under ${root} (not removed: umount them, then rm -rf ${work})`);
    assert.ok(!existsSync(work), `${work} was not removed`);
  });

  it('prepare.sh installs the pinned Node, the bundle and every program the daemon runs', () => {
    assert.ok(probe, 'the set-up did not run');
    assert.equal(
      probe.code,
      0,
      `the root lacks the pinned Node or the bundle:\n${tail(probe.output)}\n--- first run.sh:\n${tail(first?.output ?? '')}`,
    );
    assert.equal(probe.output.split('\n')[0], PINNED_NODE, `node_modules/node/bin/node -v:\n${probe.output}`);
    assert.match(probe.output, /^bundle-ok$/m);
    assert.doesNotMatch(probe.output, /^missing: .*/m, probe.output);
  });

  it("prepare.sh fetches the newest wireguard-go Debian offers into truss's own dir, and truss runs it", () => {
    assert.ok(probe && first, 'the set-up did not run');
    // the chroot has no /lib/modules: the kernel's WireGuard is unknown, so wireguard-go is fetched
    assert.match(probe.output, /^wireguard-go v(\d+\.\d+\.\d+)$/m, probe.output);
    assert.match(probe.output, /^wireguard-go package \S+ newer than \S+'s \S+$/m, probe.output);
    const version = /^wireguard-go v(\d+\.\d+\.\d+)$/m.exec(probe.output)?.[1] ?? '?';
    // truss doctor: the wireguard-go the daemon would run is that one, by its version
    const own = `wireguard-go ${version.replaceAll('.', '\\.')} \\(${OWN_WIREGUARD_GO}/usr/bin/wireguard-go, truss's own\\)`;
    assert.match(first.output, new RegExp(own), tail(first.output));
    assert.match(second?.output ?? '', /prepare: wireguard-go v\S+ present in /);
  });

  it('the first run reaches a passing truss doctor (exit 0)', () => {
    assert.ok(first, 'the set-up did not run');
    assert.equal(first.code, 0, `scripts/run.sh doctor exited ${first.code}:\n${tail(first.output)}`);
  });

  it('a second run finds everything done (no apt, no npm ci, no build) and passes again', () => {
    assert.ok(second, 'the set-up did not run');
    assert.match(second.output, /prepare: Debian packages present/);
    assert.match(second.output, /prepare: node_modules up to date/);
    assert.match(second.output, /build: .* is up to date/);
    assert.equal(second.code, 0, `second scripts/run.sh doctor exited ${second.code}:\n${tail(second.output)}`);
  });

  it('scripts/install.sh installs the service and puts a working truss on the PATH', () => {
    assert.ok(service, 'the set-up did not run');
    assert.equal(service.code, 0, `install.sh, truss version, truss doctor:\n${tail(service.output)}`);
    assert.match(service.output, /systemd does not run this host/);
    assert.match(service.output, /every must-have is present/);
  });

  it('scripts/build-plugin.sh builds the managed plugin (config.json, rootfs with node and the bundle)', () => {
    assert.ok(plugin, 'the set-up did not run');
    assert.equal(plugin.code, 0, `build-plugin.sh:\n${tail(plugin.output)}`);
    assert.match(plugin.output, /^plugin-ok$/m);
  });
});
