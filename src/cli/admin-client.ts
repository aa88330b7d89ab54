/** The CLI side of the admin socket. */
import http from 'node:http';

export function adminRequest(
  socketPath: string,
  method: 'GET' | 'POST',
  path: string,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, timeout: 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
          if (res.statusCode === 200) resolve(body);
          else reject(new Error(String(body.error ?? `admin socket answered ${res.statusCode}`)));
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('the truss daemon did not answer within 60 s')));
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
        reject(new Error(`no truss daemon is listening on ${socketPath} (is it running? wrong --state-dir?)`));
      } else reject(e);
    });
    req.end();
  });
}
