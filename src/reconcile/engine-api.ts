/** What the engine (engine.ts) is given and what it tells: its dependencies, observer and pass result. */

import type { Logger } from '../obs/logger.ts';
import type { Kind } from './kind.ts';

export interface EngineDeps<I extends { readonly revision: number }, D> {
  /** `fresh`: re-read the store (full passes); otherwise the intent may be served from memory */
  load(opts: { readonly fresh: boolean }): Promise<I>;
  /** the desired state of one pass; in 'check' mode nothing may change */
  derive(intent: I, mode: 'incremental' | 'full' | 'check'): Promise<D>;
  readonly kinds: readonly Kind<D>[];
  readonly log: Logger;
  readonly resyncMs?: number;
  /** retry delays: doubled from firstMs up to maxMs after each pass with failures */
  readonly backoff?: { readonly firstMs: number; readonly maxMs: number };
  /** false while objects of another owner are present: shared objects then stay unless we made them */
  shareFree?(): boolean;
  afterFullPass?(desired: D): Promise<void>;
  /**
   * How long a kind with nothing wanted stays unlooked-at after a full pass found nothing of it
   * (looks.ts, "idle kinds"); default 10 min.
   */
  readonly idleLookMs?: number;
  /** the kernel's change generation (Dataplane.kernelGeneration): checks of watched kinds answer from the last look while it stays */
  kernelGeneration?(): number | undefined;
  /** told of every pass and every drift a full pass finds (the daemon's metrics) */
  readonly observer?: EngineObserver;
}

/** What the engine tells as it runs; the composition root gives one (obs/prometheus.ts fills it). */
export interface EngineObserver {
  /** a pass finished */
  pass(result: PassResult): void;
  /** a pass could not run (loading intent failed) */
  passFailed(full: boolean): void;
  /** a full pass found `problems` differences between the kernel and what was applied, in one kind */
  drift(kind: string, problems: number): void;
}

export interface PassResult {
  readonly full: boolean;
  readonly revision: number;
  readonly changes: number;
  readonly failures: number;
  readonly durationMs: number;
  /** when it ended (ISO 8601) */
  readonly at?: string;
  /** the keys of the objects that failed in it (only when some did) */
  readonly failed?: readonly string[];
}
