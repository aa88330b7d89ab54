/** The Docker follower against a fake Docker API on a temporary unix socket. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { createLogger } from '../obs/logger.ts';
import type { DockerEndpoint } from './api.ts';
import { type Attachment, FakeDocker, hexId } from './fake-docker-testutil.ts';
import { DockerWatch } from './watch.ts';

const NET = { network: 'tnet', networkId: hexId('net-tnet') };
const att = (seed: string, extra: Partial<Attachment> = {}): Attachment => ({
  ...NET,
  endpointId: hexId(`ep-${seed}`),
  ...extra,
});
const unixEp = (socketPath: string): DockerEndpoint => ({ kind: 'unix', socketPath, url: `unix://${socketPath}` });

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Harness {
  docker: FakeDocker;
  watch: DockerWatch;
  logs: Record<string, unknown>[];
  changes: () => number;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function newWatch(endpoint: DockerEndpoint | undefined, retryMs = 20): Omit<Harness, 'docker'> {
  const logs: Record<string, unknown>[] = [];
  let changes = 0;
  const log = createLogger('debug', (line) => logs.push(JSON.parse(line) as Record<string, unknown>));
  const watch = new DockerWatch({ endpoint, log, onChange: () => changes++, retryMs });
  cleanups.push(() => watch.stop());
  return { watch, logs, changes: () => changes };
}

async function started(version: '20.10' | '28' = '28', setup: (d: FakeDocker) => void = () => {}): Promise<Harness> {
  const docker = await new FakeDocker().listen();
  docker.version = version;
  cleanups.push(() => docker.dispose());
  setup(docker);
  const h = newWatch(unixEp(docker.socketPath));
  h.watch.start();
  await until('synced', () => h.watch.state().state === 'synced');
  return { docker, ...h };
}

describe('DockerWatch', () => {
  it('lists and inspects the running containers at start (dockerd 28: DNSNames)', async () => {
    const web = hexId('web');
    const { watch, docker, changes } = await started('28', (d) => {
      d.add({
        id: web,
        name: 'web',
        labels: { role: 'api', 'com.docker.compose.service': 'web' },
        dns: ['198.18.0.53'],
        attachments: [att('web', { aliases: ['api'], ipv4: '198.18.0.2', ipv6: 'fd00::2' })],
      });
      d.add({ id: hexId('old'), name: 'old', attachments: [att('old')], running: false });
    });
    assert.deepEqual([...watch.containers().keys()], [web]);
    assert.deepEqual(watch.containers().get(web), {
      id: web,
      name: 'web',
      labels: { role: 'api', 'com.docker.compose.service': 'web' },
      dns: ['198.18.0.53'],
      endpoints: [
        {
          endpointId: hexId('ep-web'),
          networkId: NET.networkId,
          networkName: 'tnet',
          aliases: ['api', web.slice(0, 12)],
          ipv4: '198.18.0.2',
          ipv6: 'fd00::2',
        },
      ],
    });
    assert.equal(watch.byEndpoint(hexId('ep-web'))?.container.name, 'web');
    assert.equal(watch.byEndpoint(hexId('ep-old')), undefined);
    assert.equal(watch.state().reason, undefined);
    await until('onChange', () => changes() > 0);
    const events = docker.requests.find((r) => r.startsWith('/events'));
    const filters = JSON.parse(new URL(`http://x${events}`).searchParams.get('filters') ?? '{}') as {
      type: string[];
    };
    assert.deepEqual(filters.type, ['container', 'network']);
  });

  it('reads dockerd 20.10 (short id in Aliases, no DNSNames, Dns [])', async () => {
    const id = hexId('db');
    const { watch } = await started('20.10', (d) =>
      d.add({ id, name: 'db', attachments: [att('db', { aliases: ['db', 'pg'], ipv4: '198.18.0.3' })] }),
    );
    const f = watch.containers().get(id);
    assert.deepEqual(f?.endpoints[0]?.aliases, ['pg', id.slice(0, 12)]);
    assert.deepEqual(f?.dns, []);
    assert.deepEqual(f?.labels, {});
    assert.equal(f?.endpoints[0]?.ipv6, undefined);
  });

  it('follows start, rename, die and destroy', async () => {
    const { watch, docker, changes } = await started();
    const c = docker.add({ id: hexId('new'), name: 'new', attachments: [att('new', { ipv4: '198.18.0.4' })] });
    docker.containerEvent('start', c);
    await until('started container', () => watch.containers().has(c.id));
    assert.equal(watch.byEndpoint(hexId('ep-new'))?.endpoint.ipv4, '198.18.0.4');

    docker.containers.set(c.id, { ...c, name: 'renamed' });
    docker.containerEvent('rename', c);
    await until('rename', () => watch.containers().get(c.id)?.name === 'renamed');

    const before = changes();
    (docker.containers.get(c.id) as { running: boolean }).running = false;
    docker.containerEvent('die', c);
    await until('died container gone', () => !watch.containers().has(c.id));
    assert.equal(watch.byEndpoint(hexId('ep-new')), undefined);
    await until('onChange after die', () => changes() > before);

    docker.containers.set(c.id, { ...c, running: true });
    docker.containerEvent('start', c);
    await until('restarted', () => watch.containers().has(c.id));
    docker.containers.delete(c.id); // docker rm -f: gone before we ask
    docker.containerEvent('destroy', c);
    await until('destroyed container gone', () => !watch.containers().has(c.id));
  });

  it('drops what goes away without asking dockerd (a mass docker rm -f), and ignores a stale inspect', async () => {
    const { watch, docker } = await started();
    const c = docker.add({ id: hexId('gone'), name: 'gone', attachments: [att('gone')] });
    docker.containerEvent('start', c);
    await until('started', () => watch.containers().has(c.id));
    const asked = () => docker.requests.filter((u) => u.startsWith(`/containers/${c.id}/json`)).length;
    const before = asked();
    // an inspect in flight (slow) when the container dies: its answer, "running", must not bring it back
    docker.inspectDelayMs = 200;
    docker.containerEvent('start', c);
    await until('the slow inspect asked', () => asked() > before);
    // (the fake still answers "running": only the order of events can tell the answer is stale)
    docker.containerEvent('die', c);
    docker.containerEvent('destroy', c);
    await until('gone at once', () => !watch.containers().has(c.id));
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(watch.containers().has(c.id), false, 'the stale answer was ignored');
    assert.equal(asked(), before + 1, 'die and destroy asked dockerd nothing');
  });

  it('follows network connect and disconnect', async () => {
    const id = hexId('app');
    const other = { network: 'other', networkId: hexId('net-other'), endpointId: hexId('ep-app-2') };
    const { watch, docker } = await started('28', (d) => d.add({ id, name: 'app', attachments: [att('app')] }));
    const c = docker.containers.get(id);
    assert.ok(c);
    const connected = { ...c, attachments: [...c.attachments, { ...other, aliases: ['app2'] }] };
    docker.containers.set(id, connected);
    docker.networkEvent('connect', connected, other);
    await until('second endpoint', () => watch.containers().get(id)?.endpoints.length === 2);
    assert.deepEqual(watch.byEndpoint(other.endpointId)?.endpoint.aliases, ['app2', id.slice(0, 12)]);
    assert.equal(watch.byEndpoint(other.endpointId)?.endpoint.networkName, 'other');

    docker.containers.set(id, c);
    docker.networkEvent('disconnect', c, other);
    await until('disconnected', () => watch.byEndpoint(other.endpointId) === undefined);
    assert.ok(watch.byEndpoint(hexId('ep-app')));
  });

  it('coalesces a burst and keeps at most a few inspects in flight', async () => {
    const { watch, docker } = await started();
    docker.inspectDelayMs = 5;
    const ids = Array.from({ length: 20 }, (_, i) => hexId(`burst-${i}`));
    for (const [i, id] of ids.entries()) {
      const c = docker.add({ id, name: `b${i}`, attachments: [att(`burst-${i}`)] });
      for (let k = 0; k < 5; k++) docker.containerEvent('start', c);
    }
    await until('all 20', () => ids.every((id) => watch.containers().has(id)));
    const inspects = docker.requests.filter((r) => /^\/containers\/[0-9a-f]{64}\/json$/.test(r)).length;
    assert.ok(inspects < 100, `${inspects} inspects for 100 events on 20 containers`);
    assert.ok(docker.maxInspecting <= 4, `${docker.maxInspecting} inspects at once`);
    assert.ok(docker.maxInspecting >= 2, 'they do run side by side');
  });

  it('reconnects after the stream drops, since the last event, and relists', async () => {
    const keep = hexId('keep');
    const gone = hexId('gone');
    const { watch, docker, logs } = await started('28', (d) => {
      d.add({ id: keep, name: 'keep', attachments: [att('keep')] });
      d.add({ id: gone, name: 'gone', attachments: [att('gone')] });
    });
    const c = docker.add({ id: hexId('late'), name: 'late', attachments: [att('late')] });
    docker.containerEvent('start', c);
    await until('late', () => watch.containers().has(c.id));

    docker.dropStreams();
    (docker.containers.get(gone) as { running: boolean }).running = false; // stopped during the gap
    await until('connecting or back', () => docker.streams === 1 && watch.state().state === 'synced', 5000);
    await until('gone dropped', () => !watch.containers().has(gone));
    assert.ok(watch.containers().has(keep));
    const eventPaths = docker.requests.filter((r) => r.startsWith('/events'));
    assert.equal(eventPaths.length, 2);
    assert.match(eventPaths[1] ?? '', /[?&]since=\d+/);
    assert.equal(docker.requests.filter((r) => r === '/containers/json').length, 2);
    assert.equal(logs.filter((l) => l.level === 'warn').length, 0, 'a quick reconnect is no warning');
    assert.ok(logs.some((l) => l.msg === 'docker api stream lost'));
  });

  it('reports an unreachable Docker with the reason and the fix, once, then syncs when it comes up', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'truss-watch-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const docker = new FakeDocker();
    cleanups.push(() => docker.dispose());
    const ep = unixEp(docker.socketPath);
    const { watch, logs, changes } = newWatch(ep);
    const t0 = Date.now();
    watch.start();
    assert.ok(Date.now() - t0 < 50, 'start() returns at once');
    assert.equal(watch.state().state, 'connecting');
    await until('unreachable', () => watch.state().state === 'unreachable');
    assert.match(
      watch.state().reason ?? '',
      /^cannot reach the Docker API at unix:\/\/\/.*docker\.sock \(connect ENOENT\): container names, truss DNS and name\/label policy are off; .*mount the Docker socket \(see docs\/names\.md\)$/,
    );
    await new Promise((r) => setTimeout(r, 150)); // several retries
    assert.ok(docker.requests.length === 0);
    assert.equal(logs.filter((l) => l.level === 'warn').length, 1, 'one warning, not one per retry');
    const seen = changes();
    assert.ok(seen >= 1);

    docker.add({ id: hexId('up'), name: 'up', attachments: [att('up')] });
    await docker.listen();
    await until('synced', () => watch.state().state === 'synced', 5000);
    assert.ok(watch.containers().has(hexId('up')));
    assert.equal(watch.state().reason, undefined);
    await until('onChange on sync', () => changes() > seen);
  });

  it("names the managed plugin's placeholder mount (a file that is no socket)", async () => {
    const { watch } = newWatch(unixEp('/dev/null'));
    watch.start();
    await until('unreachable', () => watch.state().state === 'unreachable');
    assert.match(
      watch.state().reason ?? '',
      /^\/dev\/null is not a socket .*docker-socket\.source=\/var\/run\/docker\.sock/,
    );
  });

  it('tells a proxy that refuses the calls it must allow', async () => {
    const docker = await new FakeDocker().listen();
    cleanups.push(() => docker.dispose());
    docker.refuse = 403;
    const { watch } = newWatch(unixEp(docker.socketPath));
    watch.start();
    await until('unreachable', () => watch.state().state === 'unreachable');
    assert.match(watch.state().reason ?? '', /answered 403 to GET \/events.*must allow GET \/events/);
  });

  it('is off with --docker-host none', async () => {
    const { watch, logs } = newWatch(undefined);
    watch.start();
    assert.deepEqual(
      { state: watch.state().state, reason: watch.state().reason },
      { state: 'off', reason: 'the Docker API is turned off (--docker-host none)' },
    );
    assert.equal(watch.containers().size, 0);
    assert.ok(logs.some((l) => l.msg === 'docker api off'));
    await watch.stop();
  });

  it('stop() ends the stream, the requests and every timer', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const { watch, docker } = await started('28', (d) => d.add({ id: hexId('s'), name: 's', attachments: [att('s')] }));
    docker.containerEvent('start', docker.containers.get(hexId('s')) as never);
    await watch.stop();
    await until('stream closed', () => docker.streams === 0);
    await docker.close();
    // and when stopped while retrying against nothing
    const idle = newWatch(unixEp('/nonexistent/docker.sock'), 10_000);
    idle.watch.start();
    await until('unreachable', () => idle.watch.state().state === 'unreachable');
    await idle.watch.stop();
    await until(
      'no timers left',
      () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length <= before,
    );
  });
});
