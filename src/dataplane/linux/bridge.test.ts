import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BridgeObject } from '../../core/desired.ts';
import { planBridge, planBridgeCreate } from './bridge.ts';
import type { LinkState } from './links.ts';

const A = 'a'.repeat(64);
const b: BridgeObject = {
  name: 'trbaaaaaaaaaaaa',
  networkId: A,
  mtu: 1450,
  mac: '02:00:00:00:00:01',
  addresses: ['198.18.1.1/24', 'fd00:1::1/64'],
};
const observed = (over: Partial<LinkState> = {}): LinkState => ({
  name: b.name,
  ifindex: 7,
  kind: 'bridge',
  mark: { kind: 'br', id: A },
  alias: `truss:br:${A}`,
  mtu: 1450,
  up: true,
  mac: '02:00:00:00:00:01',
  addresses: ['198.18.1.1/24', 'fd00:1::1/64'],
  ...over,
});

describe('planBridgeCreate', () => {
  it('creates, marks, addresses and raises the bridge in one batch', () => {
    assert.deepEqual(planBridgeCreate(b), [
      'link add trbaaaaaaaaaaaa address 02:00:00:00:00:01 mtu 1450 type bridge',
      `link set trbaaaaaaaaaaaa alias truss:br:${A}`,
      'addr add 198.18.1.1/24 dev trbaaaaaaaaaaaa',
      'addr add fd00:1::1/64 dev trbaaaaaaaaaaaa nodad',
      'link set trbaaaaaaaaaaaa up',
    ]);
  });
  it('refuses a name or MAC that would inject a batch line', () => {
    assert.throws(() => planBridgeCreate({ ...b, name: 'x\nlink del eth0' }), { code: 'TRUSS_ERR_OPTION_INVALID' });
    assert.throws(() => planBridgeCreate({ ...b, mac: '02:00:00:00:00:01\nlink del eth0' }), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
    });
  });
});

describe('planBridge', () => {
  it('is empty when the kernel matches (v6 spelled differently still matches)', () => {
    assert.deepEqual(planBridge(observed({ addresses: ['198.18.1.1/24', 'fd00:0001::0001/64'] }), b), []);
  });
  it('converges MTU, addresses (deletes first) and up', () => {
    const cur = observed({ mtu: 1500, up: false, addresses: ['198.18.1.1/16', '198.18.9.9/24'] });
    assert.deepEqual(planBridge(cur, b), [
      'link set trbaaaaaaaaaaaa mtu 1450',
      'addr del 198.18.1.1/16 dev trbaaaaaaaaaaaa',
      'addr del 198.18.9.9/24 dev trbaaaaaaaaaaaa',
      'addr replace 198.18.1.1/24 dev trbaaaaaaaaaaaa',
      'addr replace fd00:1::1/64 dev trbaaaaaaaaaaaa nodad',
      'link set trbaaaaaaaaaaaa up',
    ]);
  });
  it('sets its own MAC back (a bridge without one follows its ports)', () => {
    assert.deepEqual(planBridge(observed({ mac: '02:00:00:00:00:02' }), b), [
      'link set trbaaaaaaaaaaaa address 02:00:00:00:00:01',
    ]);
    assert.deepEqual(planBridge(observed({ mac: '02:00:00:00:00:01'.toUpperCase() }), b), []);
  });
  it('re-puts wanted v4 addresses after a v4 delete (a deleted primary takes its secondaries along)', () => {
    const cur = observed({ addresses: ['198.18.1.5/24', '198.18.1.1/24', 'fd00:1::1/64'] });
    assert.deepEqual(planBridge(cur, b), [
      'addr del 198.18.1.5/24 dev trbaaaaaaaaaaaa',
      'addr replace 198.18.1.1/24 dev trbaaaaaaaaaaaa',
    ]);
  });
});
