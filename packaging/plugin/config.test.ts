/** The managed plugin's config.json: its settings are serve's env twins; the Docker socket is opt-in. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SERVE_OPTIONS } from '../../src/config.ts';
import { REPO_ROOT } from '../bundle.ts';

interface PluginConfig {
  mounts: { name: string; source: string; destination: string; type: string; options: string[]; settable?: string[] }[];
  env: { name: string; value: string; settable?: string[] }[];
}
const config = JSON.parse(readFileSync(join(REPO_ROOT, 'packaging', 'plugin', 'config.json'), 'utf8')) as PluginConfig;

describe('packaging/plugin/config.json', () => {
  it('mounts the Docker socket only when the operator sets docker-socket.source', () => {
    const m = config.mounts.find((x) => x.name === 'docker-socket');
    assert.ok(m, 'a docker-socket mount');
    // /dev/null exists on every host, so enable works; truss reports it as a placeholder, not a socket
    assert.deepEqual(
      [m.source, m.destination, m.type, m.settable],
      ['/dev/null', '/var/run/docker.sock', 'bind', ['source']],
    );
    assert.ok(m.options.includes('ro'));
    const host = config.env.find((e) => e.name === 'TRUSS_DOCKER_HOST');
    assert.deepEqual(host && [host.value, host.settable], ['', ['value']]);
  });

  it('every TRUSS_* setting is the env twin of a truss serve flag', () => {
    const twins = new Set<string>(Object.values(SERVE_OPTIONS).map((o) => o.env));
    const strays = config.env.filter((e) => e.name.startsWith('TRUSS_') && !twins.has(e.name));
    assert.deepEqual(strays, []);
  });
});
