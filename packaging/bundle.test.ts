import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DAEMON_NODE_FLAGS, REPO_ROOT } from './bundle.ts';

describe('daemon node flags', () => {
  it('are the same in scripts/run.sh and the managed plugin’s entrypoint', () => {
    const config = JSON.parse(readFileSync(join(REPO_ROOT, 'packaging', 'plugin', 'config.json'), 'utf8')) as {
      entrypoint: string[];
    };
    assert.deepEqual(config.entrypoint, ['/usr/local/bin/node', ...DAEMON_NODE_FLAGS, '/app/lib/truss.mjs', 'serve']);
    const run = readFileSync(join(REPO_ROOT, 'scripts', 'run.sh'), 'utf8');
    assert.match(run, new RegExp(`node ${DAEMON_NODE_FLAGS.join(' ')} dist/app/lib/truss\\.mjs serve "\\$@"`));
  });
});
