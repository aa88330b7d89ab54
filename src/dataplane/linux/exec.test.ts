import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isTrussError } from '../../core/errors.ts';
import { batchLineOf, createExec, isKernelError, KernelError, normaliseKernelError } from './exec.ts';

describe('normaliseKernelError', () => {
  const cases: [string, string][] = [
    ['RTNETLINK answers: File exists\nCommand failed -:1', 'EEXIST'],
    ['iptables: Chain already exists.', 'EEXIST'],
    ['Cannot find device "trb0123456789ab"\nCommand failed -:2', 'ENODEV'],
    ['Device "trb0123456789ab" does not exist.', 'ENODEV'],
    ['RTNETLINK answers: No such device', 'ENODEV'],
    ['Error: argument "trb0123456789ab" is wrong: Device does not exist\nCommand failed -:2', 'ENODEV'],
    ['RTNETLINK answers: No such process', 'ESRCH'],
    ['RTNETLINK answers: Device or resource busy', 'EBUSY'],
    ['RTNETLINK answers: Operation not permitted', 'EPERM'],
    [
      'iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)',
      'EPERM',
    ],
    ['Error: No such file or directory\nlist table inet truss\n                ^^^^^', 'ENOENT'],
    ['Error: ipv4: Address not found.\nCommand failed -:1', 'ENOENT'],
    ['iptables: No chain/target/match by that name.', 'ENOENT'],
    ['iptables: Bad rule (does a matching rule exist in that chain?).', 'ENOENT'],
    ['sysctl: cannot stat /proc/sys/net/ipv6/conf/x/accept_ra: No such file or directory', 'ENOENT'],
    ['RTNETLINK answers: Invalid argument', 'EINVAL'],
    ['Error: mtu greater than device maximum.', 'EINVAL'],
    ['Error: argument "x" is wrong: "mtu" value is invalid', 'EINVAL'],
    ['something else went wrong', 'OTHER'],
    ['', 'OTHER'],
  ];
  for (const [stderr, code] of cases) {
    it(`${JSON.stringify(stderr.split('\n')[0])} → ${code}`, () => assert.equal(normaliseKernelError(stderr), code));
  }
});

describe('batchLineOf', () => {
  it('reads ip -batch and nft -f - line numbers', () => {
    assert.equal(batchLineOf('Cannot find device "x"\nCommand failed -:3\n'), 3);
    assert.equal(batchLineOf('/dev/stdin:27:3-9: Error: No symbol type information'), 27);
    assert.equal(batchLineOf('RTNETLINK answers: File exists'), undefined);
  });
});

describe('createExec', () => {
  it('runs a resolved binary with argv and stdin, and reports every command', async () => {
    const seen: { argv: readonly string[]; stdin: string | undefined; exitCode: number }[] = [];
    const exec = createExec({ onCommand: (argv, stdin, _ms, exitCode) => seen.push({ argv, stdin, exitCode }) });
    const { stdout } = await exec.run('cat', [], { stdin: 'hello; $(not a shell)\n' });
    assert.equal(stdout, 'hello; $(not a shell)\n');
    assert.equal(seen.length, 1);
    assert.match(seen[0]?.argv[0] ?? '', /^\/.*\/cat$/);
    assert.equal(seen[0]?.exitCode, 0);
  });

  it('throws a KernelError with a normalised code, the argv and the batch line', async () => {
    const exec = createExec();
    const err = await exec
      .run('sh', ['-c', 'echo "Cannot find device \\"x\\"" >&2; echo "Command failed -:2" >&2; exit 1'])
      .catch((e: unknown) => e);
    assert.ok(err instanceof KernelError);
    assert.equal(err.code, 'ENODEV');
    assert.equal(err.line, 2);
    assert.equal(err.exitCode, 1);
    assert.ok(isKernelError(err, 'ENODEV'));
    assert.match(err.message, /Cannot find device/);
  });

  it('wraps every command in nsenter when netns is set', async () => {
    const argvs: (readonly string[])[] = [];
    const exec = createExec({ netns: '/nonexistent/netns', onCommand: (argv) => argvs.push(argv) });
    const err = await exec.run('true', []).catch((e: unknown) => e);
    assert.match(argvs[0]?.[0] ?? '', /\/nsenter$/);
    assert.deepEqual(argvs[0]?.slice(1, 3), ['--net=/nonexistent/netns', '--']);
    assert.ok(isKernelError(err, 'ENOENT'));
  });

  it('refuses a missing tool with an unsupported TrussError', async () => {
    const exec = createExec({ searchPath: ['/nonexistent'] });
    assert.equal(exec.which('truss-no-such-tool'), undefined);
    const err = await exec.run('truss-no-such-tool', []).catch((e: unknown) => e);
    assert.ok(isTrussError(err));
    assert.equal(err.kind, 'unsupported');
  });

  it('searches the system dirs before PATH, caches no miss, and never names PATH in errors (L7)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'truss-path-'));
    try {
      writeFileSync(join(dir, 'ip'), '#!/bin/sh\necho shadow\n', { mode: 0o755 });
      const exec = createExec({ searchPath: [dir] });
      assert.match(exec.which('ip') ?? '', /^\/(usr\/)?s?bin\/ip$/);
      const err = await exec.run('truss-late-tool', []).catch((e: unknown) => e);
      assert.ok(isTrussError(err));
      assert.equal(
        err.message,
        "the program 'truss-late-tool' was not found in /usr/sbin, /usr/bin, /sbin, /bin or the daemon's PATH; install it on the host",
      );
      assert.ok(!err.message.includes(dir));
      writeFileSync(join(dir, 'truss-late-tool'), '#!/bin/sh\necho late\n', { mode: 0o755 });
      assert.equal(exec.which('truss-late-tool'), join(dir, 'truss-late-tool'));
      assert.equal((await exec.run('truss-late-tool', [])).stdout, 'late\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('kills a command that outlives its timeout', async () => {
    const err = await createExec()
      .run('sleep', ['5'], { timeoutMs: 50 })
      .catch((e: unknown) => e);
    assert.ok(isKernelError(err, 'OTHER'));
    assert.match(err.stderr, /timed out/);
  });
});

describe('spare processes for `ip -batch -` (SpareProcesses)', () => {
  it('runs each batch in a fresh process: output, exit code and line numbers as a one-shot run', async () => {
    const exec = createExec({ spareProcesses: true });
    try {
      for (let i = 0; i < 3; i++) {
        const r = await exec.run('ip', ['-batch', '-'], { stdin: 'link show dev lo\n' });
        assert.match(r.stdout, /^1: lo:/);
      }
      await assert.rejects(
        exec.run('ip', ['-batch', '-'], { stdin: 'link show dev lo\nlink show dev trnosuchdev0\n' }),
        (e) => isKernelError(e, 'ENODEV') && e.line === 2,
      );
      const again = await exec.run('ip', ['-batch', '-'], { stdin: 'link show dev lo\n' });
      assert.match(again.stdout, /^1: lo:/, 'a failed batch does not spoil the next one');
    } finally {
      exec.close?.();
    }
  });
});
