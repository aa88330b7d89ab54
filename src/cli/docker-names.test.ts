/** Docker's names for truss status, from a fake Docker daemon on a temp unix socket. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { lookupDockerNames } from './docker-names.ts';

const NID = `0123456789ab${'c'.repeat(52)}`;
const EID = `e1e1e1e1e1e1${'5'.repeat(52)}`;

async function fakeDocker(routes: Record<string, unknown>, delayMs = 0) {
  const dir = mkdtempSync(join(tmpdir(), 'truss-names-'));
  const socket = join(dir, 'docker.sock');
  const server = http.createServer((req, res) => {
    const body = routes[req.url ?? ''];
    setTimeout(() => {
      res.statusCode = body === undefined ? 404 : 200;
      res.end(JSON.stringify(body ?? { message: 'page not found' }));
    }, delayMs);
  });
  await new Promise<void>((r) => server.listen(socket, r));
  return {
    env: { DOCKER_HOST: `unix://${socket}` },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('lookupDockerNames', () => {
  it('network id -> name, endpoint id -> container name (stopped containers and odd entries tolerated)', async () => {
    const d = await fakeDocker({
      '/networks': [{ Id: NID, Name: 'web', Driver: 'truss' }, { Name: 'no id' }],
      '/containers/json?all=1': [
        { Names: ['/api-1'], NetworkSettings: { Networks: { web: { EndpointID: EID }, other: { EndpointID: '' } } } },
        { Names: ['/stopped'], NetworkSettings: { Networks: null } },
        { Id: 'no names' },
      ],
    });
    try {
      const names = await lookupDockerNames(d.env);
      assert.deepEqual([...(names?.networks ?? [])], [[NID, 'web']]);
      assert.deepEqual([...(names?.endpoints ?? [])], [[EID, 'api-1']]);
    } finally {
      await d.close();
    }
  });

  it('no Docker, a Docker that answers badly or too slowly, a bad DOCKER_HOST: no names, no error', async () => {
    assert.equal(await lookupDockerNames({ DOCKER_HOST: 'unix:///nonexistent/docker.sock' }), undefined);
    assert.equal(await lookupDockerNames({ DOCKER_HOST: 'ssh://host' }), undefined);
    const broken = await fakeDocker({ '/networks': [] });
    try {
      assert.equal(await lookupDockerNames(broken.env), undefined);
    } finally {
      await broken.close();
    }
    const slow = await fakeDocker({ '/networks': [], '/containers/json?all=1': [] }, 500);
    try {
      assert.equal(await lookupDockerNames(slow.env, 100), undefined);
    } finally {
      await slow.close();
    }
  });
});
