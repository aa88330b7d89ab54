import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CLEANUP_USAGE, cleanupCommand, formatCleanup } from './cleanup.ts';

test('truss cleanup without --foreign says what it needs (exit 2); --help prints the usage', async () => {
  let out = '';
  let err = '';
  const io = { env: {}, stdout: (t: string) => (out += t), stderr: (t: string) => (err += t) };
  assert.equal(await cleanupCommand([], io), 2);
  assert.match(err, /^truss: cleanup: say what to remove \(--foreign\)\n/);
  assert.equal(await cleanupCommand(['--help'], io), 0);
  assert.equal(out, CLEANUP_USAGE);
});

test('the summary names what was removed, and what is left', () => {
  assert.equal(formatCleanup({ removed: [], remaining: [] }), 'no truss links of another state on this host\n');
  assert.equal(
    formatCleanup({
      removed: [{ name: 'trvdddddddddddd', kind: 'veth', id: 'd'.repeat(64) }],
      remaining: [{ name: 'trbcccccccccccc', kind: 'bridge', id: 'c'.repeat(64) }],
    }),
    "removed 1 truss link(s) of another state: trvdddddddddddd\nstill present (see the daemon's log): trbcccccccccccc\n",
  );
});
