/**
 * The Docker plugin HTTP server: plain node:http, one route per `POST /<Interface>.<Method>`.
 * buildServer() returns a configured server that is not listening; main.ts calls listen().
 *
 * What dockerd really sends (see test/fixtures/README.md): no Content-Type, a 0-byte body
 * for the calls whose argument is nil (Activate, both GetCapabilities,
 * GetDefaultAddressSpaces), Go json.Encoder output (trailing "\n") otherwise, keep-alive
 * connections that Go holds idle for 30 s. Every request is answered, whatever its body:
 * a thrown error becomes a reply through protocol/errors.ts and never reaches the process.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { IpamDriver, NetworkDriver, RequestContext } from '../core/contracts.ts';
import { errors } from '../core/errors.ts';
import { isDockerId, shortId } from '../core/naming.ts';
import { jsonDepth, MAX_JSON_DEPTH } from '../core/safe-json.ts';
import type { Logger } from '../obs/logger.ts';
import { MAX_BODY_BYTES, protocolErrors, toErrorReply } from './errors.ts';
import { ipamDriverRoutes } from './ipam-driver.ts';
import { networkDriverRoutes } from './network-driver.ts';
import { ACTIVATE_RESPONSE } from './wire.ts';

export interface RouteContext extends RequestContext {
  /** child logger bound to rpc, reqId (and nid/eid when the body has them) */
  readonly log: Logger;
}

export interface Route {
  /**
   * none: the call has no argument (Docker sends 0 bytes; anything sent is ignored);
   * json: a JSON body is required; lenient: parsed when possible, never rejected.
   */
  readonly body: 'none' | 'json' | 'lenient';
  handle(body: unknown, ctx: RouteContext): Promise<object>;
}

export type RouteTable = Readonly<Record<string, Route>>;

export interface ServerDeps {
  readonly network: NetworkDriver;
  readonly ipam: IpamDriver;
  readonly log: Logger;
  /** reply 500 "timed out" when a service has not answered within this time (default 20 s) */
  readonly handlerTimeoutMs?: number;
  /** close a connection that has not sent a request within this time (default 10 s) */
  readonly idleConnectionMs?: number;
  /** dockerd activated the plugin: it has (re)started */
  readonly onActivate?: () => void;
  /** told of every request once it is answered (the daemon's metrics) */
  readonly onRpc?: (rpc: RpcObservation) => void;
}

/** One answered request: the route (`unknown` for a path that is none), its outcome and duration. */
export interface RpcObservation {
  readonly method: string;
  readonly outcome: 'ok' | 'error';
  readonly seconds: number;
}

export const SERVER_DEFAULTS = {
  handlerTimeoutMs: 20_000,
  // why: Go's transport keeps idle connections 30 s; Node's default 5 s races with reuse.
  keepAliveTimeoutMs: 65_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  // dockerd keeps at most 6 idle connections; parallel container starts open a few more. A burst
  // of hundreds of parallel `docker run` must not be reset: the limit only bounds memory and fds.
  maxConnections: 512,
  // a connection that sends no request is closed after this (headersTimeout only starts with the
  // first byte): idle connections cannot hold the socket's connection slots
  idleConnectionMs: 10_000,
} as const;

const RESPONSE_TYPE = 'application/vnd.docker.plugins.v1.2+json';

export function buildServer(deps: ServerDeps): http.Server {
  const routes = new Map<string, Route>(
    Object.entries({
      'Plugin.Activate': {
        body: 'none',
        handle: async () => {
          deps.onActivate?.();
          return ACTIVATE_RESPONSE;
        },
      } satisfies Route,
      ...networkDriverRoutes(deps.network),
      ...ipamDriverRoutes(deps.ipam),
    }),
  );
  const timeoutMs = deps.handlerTimeoutMs ?? SERVER_DEFAULTS.handlerTimeoutMs;
  const log = deps.log.child({ component: 'protocol' });
  let seq = 0;

  // why: dockerd 20.10 sends an empty Host header; never refuse a request over its Host.
  const server = http.createServer({ requireHostHeader: false }, (req, res) => {
    const reqId = (++seq).toString(36);
    serve(req, res, { routes, timeoutMs, log, reqId, onRpc: deps.onRpc }).catch((err: unknown) => {
      // serve() answers every error itself; this is the last line of defence.
      log.error('rpc handler crashed', { reqId, err });
      if (!res.headersSent) res.destroy();
    });
  });
  server.keepAliveTimeout = SERVER_DEFAULTS.keepAliveTimeoutMs;
  server.headersTimeout = SERVER_DEFAULTS.headersTimeoutMs;
  server.requestTimeout = SERVER_DEFAULTS.requestTimeoutMs;
  server.maxConnections = SERVER_DEFAULTS.maxConnections;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => onClientError(err, socket, log));
  server.on('drop', () => log.warn('connection refused', { maxConnections: server.maxConnections }));
  closeSilentConnections(server, deps.idleConnectionMs ?? SERVER_DEFAULTS.idleConnectionMs, log);
  return server;
}

/** Destroy a connection that has not started a request within `ms` of connecting. */
function closeSilentConnections(server: http.Server, ms: number, log: Logger): void {
  const used = new WeakSet<object>();
  server.on('request', (req: http.IncomingMessage) => used.add(req.socket));
  server.on('connection', (socket: Duplex) => {
    const timer = setTimeout(() => {
      if (used.has(socket) || socket.destroyed) return;
      log.debug('idle connection closed', { idleMs: ms });
      socket.destroy();
    }, ms);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  });
}

interface ServeContext {
  readonly routes: ReadonlyMap<string, Route>;
  readonly timeoutMs: number;
  readonly log: Logger;
  readonly reqId: string;
  readonly onRpc: ((rpc: RpcObservation) => void) | undefined;
}

async function serve(req: http.IncomingMessage, res: http.ServerResponse, ctx: ServeContext): Promise<void> {
  const started = performance.now();
  const path = (req.url ?? '').split('?', 1)[0] ?? '';
  const rpc = path.slice(1);
  let log = ctx.log.child({ rpc: rpc.slice(0, 100), reqId: ctx.reqId });
  req.on('error', (err) => log.debug('request stream error', { err }));
  res.on('error', (err) => log.debug('response stream error', { err }));
  let status = 200;
  let reply: object;
  let close = false;
  // 'finish': the reply was handed to the connection; 'close' first: it never was (dockerd gave up)
  const replied = Promise.withResolvers<boolean>();
  let success = false;
  res.once('finish', () => replied.resolve(success));
  res.once('close', () => replied.resolve(false));
  try {
    if (req.method !== 'POST') throw protocolErrors.methodNotAllowed(req.method ?? '');
    const route = ctx.routes.get(rpc);
    if (route === undefined) throw protocolErrors.routeNotFound(path);
    const raw = await readBody(req, MAX_BODY_BYTES);
    const body = parseBody(route, raw, rpc);
    log = bindIds(log, body.value);
    log.debug('rpc request', route.body === 'none' ? {} : { body: body.value ?? body.text });
    if (body.error) throw body.error;
    reply = await withDeadline(route.handle(body.value, { log, replied: replied.promise }), ctx.timeoutMs, rpc, log);
    // serialise here so that an unserialisable service result is answered as an error
    const text = JSON.stringify(reply);
    success = true;
    send(res, 200, text, false);
  } catch (err) {
    const r = toErrorReply(err, log, ctx.reqId);
    ({ status, body: reply, close } = r);
    send(res, status, JSON.stringify(reply), close);
  }
  const ms = performance.now() - started;
  log.debug('rpc response', { status, body: reply, durationMs: Math.round(ms * 10) / 10 });
  // why 'unknown': the label's values stay the routes truss has, whatever path a client sends
  const method = ctx.routes.has(rpc) && req.method === 'POST' ? rpc : 'unknown';
  ctx.onRpc?.({ method, outcome: status === 200 ? 'ok' : 'error', seconds: ms / 1000 });
}

function send(res: http.ServerResponse, status: number, text: string, close: boolean): void {
  if (res.headersSent || res.destroyed) return; // the client has gone; the outcome is logged anyway
  res.statusCode = status;
  res.setHeader('Content-Type', RESPONSE_TYPE);
  res.setHeader('Content-Length', Buffer.byteLength(text));
  if (status === 405) res.setHeader('Allow', 'POST');
  if (close) res.setHeader('Connection', 'close');
  res.end(text);
}

/**
 * The raw body, refused as soon as it is known to exceed `limit` (declared length or bytes
 * received); what arrives after that is discarded, never buffered.
 */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length']) > limit) {
      req.resume();
      reject(protocolErrors.bodyTooLarge(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      chunks.length = 0;
      reject(err);
    };
    req.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > limit) fail(protocolErrors.bodyTooLarge(limit));
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (settled) return;
      settled = true;
      resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (err) => fail(errors.badRequest('the request body could not be read', err)));
    req.on('close', () => fail(errors.badRequest('the connection closed before the request body was complete')));
  });
}

interface ParsedBody {
  readonly value: unknown;
  /** the raw text, for the debug log when it is not JSON */
  readonly text?: string;
  readonly error?: Error;
}

function parseBody(route: Route, raw: Buffer, rpc: string): ParsedBody {
  if (route.body === 'none') return { value: undefined };
  const text = raw.toString('utf8');
  if (text.trim() === '') {
    const error = errors.badRequest(`empty request body: ${rpc} needs a JSON object`);
    return route.body === 'json' ? { value: undefined, error } : { value: undefined };
  }
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    const error = errors.badRequest(`the request body of ${rpc} is not valid JSON: ${why}`, cause);
    const shown = text.length > 200 ? `${text.slice(0, 200)}...` : text;
    return route.body === 'json' ? { value: undefined, text: shown, error } : { value: undefined, text: shown };
  }
  if (jsonDepth(value) > MAX_JSON_DEPTH) {
    const error = errors.badRequest(
      `the request body of ${rpc} nests deeper than ${MAX_JSON_DEPTH} levels; Docker's requests nest a few levels`,
    );
    const text = '(too deeply nested to log)';
    return route.body === 'json' ? { value: undefined, text, error } : { value: undefined, text };
  }
  return { value };
}

/** Bind short network/endpoint ids to the request's logger when the body has valid ones. */
function bindIds(log: Logger, body: unknown): Logger {
  if (typeof body !== 'object' || body === null) return log;
  const { NetworkID, EndpointID } = body as { NetworkID?: unknown; EndpointID?: unknown };
  const ids: Record<string, string> = {};
  if (isDockerId(NetworkID)) ids.nid = shortId(NetworkID);
  if (isDockerId(EndpointID)) ids.eid = shortId(EndpointID);
  return Object.keys(ids).length > 0 ? log.child(ids) : log;
}

/**
 * Answer with a timeout error when `work` has not settled within `ms`. The work itself is
 * not cancelled (the service finishes or fails on its own); its late outcome is logged.
 */
function withDeadline<T>(work: Promise<T>, ms: number, rpc: string, log: Logger): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let expired = false;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      expired = true;
      reject(protocolErrors.handlerTimeout(rpc, ms));
    }, ms);
  });
  void work.then(
    () => {
      if (expired) log.info('rpc completed after its deadline');
    },
    (err: unknown) => {
      if (expired) log.warn('rpc failed after its deadline', { err });
    },
  );
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/** Malformed HTTP, header or request timeouts: answer 4xx when the socket still allows it. */
function onClientError(err: NodeJS.ErrnoException, socket: Duplex, log: Logger): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    log.debug('http connection reset', { code: err.code });
    socket.destroy();
    return;
  }
  const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
  log.warn('http client error', { status, code: err.code, err });
  const message = `malformed or incomplete HTTP request (${err.code ?? 'unknown'})`;
  const body = JSON.stringify({ Err: message, Error: message });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: ${RESPONSE_TYPE}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
