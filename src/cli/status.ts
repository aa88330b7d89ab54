/**
 * `truss status [--json] [--check] [--verbose]`: the daemon's status (GET /v1/status), with
 * Docker's names when Docker answers. --check exits 1 when anything is unhealthy (cli/health.ts)
 * and 0 when healthy, printing the verdict and the reasons (or, with --json, the reply).
 */
import { adminSocketPath } from '../config.ts';
import { statusBody } from '../core/admin-api.ts';
import { adminRequest, decodeReply, jsonOutput } from './admin-client.ts';
import { FLAGS } from './commands.ts';
import { lookupDockerNames } from './docker-names.ts';
import { formatStatus } from './format.ts';
import { assessHealth, formatHealth } from './health.ts';
import { type CliIo, parseCommandLine, stateDirOf } from './usage.ts';

export const STATUS_UNHEALTHY = 1;

export interface StatusIo extends CliIo {
  /** test seam: the Docker names lookup (default: the Docker API, DOCKER_HOST) */
  readonly names?: typeof lookupDockerNames;
}

export async function statusCommand(args: readonly string[], io: StatusIo): Promise<number> {
  const { values } = parseCommandLine(args, FLAGS.status);
  const body = await adminRequest(adminSocketPath(stateDirOf(values['state-dir'], io.env)), 'GET', '/v1/status');
  // --json passes the reply through (a newer daemon's added fields included): only its version is checked
  const decode = () => decodeReply(statusBody, body, 'status', 'truss status --json shows it as sent');
  if (values.json) {
    io.stdout(jsonOutput(body));
    if (!values.check) return 0;
    const health = assessHealth(decode(), Date.now());
    if (health.problems.length > 0) io.stderr(formatHealth(health));
    return health.problems.length > 0 ? STATUS_UNHEALTHY : 0;
  }
  const status = decode();
  if (values.check) {
    const health = assessHealth(status, Date.now());
    io.stdout(formatHealth(health));
    return health.problems.length > 0 ? STATUS_UNHEALTHY : 0;
  }
  const names = await (io.names ?? lookupDockerNames)(io.env);
  io.stdout(formatStatus(status, { verbose: values.verbose === true, ...(names ? { names } : {}) }));
  return 0;
}
