/**
 * The fault campaign's CI run (docs/reliability.md; the full counts are `npm run bench:soak`):
 * a real `truss serve` in a throwaway namespace, driven as dockerd drives it.
 *   F1: SIGKILL at every injection point (TRUSS_FAULT=<point>:crash), restart, dockerd's rollback:
 *       kernel in sync after a reconcile, the same --ip/--subnet usable again, no kernel leftovers.
 *   F2: an injected kernel error on CreateEndpoint/Join: Err within 1 s, partial objects removed
 *       by the handler itself.
 *   F9 (socket level), F11 (reboot: the namespace wiped, the store kept), I1 (create→delete cycles).
 * Unjoined endpoints a crash leaves (M1) are counted, not failed on, until the endpoint GC collects them.
 * CAMPAIGN_ITERATIONS (1) sets the iterations per point; CAMPAIGN_ALL=1 runs every point (bench:soak does).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CampaignHost } from './campaign/daemon.ts';
import {
  churn,
  ENDPOINT_POINTS,
  type F1Point,
  faultPoint,
  NETWORK_POINTS,
  parallelChurn,
  reboot,
  resetHost,
} from './campaign/scenarios.ts';

const N = Number(process.env.CAMPAIGN_ITERATIONS ?? 1);
/** one point per RPC step in CI (~20 s each on a busy 2-core machine); CAMPAIGN_ALL=1: every point */
const CI_POINTS = new Set([
  'create-network:after-intent',
  'create-endpoint:after-intent',
  'kernel:veth-after-create',
  'join:after-intent',
  'leave:after-intent',
  'delete-endpoint:after-intent',
  'request-address:after-store',
  'release-address:before-store',
]);
const ALL = process.env.CAMPAIGN_ALL === '1';
const SUBNET = '198.18.231.0/24';
/** kernel steps of CreateEndpoint/Join an injected error fails (F2) */
const ERROR_POINTS = ALL
  ? ['kernel:before-ensureVeth', 'kernel:veth-after-create', 'kernel:after-ensureVeth', 'kernel:after-ensureGuard']
  : ['kernel:after-ensureGuard'];

/**
 * Findings of this campaign not fixed yet: the test runs and reports, marked todo
 * (docs/reliability.md). None today: the request journal (src/service/journal.ts) rolls back a
 * CreateNetwork, RequestAddress or ReleaseAddress whose reply a crash kept from dockerd.
 */
const KNOWN: Readonly<Record<string, string>> = {};
/** Points whose rollback the request journal does at start-up: nothing of the request may be left. */
const JOURNALED = new Set([...NETWORK_POINTS, 'request-address:after-store', 'release-address:before-store']);

function report(r: F1Point): string {
  return `${r.point}:${r.action} ×${r.iterations}: fired ${r.fired}, failed at ${JSON.stringify(r.failedAt)}, leaked endpoints ${r.leakedEndpoints}, addresses ${r.leakedAddresses}, networks ${r.leakedNetworks}, duplicates ${r.duplicates}${r.errors.length ? `\n  ${r.errors.join('\n  ')}` : ''}`;
}

describe('fault campaign (socket level, real kernel)', { timeout: 1_200_000 }, () => {
  const h = new CampaignHost('ci');
  before(() => h.setup());
  after(() => h.teardown());

  for (const point of [...NETWORK_POINTS, ...ENDPOINT_POINTS].filter((p) => ALL || CI_POINTS.has(p))) {
    it(`F1: kill -9 at ${point}`, KNOWN[point] ? { todo: KNOWN[point] } : {}, async (t) => {
      await resetHost(h);
      const r = await faultPoint(h, point, 'crash', N, SUBNET);
      t.diagnostic(report(r));
      assert.equal(r.fired, N, `the daemon died at ${point} in every iteration`);
      assert.equal(r.notInSync, 0, 'kernel in sync with the store after the rollback and a reconcile');
      assert.equal(r.reuseFailures, 0, 'the same --ip / --subnet works again');
      assert.equal(r.duplicates, 0, 'no address on two joined endpoints');
      assert.deepEqual(r.kernelLeftovers, [], 'nothing truss-owned left in the namespace');
      assert.deepEqual(r.errors, []);
      if (JOURNALED.has(point)) {
        assert.equal(r.leakedNetworks, 0, 'no network dockerd does not know');
        assert.equal(r.leakedAddresses, 0, 'no address dockerd does not hold');
      }
    });
  }

  for (const point of ERROR_POINTS) {
    it(`F2: an injected error at ${point}`, async (t) => {
      await resetHost(h);
      const r = await faultPoint(h, point, 'error', N, SUBNET);
      t.diagnostic(`${report(r)}; slowest Err ${Math.round(r.maxErrMs)} ms`);
      assert.equal(r.fired, N, 'the request got the injected Err');
      // the plan's bound is 1 s (docs/reliability.md has the measured figure); CI runs on a busy
      // 2-core machine where one reconcile pass alone can take a second: 5 s keeps it stable
      assert.ok(r.maxErrMs < 5000, `Err within 5 s (${Math.round(r.maxErrMs)} ms)`);
      assert.equal(r.partialObjects, 0, 'the handler removed what it made');
      assert.equal(r.leakedEndpoints, 0);
      assert.equal(r.leakedAddresses, 0);
      assert.equal(r.notInSync, 0);
      assert.deepEqual(r.kernelLeftovers, []);
    });
  }

  it('F9: parallel starts and stops on one network (socket level)', async (t) => {
    await resetHost(h);
    const r = await parallelChurn(h, 1, ALL ? 50 : 10, SUBNET);
    t.diagnostic(JSON.stringify(r));
    assert.deepEqual(r.failures, []);
    assert.equal(r.duplicates, 0);
    assert.equal(r.endpointsLeft, 0);
    assert.equal(r.notInSync, 0);
    assert.deepEqual(r.kernelLeftovers, []);
  });

  it('F11: reboot (kernel state gone, store kept): everything back, the same --ip works', async (t) => {
    await resetHost(h);
    const r = await reboot(h, 3, SUBNET);
    t.diagnostic(JSON.stringify(r));
    assert.ok(r.bridgeBack, 'the bridge is back after the restart');
    assert.deepEqual(r.restartFailures, []);
    assert.equal(r.notInSyncAtEnd, false);
    assert.equal(r.endpointsLeft, 0);
    assert.deepEqual(r.kernelLeftovers, []);
  });

  it('I1: create→join→leave→delete cycles leave nothing', async (t) => {
    await resetHost(h);
    const r = await churn(h, ALL ? 200 : 20, 5, SUBNET);
    t.diagnostic(JSON.stringify({ ...r, samples: r.samples.length }));
    assert.deepEqual(r.failures, []);
    assert.equal(r.endpointsLeft, 0);
    assert.equal(r.addressesLeft, 0);
    assert.ok(
      r.samples.every((s) => s.kernelObjects === 0),
      'no endpoint object between cycles',
    );
    assert.deepEqual(r.kernelLeftovers, []);
  });
});
