/**
 * The CLI side of the admin socket: JSON over HTTP on `<state-dir>/admin.sock` (admin-request.ts),
 * each reply decoded with the admin contract (core/admin-api.ts).
 */
import type { z } from 'zod';
import { parseView, SCHEMA_VERSION, type View } from '../core/admin-api.ts';

export { AdminError, adminRequest } from './admin-request.ts';

/** Where a decoding failed, as `endpoints[]`: the field, not the index. */
const fieldOf = (path: readonly PropertyKey[]): string => {
  const i = path.findIndex((k) => typeof k === 'number');
  const head = (i < 0 ? path : path.slice(0, i)).map(String).join('.');
  return i < 0 ? head : `${head}[]`;
};

/** A reply without `schemaVersion` is from a daemon before the contract: version 1. */
export function checkVersion(body: unknown): void {
  if (typeof body === 'object' && body !== null && 'schemaVersion' in body && body.schemaVersion !== SCHEMA_VERSION) {
    throw new Error(
      `the truss daemon answers in admin schema version ${JSON.stringify(body.schemaVersion)}, this CLI reads ` +
        `version ${SCHEMA_VERSION}: use the truss command of the daemon's release`,
    );
  }
}

const pathText = (path: readonly PropertyKey[]): string =>
  path.map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i > 0 ? '.' : ''}${String(k)}`)).join('');

/** A reply the CLI reads: of the contract version this CLI knows, and of the contract's shape. */
export function decodeReply<S extends z.ZodType>(schema: S, body: unknown, what: string, hint?: string): View<S> {
  checkVersion(body);
  const r = parseView(schema, body);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const path = issue?.path ?? [];
  const at = issue ? `: ${pathText(path)}: ${issue.message}` : '';
  throw new Error(
    `the truss daemon sent an unexpected ${what} reply (${fieldOf(path)})${at}; is the CLI older than the daemon?` +
      (hint ? ` (${hint})` : ''),
  );
}

/** `--json` output: the daemon's reply as it came (readers ignore fields they do not know), versioned. */
export function jsonOutput(body: unknown): string {
  checkVersion(body);
  const fields = typeof body === 'object' && body !== null ? body : {};
  return `${JSON.stringify({ schemaVersion: SCHEMA_VERSION, ...fields }, null, 2)}\n`;
}
