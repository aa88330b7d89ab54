/**
 * One request on the admin socket (`<state-dir>/admin.sock`, JSON over HTTP), without the admin
 * contract: a command sends its request first and loads what decodes the reply (zod, ~50 ms of
 * CPU) while the daemon answers (issue 18: `truss status` under 150 ms).
 */
import type { OutgoingHttpHeaders } from 'node:http';

/**
 * node:http without its ESM facade, which would load Node's fetch stack (undici, ~15 ms a start);
 * docker/api.ts says more.
 */
const http = (): typeof import('node:http') => process.getBuiltinModule('node:http');

/** An error reply's fields (the contract's errorBody: `error`, and `code` when the daemon has one). */
function errorOf(reply: unknown): { error: string; code?: string } | undefined {
  if (typeof reply !== 'object' || reply === null || !('error' in reply) || typeof reply.error !== 'string') return;
  const code = 'code' in reply && typeof reply.code === 'string' ? reply.code : undefined;
  return { error: reply.error, ...(code !== undefined ? { code } : {}) };
}

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
  const headers: OutgoingHttpHeaders =
    payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) };
  return new Promise((resolve, reject) => {
    // agent false: a connection of its own, closed after the reply. why: Node's global agent keeps
    // sockets alive, and a request written on one the daemon has just closed after its 5 s keep-alive
    // fails with EPIPE (a caller polling the daemon while the machine stalls for seconds)
    const req = http().request({ socketPath, method, path, headers, timeout: 60_000, agent: false }, (res) => {
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
          const e = errorOf(reply);
          reject(new AdminError(e?.error ?? `admin socket answered ${status}`, status, e?.code));
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
