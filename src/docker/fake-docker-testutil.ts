/**
 * A fake Docker Engine API on a temporary unix socket, for the follower's tests: GET /events as
 * a long-lived chunked stream that events are pushed into, GET /containers/json (running only)
 * and GET /containers/{id}/json. Inspect replies copy dockerd's shapes: 20.10 (Aliases carries
 * the short id, no DNSNames) and 28 (Aliases as given, DNSNames with name, aliases, short id).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** a 64-hex Docker id made from `seed` */
export const hexId = (seed: string): string => createHash('sha256').update(seed).digest('hex');

export interface Attachment {
  readonly network: string;
  readonly networkId: string;
  readonly endpointId: string;
  readonly aliases?: readonly string[];
  readonly ipv4?: string;
  readonly ipv6?: string;
}

export interface FakeContainer {
  readonly id: string;
  readonly name: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly dns?: readonly string[] | null;
  readonly attachments: readonly Attachment[];
  running: boolean;
}

/** GET /containers/{id}/json as dockerd `version` writes it (the fields around ours included). */
export function inspectJson(c: FakeContainer, version: '20.10' | '28'): unknown {
  const short = c.id.slice(0, 12);
  const networks: Record<string, unknown> = {};
  for (const a of c.attachments) {
    const up = c.running;
    const aliases = [...(a.aliases ?? [])];
    networks[a.network] = {
      IPAMConfig: null,
      Links: null,
      Aliases: version === '20.10' && up ? [...aliases, short] : aliases,
      ...(version === '28' ? { MacAddress: up ? '02:42:c6:12:00:02' : '', DriverOpts: null, GwPriority: 0 } : {}),
      NetworkID: a.networkId,
      EndpointID: up ? a.endpointId : '',
      Gateway: up ? '198.18.0.1' : '',
      IPAddress: up ? (a.ipv4 ?? '') : '',
      IPPrefixLen: up && a.ipv4 ? 24 : 0,
      IPv6Gateway: '',
      GlobalIPv6Address: up ? (a.ipv6 ?? '') : '',
      GlobalIPv6PrefixLen: up && a.ipv6 ? 64 : 0,
      ...(version === '20.10' ? { MacAddress: up ? '02:42:c6:12:00:02' : '', DriverOpts: null } : {}),
      ...(version === '28' ? { DNSNames: up ? [c.name, ...aliases, short] : null } : {}),
    };
  }
  return {
    Id: c.id,
    Created: '2025-01-01T00:00:00.000000000Z',
    Path: 'sleep',
    Args: ['1d'],
    State: {
      Status: c.running ? 'running' : 'exited',
      Running: c.running,
      Paused: false,
      Restarting: false,
      OOMKilled: false,
      Dead: false,
      Pid: c.running ? 4242 : 0,
      ExitCode: c.running ? 0 : 137,
      Error: '',
      StartedAt: '2025-01-01T00:00:01.000000000Z',
      FinishedAt: '0001-01-01T00:00:00Z',
    },
    Image: `sha256:${'ab'.repeat(32)}`,
    Name: `/${c.name}`,
    RestartCount: 0,
    Driver: 'overlay2',
    HostConfig: {
      NetworkMode: c.attachments[0]?.network ?? 'default',
      Dns: c.dns === undefined ? (version === '20.10' ? [] : null) : c.dns,
      DnsOptions: version === '20.10' ? [] : null,
      DnsSearch: version === '20.10' ? [] : null,
    },
    Config: {
      Hostname: short,
      Image: 'busybox',
      Labels: c.labels ?? {},
    },
    NetworkSettings: {
      Bridge: '',
      SandboxID: c.running ? 'cd'.repeat(32) : '',
      Ports: {},
      SandboxKey: c.running ? `/var/run/docker/netns/${'cd'.repeat(6)}` : '',
      Networks: networks,
    },
  };
}

export class FakeDocker {
  readonly dir = mkdtempSync(join(tmpdir(), 'truss-fake-docker-'));
  readonly socketPath = join(this.dir, 'docker.sock');
  readonly containers = new Map<string, FakeContainer>();
  /** every request path, in order */
  readonly requests: string[] = [];
  version: '20.10' | '28' = '28';
  /** answer every request with this status instead (a proxy that refuses) */
  refuse: number | undefined;
  /** hold each inspect reply this long, to see how many are asked at once */
  inspectDelayMs = 0;
  /** the most inspects in flight at once */
  maxInspecting = 0;
  #inspecting = 0;
  #streams = new Set<http.ServerResponse>();
  #server: http.Server | undefined;
  #time = 1_750_000_000;

  async listen(): Promise<this> {
    const server = http.createServer((req, res) => this.#handle(req, res));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, resolve);
    });
    return this;
  }

  /** open event streams */
  get streams(): number {
    return this.#streams.size;
  }

  add(c: Omit<FakeContainer, 'running'> & { running?: boolean }): FakeContainer {
    const full = { ...c, running: c.running ?? true };
    this.containers.set(c.id, full);
    return full;
  }

  /** An event on every open stream, shaped as dockerd writes it. */
  emit(type: 'container' | 'network', action: string, actorId: string, attributes: Record<string, string>): void {
    const time = ++this.#time;
    const line = JSON.stringify({
      ...(type === 'container' ? { status: action, id: actorId, from: 'busybox' } : {}),
      Type: type,
      Action: action,
      Actor: { ID: actorId, Attributes: attributes },
      scope: 'local',
      time,
      timeNano: time * 1e9 + 123,
    });
    for (const s of this.#streams) s.write(`${line}\n`);
  }

  containerEvent(action: string, c: FakeContainer): void {
    this.emit('container', action, c.id, { image: 'busybox', name: c.name });
  }

  networkEvent(action: 'connect' | 'disconnect', c: FakeContainer, a: Attachment): void {
    this.emit('network', action, a.networkId, { container: c.id, name: a.network, type: 'truss:latest' });
  }

  /** Cut every event stream mid-reply, as a dockerd that is killed does. */
  dropStreams(): void {
    for (const s of this.#streams) s.destroy();
    this.#streams.clear();
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.dropStreams();
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  /** close() and remove the socket's directory */
  async dispose(): Promise<void> {
    await this.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://docker');
    this.requests.push(req.url ?? '');
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (this.refuse !== undefined) {
      json(this.refuse, { message: 'forbidden by the proxy' });
      return;
    }
    if (req.method !== 'GET') {
      json(405, { message: 'method not allowed' });
      return;
    }
    if (url.pathname === '/events') {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      this.#streams.add(res);
      res.on('close', () => this.#streams.delete(res));
      return;
    }
    if (url.pathname === '/containers/json') {
      const list = [...this.containers.values()]
        .filter((c) => c.running)
        .map((c) => ({ Id: c.id, Names: [`/${c.name}`], Image: 'busybox', State: 'running', Labels: c.labels ?? {} }));
      json(200, list);
      return;
    }
    const m = /^\/containers\/([^/]+)\/json$/.exec(url.pathname);
    if (m) {
      this.maxInspecting = Math.max(this.maxInspecting, ++this.#inspecting);
      setTimeout(() => {
        this.#inspecting--;
        const c = this.containers.get(decodeURIComponent(m[1] ?? ''));
        if (c) json(200, inspectJson(c, this.version));
        else json(404, { message: `No such container: ${m[1]}` });
      }, this.inspectDelayMs);
      return;
    }
    json(404, { message: 'page not found' });
  }
}
