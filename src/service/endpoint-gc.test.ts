import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { EndpointSpec } from '../core/model.ts';
import { endpointSpec } from '../core/testing.ts';
import { silentLogger } from '../obs/logger.ts';
import { MemoryStore } from '../store/memory.ts';
import { EndpointGc, type SandboxState, sandboxState } from './endpoint-gc.ts';
import { IntentRepo } from './intent.ts';

const NID = 'a'.repeat(64);
const EID = 'b'.repeat(64);
const unjoined = endpointSpec({ networkId: NID, id: EID, mac: '02:5e:bb:bb:bb:bb' });
const ep: EndpointSpec = { ...unjoined, sandboxKey: '/var/run/docker/netns/1' };
const orphan = { networkId: NID, endpointId: EID, reason: 'its interface trvbbbbbbbbbbbb is gone' };

async function setup(spec: EndpointSpec = ep, opts: { sandbox?: SandboxState; failRelease?: () => boolean } = {}) {
  const store = new MemoryStore();
  const repo = new IntentRepo(store);
  await store.txn([], [{ type: 'put', key: `/truss/v1/networks/${NID}`, value: '{}' }]);
  await repo.createEndpoint(spec);
  let clock = 0;
  const released: [string, number][] = [];
  let triggers = 0;
  const gc = new EndpointGc({
    repo,
    releaseAddress: async (a, before) => {
      if (opts.failRelease?.()) throw new Error('database or disk is full');
      released.push([a, before]);
    },
    trigger: () => triggers++,
    log: silentLogger,
    graceMs: 60_000,
    now: () => clock,
    sandbox: () => opts.sandbox ?? 'gone',
  });
  return { store, repo, gc, released, advance: (ms: number) => (clock += ms), triggers: () => triggers };
}

describe('EndpointGc', () => {
  it('reclaims only after two observations a grace period apart', async () => {
    const t = await setup();
    assert.equal(await t.gc.observe([orphan]), 0);
    t.advance(30_000);
    assert.equal(await t.gc.observe([orphan]), 0);
    t.advance(30_000);
    assert.equal(await t.gc.observe([orphan]), 1);
    assert.equal(await t.repo.getEndpoint(NID, EID), undefined);
    assert.deepEqual(
      t.released.map(([a]) => a),
      ['198.18.0.2/24'],
    );
    assert.equal(t.triggers(), 1);
  });

  it('orphans(): each candidate with its reason, since and deadline (status), until reclaimed', async () => {
    const t = await setup();
    t.advance(1_000);
    await t.gc.observe([orphan]);
    assert.deepEqual(t.gc.orphans(), [
      {
        networkId: NID,
        endpointId: EID,
        reason: orphan.reason,
        since: new Date(1_000).toISOString(),
        deadline: new Date(61_000).toISOString(),
      },
    ]);
    t.advance(60_000);
    await t.gc.observe([orphan]);
    assert.deepEqual(t.gc.orphans(), []);
  });

  it('forgets a candidate that recovered, and re-validates before reclaiming', async () => {
    const t = await setup();
    await t.gc.observe([orphan]);
    t.advance(30_000);
    await t.gc.observe([]); // seen healthy: the clock starts again
    await t.gc.observe([orphan]);
    t.advance(59_000);
    assert.equal(await t.gc.observe([orphan]), 0);
    // Docker's Leave arrived meanwhile: the record changed, so the clock starts again
    await t.repo.putEndpoint(unjoined);
    t.advance(5_000);
    assert.equal(await t.gc.observe([orphan]), 0);
    assert.ok(await t.repo.getEndpoint(NID, EID));
    assert.deepEqual(t.released, []);
  });

  it('M1: reclaims an endpoint no container joined for a grace period, with its address', async () => {
    const t = await setup(unjoined);
    assert.equal(await t.gc.observe([]), 0);
    t.advance(59_999);
    assert.equal(await t.gc.observe([]), 0);
    t.advance(1);
    assert.equal(await t.gc.observe([]), 1);
    assert.equal(await t.repo.getEndpoint(NID, EID), undefined);
    const created = (await t.store.get(`/truss/v1/networks/${NID}`))?.createRevision ?? 0;
    // released only if allocated before the endpoint was created (the network's put is older)
    assert.deepEqual(t.released, [['198.18.0.2/24', created + 1]]);
  });

  it('a Join during the grace period wins: the endpoint is kept', async () => {
    const t = await setup(unjoined);
    await t.gc.observe([]);
    t.advance(60_000);
    await t.repo.putEndpoint(ep); // joined (a healthy joined endpoint is no orphan)
    assert.equal(await t.gc.observe([]), 0);
    t.advance(600_000);
    assert.equal(await t.gc.observe([]), 0);
    assert.deepEqual(await t.repo.getEndpoint(NID, EID), ep);
    assert.deepEqual(t.released, []);
  });

  it('a Join racing the reclaim: the delete compares the record, the Join never resurrects it', async () => {
    const t = await setup(unjoined);
    // the GC deletes first: a Join that read the record before must fail, not re-create it
    assert.ok((await t.repo.deleteEndpointIfUnchanged(unjoined)) !== undefined);
    await assert.rejects(t.repo.putEndpoint(ep), { code: 'TRUSS_ERR_ENDPOINT_NOT_FOUND' });
    assert.equal(await t.repo.getEndpoint(NID, EID), undefined);
    // the Join writes first: the GC's compare fails
    await t.repo.createEndpoint(unjoined);
    await t.repo.putEndpoint(ep);
    assert.equal(await t.repo.deleteEndpointIfUnchanged(unjoined), undefined);
    assert.deepEqual(await t.repo.getEndpoint(NID, EID), ep);
  });

  it('H3: a joined endpoint whose sandbox is still a network namespace is kept', async () => {
    const t = await setup(ep, { sandbox: 'alive' });
    await t.gc.observe([orphan]);
    t.advance(600_000);
    assert.equal(await t.gc.observe([orphan]), 0);
    assert.ok(await t.repo.getEndpoint(NID, EID));
  });

  it('a failed release is retried on the next pass', async () => {
    let fail = true;
    const t = await setup(unjoined, { failRelease: () => fail });
    await t.gc.observe([]);
    t.advance(60_000);
    assert.equal(await t.gc.observe([]), 1);
    assert.deepEqual(t.gc.pending(), { candidates: 0, releases: 1 });
    fail = false;
    await t.gc.observe([]);
    assert.deepEqual(t.gc.pending(), { candidates: 0, releases: 0 });
    assert.equal(t.released.length, 1);
  });

  it('sandboxState: a plain file is gone, a missing file in a visible dir is gone, an invisible dir is unknown', () => {
    const dir = mkdtempSync(join(tmpdir(), 'truss-gc-'));
    try {
      writeFileSync(join(dir, 'plain'), '');
      assert.equal(sandboxState(join(dir, 'plain')), 'gone');
      assert.equal(sandboxState(join(dir, 'missing')), 'gone');
      assert.equal(sandboxState(join(dir, 'nodir', 'x')), 'unknown');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
