/**
 * `truss doctor SRC DST [PORT/PROTO] [--json]`: why can't SRC reach DST? SRC and DST are
 * container names or ids (looked up here, through the Docker API: STYLE.md §8) or IPs; the
 * daemon walks the path (POST /v1/doctor/path, core/path-walk.ts) and this prints its steps and
 * the verdict. Exit 0 when the path is allowed, 1 when it is blocked or unknown.
 */
import { adminSocketPath } from '../config.ts';
import { type PathBody, type PathRequest, pathBody } from '../core/admin-api.ts';
import { parseIp } from '../core/ip.ts';
import { type DockerEndpoint, dockerEndpointFromEnv, inspectContainer } from '../docker/api.ts';
import { adminRequest, decodeReply, jsonOutput } from './admin-client.ts';
import { FLAGS } from './commands.ts';
import { type CliIo, parseCommandLine, stateDirOf, UsageError } from './usage.ts';

type End = PathRequest['from'];
type Flow = Pick<PathRequest, 'proto' | 'port'>;

/** PORT/PROTO: `80/tcp`, `53/udp`, `80` (tcp), or `icmp` (also the default: ping). */
export function parseFlowSpec(text: string | undefined): Flow {
  if (text === undefined || text === 'icmp' || text === 'ping') return { proto: 'icmp' };
  const m = /^([0-9]{1,5})(?:\/(tcp|udp))?$/.exec(text);
  const port = Number(m?.[1]);
  if (!m || port < 1 || port > 65535) {
    throw new UsageError(`${JSON.stringify(text)} is not PORT/PROTO (80/tcp, 53/udp, or icmp)`);
  }
  return { proto: m[2] === 'udp' ? 'udp' : 'tcp', port };
}

/** An IP as it is; anything else is a container, resolved through Docker to its addresses. */
export async function resolveEnd(ref: string, docker: () => DockerEndpoint): Promise<End> {
  if (parseIp(ref) !== undefined) return { ref, addresses: [{ ip: ref }] };
  const c = await inspectContainer(docker(), ref);
  const addresses = c.attachments.flatMap((a) =>
    [a.ipv4, a.ipv6].flatMap((ip) =>
      ip === undefined ? [] : [{ ip, networkId: a.networkId, endpointId: a.endpointId, network: a.network }],
    ),
  );
  return { ref, container: c.name, addresses };
}

const LABEL: Readonly<Record<PathBody['steps'][number]['status'], string>> = {
  ok: 'OK',
  blocked: 'BLOCKED',
  unknown: 'UNKNOWN',
  info: 'INFO',
};
const WHERE: Readonly<Record<PathBody['from']['where'], string>> = {
  'this-host': 'this host',
  'cluster-peer': 'another host',
  outside: 'on no truss network',
};

/** Pure: the walk for a terminal. */
export function formatPath(b: PathBody, names: { readonly from: string; readonly to: string }): string {
  const ends = [
    ['from', names.from, b.from],
    ['to', names.to, b.to],
  ] as const;
  const width = Math.max(...ends.map(([, n]) => n.length));
  const lines = [`${names.from} -> ${names.to}  ${b.flow}`];
  for (const [dir, name, e] of ends) {
    const where = e.where === 'cluster-peer' && e.node ? `host ${e.node}` : WHERE[e.where];
    const net = e.network ? `network ${e.network}, ` : '';
    lines.push(`  ${dir.padEnd(4)}  ${name.padEnd(width)}  ${(e.ip ?? '-').padEnd(15)}  ${net}${where}`);
  }
  lines.push('');
  for (const s of b.steps) lines.push(`  ${LABEL[s.status].padEnd(8)} ${s.id.padEnd(13)}  ${s.detail}`);
  lines.push('', `${b.verdict.toUpperCase()}: ${b.summary}`);
  return `${lines.join('\n')}\n`;
}

export interface DoctorPathDeps {
  /** test seam: where Docker is (default: DOCKER_HOST) */
  readonly docker?: () => DockerEndpoint;
}

/** Run `truss doctor SRC DST [PORT/PROTO]`: 0 allowed, 1 blocked or unknown; throws UsageError (exit 2). */
export async function doctorPathCommand(
  args: readonly string[],
  io: Pick<CliIo, 'env' | 'stdout'>,
  deps: DoctorPathDeps = {},
): Promise<number> {
  const { values, positionals } = parseCommandLine(args, FLAGS.doctorPath, true);
  const [src, dst, spec, ...extra] = positionals;
  if (src === undefined || dst === undefined) throw new UsageError('doctor: give SRC and DST (containers or IPs)');
  if (extra.length > 0) throw new UsageError(`doctor: unexpected argument ${JSON.stringify(extra[0])}`);
  const flow = parseFlowSpec(spec);
  const docker = deps.docker ?? (() => dockerEndpointFromEnv(io.env));
  const [from, to] = await Promise.all([resolveEnd(src, docker), resolveEnd(dst, docker)]);
  const request: PathRequest = { from, to, ...flow };
  const socket = adminSocketPath(stateDirOf(values['state-dir'], io.env));
  const body = await adminRequest(socket, 'POST', '/v1/doctor/path', request);
  const walk = decodeReply(pathBody, body, 'doctor path');
  const names = { from: from.container ?? src, to: to.container ?? dst };
  io.stdout(values.json ? jsonOutput(body) : formatPath(walk, names));
  return walk.verdict === 'allowed' ? 0 : 1;
}
