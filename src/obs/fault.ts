/**
 * Fault injection for the reliability campaign (docs/reliability.md), off unless the daemon is
 * started with TRUSS_FAULT set. `TRUSS_FAULT=<point>:<action>[,<point>:<action>...]`, actions:
 *   - `crash`: SIGKILL this process at the point (as kill -9 or the OOM killer would);
 *   - `error`: throw TRUSS_ERR_FAULT_INJECTED there (as a failing kernel command or store write).
 * Points are named where a request's work can be cut: `<rpc>:<step>` in the services
 * (after-intent, before-response) and `kernel:before-<method>` / `kernel:after-<method>` around
 * every dataplane call of the reconciler (withFaults), plus a few inside multi-command kernel
 * steps. FAULT_POINTS lists the named ones; the kernel ones take any Dataplane method.
 * Off, `fault()` is one boolean test and withFaults is never called: no cost in production.
 */
import { TrussError } from '../core/errors.ts';

export type FaultAction = 'crash' | 'error';

/** The named points outside the dataplane wrapper (the wrapper adds kernel:before-/after-<method>). */
export const FAULT_POINTS = [
  'create-network:after-intent',
  'create-endpoint:after-intent',
  'create-endpoint:before-response',
  'join:after-intent',
  'join:before-response',
  'leave:after-intent',
  'delete-endpoint:after-intent',
  'request-address:after-store',
  'release-address:before-store',
  'kernel:veth-after-create',
  'kernel:firewall-between-nft-and-iptables',
] as const;

export const FAULT_CODE = 'TRUSS_ERR_FAULT_INJECTED';

let armed: ReadonlyMap<string, FaultAction> | undefined;

/** Parse a TRUSS_FAULT value; throws on a malformed one (the daemon refuses to start). */
export function parseFaults(spec: string): Map<string, FaultAction> {
  const out = new Map<string, FaultAction>();
  for (const part of spec.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const i = item.lastIndexOf(':');
    const point = item.slice(0, i);
    const action = item.slice(i + 1);
    const known =
      (FAULT_POINTS as readonly string[]).includes(point) || /^kernel:(before|after)-[a-zA-Z]+$/.test(point);
    if (i <= 0 || !known) {
      throw new Error(
        `TRUSS_FAULT: unknown injection point ${JSON.stringify(point)} in ${JSON.stringify(item)} ` +
          `(points: ${FAULT_POINTS.join(', ')}, kernel:before-<method>, kernel:after-<method>)`,
      );
    }
    if (action !== 'crash' && action !== 'error') {
      throw new Error(`TRUSS_FAULT: action ${JSON.stringify(action)} in ${JSON.stringify(item)} is not crash or error`);
    }
    out.set(point, action);
  }
  return out;
}

/** Arm the points of `spec` (TRUSS_FAULT); undefined or empty disarms. Returns what is armed. */
export function configureFaults(spec: string | undefined): ReadonlyMap<string, FaultAction> {
  const m = spec ? parseFaults(spec) : new Map<string, FaultAction>();
  armed = m.size > 0 ? m : undefined;
  return m;
}

export const faultsArmed = (): boolean => armed !== undefined;

/** The injection point `point`: nothing unless armed. */
export function fault(point: string): void {
  if (armed === undefined) return;
  const action = armed.get(point);
  if (action === undefined) return;
  if (action === 'crash') {
    process.stderr.write(`truss: TRUSS_FAULT ${point}:crash\n`);
    process.kill(process.pid, 'SIGKILL');
  }
  throw new TrussError(FAULT_CODE, 'internal', `fault injected at ${point} (TRUSS_FAULT)`);
}

/**
 * `dp` with kernel:before-<method> / kernel:after-<method> around every async method (close()
 * passes through). Only wrap when faultsArmed().
 */
export function withFaults<T extends object>(dp: T): T {
  return new Proxy(dp, {
    get(target, key, receiver) {
      const v: unknown = Reflect.get(target, key, receiver);
      if (typeof v !== 'function' || typeof key !== 'string' || SYNC.has(key)) return v;
      return async (...args: unknown[]) => {
        fault(`kernel:before-${key}`);
        const out: unknown = await (v as (...a: unknown[]) => unknown).apply(target, args);
        fault(`kernel:after-${key}`);
        return out;
      };
    },
  });
}

/** Dataplane methods that are not async. */
const SYNC = new Set(['close', 'kernelGeneration']);
