/**
 * Test builders (imported by tests only): the intent records (NetworkSpec, EndpointSpec) and
 * the driver inputs (CreateNetworkInput, CreateEndpointInput) the unit tests feed to core, the
 * reconciler and the services. A test names the fields it is about and takes the rest from
 * here. The records default to 198.18.0.0/24 (as core and the reconciler tests use them), the
 * inputs to 198.18.1.0/24 (as the service tests send them); each pair is consistent in itself.
 */

import type { CreateEndpointInput, CreateNetworkInput } from './contracts.ts';
import { endpointId, networkId } from './ids.ts';
import { formatPrefix, networkOf, parsePrefix } from './ip.ts';
import type { EndpointSpec, IpamData, NetworkSpec } from './model.ts';
import { bridgeName, hostVethName, peerVethName } from './naming.ts';

export const TEST_NETWORK_ID = networkId('a'.repeat(64));
export const TEST_ENDPOINT_ID = endpointId('b'.repeat(64));

/** A pool as Docker's IPAM data has it: the gateway is the first address unless given. */
export function ipamData(pool: string, gateway?: string): IpamData {
  const p = parsePrefix(pool);
  if (!p) throw new Error(`ipamData: not a prefix: ${pool}`);
  const first = formatPrefix({ ...p, value: networkOf(p).value + 1n });
  return { pool, gateway: gateway ?? first, auxAddresses: {} };
}

/** A stored network: a plain local NAT bridge named after its id, MTU 1500, one IPv4 pool. */
export function networkSpec(over: Partial<NetworkSpec> = {}): NetworkSpec {
  const id = over.id ?? TEST_NETWORK_ID;
  return {
    id,
    bridge: bridgeName(id),
    bridgeNamed: false,
    mtu: 1500,
    internal: false,
    nat: true,
    ipv4: [ipamData('198.18.0.0/24')],
    ipv6: [],
    options: {},
    ...over,
  };
}

/** A stored endpoint of networkSpec()'s network, its veths named after its id, not joined. */
export function endpointSpec(over: Partial<EndpointSpec> = {}): EndpointSpec {
  const id = over.id ?? TEST_ENDPOINT_ID;
  return {
    networkId: TEST_NETWORK_ID,
    id,
    hostVeth: hostVethName(id),
    peerVeth: peerVethName(id),
    mac: '02:5e:00:00:00:02',
    ipv4: '198.18.0.2/24',
    options: {},
    ...over,
  };
}

/** CreateNetwork as dockerd sends it: one IPv4 pool, no options; IPv6 enabled when it has an IPv6 pool. */
export function networkInput(over: Partial<CreateNetworkInput> = {}): CreateNetworkInput {
  const ipv6 = over.ipv6 ?? [];
  return {
    networkId: TEST_NETWORK_ID,
    ipv4: [ipamData('198.18.1.0/24')],
    ipv6,
    generic: {},
    internal: false,
    enableIpv6: ipv6.length > 0,
    ...over,
  };
}

/** CreateEndpoint of networkInput()'s network with an IPv4 address, no options. */
export function endpointInput(over: Partial<CreateEndpointInput> = {}): CreateEndpointInput {
  return { networkId: TEST_NETWORK_ID, endpointId: TEST_ENDPOINT_ID, address: '198.18.1.2/24', options: {}, ...over };
}
