import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ensureNodeId, takeInstance } from './node-id.ts';

const dirs: string[] = [];
const scratch = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'truss-node-id-'));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('ensureNodeId', () => {
  it('a new host: a random id, written once (0644) and kept on every later start', async () => {
    const d = scratch();
    const first = await ensureNodeId(d, 'twin', async () => false);
    assert.equal(first.origin, 'new');
    assert.match(first.id, /^[0-9a-f]{32}$/);
    assert.equal(readFileSync(join(d, 'node-id'), 'utf8'), `${first.id}\n`);
    assert.equal(statSync(join(d, 'node-id')).mode & 0o777, 0o644);
    const again = await ensureNodeId(d, 'other-name', async () => true);
    assert.deepEqual(again, { id: first.id, origin: 'stored', file: join(d, 'node-id') });
  });

  it('a host upgraded from truss before node ids takes its old name as id (no manual step)', async () => {
    const d = scratch();
    const r = await ensureNodeId(d, 'h1', async () => true);
    assert.deepEqual(r, { id: 'h1', origin: 'legacy', file: join(d, 'node-id') });
    assert.equal(readFileSync(join(d, 'node-id'), 'utf8'), 'h1\n');
  });

  it('a damaged node-id file is refused, naming it', async () => {
    const d = scratch();
    writeFileSync(join(d, 'node-id'), 'BAD ID\n');
    await assert.rejects(
      ensureNodeId(d, 'h1', async () => false),
      { code: 'TRUSS_ERR_OPTION_INVALID', message: /node-id holds "BAD ID", not a node id/ },
    );
  });
});

describe('takeInstance', () => {
  it("returns the previous process's nonce and writes this one's", async () => {
    const d = scratch();
    const a = await takeInstance(d);
    assert.equal(a.previous, undefined);
    const b = await takeInstance(d);
    assert.equal(b.previous, a.current);
    assert.notEqual(b.current, a.current);
  });
});
