import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EndpointSpec } from '../core/model.ts';
import { silentLogger } from '../obs/logger.ts';
import { MemoryStore } from '../store/memory.ts';
import { EndpointGc } from './endpoint-gc.ts';
import { IntentRepo } from './intent.ts';

const NID = 'a'.repeat(64);
const EID = 'b'.repeat(64);
const ep: EndpointSpec = {
  networkId: NID,
  id: EID,
  hostVeth: 'trvbbbbbbbbbbbb',
  peerVeth: 'trcbbbbbbbbbbbb',
  mac: '02:5e:bb:bb:bb:bb',
  ipv4: '198.18.0.2/24',
  options: {},
  sandboxKey: '/var/run/docker/netns/1',
};
const orphan = { networkId: NID, endpointId: EID, reason: 'its interface trvbbbbbbbbbbbb is gone' };

async function setup() {
  const store = new MemoryStore();
  const repo = new IntentRepo(store);
  await store.txn([], [{ type: 'put', key: `/truss/v1/networks/${NID}`, value: '{}' }]);
  await repo.createEndpoint(ep);
  let clock = 0;
  const released: string[] = [];
  let triggers = 0;
  const gc = new EndpointGc({
    repo,
    releaseAddress: async (a) => released.push(a),
    trigger: () => triggers++,
    log: silentLogger,
    graceMs: 60_000,
    now: () => clock,
  });
  return { repo, gc, released, advance: (ms: number) => (clock += ms), triggers: () => triggers };
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
    assert.deepEqual(t.released, ['198.18.0.2/24']);
    assert.equal(t.triggers(), 1);
  });

  it('forgets a candidate that recovered, and re-validates before reclaiming', async () => {
    const t = await setup();
    await t.gc.observe([orphan]);
    t.advance(30_000);
    await t.gc.observe([]); // seen healthy: the clock starts again
    await t.gc.observe([orphan]);
    t.advance(59_000);
    assert.equal(await t.gc.observe([orphan]), 0);
    // Docker's Leave arrived meanwhile: no longer joined, so not an orphan
    const { sandboxKey: _s, ...left } = ep;
    await t.repo.putEndpoint(left);
    t.advance(5_000);
    assert.equal(await t.gc.observe([orphan]), 0);
    assert.ok(await t.repo.getEndpoint(NID, EID));
    assert.deepEqual(t.released, []);
  });
});
