/**
 * Docker's names for the networks and containers `truss status` lists, looked up by the CLI
 * (never the daemon: STYLE.md §8). Best effort: when Docker does not answer within a moment,
 * or DOCKER_HOST is unusable, status shows ids only, without an error.
 */
import { dockerEndpointFromEnv, listContainerEndpoints, listNetworks } from '../docker/api.ts';
import type { DockerNames } from './format.ts';

/** how long status waits for Docker's two listings */
export const NAMES_TIMEOUT_MS = 1500;

export async function lookupDockerNames(
  env: Readonly<Record<string, string | undefined>>,
  timeoutMs = NAMES_TIMEOUT_MS,
): Promise<DockerNames | undefined> {
  try {
    const ep = dockerEndpointFromEnv(env);
    const [networks, containers] = await Promise.all([
      listNetworks(ep, timeoutMs),
      listContainerEndpoints(ep, timeoutMs),
    ]);
    return {
      networks: new Map(networks.map((n) => [n.Id, n.Name])),
      endpoints: new Map(containers.flatMap((c) => c.endpointIds.map((id): [string, string] => [id, c.name]))),
    };
  } catch {
    return undefined; // no Docker here (or not ours to read): ids only
  }
}
