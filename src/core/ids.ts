/**
 * Docker's ids as domain types. A `NetworkId` or `EndpointId` is made in one place only, the
 * decoders at the edges (protocol/wire.ts for dockerd's requests, core/admin-api.ts for the admin
 * socket): a service that is handed one never checks its form again.
 */
import { errors } from './errors.ts';
import { isDockerId } from './naming.ts';
import { showValue } from './safe-json.ts';

declare const idKind: unique symbol;

/** A Docker network id: 64 lower-case hex characters (a local or multi-host network's own id). */
export type NetworkId = string & { readonly [idKind]: 'network' };
/** A Docker endpoint id: 64 lower-case hex characters. */
export type EndpointId = string & { readonly [idKind]: 'endpoint' };

function checked(what: string, s: string): string {
  if (!isDockerId(s)) throw errors.badId(`${what} must be a 64-character hex id, got ${showValue(s)}`);
  return s;
}

/** `s` as a NetworkId; TRUSS_ERR_ID_INVALID when it is not a 64-character hex id. */
export const networkId = (s: string, what = 'NetworkID'): NetworkId => checked(what, s) as NetworkId;
/** `s` as an EndpointId; TRUSS_ERR_ID_INVALID when it is not a 64-character hex id. */
export const endpointId = (s: string, what = 'EndpointID'): EndpointId => checked(what, s) as EndpointId;
