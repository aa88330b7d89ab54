/**
 * The CLI side of the admin socket: JSON over HTTP on `<state-dir>/admin.sock`, each reply
 * decoded with the admin contract (core/admin-api.ts).
 */
import http from 'node:http';
import type { z } from 'zod';
import { errorBody, parseView, SCHEMA_VERSION, type View } from '../core/admin-api.ts';

/** A reply other than 200, or no usable reply. `status` is the HTTP status when there was one. */
export class AdminError extends Error {
  readonly status: number | undefined;
  /** the daemon's stable error code (TRUSS_ERR_*), when it sent one */
  readonly code: string | undefined;
  constructor(message: string, status?: number, code?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AdminError';
    this.status = status;
    this.code = code;
  }
}

export function adminRequest(
  socketPath: string,
  method: 'GET' | 'POST' | 'PUT',
  path: string,
  body?: unknown,
): Promise<unknown> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers: http.OutgoingHttpHeaders =
    payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) };
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, headers, timeout: 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        let reply: unknown;
        try {
          reply = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch (e) {
          reject(
            new AdminError(`the admin socket answered ${status} without a JSON body`, status, undefined, { cause: e }),
          );
          return;
        }
        if (status === 200) resolve(reply);
        else {
          const e = errorBody.safeParse(reply);
          const message = e.success ? e.data.error : `admin socket answered ${status}`;
          reject(new AdminError(message, status, e.success ? e.data.code : undefined));
        }
      });
    });
    req.on('timeout', () => req.destroy(new AdminError('the truss daemon did not answer within 60 s')));
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e instanceof AdminError) reject(e);
      else if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
        reject(
          new AdminError(
            `no truss daemon is listening on ${socketPath} (is it running? wrong --state-dir?)`,
            undefined,
            undefined,
            {
              cause: e,
            },
          ),
        );
      } else if (e.code === 'EACCES') {
        reject(
          new AdminError(
            `permission denied on ${socketPath} (the admin socket is root-only: run as root)`,
            undefined,
            undefined,
            { cause: e },
          ),
        );
      } else reject(e);
    });
    req.end(payload);
  });
}

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
