/**
 * The admin socket: a root-only (0600) unix socket in the state dir that the `truss` CLI
 * talks to. JSON over HTTP: GET /v1/status, POST /v1/reconcile. Never reachable over TCP.
 */
import http from 'node:http';
import type { Logger } from '../obs/logger.ts';

export interface AdminHandlers {
  status(): Promise<Record<string, unknown>>;
  reconcile(): Promise<Record<string, unknown>>;
}

export function buildAdminServer(h: AdminHandlers, log: Logger): http.Server {
  const routes: Record<string, () => Promise<Record<string, unknown>>> = {
    'GET /v1/status': () => h.status(),
    'POST /v1/reconcile': () => h.reconcile(),
  };
  return http.createServer((req, res) => {
    req.resume();
    const route = routes[`${req.method} ${req.url}`];
    const send = (status: number, body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (!route) {
      send(404, { error: `no such admin route: ${req.method} ${req.url}` });
      return;
    }
    route().then(
      (body) => send(200, body),
      (e: unknown) => {
        log.error('admin request failed', { url: req.url, err: e });
        send(500, { error: e instanceof Error ? e.message : String(e) });
      },
    );
  });
}
