import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import { openSqliteStore } from './sqlite.ts';
import { storeContract } from './store.contract.ts';

const scratch = (): Promise<string> => mkdtemp(join(tmpdir(), 'truss-sqlite-'));

storeContract('sqlite', async () => {
  const dir = await scratch();
  const store = await openSqliteStore(join(dir, 'state'));
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

/** Runs a fresh node process that opens the store in `stateDir`, writes, and dies without closing. */
function childWrites(stateDir: string, key: string, value: string): Promise<number> {
  const moduleUrl = new URL('./sqlite.ts', import.meta.url).href;
  const script = `
    const { openSqliteStore } = await import(${JSON.stringify(moduleUrl)});
    const store = await openSqliteStore(process.argv[1]);
    const r = await store.txn([{ key: process.argv[2], version: 0 }], [{ type: 'put', key: process.argv[2], value: process.argv[3] }]);
    if (!r.succeeded) process.exit(3);
    process.kill(process.pid, 'SIGKILL'); // no close(), no checkpoint: only the fsynced WAL remains
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, stateDir, key, value], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(signal === 'SIGKILL' ? 0 : (code ?? -1)));
  });
}

describe('SqliteStore', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const fresh = async (): Promise<string> => {
    const d = await scratch();
    dirs.push(d);
    return join(d, 'state');
  };

  it('creates the state dir 0700 and state.db 0600', async () => {
    const stateDir = await fresh();
    const store = await openSqliteStore(stateDir);
    await store.close();
    assert.equal((await stat(stateDir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(stateDir, 'state.db'))).mode & 0o777, 0o600);
  });

  it('keeps committed data and the revision across close and reopen', async () => {
    const stateDir = await fresh();
    const a = await openSqliteStore(stateDir);
    await a.txn([], [{ type: 'put', key: '/k', value: 'v' }]);
    const r = await a.txn([], [{ type: 'put', key: '/k', value: 'w' }]);
    await a.close();
    const b = await openSqliteStore(stateDir);
    assert.equal(await b.revision(), r.revision);
    assert.deepEqual(await b.get('/k'), {
      key: '/k',
      value: 'w',
      createRevision: r.revision - 1,
      modRevision: r.revision,
      version: 2,
    });
    await b.close();
  });

  it('sees what another process committed (and that process was killed right after)', async () => {
    const stateDir = await fresh();
    const mine = await openSqliteStore(stateDir);
    const before = await mine.revision();
    assert.equal(await childWrites(stateDir, '/from/child', 'hello'), 0);
    assert.equal((await mine.get('/from/child'))?.value, 'hello');
    assert.equal(await mine.revision(), before + 1);
    // and our own next write continues the same revision sequence
    assert.equal((await mine.txn([], [{ type: 'put', key: '/from/parent', value: 'x' }])).revision, before + 2);
    await mine.close();
    const reopened = await openSqliteStore(stateDir);
    assert.equal((await reopened.get('/from/child'))?.value, 'hello');
    await reopened.close();
  });

  it('refuses a database with a schema version it does not know', async () => {
    const stateDir = await fresh();
    await (await openSqliteStore(stateDir)).close();
    const raw = new DatabaseSync(join(stateDir, 'state.db'));
    raw.exec('PRAGMA user_version = 99');
    raw.close();
    await assert.rejects(openSqliteStore(stateDir), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'TRUSS_ERR_STORE_UNAVAILABLE');
      assert.match(e.message, /schema version 99/);
      return true;
    });
  });

  it('refuses a SQLite database that is not truss state', async () => {
    const stateDir = await fresh();
    await mkdir(stateDir, { mode: 0o700 });
    const raw = new DatabaseSync(join(stateDir, 'state.db'));
    raw.exec('CREATE TABLE foreign_stuff (x)');
    raw.close();
    await assert.rejects(openSqliteStore(stateDir), /not a truss state database/);
  });

  it('leaves the database in WAL mode', async () => {
    const stateDir = await fresh();
    const store = await openSqliteStore(stateDir);
    await store.close();
    const raw = new DatabaseSync(join(stateDir, 'state.db'));
    assert.equal(raw.prepare('PRAGMA journal_mode').get()?.journal_mode, 'wal');
    raw.close();
  });
});
