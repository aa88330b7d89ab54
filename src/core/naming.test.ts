import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WG_DEVICE } from './cluster/desired.ts';
import {
  bridgeName,
  hostVethName,
  IFNAMSIZ_MAX,
  ifbName,
  isReservedIfName,
  isTrussLinkName,
  isValidIfName,
  peerVethName,
  VXLAN_DEVICE,
  vtepMac,
  vxlanMark,
} from './naming.ts';

describe('naming', () => {
  it('every derived link name fits IFNAMSIZ and is a valid interface name', () => {
    const id = 'ab'.repeat(32);
    for (const n of [bridgeName(id), hostVethName(id), peerVethName(id), WG_DEVICE, VXLAN_DEVICE]) {
      assert.ok(n.length <= IFNAMSIZ_MAX, n);
      assert.ok(isValidIfName(n), n);
    }
  });
  it('the VXLAN device is marked by its alias, not taken for a bridge or veth by its name', () => {
    assert.equal(vxlanMark(VXLAN_DEVICE), 'truss:vx:trvx0');
    assert.equal(isTrussLinkName(VXLAN_DEVICE), false);
  });
});

describe('isReservedIfName (L9)', () => {
  it('covers every name truss derives, and the tunnel devices', () => {
    const id = 'ab12cd34ef56'.padEnd(64, '0');
    for (const n of [bridgeName(id), hostVethName(id), peerVethName(id), ifbName(id), WG_DEVICE, VXLAN_DEVICE]) {
      assert.ok(isReservedIfName(n), n);
    }
    for (const n of ['br0', 'docker0', 'trb0', 'trbridge', 'trwg1', 'trb0123456789abc0'])
      assert.ok(!isReservedIfName(n), n);
  });
});

describe('vtepMac', () => {
  it('is deterministic, unicast and locally administered, different per node', () => {
    assert.equal(vtepMac('c1'), vtepMac('c1'));
    assert.notEqual(vtepMac('c1'), vtepMac('c2'));
    for (const n of ['a', 'c1', 'host-7.example']) assert.match(vtepMac(n), /^02(:[0-9a-f]{2}){5}$/);
    const macs = new Set(Array.from({ length: 1000 }, (_, i) => vtepMac(`node-${i}`)));
    assert.equal(macs.size, 1000);
  });
});
