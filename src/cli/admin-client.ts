/** The CLI side of the admin socket: JSON over HTTP on `<state-dir>/admin.sock`. */
import http from 'node:http';

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
): Promise<Record<string, unknown>> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers: http.OutgoingHttpHeaders =
    payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) };
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, headers, timeout: 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        let reply: Record<string, unknown>;
        try {
          reply = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        } catch (e) {
          reject(
            new AdminError(`the admin socket answered ${status} without a JSON body`, status, undefined, { cause: e }),
          );
          return;
        }
        if (status === 200) resolve(reply);
        else {
          const code = typeof reply?.code === 'string' ? reply.code : undefined;
          reject(new AdminError(String(reply?.error ?? `admin socket answered ${status}`), status, code));
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
