/**
 * scripts/install.sh into a scratch root (TRUSS_INSTALL_ROOT: no root needed, systemctl never
 * called) from a scratch copy of the repository (its scripts, packaging/systemd, docs, the built
 * dist/app and a link to the pinned Node), so the checkout itself is never changed, and
 * `systemd-analyze verify` on the unit it installs (its ExecStart binaries exist there).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DAEMON_NODE_FLAGS, ensureBundle, NODE_BIN, packageVersion, REPO_ROOT } from '../bundle.ts';

const LIB = 'usr/local/lib/truss';
const UNIT_TEXT = readFileSync(join(REPO_ROOT, 'packaging', 'systemd', 'truss.service'), 'utf8');

/** Every `Key=value` of the unit, in order (comments and sections dropped). */
const directives = (text: string): [string, string][] =>
  text
    .split('\n')
    .filter((l) => /^[A-Za-z]+=/.test(l))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]);
const values = (key: string): string[] =>
  directives(UNIT_TEXT)
    .filter(([k]) => k === key)
    .map(([, v]) => v);

describe('truss.service', () => {
  it('runs the bundle on the pinned Node with the daemon flags, before docker, restarting on failure', () => {
    assert.deepEqual(values('ExecStart'), [
      `/usr/local/lib/truss/current/bin/node ${DAEMON_NODE_FLAGS.join(' ')} /usr/local/lib/truss/current/app/lib/truss.mjs serve`,
    ]);
    assert.deepEqual(values('Before'), ['docker.service']);
    assert.deepEqual(values('Restart'), ['on-failure']);
    assert.deepEqual(values('EnvironmentFile'), ['-/etc/default/truss']);
    assert.deepEqual(values('KillMode'), ['process'], 'wireguard-go outlives a restart');
  });

  it('keeps only CAP_NET_ADMIN and CAP_NET_RAW, and the paths truss writes', () => {
    assert.deepEqual(values('CapabilityBoundingSet'), ['CAP_NET_ADMIN CAP_NET_RAW']);
    assert.deepEqual(values('AmbientCapabilities'), []);
    assert.deepEqual(values('NoNewPrivileges'), ['yes']);
    assert.deepEqual(values('ProtectSystem'), ['strict']);
    assert.deepEqual(values('StateDirectory'), ['truss']);
    assert.deepEqual(values('RuntimeDirectory'), ['docker/plugins wireguard']);
    assert.deepEqual(values('RuntimeDirectoryPreserve'), ['yes']);
    assert.deepEqual(values('ReadWritePaths'), ['/proc/sys/net']);
    assert.deepEqual(values('DeviceAllow'), ['/dev/net/tun rw']);
  });
});

/** A copy of what install.sh reads from a checkout. */
function scratchRepo(dir: string): string {
  const repo = join(dir, 'repo');
  for (const f of ['scripts/install.sh', 'scripts/prepare.sh', 'docs/install.md']) {
    mkdirSync(join(repo, f, '..'), { recursive: true });
    cpSync(join(REPO_ROOT, f), join(repo, f));
  }
  cpSync(join(REPO_ROOT, 'packaging', 'systemd'), join(repo, 'packaging', 'systemd'), { recursive: true });
  cpSync(join(REPO_ROOT, 'dist', 'app'), join(repo, 'dist', 'app'), { recursive: true });
  mkdirSync(join(repo, 'node_modules', 'node', 'bin'), { recursive: true });
  symlinkSync(NODE_BIN, join(repo, 'node_modules', 'node', 'bin', 'node'));
  return repo;
}

/** Files and symlinks under `root` (relative, symlinks not followed): the installed layout. */
function listing(root: string, rel = ''): string[] {
  const out: string[] = [];
  if (!existsSync(join(root, rel))) return out;
  for (const e of readdirSync(join(root, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isSymbolicLink()) out.push(`${r} -> ${readlinkSync(join(root, r))}`);
    else if (e.isDirectory()) out.push(...listing(root, r));
    else out.push(`${r} ${(statSync(join(root, r)).mode & 0o777).toString(8)}`);
  }
  return out;
}

describe('scripts/install.sh', { timeout: 180_000 }, () => {
  let dir: string;
  let repo: string;
  let root: string;
  const install = (...args: string[]): { status: number | null; out: string } => {
    const r = spawnSync(join(repo, 'scripts', 'install.sh'), args, {
      env: { ...process.env, TRUSS_INSTALL_ROOT: root, TRUSS_INSTALL_SKIP_PREPARE: '1' },
      encoding: 'utf8',
      cwd: '/',
    });
    return { status: r.status, out: r.stdout + r.stderr };
  };
  const installOk = (...args: string[]): string => {
    const r = install(...args);
    assert.equal(r.status, 0, r.out);
    return r.out;
  };
  const truss = (...args: string[]): string =>
    execFileSync(join(root, 'usr/local/bin/truss'), args, { encoding: 'utf8', cwd: tmpdir() });
  const current = (): string => readlinkSync(join(root, LIB, 'current'));

  before(async () => {
    await ensureBundle(); // reuses dist/app when it is newer than every source
    dir = mkdtempSync(join(tmpdir(), 'truss-install-'));
    repo = scratchRepo(dir);
    root = join(dir, 'root');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('installs the service: version dir, current link, wrapper, unit, env file', () => {
    const out = installOk();
    const id = current().replace(/^versions\//, '');
    assert.match(id, new RegExp(`^${packageVersion().replaceAll('.', '\\.')}-[0-9a-f]{12}$`));
    assert.match(out, new RegExp(`current -> ${id}`));
    // the bundle's chunks (packaging/bundle.ts), and V8's compile cache the installed truss made for itself
    const all = listing(root);
    const chunks = all.filter((f) => f.startsWith(`${LIB}/versions/${id}/app/lib/chunk-`));
    assert.ok(chunks.length > 0 && chunks.every((f) => /\/chunk-[A-Z0-9]+\.mjs 644$/.test(f)), chunks.join('\n'));
    const cache = `${LIB}/versions/${id}/app/cache/`;
    assert.deepEqual(
      all.filter((f) => !chunks.includes(f) && !f.startsWith(cache)),
      [
        'etc/default/truss 644',
        'etc/systemd/system/truss.service 644',
        'usr/local/bin/truss 755',
        `${LIB}/current -> versions/${id}`,
        `${LIB}/versions/${id}/VERSION 644`,
        `${LIB}/versions/${id}/app/lib/truss.mjs 644`,
        `${LIB}/versions/${id}/app/proto/auth.proto 644`,
        `${LIB}/versions/${id}/app/proto/kv.proto 644`,
        `${LIB}/versions/${id}/app/proto/rpc.proto 644`,
        `${LIB}/versions/${id}/bin/node 755`,
        `${LIB}/versions/${id}/docs/install.md 644`,
        `${LIB}/versions/${id}/lib/wait-ready.ts 644`,
        'usr/share/bash-completion/completions/truss 644',
        'usr/share/zsh/vendor-completions/_truss 644',
      ],
    );
    // the shell completion is the installed truss's own
    assert.equal(
      readFileSync(join(root, 'usr/share/bash-completion/completions/truss'), 'utf8'),
      truss('completion', 'bash'),
    );
    assert.equal(
      readFileSync(join(root, 'usr/share/zsh/vendor-completions/_truss'), 'utf8'),
      truss('completion', 'zsh'),
    );
    assert.equal(
      readFileSync(join(root, 'etc/default/truss'), 'utf8'),
      readFileSync(join(REPO_ROOT, 'packaging/systemd/truss.env'), 'utf8'),
    );
    // the unit names the installed paths (TRUSS_INSTALL_ROOT prefixes them; empty in real installs)
    const unit = readFileSync(join(root, 'etc/systemd/system/truss.service'), 'utf8');
    assert.equal(
      unit,
      UNIT_TEXT.replaceAll('/usr/local/lib/truss', join(root, LIB)).replaceAll(
        '/etc/default/truss',
        join(root, 'etc/default/truss'),
      ),
    );
  });

  it('the installed `truss` works from any directory', () => {
    assert.equal(truss('version', '--short').trim(), packageVersion());
    // the bundle carries the commit it was built from (or says unknown), and the Node it runs on
    assert.match(truss('version'), /^truss \S+\ncommit ([0-9a-f]{40}|unknown)\nnode v\d+\.\d+\.\d+\n$/);
    const r = spawnSync(join(root, 'usr/local/bin/truss'), ['status', '--state-dir', join(dir, 'nostate')], {
      encoding: 'utf8',
      cwd: '/',
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no truss daemon is listening on .*nostate\/admin\.sock/);
  });

  it('the installed readiness check runs through the current link (as ExecStartPost does)', () => {
    const sock = join(dir, 'none.sock');
    const r = spawnSync(join(root, LIB, 'current/bin/node'), [join(root, LIB, 'current/lib/wait-ready.ts'), '1'], {
      env: { ...process.env, TRUSS_SOCKET: sock, TRUSS_READY_TIMEOUT_SECONDS: '1' },
      encoding: 'utf8',
      cwd: '/',
    });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^truss: not ready on .*none\.sock: /);
  });

  it('systemd-analyze verify accepts the installed unit', (t) => {
    if (spawnSync('systemd-analyze', ['--version']).status !== 0) return t.skip('no systemd-analyze here');
    const r = spawnSync('systemd-analyze', ['verify', join(root, 'etc/systemd/system/truss.service')], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(r.stderr.trim(), '');
  });

  it('a second install changes nothing and keeps an edited env file', () => {
    appendFileSync(join(root, 'etc/default/truss'), 'TRUSS_LOG_LEVEL=debug\n');
    const before = listing(root);
    const out = installOk();
    assert.match(out, /is already current/);
    assert.match(out, /etc\/default\/truss exists: kept/);
    assert.deepEqual(listing(root), before);
    assert.match(readFileSync(join(root, 'etc/default/truss'), 'utf8'), /^TRUSS_LOG_LEVEL=debug$/m);
  });

  it('a new build becomes current, the old one previous; --rollback swaps them; older ones go', () => {
    const first = current();
    appendFileSync(join(repo, 'dist/app/lib/truss.mjs'), '\n// build 2\n');
    installOk();
    const second = current();
    assert.notEqual(second, first);
    assert.equal(readlinkSync(join(root, LIB, 'previous')), first);
    assert.match(installOk('--rollback'), /--rollback again to undo/);
    assert.equal(current(), first);
    assert.equal(readlinkSync(join(root, LIB, 'previous')), second);
    assert.equal(truss('version', '--short').trim(), packageVersion());
    appendFileSync(join(repo, 'dist/app/lib/truss.mjs'), '\n// build 3\n');
    installOk();
    assert.deepEqual(readdirSync(join(root, LIB, 'versions')).sort(), [current(), first].map((v) => v.slice(9)).sort());
  });

  it('--uninstall removes every file it installed but an edited env file; the state stays', () => {
    const state = join(root, 'var/lib/truss');
    mkdirSync(state, { recursive: true });
    writeFileSync(join(state, 'state.db'), '');
    const out = installOk('--uninstall');
    assert.match(out, /has your settings: kept/);
    assert.deepEqual(listing(root), ['etc/default/truss 644', 'var/lib/truss/state.db 644']);
    rmSync(join(root, 'etc/default/truss'));
    rmSync(state, { recursive: true });
    installOk();
    installOk('--uninstall');
    assert.deepEqual(listing(root), [], 'an unedited env file goes too');
  });

  it('--cli installs only the CLI', () => {
    assert.match(installOk('--cli'), /CLI only/);
    const files = listing(root);
    assert.ok(files.includes('usr/local/bin/truss 755'), files.join('\n'));
    assert.ok(!files.some((f) => f.startsWith('etc/')), 'no unit, no env file');
    assert.equal(truss('version', '--short').trim(), packageVersion());
    const state = join(root, 'var/lib/truss');
    assert.equal(statSync(state).mode & 0o777, 0o700, "the plugin's state dir, made for it");
    installOk('--uninstall');
    assert.deepEqual(listing(root), []);
    assert.ok(existsSync(state), 'the state dir stays');
  });

  it('refuses unknown arguments and --rollback without a previous version', () => {
    const bad = install('--service');
    assert.equal(bad.status, 1);
    assert.match(
      bad.out,
      /unknown argument '--service' \(expected --cli, --rollback, --uninstall or nothing; --help\)/,
    );
    const rb = install('--rollback');
    assert.equal(rb.status, 1);
    assert.match(rb.out, /no previous version in .* to roll back to/);
    assert.match(installOk('--help'), /scripts\/install\.sh --uninstall/);
  });
});
