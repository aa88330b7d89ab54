/**
 * `truss topology [--format text|svg] [--output FILE]`: the picture of hosts, networks,
 * containers, tunnels and policy (core/topology) from the daemon's status (GET /v1/status), with
 * Docker's names when Docker answers, as `truss status` shows them. text: a readable tree;
 * svg: the SVG document (the one the daemon serves on /topology.svg, names added).
 */
import { writeFile } from 'node:fs/promises';
import { adminSocketPath } from '../config.ts';
import { statusBody } from '../core/admin-api.ts';
import { computeTopology } from '../core/topology/model.ts';
import { renderTopologySvg } from '../core/topology/svg.ts';
import { renderTopologyText } from '../core/topology/text.ts';
import { adminRequest, decodeReply } from './admin-client.ts';
import { FLAGS } from './commands.ts';
import { lookupDockerNames } from './docker-names.ts';
import { type CliIo, parseCommandLine, stateDirOf, UsageError } from './usage.ts';

export interface TopologyIo extends CliIo {
  /** test seam: the Docker names lookup (default: the Docker API, DOCKER_HOST) */
  readonly names?: typeof lookupDockerNames;
  /** test seam: the clock ages are measured against */
  readonly now?: () => number;
}

export async function topologyCommand(args: readonly string[], io: TopologyIo): Promise<number> {
  const { values } = parseCommandLine(args, FLAGS.topology);
  const format = values.format ?? 'text';
  if (format !== 'text' && format !== 'svg') {
    throw new UsageError(`--format ${JSON.stringify(format)}: expected text or svg`);
  }
  const body = await adminRequest(adminSocketPath(stateDirOf(values['state-dir'], io.env)), 'GET', '/v1/status');
  const status = decodeReply(statusBody, body, 'status');
  const names = await (io.names ?? lookupDockerNames)(io.env);
  const topology = computeTopology(status, { now: (io.now ?? Date.now)(), ...(names ? { names } : {}) });
  const out = format === 'svg' ? renderTopologySvg(topology) : renderTopologyText(topology);
  if (values.output === undefined) io.stdout(out);
  else await writeFile(values.output, out);
  return 0;
}
