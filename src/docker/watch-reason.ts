/**
 * Why the Docker follower has nothing to follow, in words an operator can act on: what is
 * off because of it, and the fix. Shown in logs and, through the daemon, in `truss status`.
 */
import { stat } from 'node:fs/promises';
import { DockerApiError, type DockerEndpoint } from './api.ts';

export const OFF_REASON = 'the Docker API is turned off (--docker-host none)';

const effect = (kept: boolean): string =>
  kept
    ? 'container names, truss DNS and name/label policy keep what was last seen'
    : 'container names, truss DNS and name/label policy are off';

/** Whether `path` exists but is not a socket: the managed plugin's /dev/null placeholder. */
async function isPlaceholder(path: string): Promise<boolean> {
  try {
    return !(await stat(path)).isSocket();
  } catch {
    return false;
  }
}

/**
 * The reason Docker could not be followed. `kept`: names learnt before are still served.
 * Async only to tell a placeholder mount from a dockerd that is down (one stat, off the request path).
 */
export async function failureReason(ep: DockerEndpoint, err: unknown, kept: boolean): Promise<string> {
  if (err instanceof DockerApiError && err.code === 'DOCKER_UNREACHABLE') {
    const errno = (err.cause as NodeJS.ErrnoException | undefined)?.code;
    if (errno === undefined) return `${err.message}: ${effect(kept)}`; // a deadline
    if (ep.kind === 'unix' && errno === 'ECONNREFUSED' && (await isPlaceholder(ep.socketPath))) {
      return `${ep.socketPath} is not a socket (in the managed plugin: the docker-socket mount's placeholder): ${effect(kept)}; to turn them on, docker plugin set truss docker-socket.source=/var/run/docker.sock (see docs/managed-plugin.md), or start truss with --docker-host none to say they stay off`;
    }
    if (errno === 'EACCES') {
      return `permission denied on the Docker API at ${ep.url}: ${effect(kept)}; run truss as root, or point --docker-host at a socket it may open`;
    }
    return `cannot reach the Docker API at ${ep.url} (connect ${errno}): ${effect(kept)}; is dockerd running there? --docker-host (or DOCKER_HOST) names another; in the managed plugin, mount the Docker socket (see docs/names.md)`;
  }
  if (err instanceof DockerApiError && err.code === 'DOCKER_FAILED') {
    const proxy =
      err.status === 401 || err.status === 403 || err.status === 404 || err.status === 405
        ? '; a proxy in front of Docker must allow GET /events, /containers/json, /containers/{id}/json and /version'
        : '';
    return `${err.message} (at ${ep.url}): ${effect(kept)}${proxy}`;
  }
  if (err === undefined) {
    return `the Docker API at ${ep.url} ended its event stream before the containers were listed: ${effect(kept)}`;
  }
  const msg = err instanceof Error ? err.message : String(err);
  return `the Docker API at ${ep.url} failed (${msg}): ${effect(kept)}`;
}

/** The reason while we reconnect after the event stream ended or broke. */
export function lostReason(ep: DockerEndpoint, err: unknown): string {
  const why = err === undefined ? 'ended' : `broke (${err instanceof Error ? err.message : String(err)})`;
  return `the event stream from the Docker API at ${ep.url} ${why}; reconnecting, names keep what was last seen`;
}
