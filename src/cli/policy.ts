/**
 * `truss policy set|clear|show NETWORK`: a network's port policy at run time. NETWORK is
 * a Docker network name or id; an id prefix the daemon knows needs no Docker, anything
 * else is looked up through the Docker API (DOCKER_HOST). The spec is checked here with
 * the daemon's own parser before anything is sent, so a typo fails fast (exit 2).
 */
import { adminSocketPath } from '../config.ts';
import { policyBody, statusNetworkIds } from '../core/admin-api.ts';
import { isTrussError } from '../core/errors.ts';
import { parseIngress } from '../core/policy/parse.ts';
import { type DockerEndpoint, dockerEndpointFromEnv, inspectNetwork } from '../docker/api.ts';
import { AdminError, adminRequest, decodeReply, jsonOutput } from './admin-client.ts';
import { FLAGS, POLICY_USAGE } from './commands.ts';
import { formatPolicyView, type PolicyView } from './format.ts';
import { type CliIo, parseCommandLine, reportUsageError, stateDirOf, UsageError } from './usage.ts';

export type { CliIo };
export { POLICY_USAGE };

const NETWORK_ID = /^[0-9a-f]{64}$/;
const ID_PREFIX = /^[0-9a-f]{12,64}$/;
/** `truss`, or a managed plugin reference: `truss:latest`, `registry:5000/org/truss:0.1`. */
const TRUSS_DRIVER = /^(?:truss|(?:[^\s]*\/)?truss:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$/;

export function isTrussDriver(driver: string): boolean {
  return TRUSS_DRIVER.test(driver);
}

export interface ResolveDeps {
  readonly adminSocket: string;
  readonly docker: () => DockerEndpoint;
}

/**
 * A network reference → the full 64-hex id: an id prefix of exactly one network the daemon
 * knows, else Docker's answer for the name or id, which must be a truss network.
 */
export async function resolveNetwork(ref: string, deps: ResolveDeps): Promise<string> {
  if (ID_PREFIX.test(ref)) {
    const status = decodeReply(statusNetworkIds, await adminRequest(deps.adminSocket, 'GET', '/v1/status'), 'status');
    const hits = status.networks.map((n) => n.id).filter((id) => id.startsWith(ref));
    const [hit] = hits;
    if (hits.length === 1 && hit !== undefined && NETWORK_ID.test(hit)) return hit;
  }
  const net = await inspectNetwork(deps.docker(), ref);
  if (!isTrussDriver(net.Driver)) {
    throw new Error(
      `network ${JSON.stringify(net.Name)} (${net.Id.slice(0, 12)}) uses driver ${JSON.stringify(net.Driver)}, not truss: port policy applies only to truss networks`,
    );
  }
  return net.Id;
}

/** Check the daemon's reply before rendering it: a clear error beats a stack trace. */
export function decodePolicyView(body: unknown): PolicyView {
  return decodeReply(policyBody, body, 'policy');
}

interface Parsed {
  readonly verb: 'show' | 'set' | 'clear';
  readonly network: string;
  readonly ingress: string | undefined;
  readonly stateDir: string;
  readonly json: boolean;
}

function parse(args: readonly string[], env: CliIo['env']): Parsed {
  const parsed = parseCommandLine(args, FLAGS.policy, true);
  const { values, positionals } = parsed;
  const [verb, network, ...extra] = positionals;
  if (verb !== 'show' && verb !== 'set' && verb !== 'clear') {
    throw new UsageError(verb === undefined ? 'missing subcommand' : `unknown subcommand ${JSON.stringify(verb)}`);
  }
  if (network === undefined || network === '') throw new UsageError(`policy ${verb}: missing NETWORK`);
  if (/[\s\p{Cc}]/u.test(network)) throw new UsageError(`${JSON.stringify(network)} is not a network name or id`);
  if (extra.length > 0) throw new UsageError(`policy ${verb}: unexpected argument ${JSON.stringify(extra[0])}`);
  if (verb === 'set' && values.ingress === undefined) {
    throw new UsageError('policy set: missing --ingress SPEC (use "truss policy clear" to make the network open)');
  }
  if (verb !== 'set' && values.ingress !== undefined) throw new UsageError(`policy ${verb}: --ingress is only for set`);
  return {
    verb,
    network,
    ingress: values.ingress,
    stateDir: stateDirOf(values['state-dir'], env),
    json: values.json === true,
  };
}

async function run(args: readonly string[], io: CliIo): Promise<void> {
  const p = parse(args, io.env);
  // fail fast on a bad spec, before touching Docker or the daemon
  if (p.ingress !== undefined) parseIngress('--ingress', p.ingress);
  const adminSocket = adminSocketPath(p.stateDir);
  const id = await resolveNetwork(p.network, { adminSocket, docker: () => dockerEndpointFromEnv(io.env) });
  const path = `/v1/networks/${id}/policy`;
  const body =
    p.verb === 'show'
      ? await adminRequest(adminSocket, 'GET', path)
      : await adminRequest(adminSocket, 'PUT', path, { ingress: p.verb === 'set' ? p.ingress : null });
  const view = decodePolicyView(body);
  io.stdout(p.json ? jsonOutput(body) : formatPolicyView(view));
}

/** Run `truss policy ARGS`; returns the exit code (0 done, 1 failed, 2 bad command line or spec). */
export async function policyCommand(args: readonly string[], io: CliIo): Promise<number> {
  if (args[0] === 'help' || args.includes('--help') || args.includes('-h')) {
    io.stdout(POLICY_USAGE);
    return 0;
  }
  try {
    await run(args, io);
    return 0;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (e instanceof UsageError) return reportUsageError(e, POLICY_USAGE, io);
    io.stderr(`truss: ${message}\n`);
    const invalid = (isTrussError(e) && e.kind === 'invalid') || (e instanceof AdminError && e.status === 400);
    return invalid ? 2 : 1;
  }
}
