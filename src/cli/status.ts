/**
 * `truss status [--json] [--check] [--verbose]`: the daemon's status (GET /v1/status), with
 * Docker's names when Docker answers. --check exits 1 when anything is unhealthy (cli/health.ts)
 * and 0 when healthy, printing the verdict and the reasons (or, with --json, the reply).
 *
 * Why the imports are inside: the request goes out first, and Docker's names are asked for at
 * the same time; the admin contract (zod) and the formatting load while the daemon answers, so
 * the command costs Node's start-up plus the slower of the two (issue 18: under 150 ms).
 * The human view and --check ask for the brief reply (GET /v1/status?brief=1: no address list, only
 * the reconciler objects in error): at 5,000 endpoints about 40 % fewer bytes to build, check, send and decode.
 */
import { adminSocketPath } from '../config.ts';
import { AdminError, adminRequest } from './admin-request.ts';
import { FLAGS } from './commands.ts';
import type { lookupDockerNames } from './docker-names.ts';
import { type CliIo, parseCommandLine, stateDirOf } from './usage.ts';

export const STATUS_UNHEALTHY = 1;

export interface StatusIo extends CliIo {
  /** test seam: the Docker names lookup (default: the Docker API, DOCKER_HOST) */
  readonly names?: typeof lookupDockerNames;
}

export async function statusCommand(args: readonly string[], io: StatusIo): Promise<number> {
  const { values } = parseCommandLine(args, FLAGS.status);
  // why brief: the human view and --check read counts, not the address list or the objects in sync
  const brief = !values.json && values.verbose !== true;
  const socket = adminSocketPath(stateDirOf(values['state-dir'], io.env));
  const full = (): Promise<unknown> => adminRequest(socket, 'GET', '/v1/status');
  // a daemon older than the brief reply (this CLI upgraded, the daemon not yet restarted) has no such route
  const reply = brief
    ? adminRequest(socket, 'GET', '/v1/status?brief=1').catch((e: unknown) => {
        if (e instanceof AdminError && e.status === 404) return full();
        throw e;
      })
    : full();
  reply.catch(() => {}); // awaited below, after the imports
  const human = !values.json && !values.check;
  const names = human
    ? (io.names ?? (await import('./docker-names.ts')).lookupDockerNames)(io.env).catch(() => undefined)
    : undefined;
  const [{ statusBody }, { decodeReply, jsonOutput }, { assessHealth, formatHealth }] = await Promise.all([
    import('../core/admin-api.ts'),
    import('./admin-client.ts'),
    import('./health.ts'),
  ]);
  const body = await reply;
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
  const { formatStatus } = await import('./format.ts');
  const found = await names;
  io.stdout(formatStatus(status, { verbose: values.verbose === true, ...(found ? { names: found } : {}) }));
  return 0;
}
