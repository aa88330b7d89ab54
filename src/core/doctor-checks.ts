/**
 * `truss doctor`'s checks beyond the start-up preflight (core/preflight.ts), from facts
 * src/doctor.ts gathers read-only: who may reach the daemon's admin socket, and whether this
 * host's clock agrees with etcd's (claims, orphans and GC deadlines carry wall-clock times that
 * other hosts read). Pure.
 */
import type { Check } from './preflight.ts';

export interface AdminSocketFacts {
  readonly stateDir: string;
  /** the state dir's mode and owner; undefined when it does not exist */
  readonly dir?: { readonly mode: number; readonly uid: number };
  /** `<stateDir>/admin.sock`'s; undefined when there is none (no daemon with this state dir) */
  readonly socket?: { readonly mode: number; readonly uid: number; readonly isSocket: boolean };
}

const octal = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0');

/** The admin socket gives whoever can connect full control of truss: root only (0600, and a 0700-ish dir). */
export function adminSocketCheck(f: AdminSocketFacts): Check {
  const path = `${f.stateDir}/admin.sock`;
  const base = {
    id: 'admin-socket',
    title: `admin socket ${path} root only`,
    need: 'optional' as const,
    affects: 'who can run truss status, reconcile, policy set, cleanup, keys rotate',
  };
  if (f.socket === undefined) {
    return { ...base, status: 'info', detail: 'no admin socket: no truss serve runs with this state dir' };
  }
  const problems: string[] = [];
  if (!f.socket.isSocket) problems.push(`${path} is not a socket`);
  if (f.socket.uid !== 0) problems.push(`${path} is owned by uid ${f.socket.uid}`);
  if ((f.socket.mode & 0o077) !== 0) problems.push(`${path} has mode ${octal(f.socket.mode)}`);
  if (f.dir && f.dir.uid !== 0) problems.push(`${f.stateDir} is owned by uid ${f.dir.uid}`);
  if (f.dir && (f.dir.mode & 0o022) !== 0)
    problems.push(`${f.stateDir} has mode ${octal(f.dir.mode)} (writable by others)`);
  if (problems.length === 0) return { ...base, status: 'ok', detail: 'mode 0600, owned by root' };
  return {
    ...base,
    status: 'warn',
    detail: problems.join('; '),
    fix: `truss makes them root's alone: chown root ${f.stateDir} ${path}; chmod 0700 ${f.stateDir}; chmod 0600 ${path} (or restart truss serve)`,
  };
}

/** Seconds this host's clock may differ from etcd's before doctor warns (Date has 1 s resolution). */
export const CLOCK_SKEW_WARN_S = 3;

export interface EtcdClockFacts {
  readonly endpoint: string;
  /** this host's clock minus etcd's, in seconds (request time halved out); undefined: not measured */
  readonly skewS?: number;
  readonly error?: string;
}

export function clockSkewCheck(f: EtcdClockFacts): Check {
  const base = {
    id: 'clock-skew',
    title: `clock agrees with etcd's (${f.endpoint})`,
    need: 'optional' as const,
    affects: 'the times in cluster records other hosts read (claims, orphans, GC deadlines)',
  };
  if (f.skewS === undefined) {
    return { ...base, status: 'info', detail: `not measured: ${f.error ?? 'etcd sent no Date header'}` };
  }
  const s = Math.round(f.skewS * 10) / 10;
  const ahead = s > 0 ? 'ahead of' : 'behind';
  if (Math.abs(s) <= CLOCK_SKEW_WARN_S)
    return { ...base, status: 'ok', detail: `within ${CLOCK_SKEW_WARN_S} s (${s} s)` };
  return {
    ...base,
    status: 'warn',
    detail: `this host's clock is ${Math.abs(s)} s ${ahead} etcd's`,
    fix: 'synchronise the clocks of every host and etcd (systemd-timesyncd or chrony: apt-get install chrony)',
  };
}
