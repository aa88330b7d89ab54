/**
 * SqliteStore: the embedded default store, one file `<stateDir>/state.db` (node:sqlite).
 *
 * - WAL journal with synchronous=FULL: a txn's promise resolves only after its commit
 *   is fsynced, so every resolved write survives a crash or power loss.
 * - One `kv` table (key, value, create_rev, mod_rev, version) plus `meta.revision`, the
 *   global revision, bumped by one per transaction that changes something (as etcd does).
 * - `txn` evaluates compares and applies ops inside one `BEGIN IMMEDIATE` transaction,
 *   so it is atomic against other connections and other processes on the same file.
 * - The file is marked with application_id 'trss' and user_version = schema version;
 *   we refuse a database that is not ours or whose schema version we do not know.
 *
 * node:sqlite is synchronous; a durable transaction costs about a millisecond, so the
 * methods run inline and keep the async Store interface.
 *
 * Failing clearly (M7, L5, M1):
 * - At every open the state dir is made 0700 and state.db/-wal/-shm 0600; a state dir that
 *   group or others can write, or a state.db/-wal/-shm that is a symlink, is refused.
 * - `PRAGMA quick_check` runs at open; a corrupt file is refused with what to do.
 * - SQLITE_CORRUPT or SQLITE_NOTADB at any later time marks the store failed: every call
 *   then throws the same "is corrupt" error at once (nothing more is written into the file),
 *   and onFailure() listeners are told (requests waiting for the reconciler give up at once).
 * - A full disk: `<stateDir>/reserve` (RESERVE_BYTES of zeros) is kept beside the db. When a
 *   transaction that only deletes fails with SQLITE_FULL, the reserve is removed and the
 *   transaction retried, so DeleteEndpoint/ReleaseAddress/ReleasePool still commit; the
 *   reserve is re-created once a write succeeds again.
 */
import { chmodSync, closeSync, lstatSync, mkdirSync, openSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { errors, isTrussError } from '../core/errors.ts';
import { assertKey, assertOps, prefixUpperBound } from './keys.ts';
import type { Compare, KeyValue, Op, Store, TxnResult } from './store.ts';

/** 'trss' in the SQLite header's application_id: this file belongs to truss. */
export const SQLITE_APPLICATION_ID = 0x74727373;
/** The schema version this code reads and writes (PRAGMA user_version). */
export const SQLITE_SCHEMA_VERSION = 1;
const BUSY_TIMEOUT_MS = 5000;
/** headroom for deletes on a full disk (see the header) */
export const RESERVE_BYTES = 1024 * 1024;
const SQLITE_CORRUPT = 11;
const SQLITE_FULL = 13;
const SQLITE_NOTADB = 26;
const primaryCode = (e: unknown): number | undefined => {
  const c = (e as { errcode?: unknown }).errcode;
  return typeof c === 'number' ? c & 0xff : undefined;
};

const SCHEMA = `
  CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
  INSERT INTO meta (name, value) VALUES ('revision', 0);
  CREATE TABLE kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL,
    version INTEGER NOT NULL
  ) WITHOUT ROWID;
  PRAGMA application_id = ${SQLITE_APPLICATION_ID};
  PRAGMA user_version = ${SQLITE_SCHEMA_VERSION};
`;

interface Statements {
  readonly get: StatementSync;
  readonly scan: StatementSync;
  readonly range: StatementSync;
  readonly revision: StatementSync;
  readonly setRevision: StatementSync;
  readonly upsert: StatementSync;
  readonly delete: StatementSync;
}

type Row = Record<string, unknown>;

const toKeyValue = (r: Row): KeyValue => ({
  key: String(r.key),
  value: String(r.value),
  createRevision: Number(r.create_rev),
  modRevision: Number(r.mod_rev),
  version: Number(r.version),
});

/** Opens (creating if needed) `<stateDir>/state.db`. The dir is made 0700, the files 0600. */
export async function openSqliteStore(stateDir: string): Promise<SqliteStore> {
  const path = join(stateDir, 'state.db');
  let db: DatabaseSync | undefined;
  try {
    if (mkdirSync(stateDir, { recursive: true, mode: 0o700 }) !== undefined) chmodSync(stateDir, 0o700);
    securePaths(stateDir, path);
    createPrivateFile(path);
    db = new DatabaseSync(path, { timeout: BUSY_TIMEOUT_MS });
    const mode = db.prepare('PRAGMA journal_mode = WAL').get()?.journal_mode;
    if (mode !== 'wal') throw new Error(`journal_mode is ${String(mode)}, WAL is required`);
    db.exec('PRAGMA synchronous = FULL');
    ensureSchema(db, path);
    quickCheck(db, path);
    securePaths(stateDir, path); // the -wal and -shm files exist now
    const store = new SqliteStore(db, path);
    store.ensureReserve();
    return store;
  } catch (e) {
    db?.close();
    if (isTrussError(e)) throw e;
    const code = primaryCode(e);
    if (code === SQLITE_CORRUPT || code === SQLITE_NOTADB) throw corruptError(path, e);
    throw errors.storeUnavailable(`cannot open the state database ${path}: ${(e as Error).message}`, e);
  }
}

const fullError = (what: string, path: string, cause?: unknown): Error =>
  errors.storeFull(
    `state database ${what} failed on ${path}: the disk is full; ` +
      'free space on it: truss retries deletes itself and needs no restart',
    cause,
  );

/** The one message for a corrupt state database, at start and at run time. */
export function corruptError(path: string, cause?: unknown): Error {
  const why = cause instanceof Error ? ` (${cause.message})` : '';
  return errors.storeCorrupt(
    `state database ${path} is corrupt${why}: stop truss, restore a backup of it, or move it away ` +
      '(and the -wal/-shm files) to start empty; the kernel was not touched (see truss status)',
    cause,
  );
}

/**
 * L5: refuse a state dir group or others can write (anyone could swap state.db), and
 * symlinked database files; make the dir 0700 and the files 0600 on every start.
 */
function securePaths(stateDir: string, path: string): void {
  const dir = statSync(stateDir);
  if (!dir.isDirectory()) throw errors.storeUnavailable(`state dir ${stateDir} is not a directory`);
  if ((dir.mode & 0o022) !== 0) {
    throw errors.storeUnavailable(
      `state dir ${stateDir} is writable by group or others (mode ${(dir.mode & 0o777).toString(8)}): ` +
        `anyone could replace its database; check its contents, then chmod 0700 ${stateDir}`,
    );
  }
  if ((dir.mode & 0o777) !== 0o700) chmodSync(stateDir, 0o700);
  for (const f of [path, `${path}-wal`, `${path}-shm`]) {
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(f);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    if (!st.isFile()) {
      throw errors.storeUnavailable(
        `${f} is a ${st.isSymbolicLink() ? 'symlink' : 'special file'}, not a regular file: truss refuses it; move it away`,
      );
    }
    if ((st.mode & 0o777) !== 0o600) chmodSync(f, 0o600);
  }
}

/** Creates the file 0600 when absent (SQLite gives its -wal/-shm files the same mode). */
function createPrivateFile(path: string): void {
  try {
    closeSync(openSync(path, 'wx', 0o600));
    chmodSync(path, 0o600); // why: the umask may have cleared bits we want; never adds any
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

/** M7: PRAGMA quick_check (O(N), no index cross-check): a few ms for thousands of endpoints. */
function quickCheck(db: DatabaseSync, path: string): void {
  const rows = db.prepare('PRAGMA quick_check(5)').all();
  const msgs = rows.map((r) => String(Object.values(r)[0]));
  if (msgs.length !== 1 || msgs[0] !== 'ok') throw corruptError(path, new Error(msgs.join('; ')));
}

function ensureSchema(db: DatabaseSync, path: string): void {
  const pragma = (name: string): number => Number(db.prepare(`PRAGMA ${name}`).get()?.[name] ?? 0);
  const isEmpty = (): boolean => Number(db.prepare('SELECT count(*) AS n FROM sqlite_schema').get()?.n) === 0;
  if (pragma('application_id') === 0 && pragma('user_version') === 0 && isEmpty()) {
    db.exec('BEGIN IMMEDIATE');
    try {
      if (isEmpty()) db.exec(SCHEMA); // why: another process may have initialised it meanwhile
      db.exec('COMMIT');
    } catch (e) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw e;
    }
  }
  const appId = pragma('application_id');
  if (appId !== SQLITE_APPLICATION_ID) {
    throw errors.storeUnavailable(
      `${path} is not a truss state database (application_id ${appId}): move it away or choose another state dir`,
    );
  }
  const version = pragma('user_version');
  if (version !== SQLITE_SCHEMA_VERSION) {
    throw errors.storeUnavailable(
      `${path} has schema version ${version}, this truss knows only version ${SQLITE_SCHEMA_VERSION}: ` +
        'it was written by another truss version; run that version or restore a backup',
    );
  }
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #st: Statements;
  #closed = false;
  /** set once SQLite reported corruption: every call throws it */
  #failed: Error | undefined;
  readonly #onFailure: ((e: Error) => void)[] = [];
  #reserveMissing = false;
  #reserveTriedAt = 0;

  constructor(db: DatabaseSync, path: string) {
    this.#db = db;
    this.path = path;
    this.#st = {
      get: db.prepare('SELECT key, value, create_rev, mod_rev, version FROM kv WHERE key = ?'),
      scan: db.prepare('SELECT key, value, create_rev, mod_rev, version FROM kv WHERE key >= ? ORDER BY key'),
      range: db.prepare(
        'SELECT key, value, create_rev, mod_rev, version FROM kv WHERE key >= ? AND key < ? ORDER BY key',
      ),
      revision: db.prepare("SELECT value FROM meta WHERE name = 'revision'"),
      setRevision: db.prepare("UPDATE meta SET value = ? WHERE name = 'revision'"),
      upsert: db.prepare(
        'INSERT INTO kv (key, value, create_rev, mod_rev, version) VALUES (?, ?, ?, ?, 1) ' +
          'ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev, version = kv.version + 1',
      ),
      delete: db.prepare('DELETE FROM kv WHERE key = ?'),
    };
    this.#st.range.setReturnArrays(true); // why: ~4x faster than row objects on large lists
  }

  async get(key: string): Promise<KeyValue | undefined> {
    return this.#run('get', () => {
      assertKey(key);
      const row = this.#st.get.get(key);
      return row ? toKeyValue(row) : undefined;
    });
  }

  async list(prefix: string): Promise<{ readonly items: readonly KeyValue[]; readonly revision: number }> {
    if (this.#reserveMissing) this.ensureReserve(); // full passes list: the reserve comes back with space
    return this.#run('list', () =>
      this.#transaction('BEGIN', () => {
        const revision = this.#readRevision();
        const upper = prefixUpperBound(prefix);
        if (upper !== undefined) {
          const rows = this.#st.range.all(prefix, upper) as unknown as [string, string, number, number, number][];
          const items = rows.map(
            ([key, value, createRevision, modRevision, version]): KeyValue => ({
              key,
              value,
              createRevision,
              modRevision,
              version,
            }),
          );
          return { items, revision };
        }
        const items: KeyValue[] = [];
        // Keys sharing a prefix are contiguous in BINARY (UTF-8 byte) order: stop at the first other key.
        for (const row of this.#st.scan.iterate(prefix)) {
          const kv = toKeyValue(row);
          if (!kv.key.startsWith(prefix)) break;
          items.push(kv);
        }
        return { items, revision };
      }),
    );
  }

  async txn(compares: readonly Compare[], success: readonly Op[], failure: readonly Op[] = []): Promise<TxnResult> {
    return this.#run('txn', () => {
      for (const c of compares) assertKey(c.key);
      assertOps(success);
      assertOps(failure);
      const run = (): TxnResult => this.#txnOnce(compares, success, failure);
      const deletesOnly = [...success, ...failure].every((op) => op.type === 'delete');
      if (this.#reserveMissing) this.ensureReserve();
      // the disk is still too full for the reserve: what is left is for deletes
      if (this.#reserveMissing && !deletesOnly) throw fullError('txn', this.path);
      try {
        return run();
      } catch (e) {
        // a full disk: deletes may use the reserve, so a release or delete always commits
        if (primaryCode(e) !== SQLITE_FULL || !deletesOnly || !this.#dropReserve()) throw e;
        return run();
      }
    });
  }

  #txnOnce(compares: readonly Compare[], success: readonly Op[], failure: readonly Op[]): TxnResult {
    return this.#transaction('BEGIN IMMEDIATE', () => {
      const succeeded = compares.every((c) => this.#holds(c));
      const current = this.#readRevision();
      const next = current + 1;
      let changed = false;
      for (const op of succeeded ? success : failure) {
        if (op.type === 'delete') changed = this.#st.delete.run(op.key).changes > 0 || changed;
        else {
          this.#st.upsert.run(op.key, op.value, next, next);
          changed = true;
        }
      }
      if (changed) this.#st.setRevision.run(next);
      return { succeeded, revision: changed ? next : current };
    });
  }

  /** The corruption that failed the store, if any (status). */
  failure(): Error | undefined {
    return this.#failed;
  }

  /** Called once when the store fails (corruption found at run time). */
  onFailure(fn: (e: Error) => void): void {
    this.#onFailure.push(fn);
  }

  get #reservePath(): string {
    return join(this.path, '..', 'reserve');
  }

  /** Keeps RESERVE_BYTES of headroom beside the db (tried at most once a second while missing). */
  ensureReserve(): void {
    const now = Date.now();
    if (this.#reserveMissing && now - this.#reserveTriedAt < 1000) return;
    this.#reserveTriedAt = now;
    try {
      if (lstatSync(this.#reservePath, { throwIfNoEntry: false })?.size !== RESERVE_BYTES) {
        writeFileSync(this.#reservePath, Buffer.alloc(RESERVE_BYTES), { mode: 0o600, flush: true });
      }
      this.#reserveMissing = false;
    } catch {
      rmSync(this.#reservePath, { force: true }); // a partial reserve only takes space
      this.#reserveMissing = true;
    }
  }

  /** Frees the reserve; false when there was none to free. */
  #dropReserve(): boolean {
    if (lstatSync(this.#reservePath, { throwIfNoEntry: false }) === undefined) return false;
    rmSync(this.#reservePath, { force: true });
    this.#reserveMissing = true;
    this.#reserveTriedAt = Date.now();
    return true;
  }

  async revision(): Promise<number> {
    return this.#run('revision', () => this.#readRevision());
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  #readRevision(): number {
    return Number(this.#st.revision.get()?.value ?? 0);
  }

  #holds(c: Compare): boolean {
    if ('prefixModRevisionAtMost' in c) {
      for (const row of this.#st.scan.iterate(c.key)) {
        const kv = toKeyValue(row);
        if (!kv.key.startsWith(c.key)) break;
        if (kv.modRevision > c.prefixModRevisionAtMost) return false;
      }
      return true;
    }
    const row = this.#st.get.get(c.key);
    const kv = row ? toKeyValue(row) : undefined;
    if ('version' in c) return (kv?.version ?? 0) === c.version;
    if ('modRevision' in c) return (kv?.modRevision ?? 0) === c.modRevision;
    return kv !== undefined && kv.value === c.value;
  }

  #transaction<T>(begin: 'BEGIN' | 'BEGIN IMMEDIATE', fn: () => T): T {
    this.#db.exec(begin);
    try {
      const result = fn();
      this.#db.exec('COMMIT');
      return result;
    } catch (e) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw e;
    }
  }

  #run<T>(what: string, fn: () => T): T {
    if (this.#closed) throw errors.storeUnavailable(`the state database ${this.path} is closed`);
    if (this.#failed) throw this.#failed;
    try {
      return fn();
    } catch (e) {
      if (isTrussError(e)) throw e;
      const code = primaryCode(e);
      if (code === SQLITE_CORRUPT || code === SQLITE_NOTADB) {
        this.#failed = corruptError(this.path, e);
        for (const f of this.#onFailure.splice(0)) f(this.#failed);
        throw this.#failed;
      }
      if (code === SQLITE_FULL) throw fullError(what, this.path, e);
      throw errors.storeUnavailable(`state database ${what} failed on ${this.path}: ${(e as Error).message}`, e);
    }
  }
}
