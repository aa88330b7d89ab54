/**
 * Process metrics for the admin socket (`GET /v1/metrics`): memory and event-loop delay
 * (perf_hooks.monitorEventLoopDelay, sampled every 10 ms). Cheap to read: no kernel
 * commands, no store reads, so a benchmark can poll it under load. `reset` starts a new
 * event-loop window (`POST /v1/metrics/reset`).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

export interface ProcessMetrics {
  readonly pid: number;
  readonly uptimeMs: number;
  readonly memory: { readonly rssBytes: number; readonly heapUsedBytes: number; readonly externalBytes: number };
  /** since the last reset (or start), in ms beyond the sampling interval (an idle loop reads 0) */
  readonly eventLoopDelay: {
    readonly sinceMs: number;
    readonly p50: number;
    readonly p99: number;
    readonly max: number;
    readonly mean: number;
  };
}

export interface MetricsSource {
  read(): ProcessMetrics;
  reset(): void;
  stop(): void;
}

export function createMetrics(resolutionMs = 10): MetricsSource {
  const h = monitorEventLoopDelay({ resolution: resolutionMs });
  h.enable();
  // why: each sample is the whole timer interval, so an idle loop reads `resolution`; report the lateness only
  const ms = (ns: number): number => Math.max(0, Math.round((Number.isFinite(ns) ? ns : 0) / 1e4) / 100 - resolutionMs);
  let since = performance.now();
  return {
    read() {
      const m = process.memoryUsage();
      const any = h.count > 0;
      return {
        pid: process.pid,
        uptimeMs: Math.round(performance.now()),
        memory: { rssBytes: m.rss, heapUsedBytes: m.heapUsed, externalBytes: m.external },
        eventLoopDelay: {
          sinceMs: Math.round(performance.now() - since),
          p50: any ? ms(h.percentile(50)) : 0,
          p99: any ? ms(h.percentile(99)) : 0,
          max: any ? ms(h.max) : 0,
          mean: any ? ms(h.mean) : 0,
        },
      };
    },
    reset() {
      h.reset();
      since = performance.now();
    },
    stop() {
      h.disable();
    },
  };
}
