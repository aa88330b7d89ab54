import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeDesired } from '../core/desired.ts';
import type { EndpointSpec, NetworkSpec } from '../core/model.ts';
import { bridgeMac } from '../core/naming.ts';
import type { ObservedLink } from '../core/ports.ts';
import { planLinks } from './plan.ts';

const NID = 'a'.repeat(64);
const EID = 'b'.repeat(64);
const net: NetworkSpec = {
  id: NID,
  bridge: 'trbaaaaaaaaaaaa',
  bridgeNamed: false,
  mtu: 1500,
  internal: false,
  nat: true,
  ipv4: [{ pool: '198.18.0.0/24', gateway: '198.18.0.1/24', auxAddresses: {} }],
  ipv6: [],
  options: {},
};
const ep: EndpointSpec = {
  networkId: NID,
  id: EID,
  hostVeth: 'trvbbbbbbbbbbbb',
  peerVeth: 'trcbbbbbbbbbbbb',
  mac: '02:5e:bb:bb:bb:bb',
  ipv4: '198.18.0.2/24',
  options: {},
};
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
    assert.deepEqual(p, { ensureBridges: [], ensureVeths: [], remove: [], problems: [], orphans: [] });
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
