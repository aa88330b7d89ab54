/**
 * ExecStartPost of truss.service: returns once the daemon answers `POST /Plugin.Activate` on its
 * plugin socket, so that the unit is `active` only when dockerd can use the driver and units
 * ordered after it (docker.service) start then. A socket file alone proves nothing: a stale one
 * from the previous run can still be there.
 *
 * Usage: node wait-ready.ts [MAINPID]. The socket is TRUSS_SOCKET (from /etc/default/truss, as
 * the daemon reads it) or the default. Exits 1 when the daemon exits first or after
 * TRUSS_READY_TIMEOUT_SECONDS (default 60); systemd then fails the start (Restart=on-failure).
 * Self-contained (node: modules only): install.sh copies it next to the bundle.
 */
import { realpathSync } from 'node:fs';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';

export const DEFAULT_SOCKET = '/run/docker/plugins/truss.sock';

/** The HTTP status of POST /Plugin.Activate on `socketPath`, 0 when nothing answers. */
export function activate(socketPath: string, timeoutMs = 2000): Promise<number> {
  return new Promise((done) => {
    const req = request({ socketPath, path: '/Plugin.Activate', method: 'POST', timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => done(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => done(0));
    req.end();
  });
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

export interface WaitOptions {
  readonly socketPath: string;
  readonly timeoutMs: number;
  /** the daemon: stop waiting when it is gone */
  readonly pid?: number;
  readonly intervalMs?: number;
}

/** Resolves 'ready', 'exited' (the daemon died first) or 'timeout'. */
export async function waitReady(o: WaitOptions): Promise<'ready' | 'exited' | 'timeout'> {
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    if ((await activate(o.socketPath)) === 200) return 'ready';
    if (o.pid !== undefined && !alive(o.pid)) return 'exited';
    if (Date.now() >= deadline) return 'timeout';
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 100));
  }
}

// why realpath: the unit runs it through the `current` symlink; import.meta.url is the real path
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const socketPath = process.env.TRUSS_SOCKET || DEFAULT_SOCKET;
  const seconds = Number(process.env.TRUSS_READY_TIMEOUT_SECONDS || 60);
  const pidText = process.argv[2];
  const pid = pidText && /^[1-9][0-9]*$/.test(pidText) ? Number(pidText) : undefined;
  const r = await waitReady({ socketPath, timeoutMs: seconds * 1000, ...(pid !== undefined ? { pid } : {}) });
  if (r !== 'ready') {
    const why = r === 'exited' ? `the daemon (pid ${pid}) exited` : `nothing answered within ${seconds} s`;
    process.stderr.write(`truss: not ready on ${socketPath}: ${why} (journalctl -u truss)\n`);
    process.exit(1);
  }
}
