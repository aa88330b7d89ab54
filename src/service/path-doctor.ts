/**
 * `truss doctor SRC DST [PORT/PROTO]` in the daemon (POST /v1/doctor/path): the status as
 * `truss status` shows it (intent, live kernel check, reconciler, cluster peers), walked by the
 * pure core/path-walk.ts, with the name catalog the name/label rules are judged against. Reads
 * only; the CLI resolved the containers through Docker.
 */
import { type PathBody, type PathRequest, parseView, statusBody } from '../core/admin-api.ts';
import { errors } from '../core/errors.ts';
import type { NamedEndpoint } from '../core/names/model.ts';
import { walkPath } from '../core/path-walk.ts';
import type { StatusService } from './status.ts';

export async function doctorPath(
  status: Pick<StatusService, 'status'>,
  req: PathRequest,
  /** the name catalog as last computed (NamesService.catalog); absent: a daemon without names */
  names?: () => readonly NamedEndpoint[],
  now: () => number = Date.now,
): Promise<PathBody> {
  // why parsed: the walk reads the status as any reader does (optional fields absent, not undefined)
  const view = parseView(statusBody, await status.status());
  if (!view.success) throw errors.internal(`status does not fit the admin contract: ${view.error.message}`);
  return walkPath(view.data, req, now(), names?.());
}
