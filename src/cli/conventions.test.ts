/**
 * The CLI's conventions, as a user meets them (the real `truss` process): --help and -h on
 * every command and subcommand (exit 0, usage on stdout), `truss help TOPIC`, usage errors
 * (exit 2, one line and the usage on stderr, nothing on stdout), --json where it is offered,
 * `truss version`, and the bash completion run by bash itself.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { COMMANDS, USAGE, usageOf } from './commands.ts';
import { renderBash, renderZsh } from './completion.ts';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));
const REPO = fileURLToPath(new URL('../../', import.meta.url));

interface Result {
  readonly code: number | null;
  readonly out: string;
  readonly err: string;
}

function truss(args: readonly string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [MAIN, ...args],
      { env: { ...process.env, TRUSS_STATE_DIR: '/nonexistent-truss-state', ...env }, timeout: 20_000 },
      (_e, out, err) => resolve({ code: child.exitCode, out, err }),
    );
  });
}

/** Runs `cases` a few at a time (two cores, shared). */
async function each<T>(cases: readonly T[], fn: (c: T) => Promise<void>): Promise<void> {
  const queue = [...cases];
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let c = queue.shift(); c !== undefined; c = queue.shift()) await fn(c);
    }),
  );
}

const names = COMMANDS.map((c) => c.name);

describe('truss --help, -h and help TOPIC', { timeout: 120_000 }, () => {
  it('every command and subcommand: exit 0, its usage on stdout, nothing on stderr', async () => {
    const cases = names.flatMap((n) => ['--help', '-h'].map((flag) => [...n.split(' '), flag]));
    await each(cases, async (args) => {
      const r = await truss(args);
      const what = args.join(' ');
      assert.equal(r.code, 0, `${what}: ${r.err}`);
      assert.equal(r.err, '', what);
      assert.equal(r.out, usageOf(args), what);
      assert.match(r.out, /^usage:/, what);
    });
  });

  it('help TOPIC shows the same usage as TOPIC --help; an unknown topic exits 2', async () => {
    await each(names, async (n) => {
      const r = await truss(['help', ...n.split(' ')]);
      assert.equal(r.code, 0, n);
      assert.equal(r.out, usageOf(n.split(' ')), n);
    });
    const top = await truss(['help']);
    assert.deepEqual([top.code, top.out], [0, USAGE]);
    for (const args of [['--help'], ['-h']]) assert.equal((await truss(args)).out, USAGE);
    const bad = await truss(['help', 'nonsense']);
    assert.equal(bad.code, 2);
    assert.equal(bad.out, '');
    assert.equal(bad.err, `truss: help: unknown topic "nonsense"\n\n${USAGE}`);
  });

  it('serve --help lists every flag with its env twin and default', async () => {
    const { SERVE_OPTIONS } = await import('../config.ts');
    const r = await truss(['serve', '--help']);
    for (const [name, o] of Object.entries(SERVE_OPTIONS)) {
      const twin = `env ${o.env}${o.defaultText ? `, default ${o.defaultText}` : ''}`;
      assert.match(
        r.out,
        new RegExp(`  --${name}\\b[^\\n]*\\n +${twin.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n`),
        name,
      );
    }
  });
});

describe('truss usage errors: exit 2, one line and the usage on stderr', { timeout: 120_000 }, () => {
  const usageError = (args: readonly string[], message: string | RegExp) => ({ args, message });
  const cases = [
    usageError([], 'missing command'),
    usageError(['bogus'], 'unknown command "bogus"'),
    ...names.map((n) => usageError([...n.split(' '), '--bogus'], /^truss: Unknown option '--bogus'/)),
    usageError(['status', 'extra'], /Unexpected argument 'extra'/),
    usageError(['reconcile', 'extra'], /Unexpected argument 'extra'/),
    usageError(['serve', 'extra'], /Unexpected argument 'extra'/),
    usageError(['version', 'extra'], /Unexpected argument 'extra'/),
    usageError(['version', '--json', '--short'], 'version: --json and --short exclude each other'),
    usageError(['keys'], 'keys: missing subcommand'),
    usageError(['keys', 'spin'], 'keys: unknown subcommand "spin"'),
    usageError(['keys', 'rotate', 'extra'], 'keys rotate: unexpected argument "extra"'),
    usageError(['completion'], 'completion: missing shell (bash or zsh)'),
    usageError(['completion', 'fish'], 'completion: unknown shell "fish" (bash or zsh)'),
    usageError(['completion', 'bash', 'zsh'], 'completion: unexpected argument "zsh"'),
    usageError(['policy', 'show'], 'policy show: missing NETWORK'),
    usageError(['cluster', 'forget'], 'cluster forget: missing NODE'),
    usageError(['cluster', 'rbac'], 'cluster rbac: missing --node ID'),
    usageError(['cleanup'], 'cleanup: say what to remove (--foreign)'),
    usageError(['serve', '--log-format', 'xml'], '--log-format "xml": expected one of json, text'),
    usageError(['serve', '--wg-port', '0'], '--wg-port "0": expected 1-65535'),
    usageError(['doctor', '--resync-seconds', 'soon'], '--resync-seconds "soon": expected 1..99999'),
    usageError(['status', '--state-dir'], /Option '--state-dir <value>' argument missing/),
  ];

  it('in every command', async () => {
    await each(cases, async ({ args, message }) => {
      const r = await truss(args);
      const what = args.join(' ') || '(nothing)';
      assert.equal(r.code, 2, `${what}: ${r.err}`);
      assert.equal(r.out, '', what);
      const [first, blank, ...rest] = r.err.split('\n');
      if (typeof message === 'string') assert.equal(first, `truss: ${message}`, what);
      else assert.match(first ?? '', message, what);
      assert.equal(blank, '', what);
      const usage = args.length === 0 || args[0] === 'bogus' ? USAGE : usageOf(args);
      assert.equal(rest.join('\n'), usage, what);
    });
  });

  it('a runtime failure (no daemon) stays exit 1 with one line', async () => {
    const r = await truss(['status']);
    assert.equal(r.code, 1);
    assert.equal(
      r.err,
      'truss: no truss daemon is listening on /nonexistent-truss-state/admin.sock (is it running? wrong --state-dir?)\n',
    );
  });
});

describe('truss reconcile and version: --json and the human view', { timeout: 60_000 }, () => {
  let dir: string;
  let server: http.Server;
  const pass = { full: true, revision: 7, changes: 2, failures: 0, durationMs: 12 };
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'truss-conv-'));
    server = http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.method === 'POST' && req.url === '/v1/reconcile') {
        res.end(JSON.stringify({ pass, kernel: { inSync: false, problems: ['link trb1 missing'] } }));
      } else {
        res.statusCode = 404;
        res.end('{"error":"no"}');
      }
    });
    await new Promise<void>((resolve) => server.listen(join(dir, 'admin.sock'), resolve));
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('reconcile: a summary by default, the versioned reply with --json', async () => {
    const human = await truss(['reconcile', '--state-dir', dir]);
    assert.equal(human.code, 0, human.err);
    assert.equal(
      human.out,
      'full pass at revision 7: 2 change(s), 0 failure(s), 12 ms\nkernel: NOT in sync (1 problem(s))\n  link trb1 missing\n',
    );
    const json = await truss(['reconcile', '--json', '--state-dir', dir]);
    assert.equal(json.code, 0, json.err);
    assert.deepEqual(JSON.parse(json.out), {
      schemaVersion: 1,
      pass,
      kernel: { inSync: false, problems: ['link trb1 missing'] },
    });
  });

  it('version: version, commit (this checkout) and Node; --json per docs/json/version.schema.json; --short', async () => {
    const head = spawnSync('git', ['-C', REPO, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).stdout.trim() || 'unknown';
    const { VERSION } = await import('../obs/version.ts');
    const human = await truss(['version']);
    assert.equal(human.out, `truss ${VERSION}\ncommit ${head}\nnode ${process.version}\n`);
    assert.equal((await truss(['--version'])).out, human.out);
    assert.equal((await truss(['version', '--short'])).out, `${VERSION}\n`);
    const json = await truss(['version', '--json']);
    const { versionBody } = await import('../core/admin-api.ts');
    const body = JSON.parse(json.out) as Record<string, unknown>;
    assert.deepEqual(body, { schemaVersion: 1, version: VERSION, commit: head, node: process.version });
    assert.ok(versionBody.safeParse(body).success);
  });
});

describe('bash completion, run by bash', { timeout: 30_000 }, () => {
  /** COMPREPLY for the words typed so far (the last one is being completed). */
  function complete(...typed: string[]): string[] {
    const words = ['truss', ...typed].map((w) => `'${w}'`).join(' ');
    const script = `${renderBash()}\nCOMP_WORDS=(${words}); COMP_CWORD=${typed.length}; _truss; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script], { encoding: 'utf8', cwd: REPO });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    return r.stdout.split('\n').filter((l) => l !== '');
  }

  it('completes commands, subcommands, flags and flag values', () => {
    assert.deepEqual(
      complete(''),
      COMMANDS.filter((c) => !c.name.includes(' ')).map((c) => c.name),
    );
    assert.deepEqual(complete('re'), ['reconcile']);
    assert.deepEqual(complete('policy', ''), ['show', 'set', 'clear']);
    assert.deepEqual(complete('cluster', 'r'), ['rbac']);
    assert.deepEqual(complete('completion', ''), ['bash', 'zsh']);
    assert.deepEqual(complete('help', 'clu'), ['cluster']);
    assert.deepEqual(complete('status', '--'), ['--json', '--check', '--verbose', '--state-dir', '--help']);
    assert.deepEqual(complete('policy', 'set', 'web', '--in'), ['--ingress']);
    assert.deepEqual(complete('serve', '--log-f'), ['--log-format']);
    assert.deepEqual(complete('serve', '--log-format', ''), ['json', 'text']);
    assert.deepEqual(complete('serve', '--log-level', 'w'), ['warn']);
    assert.deepEqual(complete('serve', '--state-dir', '/tmp', '--wg'), ['--wg-port']);
    assert.deepEqual(complete('serve', '--etcd-ca', 'packagi'), ['packaging']);
    assert.deepEqual(complete('cluster', 'rbac', '--'), [
      '--apply',
      '--etcd-insecure',
      '--node',
      '--password-file',
      '--store',
      '--etcd-user',
      '--etcd-password-file',
      '--etcd-ca',
      '--etcd-cert',
      '--etcd-key',
      '--help',
    ]);
    assert.deepEqual(complete('--'), ['--help', '--version']);
  });

  it('the value of a flag is not taken for a subcommand', () => {
    assert.deepEqual(complete('policy', '--state-dir', 'show', ''), ['show', 'set', 'clear']);
  });
});

describe('zsh completion, run by zsh (compadd and _files stubbed: no completion widget here)', {
  timeout: 30_000,
}, () => {
  function complete(...typed: string[]): string[] {
    const words = ['truss', ...typed].map((w) => `'${w}'`).join(' ');
    const stubs = 'compadd() { [[ $1 == -- ]] && shift; print -l -- "$@"; }; _files() { print FILES "$@"; }';
    const script = `${stubs}\nwords=(${words}); CURRENT=${typed.length + 1}\n${renderZsh()}`;
    const r = spawnSync('zsh', ['-f', '-c', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    return r.stdout.split('\n').filter((l) => l !== '');
  }

  it('parses, and completes as the bash one does', () => {
    assert.equal(spawnSync('zsh', ['-n', '-c', renderZsh()]).status, 0);
    assert.deepEqual(complete('policy', ''), ['show', 'set', 'clear']);
    assert.deepEqual(complete('serve', '--log-format', ''), ['json', 'text']);
    assert.deepEqual(complete('status', '--'), ['--json', '--check', '--verbose', '--state-dir', '--help']);
    assert.deepEqual(complete('serve', '--etcd-ca', ''), ['FILES']);
    assert.deepEqual(complete('serve', '--proc-sys', ''), ['FILES -/']);
  });
});
