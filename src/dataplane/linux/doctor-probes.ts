/**
 * `truss doctor`'s read-only probes beyond the start-up preflight (host-checks.ts): the admin
 * socket's mode and owner, and etcd's clock (the Date header of GET /version). core/doctor-checks.ts
 * judges them.
 */
import { promises as fs } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AdminSocketFacts, EtcdClockFacts } from '../../core/doctor-checks.ts';

async function statOf(path: string): Promise<import('node:fs').Stats | undefined> {
  try {
    return await fs.lstat(path);
  } catch {
    return undefined;
  }
}

export async function probeAdminSocket(stateDir: string): Promise<AdminSocketFacts> {
  const [dir, sock] = await Promise.all([statOf(stateDir), statOf(`${stateDir}/admin.sock`)]);
  return {
    stateDir,
    ...(dir ? { dir: { mode: dir.mode, uid: dir.uid } } : {}),
    ...(sock ? { socket: { mode: sock.mode, uid: sock.uid, isSocket: sock.isSocket() } } : {}),
  };
}

export interface EtcdClockProbe {
  /** HOST:PORT, as in --store etcd://HOST:PORT */
  readonly endpoint: string;
  /** the files of --etcd-ca/--etcd-cert/--etcd-key: https with them, else http */
  readonly tls?: { readonly ca: string; readonly cert: string; readonly key: string };
  readonly timeoutMs?: number;
  /** tests: the local clock */
  readonly now?: () => number;
}

/**
 * This host's clock minus etcd's, from the Date header of one GET /version. Date is whole seconds
 * (truncated): etcd's time is taken as the middle of that second, compared with the middle of the
 * request.
 */
export async function probeEtcdClock(p: EtcdClockProbe): Promise<EtcdClockFacts> {
  const now = p.now ?? Date.now;
  const tls = p.tls
    ? await Promise.all([fs.readFile(p.tls.ca), fs.readFile(p.tls.cert), fs.readFile(p.tls.key)]).then(
        ([ca, cert, key]) => ({ ca, cert, key }),
        (e: unknown) => new Error(`the --etcd-ca/--etcd-cert/--etcd-key files do not read: ${e}`),
      )
    : undefined;
  if (tls instanceof Error) return { endpoint: p.endpoint, error: tls.message };
  const url = `${tls ? 'https' : 'http'}://${p.endpoint}/version`;
  return new Promise((resolve) => {
    const sent = now();
    const done = (r: Omit<EtcdClockFacts, 'endpoint'>) => resolve({ endpoint: p.endpoint, ...r });
    const req = (tls ? https : http).get(url, { timeout: p.timeoutMs ?? 2000, ...(tls ?? {}) }, (res) => {
      res.resume();
      const date = Date.parse(res.headers.date ?? '');
      if (Number.isNaN(date)) return done({ error: `etcd at ${url} sent no Date header` });
      done({ skewS: ((sent + now()) / 2 - (date + 500)) / 1000 });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${p.timeoutMs ?? 2000} ms`)));
    req.on('error', (e) => done({ error: e.message }));
  });
}
