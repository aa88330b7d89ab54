/** Decoders and encoders without the HTTP server: Go's nulls, absent keys, "" fields. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeCreateEndpoint,
  decodeCreateNetwork,
  decodeRequestAddress,
  decodeRequestPool,
  toWireCreateEndpoint,
  toWireJoin,
} from './wire.ts';

const NID = '0123456789abcdef'.repeat(4);
const EID = 'fedcba9876543210'.repeat(4);

describe('wire decoders', () => {
  it('reads nil maps and slices as empty, absent flags as false, and ignores unknown keys', () => {
    assert.deepEqual(
      decodeCreateNetwork({ NetworkID: NID, Options: null, IPv4Data: null, IPv6Data: null, Future: { x: 1 } }),
      { networkId: NID, ipv4: [], ipv6: [], generic: {}, internal: false, enableIpv6: false },
    );
    const net = decodeCreateNetwork({
      NetworkID: NID,
      Options: { 'com.docker.network.enable_ipv4': true, 'com.docker.network.internal': true, 'no.such.key': [1] },
      IPv4Data: [{ AddressSpace: null, Pool: '0.0.0.0/0' }],
    });
    assert.deepEqual(net.ipv4, [{ pool: '0.0.0.0/0', auxAddresses: {} }]);
    assert.equal('gateway' in (net.ipv4[0] ?? {}), false);
    assert.equal(net.internal, true);
  });

  it('maps "" Interface fields to absent properties and passes Options through', () => {
    const ep = decodeCreateEndpoint({
      NetworkID: NID,
      EndpointID: EID,
      Interface: { Address: '', AddressIPv6: '', MacAddress: '' },
      Options: { 'com.docker.network.endpoint.exposedports': [{ Proto: 17, Port: 53 }], 'truss.x': 'y' },
    });
    assert.deepEqual(ep, {
      networkId: NID,
      endpointId: EID,
      options: { 'com.docker.network.endpoint.exposedports': [{ Proto: 17, Port: 53 }], 'truss.x': 'y' },
    });
    assert.deepEqual(decodeCreateEndpoint({ NetworkID: NID, EndpointID: EID, Interface: null, Options: null }), {
      networkId: NID,
      endpointId: EID,
      options: {},
    });
  });

  it('decodes IPAM requests with null Options', () => {
    assert.deepEqual(decodeRequestPool({ AddressSpace: 'LocalDefault', Pool: '', SubPool: '', Options: null }), {
      addressSpace: 'LocalDefault',
      pool: '',
      subPool: '',
      options: {},
      v6: false,
    });
    assert.deepEqual(decodeRequestAddress({ PoolID: 'p', Address: '', Options: null }), {
      poolId: 'p',
      address: '',
      options: {},
    });
    assert.throws(() => decodeRequestAddress({ PoolID: '', Address: '' }), /PoolID must be a non-empty pool id/);
  });
});

describe('wire encoders', () => {
  it('returns a MAC only when the service chose one', () => {
    assert.deepEqual(toWireCreateEndpoint({}), {});
    assert.deepEqual(toWireCreateEndpoint({ macAddress: '02:00:00:00:00:01' }), {
      Interface: { MacAddress: '02:00:00:00:00:01' },
    });
  });

  it('omits the gateways the service did not set', () => {
    const out = toWireJoin({ srcName: 'trc1', dstPrefix: 'eth', staticRoutes: [], disableGatewayService: false });
    assert.deepEqual(out, {
      InterfaceName: { SrcName: 'trc1', DstPrefix: 'eth' },
      StaticRoutes: [],
      DisableGatewayService: false,
    });
  });
});
