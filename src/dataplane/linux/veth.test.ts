import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { VethObject } from '../../core/desired.ts';
import type { LinkState } from './links.ts';
import { ENDPOINT_DISCONNECTED, endpointDisconnected, planVeth, planVethCreate } from './veth.ts';

const N = 'a'.repeat(64);
const E = 'e'.repeat(64);
const v: VethObject = {
  name: 'trveeeeeeeeeeee',
  peer: 'trceeeeeeeeeeee',
  networkId: N,
  endpointId: E,
  bridge: 'trbaaaaaaaaaaaa',
  mtu: 1450,
  peerMac: '02:5e:ee:ee:ee:ee',
  joined: false,
};
const observed = (over: Partial<LinkState> = {}): LinkState => ({
  name: v.name,
  ifindex: 9,
  kind: 'veth',
  mark: { kind: 'ep', id: E },
  alias: `truss:ep:${E}`,
  mtu: 1450,
  up: true,
  master: v.bridge,
  mac: '02:00:00:00:00:02',
  addresses: [],
  ...over,
});

describe('planVethCreate', () => {
  it('makes both ends in line 1 and marks/enslaves/raises the host end in line 2', () => {
    assert.deepEqual(planVethCreate(v), [
      'link add trveeeeeeeeeeee mtu 1450 type veth peer name trceeeeeeeeeeee address 02:5e:ee:ee:ee:ee mtu 1450',
      `link set trveeeeeeeeeeee alias truss:ep:${E} master trbaaaaaaaaaaaa up`,
    ]);
  });
  it('refuses a malformed MAC', () => {
    assert.throws(() => planVethCreate({ ...v, peerMac: '02:5e:ee:ee:ee:ee up' }), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
    });
  });
});

describe('planVeth', () => {
  it('is empty when the host end matches', () => assert.deepEqual(planVeth(observed(), v), []));
  it('marks an unmarked truss veth and converges master, MTU and up', () => {
    const { mark: _m, alias: _a, ...bare } = observed();
    assert.deepEqual(planVeth({ ...bare, master: 'trbother0000000', mtu: 1500, up: false }, v), [
      `link set trveeeeeeeeeeee alias truss:ep:${E}`,
      'link set trveeeeeeeeeeee master trbaaaaaaaaaaaa',
      'link set trveeeeeeeeeeee mtu 1450',
      'link set trveeeeeeeeeeee up',
    ]);
  });
});

describe('endpointDisconnected', () => {
  it('is an unavailable TrussError that names the endpoint and what to do', () => {
    const e = endpointDisconnected(v);
    assert.equal(e.code, ENDPOINT_DISCONNECTED);
    assert.equal(e.kind, 'unavailable');
    assert.match(e.message, /endpoint eeeeeeeeeeee .*trveeeeeeeeeeee.*reconnect/);
  });
});
