/**
 * The fake's call log and fault injection, shared by the per-kind fakes (fake-links.ts,
 * fake-nft.ts, fake-dataplane.ts): every fake method enters here first, so each call is
 * recorded and fails on demand.
 */
import type { Dataplane } from '../../core/contracts.ts';

export type DataplaneMethod = keyof Dataplane;

export interface FakeCall {
  readonly method: DataplaneMethod;
  readonly arg: unknown;
}

export const clone = <T>(x: T): T => structuredClone(x);

export class FakeCalls {
  readonly calls: FakeCall[] = [];
  readonly #faults = new Map<DataplaneMethod, unknown[]>();
  readonly #sticky = new Map<DataplaneMethod, unknown>();

  /** The next call of `method` throws `error` (queued: call again to fail the one after too). */
  failNext(method: DataplaneMethod, error: unknown): void {
    this.#faults.set(method, [...(this.#faults.get(method) ?? []), error]);
  }

  /** Every call of `method` throws `error` until clearFaults(). */
  failAlways(method: DataplaneMethod, error: unknown): void {
    this.#sticky.set(method, error);
  }

  clearFaults(): void {
    this.#faults.clear();
    this.#sticky.clear();
  }

  callsOf(method: DataplaneMethod): FakeCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  protected enter(method: DataplaneMethod, arg: unknown): void {
    this.calls.push({ method, arg: clone(arg) });
    const queued = this.#faults.get(method);
    if (queued && queued.length > 0) throw queued.shift();
    if (this.#sticky.has(method)) throw this.#sticky.get(method);
  }
}
