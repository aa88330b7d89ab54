/** The reconciler and the links of another state (issue 13, H3), on the fake dataplane. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import { silentLogger } from '../obs/logger.ts';
import { Reconciler } from './reconciler.ts';

const OWN = '1111111111111111';
const OTHER = '2222222222222222';
const NID = 'c'.repeat(64);
const EID = 'd'.repeat(64);

function withForeign(state?: string): FakeDataplane {
  const dp = new FakeDataplane();
  const br = dp.addForeignLink('trbcccccccccccc', 'bridge');
  br.mark = { kind: 'br', id: NID, ...(state ? { state } : {}) };
  const v = dp.addForeignLink('trvdddddddddddd', 'veth');
  v.mark = { kind: 'ep', id: EID, ...(state ? { state } : {}) };
  v.master = br.name;
  return dp;
}

const reconciler = (dp: FakeDataplane, adoptUnstamped: boolean) =>
  new Reconciler({
    loadIntent: async () => ({ networks: [], endpoints: [], policies: [], revision: 1 }),
    dataplane: dp,
    log: silentLogger,
    owner: { stateId: OWN, adoptUnstamped },
    resyncMs: 3_600_000,
  });

const called = (dp: FakeDataplane, ...methods: string[]) =>
  dp.calls.filter((c) => methods.includes(c.method)).map((c) => c.method);

describe('reconciler: links of another state', () => {
  for (const [what, state, adopt] of [
    ['stamped by another state', OTHER, true],
    ['unstamped, beside a new database', undefined, false],
  ] as const) {
    it(`${what}: full passes remove nothing (links, firewall, tables); cleanupForeign removes them`, async () => {
      const dp = withForeign(state);
      const r = reconciler(dp, adopt);
      await r.reconcileNow();
      await r.reconcileNow();
      assert.deepEqual(called(dp, 'removeBridge', 'removeVeth', 'removeFirewall', 'removeEgress'), []);
      assert.deepEqual(
        r.foreign().map((f) => f.name),
        ['trbcccccccccccc', 'trvdddddddddddd'],
      );
      const out = await r.cleanupForeign();
      assert.deepEqual(
        out.removed.map((f) => f.name),
        ['trvdddddddddddd', 'trbcccccccccccc'],
      );
      assert.deepEqual(out.remaining, []);
      assert.equal(dp.links.size, 0);
      assert.ok(called(dp, 'removeFirewall').length > 0, 'the shared tables are pruned once they are gone');
      await r.stop();
    });
  }

  it('an upgraded database (adopts unstamped) prunes its own unstamped leftovers as before', async () => {
    const dp = withForeign(undefined);
    const r = reconciler(dp, true);
    await r.reconcileNow();
    assert.deepEqual(r.foreign(), []);
    assert.deepEqual(called(dp, 'removeVeth', 'removeBridge'), ['removeVeth', 'removeBridge']);
    await r.stop();
  });
});
