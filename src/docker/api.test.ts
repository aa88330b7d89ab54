/** The Docker API client against fake Docker daemons on a temp unix socket and on loopback TCP. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DockerApiError, type DockerEndpoint, dockerEndpointFromEnv, inspectNetwork } from './api.ts';

const NID = `${'0123456789ab'}${'c'.repeat(52)}`;

describe('dockerEndpointFromEnv', () => {
  it('defaults to the local unix socket', () => {
    assert.deepStrictEqual(dockerEndpointFromEnv({}), {
      kind: 'unix',
      socketPath: '/var/run/docker.sock',
      url: 'unix:///var/run/docker.sock',
    });
    assert.equal(
      (dockerEndpointFromEnv({ DOCKER_HOST: '' }) as { socketPath: string }).socketPath,
      '/var/run/docker.sock',
    );
  });
  it('honours unix:// and tcp:// DOCKER_HOST', () => {
    assert.deepStrictEqual(dockerEndpointFromEnv({ DOCKER_HOST: 'unix:///run/user/1000/docker.sock' }), {
      kind: 'unix',
      socketPath: '/run/user/1000/docker.sock',
      url: 'unix:///run/user/1000/docker.sock',
    });
    assert.deepStrictEqual(dockerEndpointFromEnv({ DOCKER_HOST: 'tcp://198.18.0.5:2375' }), {
      kind: 'tcp',
      host: '198.18.0.5',
      port: 2375,
      url: 'tcp://198.18.0.5:2375',
    });
    assert.equal((dockerEndpointFromEnv({ DOCKER_HOST: 'tcp://docker' }) as { port: number }).port, 2375);
    assert.equal((dockerEndpointFromEnv({ DOCKER_HOST: 'tcp://[::1]:2375' }) as { host: string }).host, '::1');
  });
  it('refuses what it cannot speak, naming DOCKER_HOST', () => {
    for (const [env, why] of [
      [{ DOCKER_HOST: 'ssh://me@host' }, /only unix:\/\/ and tcp:\/\//],
      [{ DOCKER_HOST: 'npipe:////./pipe/docker_engine' }, /only unix/],
      [{ DOCKER_HOST: '/var/run/docker.sock' }, /only unix/],
      [{ DOCKER_HOST: 'unix://docker.sock' }, /expected unix:\/\/\/absolute\/path/],
      [{ DOCKER_HOST: 'tcp://host:2376', DOCKER_TLS_VERIFY: '1' }, /DOCKER_TLS_VERIFY/],
      [{ DOCKER_HOST: 'tcp://:2375' }, /expected tcp:\/\/host:port/],
      [{ DOCKER_HOST: 'tcp://host:2375/v1.41' }, /expected tcp:\/\/host:port/],
    ] as const) {
      assert.throws(
        () => dockerEndpointFromEnv(env),
        (e: unknown) => e instanceof DockerApiError && e.code === 'DOCKER_HOST_INVALID' && why.test(e.message),
        JSON.stringify(env),
      );
    }
  });
});

interface Seen {
  method: string | undefined;
  url: string | undefined;
}

/** A fake dockerd: answers from `routes` (path → [status, body]); records requests. */
function fakeDocker(routes: Record<string, [number, string]>, seen: Seen[]): http.Server {
  return http.createServer((req, res) => {
    seen.push({ method: req.method, url: req.url });
    if (req.url === '/networks/hang') return; // never answers
    const [status, body] = routes[req.url ?? ''] ?? [404, JSON.stringify({ message: `network ${req.url} not found` })];
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body);
  });
}

const listen = (s: http.Server, where: string | number): Promise<void> =>
  new Promise((resolve) =>
    typeof where === 'string' ? s.listen(where, resolve) : s.listen(where, '127.0.0.1', resolve),
  );

const close = (s: http.Server): Promise<void> =>
  new Promise((resolve) => {
    s.closeAllConnections();
    s.close(() => resolve());
  });

describe('inspectNetwork', { timeout: 10_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'truss-docker-'));
  const sock = join(dir, 'docker.sock');
  const seen: Seen[] = [];
  const server = fakeDocker(
    {
      '/networks/web': [200, JSON.stringify({ Id: NID, Name: 'web', Driver: 'truss', Containers: {}, Options: {} })],
      '/networks/a%2Fb': [200, JSON.stringify({ Id: NID, Name: 'a/b', Driver: 'truss' })],
      '/networks/boom': [500, JSON.stringify({ message: 'something broke' })],
      '/networks/html': [200, '<html>'],
      '/networks/partial': [200, JSON.stringify({ Id: 'short', Name: 'partial' })],
    },
    seen,
  );
  const ep: DockerEndpoint = { kind: 'unix', socketPath: sock, url: `unix://${sock}` };
  before(() => listen(server, sock));
  after(async () => {
    await close(server);
    rmSync(dir, { recursive: true, force: true });
  });

  it('asks GET /networks/{name} without an API version and returns Id, Name, Driver', async () => {
    assert.deepStrictEqual(await inspectNetwork(ep, 'web'), { Id: NID, Name: 'web', Driver: 'truss' });
    assert.deepStrictEqual(seen.at(-1), { method: 'GET', url: '/networks/web' });
  });

  it('escapes the name into one path segment', async () => {
    assert.equal((await inspectNetwork(ep, 'a/b')).Name, 'a/b');
    assert.equal(seen.at(-1)?.url, '/networks/a%2Fb');
  });

  it('says clearly when the network does not exist', async () => {
    await assert.rejects(inspectNetwork(ep, 'nope'), (e: unknown) => {
      assert.ok(e instanceof DockerApiError);
      assert.equal(e.code, 'DOCKER_NOT_FOUND');
      assert.equal(e.status, 404);
      assert.equal(e.message, 'Docker has no network "nope" (see docker network ls)');
      return true;
    });
  });

  it("passes Docker's own message on for other failures", async () => {
    await assert.rejects(inspectNetwork(ep, 'boom'), /Docker answered 500 to GET \/networks\/boom: something broke/);
    await assert.rejects(inspectNetwork(ep, 'html'), /is not JSON/);
    await assert.rejects(inspectNetwork(ep, 'partial'), /lacks Id, Name or Driver/);
  });

  it('says clearly when Docker is unreachable', async () => {
    const gone: DockerEndpoint = {
      kind: 'unix',
      socketPath: join(dir, 'absent.sock'),
      url: `unix://${dir}/absent.sock`,
    };
    await assert.rejects(inspectNetwork(gone, 'web'), (e: unknown) => {
      assert.ok(e instanceof DockerApiError);
      assert.equal(e.code, 'DOCKER_UNREACHABLE');
      assert.match(
        e.message,
        /^cannot reach the Docker daemon at unix:\/\/.*absent\.sock \(ENOENT\): is dockerd running\?/,
      );
      return true;
    });
    await assert.rejects(inspectNetwork(ep, 'hang', 200), /did not answer within 200 ms/);
  });

  it('speaks plain HTTP over tcp://', async () => {
    const tcpSeen: Seen[] = [];
    const tcp = fakeDocker(
      { '/networks/web': [200, JSON.stringify({ Id: NID, Name: 'web', Driver: 'truss:latest' })] },
      tcpSeen,
    );
    await listen(tcp, 0);
    try {
      const { port } = tcp.address() as AddressInfo;
      const tcpEp = dockerEndpointFromEnv({ DOCKER_HOST: `tcp://127.0.0.1:${port}` });
      assert.equal((await inspectNetwork(tcpEp, 'web')).Driver, 'truss:latest');
      assert.deepStrictEqual(tcpSeen, [{ method: 'GET', url: '/networks/web' }]);
    } finally {
      await close(tcp);
    }
  });
});
