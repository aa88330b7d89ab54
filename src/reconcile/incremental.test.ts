/**
 * Incremental passes cost what changed, not the endpoint count (issue 18 item 5): the diff walks
 * the last wanted list by reference (applied.ts), computeDesired reuses what unchanged endpoints
 * derived (core/desired.ts); the work both do is counted (diffStats), not timed.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { computeDesired } from '../core/desired.ts';
import { endpointInput, endpointSpec, ipamData, networkInput, networkSpec } from '../core/testing.ts';
import { stopTestServices, testEid, testId, testNid, testService } from '../service/testing.ts';
import { AppliedSet, diffStats } from './applied.ts';

const obj = (name: string, v = 1) => ({ name, v });
type Obj = ReturnType<typeof obj>;

/** diffStats.lookedUp over `run` */
function lookups(run: () => void): number {
  const before = diffStats.lookedUp;
  run();
  return diffStats.lookedUp - before;
}

/** a set where every object of `list` was applied by a diff */
function appliedThrough(list: readonly Obj[]): AppliedSet<Obj> {
  const s = new AppliedSet<Obj>();
  for (const o of s.diff(list).changed) s.set(o);
  return s;
}

describe('AppliedSet: the incremental diff', () => {
  const base = Array.from({ length: 1000 }, (_, i) => obj(`o${i}`));

  it('looks up only what was added, replaced or moved, and finds what is stale', () => {
    const s = appliedThrough(base);
    const added = obj('new');
    let d: ReturnType<AppliedSet<Obj>['diff']> | undefined;
    assert.equal(
      lookups(() => {
        d = s.diff([...base, added]);
      }),
      1,
    );
    assert.deepEqual(d, { changed: [added], stale: [] });
    s.set(added);
    // one replaced in the middle (a Join), one removed (a detach)
    const replaced = obj('o500', 2);
    const next = [...base.slice(0, 500), replaced, ...base.slice(501, 700), ...base.slice(701), added];
    assert.equal(
      lookups(() => {
        d = s.diff(next);
      }),
      1,
    );
    assert.deepEqual(d, { changed: [replaced], stale: ['o700'] });
    s.set(replaced);
    s.delete('o700');
    assert.equal(
      lookups(() => {
        d = s.diff(next);
      }),
      0,
    );
    assert.deepEqual(d, { changed: [], stale: [] });
  });

  it('forgets the list after a failure, an adoption outside a diff or a removal it did not name', () => {
    const failed = appliedThrough(base);
    const added = obj('new');
    failed.diff([...base, added]);
    failed.failed(added);
    const d = failed.diff([...base, added]);
    assert.deepEqual(d.changed, [added], 'a failed object is never current');
    failed.set(added);

    const adopted = appliedThrough(base);
    assert.equal(adopted.current(obj('o3')), true, 'an equal object adopted');
    assert.equal(
      lookups(() => adopted.diff(base)),
      base.length,
    );

    const removed = appliedThrough(base);
    removed.delete('o5');
    const r = removed.diff(base);
    assert.deepEqual(r.changed, [base[5]], 'removed behind the diff: applied again');
    assert.equal(lookups(() => appliedThrough(base).diff([...base].reverse())) > 0, true);
  });

  it('an unapplied change of the last diff (a pass cut short) forgets the list', () => {
    const s = appliedThrough(base);
    const added = obj('new');
    s.diff([...base, added]); // its change never applied
    assert.deepEqual(s.diff([...base, added]).changed, [added]);
  });
});

describe('computeDesired: an unchanged endpoint reuses what it derived', () => {
  it('gives what a cold computation gives after additions, removals and changes', () => {
    const nets = [0, 1].map((n) =>
      networkSpec({ id: testId('a', n), ipv4: [ipamData(`198.18.${n}.0/24`)], bridge: `tb${n}` }),
    );
    const eps = Array.from({ length: 40 }, (_, i) =>
      endpointSpec({ id: testId('b', i), networkId: testId('a', i % 2), ipv4: `198.18.${i % 2}.${i + 2}/24` }),
    );
    const cold = (e: typeof eps) =>
      computeDesired(
        nets.map((n) => ({ ...n })),
        e,
      );
    const steps = [
      eps,
      [...eps, endpointSpec({ id: testId('c'), networkId: testId('a', 0), ipv4: '198.18.0.99/24' })],
      [...eps.slice(0, 10), ...eps.slice(11)],
      [...eps.slice(0, 10), { ...(eps[10] as (typeof eps)[0]), sandboxKey: '/x' }, ...eps.slice(11)],
      [endpointSpec({ id: testId('d'), networkId: testId('gone') }), ...eps.slice(3)],
      [...eps].reverse(),
    ];
    for (const step of steps) {
      computeDesired(nets, eps);
      const warm = computeDesired(nets, step);
      assert.deepEqual(warm, cold(step));
    }
  });
});

describe('an incremental pass after one attach at 1,000 endpoints', () => {
  afterEach(stopTestServices);

  it('looks up and fingerprints a constant number of objects', async () => {
    const { svc, reconciler } = testService();
    const M = 4;
    for (let n = 0; n < M; n++) {
      await svc.createNetwork(
        networkInput({ networkId: testNid('a', n), ipv4: [ipamData(`198.${18 + (n >> 1)}.${(n & 1) * 128}.0/17`)] }),
      );
    }
    const attach = async (i: number) => {
      const n = i % M;
      const k = Math.floor(i / M) + 2;
      const networkId = testNid('a', n);
      const endpointId = testEid('b', i);
      const address = `198.${18 + (n >> 1)}.${(n & 1) * 128 + (k >> 8)}.${k & 255}/17`;
      await svc.createEndpoint(endpointInput({ networkId, endpointId, address }));
      await svc.join({ networkId, endpointId, sandboxKey: `/var/run/docker/netns/${i}`, options: {} });
    };
    for (let i = 0; i < 1000; i++) await attach(i);
    await reconciler.reconcileNow(); // a full pass forgets the lists: the next incremental pass looks up everything
    await attach(1000);
    const before = { ...diffStats };
    await attach(1001);
    const looked = diffStats.lookedUp - before.lookedUp;
    const printed = diffStats.fingerprinted - before.fingerprinted;
    // two passes (CreateEndpoint, Join), each over the veth and guard kinds: a handful, not 1,000
    assert.ok(looked <= 8, `looked up ${looked} objects`);
    assert.ok(printed <= 8, `fingerprinted ${printed} objects`);
    assert.equal(reconciler.status().lastPass?.failures, 0);
  });
});
