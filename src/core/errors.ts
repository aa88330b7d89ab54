/**
 * One error type for the whole daemon. `code` is stable API (TRUSS_ERR_<NOUN>_<PROBLEM>);
 * `message` is UI: Docker prints it verbatim, so it names the offending key and value.
 * Mapped to the wire only at the protocol edge (protocol/errors.ts).
 */
export type ErrorKind = 'invalid' | 'unsupported' | 'conflict' | 'not-found' | 'unavailable' | 'internal';

export class TrussError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  constructor(code: string, kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TrussError';
    this.code = code;
    this.kind = kind;
  }
}

export function isTrussError(e: unknown): e is TrussError {
  return e instanceof TrussError;
}

const make =
  (code: string, kind: ErrorKind) =>
  (message: string, cause?: unknown): TrussError =>
    new TrussError(code, kind, message, cause === undefined ? undefined : { cause });

export const errors = {
  badRequest: make('TRUSS_ERR_REQUEST_INVALID', 'invalid'),
  bodyTooLarge: make('TRUSS_ERR_REQUEST_TOO_LARGE', 'invalid'),
  badOption: make('TRUSS_ERR_OPTION_INVALID', 'invalid'),
  unknownOption: make('TRUSS_ERR_OPTION_UNKNOWN', 'invalid'),
  badAddress: make('TRUSS_ERR_ADDRESS_INVALID', 'invalid'),
  badId: make('TRUSS_ERR_ID_INVALID', 'invalid'),
  unsupported: make('TRUSS_ERR_FEATURE_UNSUPPORTED', 'unsupported'),
  networkConflict: make('TRUSS_ERR_NETWORK_CONFLICT', 'conflict'),
  networkNotFound: make('TRUSS_ERR_NETWORK_NOT_FOUND', 'not-found'),
  endpointConflict: make('TRUSS_ERR_ENDPOINT_CONFLICT', 'conflict'),
  endpointNotFound: make('TRUSS_ERR_ENDPOINT_NOT_FOUND', 'not-found'),
  endpointDisconnected: make('TRUSS_ERR_ENDPOINT_DISCONNECTED', 'unavailable'),
  routeNotFound: make('TRUSS_ERR_ROUTE_NOT_FOUND', 'not-found'),
  methodNotAllowed: make('TRUSS_ERR_METHOD_NOT_ALLOWED', 'invalid'),
  requestTimeout: make('TRUSS_ERR_REQUEST_TIMEOUT', 'unavailable'),
  poolOverlap: make('TRUSS_ERR_POOL_OVERLAP', 'conflict'),
  poolNotFound: make('TRUSS_ERR_POOL_NOT_FOUND', 'not-found'),
  poolExhausted: make('TRUSS_ERR_POOL_EXHAUSTED', 'unavailable'),
  poolInUse: make('TRUSS_ERR_POOL_IN_USE', 'conflict'),
  addressInUse: make('TRUSS_ERR_ADDRESS_IN_USE', 'conflict'),
  portInUse: make('TRUSS_ERR_PORT_IN_USE', 'conflict'),
  addressOutOfPool: make('TRUSS_ERR_ADDRESS_OUT_OF_POOL', 'invalid'),
  addressExhausted: make('TRUSS_ERR_ADDRESS_EXHAUSTED', 'unavailable'),
  kernelObjectForeign: make('TRUSS_ERR_KERNEL_OBJECT_FOREIGN', 'conflict'),
  storeUnavailable: make('TRUSS_ERR_STORE_UNAVAILABLE', 'unavailable'),
  storeCorrupt: make('TRUSS_ERR_STORE_CORRUPT', 'unavailable'),
  storeFull: make('TRUSS_ERR_STORE_FULL', 'unavailable'),
  storeConflict: make('TRUSS_ERR_STORE_CONFLICT', 'conflict'),
  nodeConflict: make('TRUSS_ERR_NODE_CONFLICT', 'conflict'),
  instanceRunning: make('TRUSS_ERR_INSTANCE_RUNNING', 'conflict'),
  reconcileTimeout: make('TRUSS_ERR_RECONCILE_TIMEOUT', 'unavailable'),
  reconcileFailed: make('TRUSS_ERR_RECONCILE_FAILED', 'internal'),
  internal: make('TRUSS_ERR_INTERNAL', 'internal'),
} as const;
