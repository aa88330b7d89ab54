/**
 * One value of `<stateDir>/state.db`, read-only and without opening the store (no permission
 * fixes, no schema check, no lock): for `truss doctor`, which must not change anything and runs
 * beside a daemon that may hold the database. Any problem reads as "no value".
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';

export function peekSqliteValue(stateDir: string, key: string): string | undefined {
  const path = join(stateDir, 'state.db');
  if (!existsSync(path)) return undefined;
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path, { readOnly: true, timeout: 1000 });
    const row = db.prepare('SELECT value FROM kv WHERE key = ?').get(key);
    return row ? String(row.value) : undefined;
  } catch {
    return undefined;
  } finally {
    db?.close();
  }
}
