import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { acquireInstanceLock, readInstanceLock } from './instance-lock.ts';

// a name of the test's own (abstract names are per network namespace: never the real lock)
const NAME = `\0truss-test/instance-lock/${process.pid}`;
const info = (stateDir: string) => ({
  pid: process.pid,
  stateDir,
  socket: `${stateDir}/truss.sock`,
  version: 'test',
  startedAt: new Date(0).toISOString(),
});

test('a second lock on the same network stack is refused, naming the holder; released, it can be taken', async () => {
  const lock = await acquireInstanceLock(info('/var/lib/truss-a'), NAME);
  try {
    assert.deepEqual(await readInstanceLock(NAME), info('/var/lib/truss-a'));
    await assert.rejects(acquireInstanceLock(info('/var/lib/truss-b'), NAME), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'TRUSS_ERR_INSTANCE_RUNNING');
      assert.match(
        e.message,
        new RegExp(`pid ${process.pid}, state dir /var/lib/truss-a, socket /var/lib/truss-a/truss.sock`),
      );
      assert.match(e.message, /state dir \/var\/lib\/truss-b would fight it: stop the other one first/);
      return true;
    });
  } finally {
    await lock.release();
  }
  assert.equal(await readInstanceLock(NAME), undefined);
  await (await acquireInstanceLock(info('/var/lib/truss-b'), NAME)).release();
});

test('the lock of a process killed with SIGKILL is free at once (no stale lock)', async () => {
  const code = `require('node:net').createServer().listen(${JSON.stringify(NAME)}, () => console.log('up'))`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await once(child.stdout, 'data');
  await assert.rejects(acquireInstanceLock(info('/x'), NAME), /pid unknown/);
  child.kill('SIGKILL');
  await once(child, 'exit');
  await (await acquireInstanceLock(info('/x'), NAME)).release();
});
