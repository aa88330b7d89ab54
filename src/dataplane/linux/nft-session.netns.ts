/**
 * Kernel tests (root) for the long-lived `nft -i` (nft-session.ts) behind exec.run('nft', ['-f', '-'], { session: true }):
 * a transaction is all or nothing and its error is the one a one-shot `nft -f -` reports (code and
 * line); a change made by another process is seen; a killed process is replaced; concurrent
 * callers each get their own result; scripts it cannot take run as before.
 *
 * Run: TRUSS_TEST_NS_PREFIX=x- node --test src/dataplane/linux/nft-session.netns.ts
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { createExec, type Exec, isKernelError, KernelError } from './exec.ts';
import { applyGuard, GUARD_TABLE, readGuardTable, removeGuard, renderGuardBase } from './guard.ts';
import { createScratch, listTestNamespaces, type TestNs } from './netns-testutil.ts';
import { joinScript, NftSession } from './nft-session.ts';

/** The `nft -i` running in the namespace at `nsPath` (only ours lives in a scratch namespace). */
function sessionPidIn(nsPath: string): number | undefined {
  const want = statSync(nsPath).ino;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (cmd.at(-1) !== '-i' || !cmd.at(-2)?.endsWith('nft')) continue;
      if (statSync(`/proc/${d}/ns/net`).ino === want) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

const ports = (...names: string[]): string =>
  `add set ${GUARD_TABLE} ports { type ifname; elements = { ${names.map((n) => `"${n}"`).join(', ')} } }`;

describe('nft session (one long-lived nft -i)', () => {
  const scratch = createScratch();
  let ns: TestNs;
  let exec: Exec;
  let oneShot: Exec;
  const commands: string[][] = [];
  const listPorts = async (): Promise<string> => ns.must(['nft', 'list', 'set', ...GUARD_TABLE.split(' '), 'ports']);

  before(async () => {
    ns = await scratch.ns('nfts');
    exec = createExec({ netns: ns.path, nftSession: true, onCommand: (argv) => commands.push([...argv]) });
    oneShot = createExec({ netns: ns.path, nftSession: false });
    scratch.defer(() => exec.close?.());
    await oneShot.run('nft', ['-f', '-'], { stdin: renderGuardBase() });
  });

  after(async () => {
    await scratch.close();
    assert.deepEqual(await listTestNamespaces(), []);
  });

  it('runs a script of one-line commands in the session, as one transaction', async () => {
    commands.length = 0;
    await exec.run('nft', ['-f', '-'], { stdin: `${ports('trva1')}\n${ports('trva2')}\n`, session: true });
    assert.equal(commands.length, 1);
    assert.match(commands[0]?.slice(-2).join(' ') ?? '', /nft -i$/);
    const listed = await listPorts();
    assert.match(listed, /"trva1"/);
    assert.match(listed, /"trva2"/);
  });

  it('a failing transaction reports the code and line a one-shot run reports, and applies nothing', async () => {
    const script = `${ports('trvb1')}\nadd element ${GUARD_TABLE} nosuchset { "x" }\n${ports('trvb2')}\n`;
    const viaSession = await exec.run('nft', ['-f', '-'], { stdin: script, session: true }).catch((e: unknown) => e);
    const viaOneShot = await oneShot.run('nft', ['-f', '-'], { stdin: script }).catch((e: unknown) => e);
    assert.ok(viaSession instanceof KernelError && viaOneShot instanceof KernelError);
    assert.equal(viaSession.code, 'ENOENT');
    assert.equal(viaSession.code, viaOneShot.code);
    assert.equal(viaSession.line, 2);
    assert.equal(viaSession.line, viaOneShot.line);
    assert.doesNotMatch(await listPorts(), /trvb/);
    // and the session goes on
    await exec.run('nft', ['-f', '-'], { stdin: `${ports('trvb3')}\n`, session: true });
    assert.match(await listPorts(), /"trvb3"/);
  });

  it('a syntax error is an error of its own line, nothing applied', async () => {
    const e = await exec
      .run('nft', ['-f', '-'], {
        stdin: `${ports('trvc1')}\nadd set ${GUARD_TABLE} macs { type ifname . ether_addr; elements = { "trvc1" . zz } }\n`,
        session: true,
      })
      .catch((x: unknown) => x);
    assert.ok(e instanceof KernelError);
    assert.equal(e.line, 2);
    assert.doesNotMatch(await listPorts(), /trvc1/);
  });

  it('sees what another process changed (table deleted, then made again)', async () => {
    await oneShot.run('nft', ['-f', '-'], { stdin: `delete table ${GUARD_TABLE}\n` });
    const e = await exec
      .run('nft', ['-f', '-'], { stdin: `${ports('trvd1')}\n`, session: true })
      .catch((x: unknown) => x);
    assert.ok(isKernelError(e, 'ENOENT'), String(e));
    assert.equal((e as KernelError).line, 1);
    await oneShot.run('nft', ['-f', '-'], { stdin: renderGuardBase() });
    await exec.run('nft', ['-f', '-'], { stdin: `${ports('trvd1')}\n`, session: true });
    assert.match(await listPorts(), /"trvd1"/);
  });

  it('a killed nft is replaced by the next transaction; one killed mid-transaction fails only that one', async () => {
    const session = new NftSession(
      () => spawn('nsenter', [`--net=${ns.path}`, '--', 'nft', '-i'], { stdio: ['pipe', 'pipe', 'pipe'] }) as never,
    );
    scratch.defer(() => session.close());
    const one = joinScript(`${ports('trve1')}\n`)?.line as string;
    assert.equal((await session.run(one, 5000)).exitCode, 0);
    const first = session.pid as number;
    process.kill(first, 'SIGKILL'); // our own child, by its pid
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await session.run(joinScript(`${ports('trve2')}\n`)?.line as string, 5000)).exitCode, 0);
    assert.notEqual(session.pid, first);
    assert.equal(session.started, 2);
    assert.match(await listPorts(), /"trve2"/);
    // killed while a transaction is in flight: that transaction fails (outcome unknown), the next runs
    const inFlight = session.run(joinScript(`${ports('trve3')}\n`)?.line as string, 5000);
    process.kill(session.pid as number, 'SIGKILL');
    const r = await inFlight;
    assert.ok(r.exitCode === 128 || r.exitCode === 0, `exit ${r.exitCode}`);
    assert.equal((await session.run(joinScript(`${ports('trve4')}\n`)?.line as string, 5000)).exitCode, 0);
    assert.match(await listPorts(), /"trve4"/);
    session.close();
  });

  it('a stuck nft -i: the transaction runs again as nft -f - and the next gets a new session', async () => {
    await exec.run('nft', ['-f', '-'], { stdin: `${ports('trvs1')}\n`, session: true });
    const pid = sessionPidIn(ns.path);
    assert.ok(pid !== undefined, 'the session runs in the test namespace');
    process.kill(pid, 'SIGSTOP');
    try {
      commands.length = 0;
      await exec.run('nft', ['-f', '-'], { stdin: `${ports('trvs2')}\n`, session: true, timeoutMs: 300 });
      assert.deepEqual(
        commands.map((c) => c.at(-1)),
        ['-i', '-'],
      );
      assert.match(await listPorts(), /"trvs2"/);
    } finally {
      // the session killed it at the timeout already; if not, it is ours to end
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    await exec.run('nft', ['-f', '-'], { stdin: `${ports('trvs3')}\n`, session: true });
    assert.notEqual(sessionPidIn(ns.path), pid);
    assert.match(await listPorts(), /"trvs3"/);
  });

  it('concurrent callers each get their own outcome', async () => {
    const jobs = Array.from({ length: 12 }, (_, i) =>
      exec
        .run('nft', ['-f', '-'], {
          stdin: i % 3 === 2 ? `add element ${GUARD_TABLE} nosuchset { "x${i}" }\n` : `${ports(`trvf${i}`)}\n`,
          session: true,
        })
        .then(
          () => 'ok',
          (e: unknown) => (isKernelError(e, 'ENOENT') ? 'ENOENT' : String(e)),
        ),
    );
    const got = await Promise.all(jobs);
    assert.deepEqual(
      got,
      Array.from({ length: 12 }, (_, i) => (i % 3 === 2 ? 'ENOENT' : 'ok')),
    );
    const listed = await listPorts();
    for (let i = 0; i < 12; i++) if (i % 3 !== 2) assert.match(listed, new RegExp(`"trvf${i}"`));
  });

  it("guards and unguards a veth through the session (the attach path's transactions)", async () => {
    const g = {
      name: 'trvg0123456789a',
      endpointId: 'e'.repeat(64),
      networkId: 'n'.repeat(64),
      mac: '02:42:c6:12:00:02',
      ipv4: ['198.18.0.2'],
      ipv6: ['fd00::2', 'fe80::42:c6ff:fe12:2'],
    };
    commands.length = 0;
    await applyGuard(exec, g);
    assert.match(commands.map((c) => c.join(' ')).join('\n'), /nft -i$/m);
    const listed = (await readGuardTable(exec)) ?? '';
    for (const t of ['"trvg0123456789a" . 198.18.0.2', '"trvg0123456789a" . fd00::2', '02:42:c6:12:00:02']) {
      assert.ok(listed.includes(t), t);
    }
    await removeGuard(exec, g.name, g);
    assert.doesNotMatch((await readGuardTable(exec)) ?? '', /trvg0123456789a/);
    await removeGuard(exec, g.name, g); // again: nothing to remove, no error
    // no table at all: applyGuard makes it (one-shot, a multi-line block), removal is a no-op
    await oneShot.run('nft', ['-f', '-'], { stdin: `delete table ${GUARD_TABLE}\n` });
    await removeGuard(exec, g.name, g);
    await applyGuard(exec, g);
    assert.match((await readGuardTable(exec)) ?? '', /trvg0123456789a/);
  });

  it('a multi-line block (a table body), or a script not asked to, runs as a one-shot nft -f -', async () => {
    commands.length = 0;
    await exec.run('nft', ['-f', '-'], { stdin: renderGuardBase(), session: true });
    await exec.run('nft', ['-f', '-'], { stdin: `${ports('trvh1')}\n` });
    assert.deepEqual(
      commands.map((c) => c.slice(-2)),
      [
        ['-f', '-'],
        ['-f', '-'],
      ],
    );
  });
});
