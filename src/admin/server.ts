/**
 * The admin socket: a root-only (0600) unix socket in the state dir that the `truss` CLI
 * talks to. JSON over HTTP, never reachable over TCP:
 *   GET  /v1/status                      intent, kernel drift, reconciler state, counters
 *   GET  /v1/status?brief=1              the same without the address list and the objects in
 *                                        state ok (human `truss status`: omitted counts them)
 *   POST /v1/reconcile                   a full pass now
 *   GET  /v1/metrics                     RSS, heap, event-loop delay (obs/metrics.ts); cheap
 *   POST /v1/metrics/reset               starts a new event-loop delay window
 *   GET  /v1/networks/{id}/policy        the network's port policy and its endpoints'
 *   PUT  /v1/networks/{id}/policy        {"ingress": "tcp/80,..." | null}
 *   POST /v1/keys/rotate                 new WireGuard key for this host, published to peers
 *   POST /v1/cluster/forget              {"node": NAME, "force": bool}: free a gone host's
 *                                        claims, blocks and memberships in every cluster network
 *   POST /v1/cleanup/foreign             remove the truss links of another or an unknown state
 *   POST /v1/doctor/path                 {"from", "to", "proto", "port"?}: why can't A reach B
 *                                        (truss doctor SRC DST [PORT/PROTO])
 *   GET  /metrics, /healthz, /readyz     Prometheus text and health, as on --metrics-address
 *                                        (obs/health-http.ts; plain text, not JSON)
 *   GET  /topology, /topology.svg        the topology page and picture, as on --metrics-address
 */

import http from 'node:http';
import type { z } from 'zod';
import {
  type CleanupBody,
  CONTRACT,
  type ForgetBody,
  forgetRequest,
  type MetricsBody,
  type PathBody,
  type PathRequest,
  type PolicyBody,
  parseView,
  pathRequest,
  type ReconcileBody,
  type RotateKeyBody,
  SCHEMA_VERSION,
  type StatusBody,
  setPolicyRequest,
} from '../core/admin-api.ts';
import { isTrussError } from '../core/errors.ts';
import { type NetworkId, networkId } from '../core/ids.ts';
import { type ObservabilityHandlers, serveObservability } from '../obs/health-http.ts';
import type { Logger } from '../obs/logger.ts';

/** Typed by the admin contract (core/admin-api.ts); the server adds `schemaVersion`. */
export interface AdminHandlers {
  /** brief: GET /v1/status?brief=1 (service/status.ts) */
  status(opts?: { readonly brief?: boolean }): Promise<StatusBody>;
  reconcile(): Promise<ReconcileBody>;
  metrics(): MetricsBody | Promise<MetricsBody>;
  resetMetrics(): MetricsBody | Promise<MetricsBody>;
  showPolicy(networkId: NetworkId): Promise<PolicyBody>;
  setPolicy(networkId: NetworkId, ingress: string | null): Promise<PolicyBody>;
  rotateKey(): Promise<RotateKeyBody>;
  forgetNode(node: string, force: boolean): Promise<ForgetBody>;
  /** `truss cleanup --foreign` */
  cleanupForeign?(): Promise<CleanupBody>;
  /** `truss doctor SRC DST [PORT/PROTO]` */
  doctorPath?(req: PathRequest): Promise<PathBody>;
  /** /metrics, /healthz, /readyz */
  readonly observability?: ObservabilityHandlers;
}

/** A reply and the contract entry it must fit. */
interface Reply {
  readonly schema: z.ZodType;
  readonly body: object;
}

const MAX_BODY = 4 * 1024 * 1024;
const STATUS_BY_KIND: Readonly<Record<string, number>> = {
  invalid: 400,
  'not-found': 404,
  conflict: 409,
  unsupported: 400,
};

class BadRequest extends Error {}
/** A body over MAX_BODY: answered 413 (the rest of the body is discarded, never buffered). */
class TooLarge extends Error {}

function readJson(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const tooLarge = (): TooLarge => new TooLarge(`request body is larger than ${MAX_BODY} bytes`);
    if (Number(req.headers['content-length']) > MAX_BODY) {
      req.resume();
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
      else {
        over = true; // keep reading (and dropping) so that the reply can be sent (L12)
        chunks.length = 0;
        reject(tooLarge());
      }
    });
    req.on('error', reject);
    req.on('end', () => {
      if (over) return;
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new BadRequest('request body is not JSON'));
      }
    });
  });
}

async function route(h: AdminHandlers, req: http.IncomingMessage): Promise<Reply | undefined> {
  const url = req.url ?? '';
  const reply = async (schema: z.ZodType, body: object | Promise<object>): Promise<Reply> => ({
    schema,
    body: await body,
  });
  if (req.method === 'GET' && url === '/v1/status') return reply(CONTRACT.status, h.status());
  if (req.method === 'GET' && url === '/v1/status?brief=1') return reply(CONTRACT.status, h.status({ brief: true }));
  if (req.method === 'POST' && url === '/v1/reconcile') return reply(CONTRACT.reconcile, h.reconcile());
  if (req.method === 'GET' && url === '/v1/metrics') return reply(CONTRACT.metrics, h.metrics());
  if (req.method === 'POST' && url === '/v1/metrics/reset') return reply(CONTRACT.metrics, h.resetMetrics());
  if (req.method === 'POST' && url === '/v1/keys/rotate') return reply(CONTRACT['keys-rotate'], h.rotateKey());
  if (req.method === 'POST' && url === '/v1/cleanup/foreign' && h.cleanupForeign) {
    return reply(CONTRACT['cleanup-foreign'], h.cleanupForeign());
  }
  if (req.method === 'POST' && url === '/v1/doctor/path' && h.doctorPath) {
    const body = parseView(pathRequest, await readJson(req));
    if (!body.success) throw new BadRequest(`body must be a path request (docs/json/doctor-path-request.schema.json)`);
    return reply(CONTRACT['doctor-path'], h.doctorPath(body.data));
  }
  if (req.method === 'POST' && url === '/v1/cluster/forget') {
    const body = forgetRequest.safeParse(await readJson(req));
    if (!body.success) throw new BadRequest('body must be {"node": string, "force"?: boolean}');
    return reply(CONTRACT['cluster-forget'], h.forgetNode(body.data.node, body.data.force === true));
  }
  const m = /^\/v1\/networks\/([^/]+)\/policy$/.exec(url);
  if (m) {
    let text: string;
    try {
      text = decodeURIComponent(m[1] as string);
    } catch {
      throw new BadRequest(`malformed %-escape in the network id of ${url.slice(0, 100)}`);
    }
    const id = networkId(text, 'network id');
    if (req.method === 'GET') return reply(CONTRACT.policy, h.showPolicy(id));
    if (req.method === 'PUT') {
      const body = setPolicyRequest.safeParse(await readJson(req));
      if (!body.success) throw new BadRequest('body must be {"ingress": string | null}');
      return reply(CONTRACT.policy, h.setPolicy(id, body.data.ingress));
    }
  }
  return undefined;
}

/**
 * The reply as sent: versioned, and only what the contract names. A reply outside the contract
 * is a daemon bug: logged, and sent as built rather than hiding status from the operator.
 */
function encode(r: Reply, log: Logger, url: string | undefined): unknown {
  const versioned = { schemaVersion: SCHEMA_VERSION, ...r.body };
  const checked = r.schema.safeParse(versioned);
  if (checked.success) return { schemaVersion: SCHEMA_VERSION, ...(checked.data as object) };
  log.error('admin reply outside the admin contract (core/admin-api.ts)', {
    url,
    issues: checked.error.issues.slice(0, 5).map((i) => `${i.path.join('.')}: ${i.message}`),
  });
  return versioned;
}

export function buildAdminServer(h: AdminHandlers, log: Logger): http.Server {
  return http.createServer((req, res) => {
    if (h.observability && serveObservability(req, res, h.observability, log)) return;
    const send = (status: number, body: unknown): void => {
      const text = JSON.stringify(body);
      const close = status === 413 ? { connection: 'close' } : {};
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
        ...close,
      });
      res.end(text);
    };
    route(h, req).then(
      (reply) => {
        if (reply === undefined) {
          req.resume();
          send(404, { error: `no such admin route: ${req.method} ${req.url}` });
        } else send(200, encode(reply, log, req.url));
      },
      (e: unknown) => {
        const status =
          e instanceof TooLarge
            ? 413
            : e instanceof BadRequest
              ? 400
              : isTrussError(e)
                ? (STATUS_BY_KIND[e.kind] ?? 500)
                : 500;
        if (status >= 500) log.error('admin request failed', { url: req.url, err: e });
        send(status, {
          error: e instanceof Error ? e.message : String(e),
          ...(isTrussError(e) ? { code: e.code } : {}),
        });
      },
    );
  });
}
