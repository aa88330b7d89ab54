import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ObservedLink } from '../core/contracts.ts';
import { computeDesired } from '../core/desired.ts';
import { bridgeMac } from '../core/naming.ts';
import { endpointSpec, networkSpec } from '../core/testing.ts';
import { planLinks } from './plan.ts';

const NID = 'a'.repeat(64);
const EID = 'b'.repeat(64);
const net = networkSpec({ id: NID });
const ep = endpointSpec({ networkId: NID, id: EID, mac: '02:5e:bb:bb:bb:bb' });
const link = (o: Partial<ObservedLink> & { name: string }): ObservedLink => ({
  ifindex: 1,
  kind: 'veth',
  mtu: 1500,
  up: true,
  mac: '',
  addresses: [],
  ...o,
});
const goodBridge = link({
  name: net.bridge,
  kind: 'bridge',
  mark: { kind: 'br', id: NID },
  mac: bridgeMac(NID),
  addresses: ['198.18.0.1/24'],
});
const goodVeth = link({ name: ep.hostVeth, mark: { kind: 'ep', id: EID }, master: net.bridge });
const goodPeer = link({ name: ep.peerVeth });

describe('planLinks', () => {
  const desired = computeDesired([net], [ep]);

  it('nothing to do when the kernel matches', () => {
    const p = planLinks(desired, [goodBridge, goodVeth, goodPeer]);
    assert.deepEqual(p, { ensureBridges: [], ensureVeths: [], remove: [], problems: [], orphans: [], foreign: [] });
  });

  it('a missing or drifted bridge is converged', () => {
    assert.equal(planLinks(desired, [goodVeth, goodPeer]).ensureBridges.length, 1);
    const p = planLinks(desired, [{ ...goodBridge, mtu: 1400, up: false }, goodVeth, goodPeer]);
    assert.equal(p.ensureBridges.length, 1);
    assert.match(p.problems.join('\n'), /MTU 1400, want 1500/);
    const moved = planLinks(desired, [{ ...goodBridge, mac: goodVeth.mac }, goodVeth, goodPeer]);
    assert.equal(moved.ensureBridges.length, 1, 'a bridge that lost its own MAC is converged');
    assert.match(moved.problems.join('\n'), /has MAC .*, want 02:/);
    assert.match(p.problems.join('\n'), /is down/);
  });

  it('a veth off its bridge is converged', () => {
    const p = planLinks(desired, [goodBridge, { ...goodVeth, master: undefined as unknown as string }, goodPeer]);
    assert.equal(p.ensureVeths.length, 1);
  });

  it('a joined endpoint does not need its peer in the host', () => {
    const joined = computeDesired([net], [{ ...ep, sandboxKey: '/var/run/docker/netns/x' }]);
    assert.deepEqual(planLinks(joined, [goodBridge, goodVeth]).problems, []);
  });

  it('joined endpoints whose container is gone are orphan candidates', () => {
    const joined = computeDesired([net], [{ ...ep, sandboxKey: '/var/run/docker/netns/x' }]);
    assert.deepEqual(planLinks(joined, [goodBridge, goodVeth]).orphans, []);
    assert.match(planLinks(joined, [goodBridge]).orphans[0]?.reason ?? '', /is gone/);
    assert.match(planLinks(joined, [goodBridge, goodVeth, goodPeer]).orphans[0]?.reason ?? '', /back in the host/);
    assert.deepEqual(planLinks(desired, [goodBridge]).orphans, [], 'not joined: simply recreated');
  });

  it('truss links no longer wanted are removed, veths before bridges', () => {
    const p = planLinks(computeDesired([], []), [goodBridge, goodVeth, goodPeer]);
    assert.deepEqual(
      p.remove.map((r) => r.name),
      [ep.hostVeth, ep.peerVeth, net.bridge],
    );
  });
});

describe('planLinks with state stamps (issue 13, H3)', () => {
  const OWN = '1111111111111111';
  const OTHER = '2222222222222222';
  const FNID = 'c'.repeat(64);
  const FEID = 'd'.repeat(64);
  const fBridge = link({ name: 'trbcccccccccccc', kind: 'bridge', mark: { kind: 'br', id: FNID, state: OTHER } });
  const fVeth = link({ name: 'trvdddddddddddd', mark: { kind: 'ep', id: FEID, state: OTHER }, master: fBridge.name });
  const fPeer = link({ name: 'trcdddddddddddd' });
  const stamped = (l: ObservedLink): ObservedLink => (l.mark ? { ...l, mark: { ...l.mark, state: OWN } } : l);

  it("links of another state are left alone and reported, with their veths' peers", () => {
    const p = planLinks(computeDesired([], []), [fBridge, fVeth, fPeer], { stateId: OWN, adoptUnstamped: true });
    assert.deepEqual(p.remove, []);
    assert.deepEqual(
      p.foreign.map((f) => [f.name, f.state]),
      [
        ['trbcccccccccccc', OTHER],
        ['trcdddddddddddd', OTHER],
        ['trvdddddddddddd', OTHER],
      ],
    );
  });

  it('beside a new database (adopts nothing unstamped), unstamped links are foreign', () => {
    const old = [
      { ...fBridge, mark: { kind: 'br' as const, id: FNID } },
      { ...fVeth, mark: { kind: 'ep' as const, id: FEID } },
    ];
    const p = planLinks(computeDesired([], []), old, { stateId: OWN, adoptUnstamped: false });
    assert.deepEqual(p.remove, []);
    assert.equal(p.foreign.length, 2);
    assert.equal(p.foreign[0]?.state, undefined);
  });

  it('an upgraded database adopts its unstamped links and restamps them; stamped ones are in sync', () => {
    const desired = computeDesired([net], [ep]);
    const owner = { stateId: OWN, adoptUnstamped: true };
    const p = planLinks(desired, [goodBridge, goodVeth, goodPeer], owner);
    assert.deepEqual(p.foreign, []);
    assert.equal(p.ensureBridges.length, 1);
    assert.equal(p.ensureVeths.length, 1);
    assert.match(p.problems.join('\n'), /not stamped with this state/);
    const q = planLinks(desired, [stamped(goodBridge), stamped(goodVeth), goodPeer], owner);
    assert.deepEqual(q, { ensureBridges: [], ensureVeths: [], remove: [], problems: [], orphans: [], foreign: [] });
  });

  it('own stale links are pruned beside foreign ones; unmarked truss-named links are then left alone', () => {
    const owner = { stateId: OWN, adoptUnstamped: false };
    const ownStale = link({ name: 'trveeeeeeeeeeee', mark: { kind: 'ep', id: 'e'.repeat(64), state: OWN } });
    const unmarked = link({ name: 'trvffffffffffff' });
    const p = planLinks(computeDesired([], []), [fBridge, ownStale, unmarked], owner);
    assert.deepEqual(p.remove, [{ name: 'trveeeeeeeeeeee', kind: 'veth' }]);
    // without foreign links, an unmarked truss-named link is a create cut short: removed as before
    assert.equal(planLinks(computeDesired([], []), [unmarked], owner).remove.length, 1);
  });
});
