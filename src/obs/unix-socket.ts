/**
 * Unix socket helpers: find out whether a socket path has a live listener, and listen on
 * a path after removing a stale socket file (never one with a live listener).
 */
import { lstatSync, mkdirSync, rmSync } from 'node:fs';
import type http from 'node:http';
import net from 'node:net';
import { dirname } from 'node:path';

export function probeSocket(path: string, timeoutMs = 1000): Promise<'live' | 'stale' | 'absent'> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    const done = (r: 'live' | 'stale' | 'absent'): void => {
      s.destroy();
      resolve(r);
    };
    s.setTimeout(timeoutMs, () => done('live'));
    s.once('connect', () => done('live'));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'ENOENT' ? 'absent' : 'stale'));
  });
}

export async function listenUnix(server: http.Server, path: string): Promise<void> {
  const state = await probeSocket(path);
  if (state === 'live') throw new Error(`another process is already listening on ${path}`);
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  if (state === 'stale') removeStaleSocket(path);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Remove what is at `path` only when it is a socket (lstat: a symlink is not followed): a
 * --socket that names a regular file, a directory or a link is refused, never deleted (L6).
 */
function removeStaleSocket(path: string): void {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!st.isSocket()) {
    throw new Error(`${path} exists and is not a unix socket: truss does not remove it; choose another socket path`);
  }
  rmSync(path, { force: true });
}
