/** When the reconciler runs passes on its own: after dockerd's activation, and status reads during a pass. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { networkSpec } from '../core/testing.ts';
import { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import { silentLogger } from '../obs/logger.ts';
import { Reconciler } from './reconciler.ts';

// one network: its bridge is wanted, so checks list the links (a kind with nothing wanted goes idle)
const newReconciler = (dp: FakeDataplane) =>
  new Reconciler({
    loadIntent: async () => ({
      networks: [networkSpec({ id: 'a'.repeat(64) })],
      endpoints: [],
      policies: [],
      revision: 1,
    }),
    dataplane: dp,
    log: silentLogger,
    resyncMs: 3_600_000,
  });

const fullPasses = (dp: FakeDataplane): number => dp.calls.filter((c) => c.method === 'listLinks').length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('reconciler timing', () => {
  it('resyncAfter: a full pass at once and one after each delay; stop() cancels the rest', async () => {
    const dp = new FakeDataplane();
    const r = newReconciler(dp);
    r.resyncAfter([50, 150, 10_000]);
    await r.reconcileNow();
    const first = fullPasses(dp);
    assert.ok(first >= 1);
    await sleep(250);
    assert.equal(fullPasses(dp) - first, 2);
    await r.stop(); // the 10 s timer must not keep the test alive or run after stop
  });

  it('check() taken during a pass reads the kernel after that pass', async () => {
    const dp = new FakeDataplane();
    const r = newReconciler(dp);
    const order: string[] = [];
    const list = dp.listLinks.bind(dp);
    let inPass = false;
    dp.listLinks = async () => {
      const who = inPass ? 'pass' : 'check';
      inPass = false;
      if (who === 'pass') await sleep(100);
      order.push(who); // the order the kernel reads complete in
      return list();
    };
    inPass = true;
    r.trigger('full');
    await sleep(10);
    await r.check();
    assert.deepEqual(order, ['pass', 'check']);
    await r.stop();
  });
});
