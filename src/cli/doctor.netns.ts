/**
 * Kernel test (root): `truss doctor` and `truss serve` on a host that lacks a program. A
 * program is hidden by bind-mounting /dev/null over it in a private mount namespace
 * (`unshare -m`): exec.ts searches the sbin/bin directories whatever PATH says, so a PATH
 * of symlinks could not hide it. serve runs in a throwaway network namespace with a temp
 * --state-dir and --socket; it is killed and the namespace removed after each case.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createExec } from '../dataplane/linux/exec.ts';
import { createTestNs, listTestNamespaces, randomId, run, type TestNs } from '../dataplane/linux/netns-testutil.ts';

const TRUSS = join(import.meta.dirname, '../../bin/truss');
const whichReal = (p: string): string => realpathSync(createExec().which(p) as string);

/** argv that runs `argv` in `ns` with `program` replaced by /dev/null (not executable). */
const hiding = (ns: TestNs, program: string, argv: readonly string[]): string[] =>
  ns.argv([
    'unshare',
    '-m',
    '--propagation',
    'private',
    '--',
    'sh',
    '-c',
    'mount --bind /dev/null "$1" && shift && exec "$@"',
    'sh',
    whichReal(program),
    ...argv,
  ]);

function post(socket: string, path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, path, method: 'POST' }, (res) => {
      let text = '';
      res.on('data', (b: Buffer) => {
        text += b.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text || '{}') }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

function get(socket: string, path: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath: socket, path }, (res) => {
        let text = '';
        res.on('data', (b: Buffer) => {
          text += b.toString();
        });
        res.on('end', () => resolve(JSON.parse(text)));
      })
      .on('error', reject);
  });
}

interface Daemon {
  readonly child: ChildProcess;
  output(): string;
  exited: Promise<number>;
}

function startDaemon(argv: readonly string[]): Daemon {
  const [file, ...args] = argv as [string, ...string[]];
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  const exited = new Promise<number>((r) => child.on('close', (code) => r(code ?? 128)));
  return { child, output: () => out, exited };
}

async function stopDaemon(d: Daemon): Promise<void> {
  if (d.child.exitCode !== null || d.child.pid === undefined) return;
  try {
    process.kill(-d.child.pid, 'SIGKILL');
  } catch {}
  await d.exited;
}

async function waitForSocket(d: Daemon, socket: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await post(socket, '/Plugin.Activate', {}).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    if (d.child.exitCode !== null) throw new Error(`truss serve exited: ${d.output()}`);
    if (Date.now() > deadline) throw new Error(`truss serve did not listen: ${d.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('preflight with a program missing', () => {
  let ns: TestNs;
  let dir: string;
  const daemons: Daemon[] = [];
  const flags = (): string[] => ['--state-dir', join(dir, 'state'), '--socket', join(dir, 'plugin.sock')];

  before(async () => {
    ns = await createTestNs('pf');
    dir = mkdtempSync(join(tmpdir(), 'truss-preflight-'));
  });
  after(async () => {
    for (const d of daemons) await stopDaemon(d);
    await ns.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  it('doctor: nft hidden -> exit 1 naming nftables', async () => {
    const r = await run(hiding(ns, 'nft', [TRUSS, 'doctor', ...flags()]), undefined, 30_000);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^MISSING +program 'nft' \(nftables\) +the program 'nft' was not found$/m);
    assert.match(r.stdout, /^ +fix: apt-get install nftables$/m);
    assert.match(r.stdout, /must-have\(s\) missing: truss serve will not start/);
  });

  it('doctor: conntrack hidden -> exit 0 with a warning naming conntrack; --json', async () => {
    const r = await run(hiding(ns, 'conntrack', [TRUSS, 'doctor', ...flags()]), undefined, 30_000);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^WARN +program 'conntrack' \(conntrack\) +the program 'conntrack' was not found$/m);
    assert.match(r.stdout, /^ +affects: port policy \(truss.ingress, truss policy set\)$/m);
    assert.match(r.stdout, /^ +fix: apt-get install conntrack$/m);
    const j = await run(hiding(ns, 'conntrack', [TRUSS, 'doctor', '--json', ...flags()]), undefined, 30_000);
    assert.equal(j.code, 0);
    const body = JSON.parse(j.stdout) as { ok: boolean; checks: { id: string; status: string }[] };
    assert.equal(body.ok, true);
    assert.equal(body.checks.find((c) => c.id === 'program:conntrack')?.status, 'warn');
  });

  it('serve: nft hidden -> refuses to start, names the package, binds nothing', async () => {
    const d = startDaemon(hiding(ns, 'nft', [TRUSS, 'serve', ...flags()]));
    daemons.push(d);
    const code = await Promise.race([d.exited, new Promise<number>((r) => setTimeout(() => r(-1), 20_000))]);
    assert.equal(code, 1, d.output());
    assert.match(d.output(), /^truss: cannot start: the program 'nft' was not found: apt-get install nftables$/m);
    assert.equal((await run(['test', '-e', join(dir, 'plugin.sock')])).code, 1);
  });

  it('serve: conntrack hidden -> starts with a warning; CreateNetwork with truss.ingress gets an Err, nothing stored', async () => {
    const d = startDaemon(hiding(ns, 'conntrack', [TRUSS, 'serve', ...flags()]));
    daemons.push(d);
    const socket = join(dir, 'plugin.sock');
    await waitForSocket(d, socket);
    const warn = d
      .output()
      .split('\n')
      .filter((l) => l.includes('"preflight: a host piece is missing'));
    assert.equal(warn.length, 1, d.output());
    assert.match(warn[0] as string, /"check":"program:conntrack".*"fix":"apt-get install conntrack"/);
    const listening = d
      .output()
      .split('\n')
      .find((l) => l.includes('"msg":"listening"'));
    const { startupMs, preflightMs } = JSON.parse(listening as string) as { startupMs: number; preflightMs: number };
    console.log(`# serve: preflight ${preflightMs} ms, listening after ${startupMs} ms`);

    const nid = randomId();
    const r = await post(socket, '/NetworkDriver.CreateNetwork', {
      NetworkID: nid,
      Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': { 'truss.ingress': 'tcp/80' } },
      IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '198.18.7.0/24', Gateway: '198.18.7.1/24', AuxAddresses: {} }],
      IPv6Data: [],
    });
    assert.notEqual(r.status, 200);
    assert.equal(
      r.body.Err,
      "truss.ingress needs the program 'conntrack', which is not installed: apt-get install conntrack (then restart truss)",
    );
    const status = await get(join(dir, 'state', 'admin.sock'), '/v1/status');
    assert.deepEqual(status.networks, []);
    const bridges = JSON.parse(await ns.must(['ip', '-j', 'link', 'show', 'type', 'bridge'])) as unknown[];
    assert.deepEqual(bridges, []);
    await stopDaemon(d);
  });

  it('leaves no truss-t-* namespace behind', async () => {
    await ns.remove();
    assert.deepEqual(await listTestNamespaces(), []);
  });
});
