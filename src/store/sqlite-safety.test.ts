/**
 * The state database fails clearly (M7, L5): permissions enforced on every start, symlinks
 * refused, quick_check at start, corruption at run time fails the store at once. Also
 * measures quick_check on a database of 1,000 endpoints (printed as a diagnostic).
 */
import assert from 'node:assert/strict';
import { chmodSync, closeSync, mkdtempSync, openSync, rmSync, statSync, symlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import { openSqliteStore, RESERVE_BYTES } from './sqlite.ts';

const dirs: string[] = [];
const scratch = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'truss-sqlite-safety-'));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const mode = (p: string): number => statSync(p).mode & 0o777;

/** A state dir holding `n` endpoint-sized records (~600 bytes each, like real intent). */
async function filled(n: number): Promise<string> {
  const st = join(scratch(), 'state');
  const s = await openSqliteStore(st);
  for (let i = 0; i < n; i += 100) {
    const ops = Array.from({ length: Math.min(100, n - i) }, (_, j) => ({
      type: 'put' as const,
      key: `/truss/v1/endpoints/${'a'.repeat(64)}/${(i + j).toString(16).padStart(64, '0')}`,
      value: JSON.stringify({ i: i + j, pad: 'x'.repeat(500) }),
    }));
    await s.txn([], ops);
  }
  await s.close();
  return st;
}

describe('state database safety', () => {
  it('L5: makes an existing 0755 dir 0700 and 0644 files 0600 on every start', async () => {
    const st = join(scratch(), 'state');
    await (await openSqliteStore(st)).close();
    chmodSync(st, 0o755);
    chmodSync(join(st, 'state.db'), 0o644);
    const s = await openSqliteStore(st);
    await s.txn([], [{ type: 'put', key: '/k', value: 'v' }]);
    assert.equal(mode(st), 0o700);
    for (const f of ['state.db', 'state.db-wal', 'state.db-shm']) assert.equal(mode(join(st, f)), 0o600, f);
    await s.close();
  });

  it('L5: refuses a state dir that group or others can write', async () => {
    const st = join(scratch(), 'state');
    await (await openSqliteStore(st)).close();
    chmodSync(st, 0o777);
    await assert.rejects(openSqliteStore(st), {
      code: 'TRUSS_ERR_STORE_UNAVAILABLE',
      message: `state dir ${st} is writable by group or others (mode 777): anyone could replace its database; check its contents, then chmod 0700 ${st}`,
    });
  });

  it('M7: refuses a state.db that is a symlink, and opens nothing through it', async () => {
    const dir = scratch();
    const st = join(dir, 'state');
    await (await openSqliteStore(join(dir, 'other'))).close();
    await (await openSqliteStore(st)).close();
    rmSync(join(st, 'state.db'));
    symlinkSync(join(dir, 'other', 'state.db'), join(st, 'state.db'));
    await assert.rejects(openSqliteStore(st), {
      message: `${join(st, 'state.db')} is a symlink, not a regular file: truss refuses it; move it away`,
    });
  });

  it('M7: quick_check at start refuses a corrupt page; its cost on 1,000 endpoints is small', async () => {
    const st = await filled(1000);
    const db = new DatabaseSync(join(st, 'state.db'));
    const t0 = performance.now();
    db.prepare('PRAGMA quick_check').all();
    const ms = performance.now() - t0;
    db.close();
    const size = statSync(join(st, 'state.db')).size;
    console.log(`# quick_check: ${ms.toFixed(1)} ms on ${size} bytes (1000 endpoints)`);
    assert.ok(ms < 500, `quick_check took ${ms} ms`);
    const fd = openSync(join(st, 'state.db'), 'r+');
    writeSync(fd, Buffer.alloc(8192, 0x5a), 0, 8192, 12 * 4096); // two pages, as in the review
    closeSync(fd);
    await assert.rejects(openSqliteStore(st), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'TRUSS_ERR_STORE_CORRUPT');
      assert.match(
        e.message,
        /^state database .*state\.db is corrupt \(.*\): stop truss, restore a backup of it, or move it away \(and the -wal\/-shm files\) to start empty; the kernel was not touched \(see truss status\)$/,
      );
      return true;
    });
  });

  it('M7: corruption found at run time fails the store: every call throws at once, nothing is written', async () => {
    const st = await filled(4000);
    const s = await openSqliteStore(st);
    const failures: Error[] = [];
    s.onFailure((e) => failures.push(e));
    const fd = openSync(join(st, 'state.db'), 'r+');
    const pages = statSync(join(st, 'state.db')).size / 4096;
    for (let p = 2; p < pages; p += 2) writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, p * 4096);
    closeSync(fd);
    await assert.rejects(s.list('/truss/'), { code: 'TRUSS_ERR_STORE_CORRUPT' });
    assert.equal(failures.length, 1);
    const t0 = performance.now();
    await assert.rejects(s.txn([], [{ type: 'delete', key: '/k' }]), { code: 'TRUSS_ERR_STORE_CORRUPT' });
    await assert.rejects(s.get('/k'), { code: 'TRUSS_ERR_STORE_CORRUPT' });
    assert.ok(performance.now() - t0 < 50);
    assert.equal(s.failure(), failures[0]);
    await s.close();
  });

  it('keeps a reserve file for deletes on a full disk', async () => {
    const st = join(scratch(), 'state');
    await (await openSqliteStore(st)).close();
    assert.equal(statSync(join(st, 'reserve')).size, RESERVE_BYTES);
    assert.equal(mode(join(st, 'reserve')), 0o600);
  });
});
