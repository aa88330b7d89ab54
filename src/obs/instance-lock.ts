/**
 * One truss per host: a lock on the kernel network stack truss programs, whatever the state
 * dir and plugin socket. The lock is a listener on the Linux abstract Unix socket
 * "\0truss/instance": abstract names belong to the network namespace (the unit truss owns, and
 * what a simulated host in the tests is), need no file, and vanish with the process that holds
 * them, kill -9 included (no stale lock). The managed plugin runs with host networking, so it
 * shares the lock with a plain `truss serve` on the same host.
 *
 * The holder answers every connection with its identity (one JSON line), so the refusal names
 * the other daemon: pid, state dir, socket.
 */
import net from 'node:net';
import { errors, type TrussError } from '../core/errors.ts';

export const INSTANCE_LOCK = '\0truss/instance';

export interface InstanceInfo {
  readonly pid: number;
  readonly stateDir: string;
  readonly socket: string;
  readonly version: string;
  readonly startedAt: string;
}

export interface InstanceLock {
  release(): Promise<void>;
}

/** The identity of the daemon holding the lock; undefined when none does (or it does not answer within timeoutMs). */
export function readInstanceLock(name = INSTANCE_LOCK, timeoutMs = 1000): Promise<Partial<InstanceInfo> | undefined> {
  return new Promise((resolve) => {
    const s = net.connect(name);
    let data = '';
    const done = (r: Partial<InstanceInfo> | undefined): void => {
      s.destroy();
      resolve(r);
    };
    s.setTimeout(timeoutMs, () => done({}));
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      data += d;
      if (data.length > 4096) done({});
    });
    s.once('end', () => {
      try {
        const v = JSON.parse(data) as Partial<InstanceInfo> | null;
        done(v && typeof v === 'object' ? v : {});
      } catch {
        done({});
      }
    });
    s.once('error', () => done(undefined));
  });
}

/** The refusal: who holds the lock and what to do. */
export function instanceRunning(other: Partial<InstanceInfo>, self: { readonly stateDir: string }): TrussError {
  const who = [
    `pid ${typeof other.pid === 'number' ? other.pid : 'unknown'}`,
    ...(typeof other.stateDir === 'string' ? [`state dir ${other.stateDir}`] : []),
    ...(typeof other.socket === 'string' ? [`socket ${other.socket}`] : []),
  ].join(', ');
  const same = other.stateDir === self.stateDir;
  return errors.instanceRunning(
    `another truss daemon already runs on this host's network stack (${who}); ` +
      'one truss per host owns its bridges, veths and nft tables' +
      (same
        ? ': stop it first (systemctl stop truss, docker plugin disable truss, or kill that pid)'
        : `, and a second one with state dir ${self.stateDir} would fight it: stop the other one first ` +
          '(systemctl stop truss, docker plugin disable truss, or kill that pid), or use its state dir'),
  );
}

/**
 * Takes the host-wide lock, or throws TRUSS_ERR_INSTANCE_RUNNING naming the holder. The lock is
 * held until release() or the process ends.
 */
export async function acquireInstanceLock(info: InstanceInfo, name = INSTANCE_LOCK): Promise<InstanceLock> {
  const server = net.createServer((conn) => {
    conn.on('error', () => {});
    conn.end(`${JSON.stringify(info)}\n`);
  });
  server.maxConnections = 16;
  for (let attempt = 0; ; attempt++) {
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(name, () => {
          server.off('error', reject);
          resolve();
        });
      });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
      const other = await readInstanceLock(name);
      // the holder ended between our listen and our connect: try again, once
      if (other === undefined && attempt === 0) continue;
      throw instanceRunning(other ?? {}, info);
    }
  }
  return {
    release: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
