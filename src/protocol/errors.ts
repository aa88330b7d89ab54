/**
 * The one place where an error becomes an HTTP reply, and where it is logged.
 *
 * Every failure is HTTP 500 (or 404/405/413 for transport problems) with the message in
 * both `Err` (what the NetworkDriver client reads) and `Error` (what the IpamDriver client
 * reads in a 200 reply); a non-200 status is read as `{"Err"}` by both clients. Docker
 * prints the message verbatim, prefixed with the RPC name.
 *
 * why: a TrussError of kind not-found must NOT become 404: dockerd reads 404 as "not
 * implemented" and silently ignores it for Program/RevokeExternalConnectivity and
 * IpamDriver.GetCapabilities (moby daemon/libnetwork/drivers/remote/driver.go).
 */
import { errors, isTrussError, type TrussError } from '../core/errors.ts';
import type { Logger } from '../obs/logger.ts';

export interface ErrorBody {
  readonly Err: string;
  readonly Error: string;
}

export interface ErrorReply {
  readonly status: number;
  readonly body: ErrorBody;
  /** close the connection after replying (the request body was not read to its end) */
  readonly close: boolean;
}

/** Largest request body accepted (bytes); Docker's biggest payloads are a few KiB. */
export const MAX_BODY_BYTES = 1024 * 1024;

const formatMs = (ms: number): string => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);

/** Errors only the HTTP edge raises (codes and kinds live in core/errors.ts). */
export const protocolErrors = {
  routeNotFound: (path: string): TrussError =>
    errors.routeNotFound(
      `truss has no plugin endpoint ${showPath(path)}; it implements Plugin.Activate, NetworkDriver.* and IpamDriver.*`,
    ),
  methodNotAllowed: (method: string): TrussError =>
    errors.methodNotAllowed(`HTTP method ${showPath(method)} is not allowed: plugin calls are POST`),
  handlerTimeout: (rpc: string, ms: number): TrussError =>
    errors.requestTimeout(
      `${rpc} timed out after ${formatMs(ms)}; truss keeps working on it in the background (see truss status), retry later`,
    ),
  bodyTooLarge: (limit: number): TrussError =>
    errors.bodyTooLarge(`request body is larger than ${limit} bytes; Docker's requests are a few KiB`),
} as const;

function showPath(s: string): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(clean.length > 100 ? `${clean.slice(0, 97)}...` : clean);
}

const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  TRUSS_ERR_ROUTE_NOT_FOUND: 404,
  TRUSS_ERR_METHOD_NOT_ALLOWED: 405,
  TRUSS_ERR_REQUEST_TOO_LARGE: 413,
};

/** Map any thrown value to its reply, and log it once (warn for the caller's mistakes, error otherwise). */
export function toErrorReply(err: unknown, log: Logger, reqId: string): ErrorReply {
  if (isTrussError(err)) {
    const status = STATUS_BY_CODE[err.code] ?? 500;
    const quiet =
      err.kind === 'invalid' || err.kind === 'conflict' || err.kind === 'not-found' || err.kind === 'unsupported';
    const fields = { status, code: err.code, kind: err.kind, err };
    if (quiet) log.warn('rpc failed', fields);
    else log.error('rpc failed', fields);
    const message = err.message || err.code;
    return { status, body: { Err: message, Error: message }, close: status === 413 };
  }
  const stack = err instanceof Error ? err.stack : undefined;
  log.error('rpc failed', { status: 500, code: 'TRUSS_ERR_INTERNAL', kind: 'internal', err, stack });
  const message = `internal error (see truss logs, reqId ${reqId})`;
  return { status: 500, body: { Err: message, Error: message }, close: false };
}
