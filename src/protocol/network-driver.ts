/**
 * NetworkDriver.* routes: decode the wire request, call the service, encode the reply.
 * Nothing here decides anything; core/ does.
 */
import type { NetworkDriver } from '../core/contracts.ts';
import type { RouteTable } from './server.ts';
import {
  decodeAllocateNetwork,
  decodeCreateEndpoint,
  decodeCreateNetwork,
  decodeEndpointRef,
  decodeFreeNetwork,
  decodeJoin,
  decodeNetworkRef,
  decodeProgramExternalConnectivity,
  EMPTY_RESPONSE,
  toWireAllocateNetwork,
  toWireCreateEndpoint,
  toWireEndpointOperInfo,
  toWireJoin,
  toWireNetworkCapabilities,
} from './wire.ts';

export function networkDriverRoutes(svc: NetworkDriver): RouteTable {
  return {
    'NetworkDriver.GetCapabilities': {
      body: 'none',
      handle: async () => toWireNetworkCapabilities(svc.capabilities()),
    },
    'NetworkDriver.CreateNetwork': {
      body: 'json',
      handle: async (body, ctx) => {
        await svc.createNetwork(decodeCreateNetwork(body), ctx);
        return EMPTY_RESPONSE;
      },
    },
    'NetworkDriver.DeleteNetwork': {
      body: 'json',
      handle: async (body) => {
        await svc.deleteNetwork(decodeNetworkRef(body));
        return EMPTY_RESPONSE;
      },
    },
    'NetworkDriver.AllocateNetwork': {
      body: 'json',
      handle: async (body) => {
        const { networkId, options } = decodeAllocateNetwork(body);
        return toWireAllocateNetwork(await svc.allocateNetwork(networkId, options));
      },
    },
    'NetworkDriver.FreeNetwork': {
      body: 'json',
      handle: async (body) => {
        await svc.freeNetwork(decodeFreeNetwork(body));
        return EMPTY_RESPONSE;
      },
    },
    'NetworkDriver.CreateEndpoint': {
      body: 'json',
      handle: async (body) => toWireCreateEndpoint(await svc.createEndpoint(decodeCreateEndpoint(body))),
    },
    'NetworkDriver.EndpointOperInfo': {
      body: 'json',
      handle: async (body) => {
        const { networkId, endpointId } = decodeEndpointRef(body);
        return toWireEndpointOperInfo(await svc.endpointOperInfo(networkId, endpointId));
      },
    },
    'NetworkDriver.DeleteEndpoint': {
      body: 'json',
      handle: async (body) => {
        const { networkId, endpointId } = decodeEndpointRef(body);
        await svc.deleteEndpoint(networkId, endpointId);
        return EMPTY_RESPONSE;
      },
    },
    'NetworkDriver.Join': {
      body: 'json',
      handle: async (body) => toWireJoin(await svc.join(decodeJoin(body))),
    },
    'NetworkDriver.Leave': {
      body: 'json',
      handle: async (body) => {
        const { networkId, endpointId } = decodeEndpointRef(body);
        await svc.leave(networkId, endpointId);
        return EMPTY_RESPONSE;
      },
    },
    'NetworkDriver.ProgramExternalConnectivity': {
      body: 'json',
      handle: async (body) => {
        const { networkId, endpointId, options } = decodeProgramExternalConnectivity(body);
        await svc.programExternalConnectivity(networkId, endpointId, options);
        return EMPTY_RESPONSE;
      },
    },
    'NetworkDriver.RevokeExternalConnectivity': {
      body: 'json',
      handle: async (body) => {
        const { networkId, endpointId } = decodeEndpointRef(body);
        await svc.revokeExternalConnectivity(networkId, endpointId);
        return EMPTY_RESPONSE;
      },
    },
    // Swarm-only node events ({"DiscoveryType":1,"DiscoveryData":{"Address","BindAddress","Self"}});
    // truss finds its peers through its own store, so these are only logged.
    'NetworkDriver.DiscoverNew': {
      body: 'lenient',
      handle: async (body, { log }) => {
        log.debug('discovery event ignored', { event: body });
        return EMPTY_RESPONSE;
      },
    },
    'NetworkDriver.DiscoverDelete': {
      body: 'lenient',
      handle: async (body, { log }) => {
        log.debug('discovery event ignored', { event: body });
        return EMPTY_RESPONSE;
      },
    },
  };
}
