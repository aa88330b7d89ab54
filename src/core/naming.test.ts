import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WG_DEVICE } from './cluster/desired.ts';
import {
  bridgeName,
  hostVethName,
  IFNAMSIZ_MAX,
  isTrussLinkName,
  isValidIfName,
  peerVethName,
  VXLAN_DEVICE,
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
