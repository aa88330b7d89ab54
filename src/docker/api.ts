/**
 * A minimal Docker Engine API client, shared by the CLI and the daemon. The daemon uses it only
 * off the plugin request path and asynchronously (docker/watch.ts): dockerd may call the plugin
 * before its own API is up, so waiting on Docker there deadlocks its boot (moby#32815, STYLE.md §8).
 * GET /networks/{name-or-id}, /networks, /containers/json and /containers/{name-or-id}/json.
 * Paths carry no API version, so the daemon answers in its own current version; the fields we
 * read have been stable since API 1.21.
 * DOCKER_HOST is honoured as `unix:///path` or `tcp://host[:port]` (plain HTTP).
 */
/**
 * node:http, loaded on the first request: the CLI imports this file for its defaults (config.ts),
 * and an ESM `import` of node:http builds a facade that loads Node's fetch stack (undici), ~15 ms
 * of every `truss` start (issue 18); the CommonJS module of process.getBuiltinModule does not.
 */
const http = (): typeof import('node:http') => process.getBuiltinModule('node:http');

export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';
const MAX_REPLY = 16 * 1024 * 1024;

export type DockerEndpoint =
  | { readonly kind: 'unix'; readonly socketPath: string; readonly url: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number; readonly url: string };

export interface DockerNetwork {
  readonly Id: string;
  readonly Name: string;
  readonly Driver: string;
}

export type DockerApiErrorCode = 'DOCKER_HOST_INVALID' | 'DOCKER_UNREACHABLE' | 'DOCKER_NOT_FOUND' | 'DOCKER_FAILED';

export class DockerApiError extends Error {
  readonly code: DockerApiErrorCode;
  /** the HTTP status, when Docker answered */
  readonly status: number | undefined;
  constructor(code: DockerApiErrorCode, message: string, status?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DockerApiError';
    this.code = code;
    this.status = status;
  }
}

/** Where the Docker daemon listens: DOCKER_HOST, else the default unix socket. */
export function dockerEndpointFromEnv(env: Readonly<Record<string, string | undefined>>): DockerEndpoint {
  const url = env.DOCKER_HOST || DEFAULT_DOCKER_HOST;
  const parsed = parseDockerHost(url, env);
  if ('why' in parsed)
    throw new DockerApiError('DOCKER_HOST_INVALID', `DOCKER_HOST=${JSON.stringify(url)}: ${parsed.why}`);
  return parsed.endpoint;
}

/**
 * `unix:///abs/path` or `tcp://host[:port]` (plain HTTP: DOCKER_TLS_VERIFY in `env` is refused),
 * or why not. The caller names the setting it came from.
 */
export function parseDockerHost(
  url: string,
  env: Readonly<Record<string, string | undefined>> = {},
): { readonly endpoint: DockerEndpoint } | { readonly why: string } {
  if (url.startsWith('unix://')) {
    const socketPath = url.slice('unix://'.length) || '/var/run/docker.sock';
    if (!socketPath.startsWith('/') || socketPath.includes('\0')) return { why: 'expected unix:///absolute/path' };
    return { endpoint: { kind: 'unix', socketPath, url } };
  }
  if (url.startsWith('tcp://')) {
    if (env.DOCKER_TLS_VERIFY) {
      return {
        why: 'DOCKER_TLS_VERIFY is set, but truss speaks plain HTTP to Docker; use a unix socket or unset it',
      };
    }
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return { why: 'expected tcp://host:port' };
    }
    if (u.hostname === '' || (u.pathname !== '' && u.pathname !== '/') || u.search !== '' || u.username !== '') {
      return { why: 'expected tcp://host:port' };
    }
    const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    return { endpoint: { kind: 'tcp', host, port: u.port === '' ? 2375 : Number(u.port), url } };
  }
  return { why: 'only unix:// and tcp:// are supported' };
}

/** Where node:http connects for `ep`. */
export const connectTarget = (ep: DockerEndpoint): { socketPath: string } | { host: string; port: number } =>
  ep.kind === 'unix' ? { socketPath: ep.socketPath } : { host: ep.host, port: ep.port };

/**
 * A request's error as the caller sees it: ours and an abort (the caller's own signal) pass as
 * they are; a socket error becomes DOCKER_UNREACHABLE with the errno in `cause`.
 */
export function requestError(ep: DockerEndpoint, e: NodeJS.ErrnoException): Error {
  if (e instanceof DockerApiError || e.name === 'AbortError') return e;
  if (e.code === 'EACCES') {
    const msg = `permission denied on ${ep.url} (run as root or as a member of the docker group)`;
    return new DockerApiError('DOCKER_UNREACHABLE', msg, undefined, { cause: e });
  }
  const msg = `cannot reach the Docker daemon at ${ep.url} (${e.code ?? e.message}): is dockerd running? DOCKER_HOST selects another daemon; a network id needs no Docker`;
  return new DockerApiError('DOCKER_UNREACHABLE', msg, undefined, { cause: e });
}

/** Per-request options: a deadline for each socket wait, and the caller's abort. */
export interface RequestOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

function get(ep: DockerEndpoint, path: string, opts: RequestOptions): Promise<{ status: number; text: string }> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const req = http().request(
      {
        ...connectTarget(ep),
        method: 'GET',
        path,
        headers: { accept: 'application/json' },
        timeout: timeoutMs,
        ...(opts.signal ? { signal: opts.signal } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_REPLY)
            req.destroy(new DockerApiError('DOCKER_FAILED', `Docker's reply to ${path} is too large`));
          else chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (e) => reject(requestError(ep, e)));
      },
    );
    req.on('timeout', () =>
      req.destroy(
        new DockerApiError(
          'DOCKER_UNREACHABLE',
          `the Docker daemon at ${ep.url} did not answer within ${timeoutMs} ms`,
        ),
      ),
    );
    req.on('error', (e: NodeJS.ErrnoException) => reject(requestError(ep, e)));
    req.end();
  });
}

export const messageOf = (text: string): string => {
  try {
    const m = (JSON.parse(text) as { message?: unknown }).message;
    if (typeof m === 'string') return m;
  } catch {}
  return text.trim().slice(0, 200);
};

/** GET /networks/{nameOrId}: Docker matches a full id, a name, or an unambiguous id prefix. */
export async function inspectNetwork(ep: DockerEndpoint, nameOrId: string, timeoutMs = 10_000): Promise<DockerNetwork> {
  const { status, text } = await get(ep, `/networks/${encodeURIComponent(nameOrId)}`, { timeoutMs });
  if (status === 404) {
    throw new DockerApiError(
      'DOCKER_NOT_FOUND',
      `Docker has no network ${JSON.stringify(nameOrId)} (see docker network ls)`,
      404,
    );
  }
  if (status !== 200) {
    throw new DockerApiError(
      'DOCKER_FAILED',
      `Docker answered ${status} to GET /networks/${nameOrId}: ${messageOf(text)}`,
      status,
    );
  }
  let n: Partial<Record<keyof DockerNetwork, unknown>>;
  try {
    n = JSON.parse(text) as typeof n;
  } catch (e) {
    throw new DockerApiError('DOCKER_FAILED', `Docker's reply to GET /networks/${nameOrId} is not JSON`, status, {
      cause: e,
    });
  }
  if (
    typeof n?.Id !== 'string' ||
    !/^[0-9a-f]{64}$/.test(n.Id) ||
    typeof n.Name !== 'string' ||
    typeof n.Driver !== 'string'
  ) {
    throw new DockerApiError(
      'DOCKER_FAILED',
      `Docker's reply to GET /networks/${nameOrId} lacks Id, Name or Driver`,
      status,
    );
  }
  return { Id: n.Id, Name: n.Name, Driver: n.Driver };
}

/** A container's attachment to one network, as GET /containers/{id}/json shows it. */
export interface DockerAttachment {
  readonly network: string;
  readonly networkId: string;
  readonly endpointId: string;
  readonly ipv4?: string;
  readonly ipv6?: string;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * GET /containers/{nameOrId}/json, parsed but not checked: the caller reads the fields it uses.
 * DOCKER_NOT_FOUND when Docker has no such container (never was, or removed).
 */
export async function readContainer(ep: DockerEndpoint, nameOrId: string, opts: RequestOptions = {}): Promise<unknown> {
  const path = `/containers/${encodeURIComponent(nameOrId)}/json`;
  const { status, text } = await get(ep, path, opts);
  if (status === 404) {
    throw new DockerApiError(
      'DOCKER_NOT_FOUND',
      `Docker has no container ${JSON.stringify(nameOrId)} (see docker ps -a)`,
      404,
    );
  }
  if (status !== 200) {
    throw new DockerApiError('DOCKER_FAILED', `Docker answered ${status} to GET ${path}: ${messageOf(text)}`, status);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new DockerApiError('DOCKER_FAILED', `Docker's reply to GET ${path} is not JSON`, status, { cause: e });
  }
}

/** GET /containers/{nameOrId}/json: its name and its network attachments (empty when it is stopped). */
export async function inspectContainer(
  ep: DockerEndpoint,
  nameOrId: string,
  timeoutMs = 10_000,
): Promise<{ readonly name: string; readonly attachments: readonly DockerAttachment[] }> {
  const c = (await readContainer(ep, nameOrId, { timeoutMs })) as {
    Name?: unknown;
    NetworkSettings?: { Networks?: Record<string, Record<string, unknown> | null> | null };
  } | null;
  const attachments = Object.entries(c?.NetworkSettings?.Networks ?? {}).flatMap(([network, n]) => {
    const networkId = str(n?.NetworkID);
    const endpointId = str(n?.EndpointID);
    if (networkId === undefined || endpointId === undefined) return [];
    const [ipv4, ipv6] = [str(n?.IPAddress), str(n?.GlobalIPv6Address)];
    return [{ network, networkId, endpointId, ...(ipv4 ? { ipv4 } : {}), ...(ipv6 ? { ipv6 } : {}) }];
  });
  return { name: (str(c?.Name) ?? nameOrId).replace(/^\//, ''), attachments };
}

/** GET a JSON array (a listing); a non-200 answer or anything but an array fails. */
async function listing(ep: DockerEndpoint, path: string, opts: RequestOptions): Promise<unknown[]> {
  const { status, text } = await get(ep, path, opts);
  if (status !== 200) {
    throw new DockerApiError('DOCKER_FAILED', `Docker answered ${status} to GET ${path}: ${messageOf(text)}`, status);
  }
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch (e) {
    throw new DockerApiError('DOCKER_FAILED', `Docker's reply to GET ${path} is not JSON`, status, { cause: e });
  }
  if (!Array.isArray(list)) throw new DockerApiError('DOCKER_FAILED', `Docker's reply to GET ${path} is not a list`);
  return list;
}

/** GET /networks: every network's id and name (entries without them are skipped). */
export async function listNetworks(
  ep: DockerEndpoint,
  timeoutMs = 10_000,
): Promise<readonly { readonly Id: string; readonly Name: string }[]> {
  return (await listing(ep, '/networks', { timeoutMs })).flatMap((n) => {
    const { Id, Name } = (n ?? {}) as { Id?: unknown; Name?: unknown };
    return typeof Id === 'string' && typeof Name === 'string' ? [{ Id, Name }] : [];
  });
}

/** GET /containers/json?all=1: each container's name and its endpoint id per network. */
export async function listContainerEndpoints(
  ep: DockerEndpoint,
  timeoutMs = 10_000,
): Promise<readonly { readonly name: string; readonly endpointIds: readonly string[] }[]> {
  return (await listing(ep, '/containers/json?all=1', { timeoutMs })).flatMap((c) => {
    const { Names, NetworkSettings } = (c ?? {}) as {
      Names?: unknown;
      NetworkSettings?: { Networks?: Record<string, { EndpointID?: unknown } | null> | null } | null;
    };
    const first = Array.isArray(Names) ? Names[0] : undefined;
    if (typeof first !== 'string') return [];
    const endpointIds = Object.values(NetworkSettings?.Networks ?? {}).flatMap((n) =>
      typeof n?.EndpointID === 'string' && n.EndpointID !== '' ? [n.EndpointID] : [],
    );
    return [{ name: first.replace(/^\//, ''), endpointIds }];
  });
}

/** GET /containers/json (running containers only): their full ids. */
export async function listRunningContainerIds(ep: DockerEndpoint, opts: RequestOptions = {}): Promise<string[]> {
  return (await listing(ep, '/containers/json', opts)).flatMap((c) => {
    const id = (c as { Id?: unknown } | null)?.Id;
    return typeof id === 'string' && /^[0-9a-f]{64}$/.test(id) ? [id] : [];
  });
}

/** GET /version: the engine's version ("20.10.24+dfsg1", "28.5.2"), undefined when it does not say. */
export async function readVersion(ep: DockerEndpoint, opts: RequestOptions = {}): Promise<string | undefined> {
  const { status, text } = await get(ep, '/version', opts);
  if (status !== 200) {
    throw new DockerApiError('DOCKER_FAILED', `Docker answered ${status} to GET /version: ${messageOf(text)}`, status);
  }
  try {
    const v = (JSON.parse(text) as { Version?: unknown } | null)?.Version;
    return typeof v === 'string' && v !== '' ? v : undefined;
  } catch (e) {
    throw new DockerApiError('DOCKER_FAILED', "Docker's reply to GET /version is not JSON", status, { cause: e });
  }
}
