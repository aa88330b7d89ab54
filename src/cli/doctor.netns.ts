/**
 * Kernel test (root): `truss doctor` and `truss serve` on a host that lacks a program. A
 * program is hidden by bind-mounting /dev/null over it in a private mount namespace
 * (`unshare -m`): exec.ts searches the sbin/bin directories whatever PATH says, so a PATH
 * of symlinks could not hide it. serve runs in a throwaway network namespace with a temp
 * --state-dir and --socket (daemonSuite); it is killed and the namespace removed at the end.
 */
import assert from 'node:assert/strict';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { daemonSuite, get, post, stopDaemon, TRUSS, waitForSocket } from '../daemon-testutil.ts';
import { createExec } from '../dataplane/linux/exec.ts';
import { listTestNamespaces, randomId, run, type TestNs } from '../dataplane/linux/netns-testutil.ts';

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

describe('preflight with a program missing', () => {
  const host = daemonSuite('pf', 'preflight');
  const flags = (): string[] => ['--state-dir', join(host.dir, 'state'), '--socket', join(host.dir, 'plugin.sock')];

  it('doctor: nft hidden -> exit 1 naming nftables', async () => {
    const r = await run(hiding(host.ns, 'nft', [TRUSS, 'doctor', ...flags()]), undefined, 30_000);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^MISSING +program 'nft' \(nftables\) +the program 'nft' was not found$/m);
    assert.match(r.stdout, /^ +fix: apt-get install nftables$/m);
    assert.match(r.stdout, /must-have\(s\) missing: truss serve will not start/);
  });

  it('doctor: conntrack hidden -> exit 0 with a warning naming conntrack; --json', async () => {
    const r = await run(hiding(host.ns, 'conntrack', [TRUSS, 'doctor', ...flags()]), undefined, 30_000);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^WARN +program 'conntrack' \(conntrack\) +the program 'conntrack' was not found$/m);
    assert.match(r.stdout, /^ +affects: port policy \(truss.ingress, truss policy set\)$/m);
    assert.match(r.stdout, /^ +fix: apt-get install conntrack$/m);
    const j = await run(hiding(host.ns, 'conntrack', [TRUSS, 'doctor', '--json', ...flags()]), undefined, 30_000);
    assert.equal(j.code, 0);
    const body = JSON.parse(j.stdout) as { ok: boolean; checks: { id: string; status: string }[] };
    assert.equal(body.ok, true);
    assert.equal(body.checks.find((c) => c.id === 'program:conntrack')?.status, 'warn');
  });

  it('serve: nft hidden -> refuses to start, names the package, binds nothing', async () => {
    const d = host.start(hiding(host.ns, 'nft', [TRUSS, 'serve', ...flags()]));
    const code = await Promise.race([d.exited, new Promise<number>((r) => setTimeout(() => r(-1), 20_000))]);
    assert.equal(code, 1, d.output());
    assert.match(d.output(), /^truss: cannot start: the program 'nft' was not found: apt-get install nftables$/m);
    assert.equal((await run(['test', '-e', join(host.dir, 'plugin.sock')])).code, 1);
  });

  it('serve: conntrack hidden -> starts with a warning; CreateNetwork with truss.ingress gets an Err, nothing stored', async () => {
    const d = host.start(hiding(host.ns, 'conntrack', [TRUSS, 'serve', ...flags()]));
    const socket = join(host.dir, 'plugin.sock');
    await waitForSocket(d, socket, 20_000);
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
    const status = await get(join(host.dir, 'state', 'admin.sock'), '/v1/status');
    assert.deepEqual(status.networks, []);
    const bridges = JSON.parse(await host.ns.must(['ip', '-j', 'link', 'show', 'type', 'bridge'])) as unknown[];
    assert.deepEqual(bridges, []);
    await stopDaemon(d);
  });

  it('leaves no truss-t-* namespace behind', async () => {
    await host.ns.remove();
    assert.deepEqual(await listTestNamespaces(), []);
  });
});
