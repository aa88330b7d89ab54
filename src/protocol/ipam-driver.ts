/**
 * IpamDriver.* routes: decode the wire request, call the service, encode the reply.
 * Success replies never carry `Error` (a non-empty `Error` in a 200 reply is a failure
 * to Docker's IPAM client); failures go through protocol/errors.ts like every other RPC.
 */
import type { IpamDriver } from '../core/contracts.ts';
import type { RouteTable } from './server.ts';
import {
  decodeReleaseAddress,
  decodeReleasePool,
  decodeRequestAddress,
  decodeRequestPool,
  EMPTY_RESPONSE,
  toWireAddressSpaces,
  toWireIpamCapabilities,
  toWireRequestAddress,
  toWireRequestPool,
} from './wire.ts';

export function ipamDriverRoutes(svc: IpamDriver): RouteTable {
  return {
    'IpamDriver.GetCapabilities': {
      body: 'none',
      handle: async () => toWireIpamCapabilities(svc.capabilities()),
    },
    // Docker ≥ 28 calls this before every RequestPool.
    'IpamDriver.GetDefaultAddressSpaces': {
      body: 'none',
      handle: async () => toWireAddressSpaces(svc.defaultAddressSpaces()),
    },
    'IpamDriver.RequestPool': {
      body: 'json',
      handle: async (body, ctx) => toWireRequestPool(await svc.requestPool(decodeRequestPool(body), ctx)),
    },
    'IpamDriver.ReleasePool': {
      body: 'json',
      handle: async (body, ctx) => {
        await svc.releasePool(decodeReleasePool(body), ctx);
        return EMPTY_RESPONSE;
      },
    },
    'IpamDriver.RequestAddress': {
      body: 'json',
      handle: async (body, ctx) => toWireRequestAddress(await svc.requestAddress(decodeRequestAddress(body), ctx)),
    },
    'IpamDriver.ReleaseAddress': {
      body: 'json',
      handle: async (body, ctx) => {
        const { poolId, address } = decodeReleaseAddress(body);
        await svc.releaseAddress(poolId, address, ctx);
        return EMPTY_RESPONSE;
      },
    },
  };
}
