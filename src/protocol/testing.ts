/**
 * Test support for the protocol tests (imported only by *.test.ts): recording stub
 * services, an in-process server on a temporary unix socket, and a raw HTTP client that
 * sends exactly the bytes and headers it is given, as dockerd does (no Content-Type).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IpamDriver, NetworkDriver } from '../core/contracts.ts';
import { createLogger, type Logger } from '../obs/logger.ts';
import { buildServer, type ServerDeps } from './server.ts';

export interface Call {
  readonly method: string;
  readonly args: readonly unknown[];
}

export interface Stubs {
  readonly network: NetworkDriver;
  readonly ipam: IpamDriver;
  readonly calls: Call[];
  /** the first argument of every call to `method`, in order */
  argsOf(method: string): unknown[];
}

/** Services that record every call and answer plausibly; `overrides` replace single methods. */
export function recordingServices(
  overrides: { network?: Partial<NetworkDriver>; ipam?: Partial<IpamDriver> } = {},
): Stubs {
  const calls: Call[] = [];
  const network: NetworkDriver = {
    capabilities: () => ({ scope: 'local', connectivityScope: 'global' }),
    createNetwork: async () => {},
    deleteNetwork: async () => {},
    allocateNetwork: async (_id, options) => ({ ...options }),
    freeNetwork: async () => {},
    createEndpoint: async () => ({}),
    deleteEndpoint: async () => {},
    endpointOperInfo: async () => ({}),
    join: async (input) => ({
      srcName: `trc${input.endpointId.slice(0, 12)}`,
      dstPrefix: 'eth',
      gateway: '198.18.0.1',
      staticRoutes: [],
      disableGatewayService: false,
    }),
    leave: async () => {},
    programExternalConnectivity: async () => {},
    revokeExternalConnectivity: async () => {},
    ...overrides.network,
  };
  const ipam: IpamDriver = {
    capabilities: () => ({ requiresMacAddress: false, requiresRequestReplay: true }),
    defaultAddressSpaces: () => ({ local: 'TrussLocal', global: 'TrussGlobal' }),
    requestPool: async (input) => {
      const pool = input.pool || (input.v6 ? 'fd00:99::/64' : '198.18.99.0/24');
      return { poolId: `${input.addressSpace}/${pool}`, pool, data: {} };
    },
    releasePool: async () => {},
    requestAddress: async (input) => ({ address: `${input.address || '198.18.99.9'}/24`, data: {} }),
    releaseAddress: async () => {},
    ...overrides.ipam,
  };
  return { network: record(network, calls), ipam: record(ipam, calls), calls, argsOf: (m) => argsOf(calls, m) };
}

function argsOf(calls: readonly Call[], method: string): unknown[] {
  return calls.filter((c) => c.method === method).map((c) => c.args[0]);
}

function record<T extends object>(target: T, calls: Call[]): T {
  return new Proxy(target, {
    get(t, key, receiver) {
      const v: unknown = Reflect.get(t, key, receiver);
      if (typeof v !== 'function' || typeof key !== 'string') return v;
      return (...args: unknown[]) => {
        calls.push({ method: key, args });
        return (v as (...a: unknown[]) => unknown).apply(t, args);
      };
    },
  });
}

/** A logger that keeps every line (debug and up), parsed. */
export function memoryLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { log: createLogger('debug', (l) => lines.push(JSON.parse(l) as Record<string, unknown>)), lines };
}

export interface TestServer {
  readonly socketPath: string;
  readonly server: http.Server;
  readonly stubs: Stubs;
  readonly lines: Record<string, unknown>[];
  request(path: string, body?: string | Buffer, options?: RequestOptions): Promise<Reply>;
  close(): Promise<void>;
}

export interface RequestOptions {
  readonly method?: string;
  /** sent exactly; Content-Length is added for the body unless given (or `chunked`) */
  readonly headers?: Readonly<Record<string, string>>;
  /** send the body with chunked transfer encoding (no Content-Length) */
  readonly chunked?: boolean;
}

export interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
  /** the parsed body, or undefined when it is not JSON */
  readonly json: unknown;
}

export async function startServer(
  stubs: Stubs = recordingServices(),
  opts: Pick<ServerDeps, 'handlerTimeoutMs' | 'idleConnectionMs' | 'onActivate' | 'onRpc'> = {},
): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'truss-protocol-'));
  const socketPath = join(dir, 'p.sock');
  const { log, lines } = memoryLogger();
  const server = buildServer({ network: stubs.network, ipam: stubs.ipam, log, ...opts });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  // dockerd's Go client reuses connections; so do we, to exercise keep-alive.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  return {
    socketPath,
    server,
    stubs,
    lines,
    request: (path, body, options) => send(socketPath, agent, path, body, options),
    close: async () => {
      agent.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function send(
  socketPath: string,
  agent: http.Agent,
  path: string,
  body: string | Buffer = '',
  options: RequestOptions = {},
): Promise<Reply> {
  const data = typeof body === 'string' ? Buffer.from(body) : body;
  const headers: Record<string, string> = { ...options.headers };
  if (!options.chunked && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length')) {
    headers['Content-Length'] = String(data.length);
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath, agent, path, method: options.method ?? 'POST', headers, setHost: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** One line of test/fixtures/*.jsonl. */
export interface FixtureRequest {
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly status: number;
  readonly reply: unknown;
}
