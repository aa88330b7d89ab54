/**
 * The observability routes, served on the --metrics-address TCP listener and on the admin
 * socket alike: GET (or HEAD) /metrics (Prometheus text format), /healthz, /readyz, and with a
 * status source /topology and /topology.svg (obs/topology-http.ts).
 */
import http from 'node:http';
import type { StatusBody } from '../core/admin-api.ts';
import type { Readiness } from './health.ts';
import type { Logger } from './logger.ts';
import { type Answer, answerTopology, TOPOLOGY_PATHS } from './topology-http.ts';

export interface ObservabilityHandlers {
  /** the exposition text */
  scrape(): Promise<string>;
  readonly contentType: string;
  ready(): Promise<Readiness>;
  /** the status the topology picture is drawn from (absent: no /topology) */
  status?(): Promise<StatusBody>;
}

export const OBSERVABILITY_PATHS = ['/metrics', '/healthz', '/readyz'] as const;
const pathsOf = (h: ObservabilityHandlers): readonly string[] => [
  ...OBSERVABILITY_PATHS,
  ...(h.status ? TOPOLOGY_PATHS : []),
];

/** Answers the observability routes; false for any other request (the caller answers it). */
export function serveObservability(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  h: ObservabilityHandlers,
  log: Logger,
): boolean {
  const path = (req.url ?? '').split('?', 1)[0];
  if (!pathsOf(h).includes(path ?? '')) return false;
  req.resume();
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(res, req, 405, 'text/plain; charset=utf-8', `${path} takes GET\n`, { allow: 'GET, HEAD' });
    return true;
  }
  const answer = async (): Promise<Answer> => {
    if (h.status && (TOPOLOGY_PATHS as readonly string[]).includes(path ?? ''))
      return answerTopology(path ?? '', h.status);
    if (path === '/healthz') return [200, 'text/plain; charset=utf-8', 'ok\n'];
    if (path === '/readyz') {
      const r = await h.ready();
      return [r.ready ? 200 : 503, 'text/plain; charset=utf-8', `${r.ready ? 'ready' : 'not ready'}: ${r.reason}\n`];
    }
    return [200, h.contentType, await h.scrape()];
  };
  answer().then(
    ([status, type, body, headers]) => send(res, req, status, type, body, headers),
    (e: unknown) => {
      log.error('observability request failed', { url: path, err: e });
      send(res, req, 500, 'text/plain; charset=utf-8', `${path} failed: ${e instanceof Error ? e.message : e}\n`);
    },
  );
  return true;
}

function send(
  res: http.ServerResponse,
  req: http.IncomingMessage,
  status: number,
  type: string,
  body: string,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...headers });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** The --metrics-address server: the observability routes, 404 for anything else; not listening. */
export function buildObservabilityServer(h: ObservabilityHandlers, log: Logger): http.Server {
  const server = http.createServer((req, res) => {
    if (serveObservability(req, res, h, log)) return;
    req.resume();
    send(res, req, 404, 'text/plain; charset=utf-8', `no such path; try ${pathsOf(h).join(', ')}\n`);
  });
  // a scraper holds its connection; bound what a silent client may keep open
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.maxConnections = 64;
  return server;
}
