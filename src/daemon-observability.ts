/**
 * The daemon's observability, wired (daemon.ts calls it): the Prometheus registry's scrape-time
 * sources (the status body, an etcd probe in cluster mode) and readiness (obs/health.ts) from
 * the reconciler's own check. Served on the admin socket and on --metrics-address (main.ts).
 */
import type http from 'node:http';
import type { Cluster } from './cluster/setup.ts';
import { readiness } from './obs/health.ts';
import type { ObservabilityHandlers } from './obs/health-http.ts';
import type { TrussMetrics } from './obs/prometheus.ts';
import type { Reconciler } from './reconcile/reconciler.ts';
import type { StatusService } from './service/status.ts';

/** an etcd read that has not answered within this is "not connected" */
const ETCD_PROBE_MS = 2_000;

export interface ObservabilityDeps {
  readonly metrics: TrussMetrics;
  readonly status: Pick<StatusService, 'status'>;
  readonly reconciler: Pick<Reconciler, 'check' | 'status'>;
  readonly plugin: Pick<http.Server, 'listening'>;
  readonly cluster?: Pick<Cluster, 'store'>;
  /** the daemon was started and is not stopping */
  started(): boolean;
}

export function wireObservability(d: ObservabilityDeps): ObservabilityHandlers {
  const cluster = d.cluster;
  d.metrics.readFrom({
    status: () => d.status.status(),
    ...(cluster ? { etcdConnected: () => answersWithin(cluster.store.revision(), ETCD_PROBE_MS) } : {}),
  });
  return {
    scrape: () => d.metrics.scrape(),
    contentType: d.metrics.contentType,
    status: () => d.status.status(),
    ready: () =>
      readiness({
        serving: () => d.started() && d.plugin.listening,
        firstPassDone: () => d.reconciler.status().firstPass !== undefined,
        check: () => d.reconciler.check(),
      }),
  };
}

/** true when `p` resolves within `ms` */
function answersWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  return Promise.race([
    p.then(
      () => true,
      () => false,
    ),
    late,
  ]).finally(() => clearTimeout(timer));
}
