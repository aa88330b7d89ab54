/**
 * The daemon's Prometheus metrics (docs/metrics.md), in a registry of its own (never prom-client's
 * global one, so one process may build several daemons). Two sources:
 *   - events, counted where they happen: the RPCs the protocol server answers and the passes and
 *     drift of the reconcile engine. Those layers do not import this module: the composition root
 *     hands them `rpc` and `reconcile` as observers;
 *   - state, read at scrape time from the body `truss status` shows (status-gauges.ts), so a
 *     scrape tells what `truss status` would.
 * Process metrics are prom-client's default collectors, prefixed `truss_`.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { StatusBody } from '../core/admin-api.ts';
import { StatusGauges } from './status-gauges.ts';

export const METRIC_PREFIX = 'truss_';

/** Seconds, from a local call (a few ms) to a request waiting for the kernel (the 20 s handler deadline). */
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20];
const MODES = ['full', 'incremental'] as const;

/** One answered plugin request (protocol/server.ts's RpcObservation). */
export interface RpcSample {
  readonly method: string;
  readonly outcome: 'ok' | 'error';
  readonly seconds: number;
}

/** What the reconcile engine tells (reconcile/engine.ts's EngineObserver). */
export interface ReconcileSamples {
  pass(r: {
    readonly full: boolean;
    readonly changes: number;
    readonly failures: number;
    readonly durationMs: number;
  }): void;
  passFailed(full: boolean): void;
  drift(kind: string, problems: number): void;
}

export interface ScrapeSources {
  /** the body `truss status` shows */
  status(): Promise<StatusBody>;
  /** cluster mode only: whether etcd answers now */
  etcdConnected?(): Promise<boolean>;
}

export interface TrussMetrics {
  readonly registry: Registry;
  readonly rpc: (r: RpcSample) => void;
  readonly reconcile: ReconcileSamples;
  /** where the scrape-time state comes from; until set, only events and process metrics are shown */
  readFrom(sources: ScrapeSources): void;
  /** the exposition text, state read now (concurrent scrapes share one read) */
  scrape(): Promise<string>;
  readonly contentType: string;
}

export interface TrussMetricsOptions {
  /** the cluster metrics (etcd, WireGuard peers) exist only in cluster mode */
  readonly cluster: boolean;
  readonly version: string;
  /** prom-client's process and Node.js collectors, started by the first scrape (default true) */
  readonly processMetrics?: boolean;
}

export function createTrussMetrics(opts: TrussMetricsOptions): TrussMetrics {
  const registry = new Registry();
  const registers = [registry];
  // why at the first scrape: each set starts a GC observer and an event-loop monitor, which the
  // many daemons the unit tests wire never need
  let processMetrics = opts.processMetrics !== false;
  const rpcTotal = new Counter({
    name: 'truss_rpc_requests_total',
    help: 'Docker plugin API requests answered, by method (unknown: a path truss has no route for) and outcome',
    labelNames: ['method', 'outcome'],
    registers,
  });
  const rpcSeconds = new Histogram({
    name: 'truss_rpc_duration_seconds',
    help: 'Time to answer a Docker plugin API request, by method and outcome',
    labelNames: ['method', 'outcome'],
    buckets: DURATION_BUCKETS,
    registers,
  });
  const r = reconcileMetrics(registers);
  const gauges = new StatusGauges(registers, opts);
  let sources: ScrapeSources | undefined;
  let reading: Promise<void> | undefined;
  const read = async (): Promise<void> => {
    if (!sources) return;
    const [status, etcd] = await Promise.all([
      sources.status().catch(() => undefined),
      sources.etcdConnected?.().catch(() => false),
    ]);
    gauges.update(status, etcd);
  };
  return {
    registry,
    rpc: (s) => {
      rpcTotal.inc({ method: s.method, outcome: s.outcome });
      rpcSeconds.observe({ method: s.method, outcome: s.outcome }, s.seconds);
    },
    reconcile: r,
    readFrom: (s) => {
      sources = s;
    },
    scrape: async () => {
      if (processMetrics) collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
      processMetrics = false;
      reading ??= read().finally(() => {
        reading = undefined;
      });
      await reading;
      return registry.metrics();
    },
    contentType: registry.contentType,
  };
}

/** The reconcile engine's passes, failures and drift. */
function reconcileMetrics(registers: Registry[]): ReconcileSamples {
  const mode = (full: boolean) => ({ mode: full ? 'full' : 'incremental' });
  const passes = new Counter({
    name: 'truss_reconcile_passes_total',
    help: 'Reconcile passes run, by mode (full: the kernel is read and compared; incremental: changed objects only)',
    labelNames: ['mode'],
    registers,
  });
  const seconds = new Histogram({
    name: 'truss_reconcile_pass_duration_seconds',
    help: 'Duration of a reconcile pass, by mode',
    labelNames: ['mode'],
    buckets: DURATION_BUCKETS,
    registers,
  });
  const changes = new Counter({
    name: 'truss_reconcile_changes_total',
    help: 'Kernel objects created, replaced or removed by reconcile passes, by mode',
    labelNames: ['mode'],
    registers,
  });
  const failures = new Counter({
    name: 'truss_reconcile_failures_total',
    help: 'Kernel objects that failed to program in a pass (retried with backoff), by mode',
    labelNames: ['mode'],
    registers,
  });
  const errors = new Counter({
    name: 'truss_reconcile_pass_errors_total',
    help: 'Reconcile passes that could not run at all (the stored intent could not be read), by mode',
    labelNames: ['mode'],
    registers,
  });
  const last = new Gauge({
    name: 'truss_reconcile_last_pass_timestamp_seconds',
    help: 'When the last pass of each mode finished (Unix time)',
    labelNames: ['mode'],
    registers,
  });
  const drift = new Counter({
    name: 'truss_reconcile_drift_total',
    help: 'Differences a full pass found between the kernel and the intent (the "kernel drift" log lines), by kind',
    labelNames: ['kind'],
    registers,
  });
  for (const m of MODES) for (const c of [passes, changes, failures, errors]) c.inc({ mode: m }, 0);
  return {
    pass: (p) => {
      passes.inc(mode(p.full));
      seconds.observe(mode(p.full), p.durationMs / 1000);
      changes.inc(mode(p.full), p.changes);
      failures.inc(mode(p.full), p.failures);
      last.set(mode(p.full), Date.now() / 1000);
    },
    passFailed: (full) => errors.inc(mode(full)),
    drift: (kind, n) => drift.inc({ kind }, n),
  };
}
