/**
 * What the daemon keeps of a running container, read from GET /containers/{id}/json: its name,
 * labels, its own `--dns` servers and its endpoint on each network. Pure decoding, liberal like
 * every decoder here: unknown fields are ignored, a missing map is empty, and an attachment
 * without an endpoint id (a stopped container's, or `--network none`) is no endpoint.
 */
import { isIP } from 'node:net';

/** One endpoint of a container: the network it is on and the names it has there. */
export interface EndpointFacts {
  /** Docker's endpoint id (64 hex): the id the plugin protocol carries */
  readonly endpointId: string;
  readonly networkId: string;
  readonly networkName: string;
  /**
   * its other names on this network: `--network-alias`es and Docker's DNSNames (API ≥ 1.44,
   * Docker 25: aliases, short id, hostname), deduplicated, without the container's own name.
   * dockerd before 25 puts the short id into Aliases itself.
   */
  readonly aliases: readonly string[];
  readonly ipv4?: string;
  readonly ipv6?: string;
}

export interface ContainerFacts {
  /** Docker's container id (64 hex) */
  readonly id: string;
  /** the container's name, without Docker's leading '/' */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** HostConfig.Dns: the servers given with `docker run --dns` (empty: Docker's default) */
  readonly dns: readonly string[];
  readonly endpoints: readonly EndpointFacts[];
}

const DOCKER_ID = /^[0-9a-f]{64}$/;

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x !== '') : [];
const record = (v: unknown): Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

/**
 * The facts of a container as GET /containers/{id}/json shows it, `undefined` when it is not
 * running (a stopped, created or dead container has no endpoints worth naming) or the reply
 * lacks the id. A paused container is still running.
 */
export function decodeContainerFacts(json: unknown): ContainerFacts | undefined {
  const c = record(json);
  const id = str(c.Id);
  if (id === undefined || !DOCKER_ID.test(id) || record(c.State).Running !== true) return undefined;
  const name = (str(c.Name) ?? id.slice(0, 12)).replace(/^\//, '');
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(record(record(c.Config).Labels))) if (typeof v === 'string') labels[k] = v;
  const endpoints = Object.entries(record(record(c.NetworkSettings).Networks)).flatMap(
    ([networkName, raw]): EndpointFacts[] => {
      const n = record(raw);
      const endpointId = str(n.EndpointID);
      const networkId = str(n.NetworkID);
      if (endpointId === undefined || networkId === undefined) return [];
      const aliases = [...new Set([...strings(n.Aliases), ...strings(n.DNSNames)])].filter((a) => a !== name);
      const ipv4 = str(n.IPAddress);
      const ipv6 = str(n.GlobalIPv6Address);
      return [
        {
          endpointId,
          networkId,
          networkName,
          aliases,
          ...(ipv4 !== undefined && isIP(ipv4) === 4 ? { ipv4 } : {}),
          ...(ipv6 !== undefined && isIP(ipv6) === 6 ? { ipv6 } : {}),
        },
      ];
    },
  );
  return { id, name, labels, dns: strings(record(c.HostConfig).Dns), endpoints };
}

/** Two facts the same (our own decoder builds both, so key order is stable). */
export const sameFacts = (a: ContainerFacts | undefined, b: ContainerFacts | undefined): boolean =>
  JSON.stringify(a) === JSON.stringify(b);
