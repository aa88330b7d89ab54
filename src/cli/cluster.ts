/**
 * `truss cluster forget NODE [--force]`: release the cluster allocations (address claims,
 * blocks, memberships) of a host that is gone for good, through this host's daemon (the CLI
 * never talks to etcd). Refused while NODE is registered (its lease is alive) unless --force.
 * Calico's `calicoctl ipam release` / `docker node rm` model.
 */
import { adminSocketPath } from '../config.ts';
import { type ForgetView as ForgetReply, forgetBody } from '../core/admin-api.ts';
import { AdminError, adminRequest, decodeReply, jsonOutput } from './admin-client.ts';
import { CLUSTER_USAGE, FLAGS, RBAC_USAGE } from './commands.ts';
import { type CliIo, parseCommandLine, reportUsageError, stateDirOf, UsageError } from './usage.ts';

export { CLUSTER_USAGE };

export type ForgetView = ForgetReply;

export function formatForget(v: ForgetView): string {
  if (v.clusters.length === 0 && !v.wasRegistered) return `host ${v.node} held nothing in the cluster store\n`;
  const out = [`forgot host ${v.node}${v.wasRegistered ? ' (its host record too: --force)' : ''}`];
  for (const c of v.clusters) {
    const blocks = c.blocks.length > 0 ? ` (${c.blocks.join(', ')})` : '';
    out.push(
      `  ${c.cluster}: ${c.blocks.length} block(s)${blocks}, ${c.claims.length} address claim(s)` +
        `${c.member ? ', membership' : ''}`,
    );
  }
  return `${out.join('\n')}\n`;
}

function parse(args: readonly string[], env: CliIo['env']) {
  const parsed = parseCommandLine(args, FLAGS.forget, true);
  const [verb, node, ...extra] = parsed.positionals;
  if (verb !== 'forget') {
    throw new UsageError(verb === undefined ? 'missing subcommand' : `unknown subcommand ${JSON.stringify(verb)}`);
  }
  if (node === undefined || node === '') throw new UsageError('cluster forget: missing NODE');
  if (extra.length > 0) throw new UsageError(`cluster forget: unexpected argument ${JSON.stringify(extra[0])}`);
  const stateDir = stateDirOf(parsed.values['state-dir'], env);
  return { node, force: parsed.values.force === true, json: parsed.values.json === true, stateDir };
}

/** Run `truss cluster ARGS`; returns the exit code (0 done, 1 refused or failed, 2 bad command line). */
export async function clusterCommand(args: readonly string[], io: CliIo): Promise<number> {
  if (args[0] === 'rbac') {
    const { rbacCommand } = await import('./cluster-rbac.ts');
    if (args.includes('--help') || args.includes('-h')) {
      io.stdout(RBAC_USAGE);
      return 0;
    }
    return rbacCommand(args.slice(1), io);
  }
  if (args[0] === 'help' || args.includes('--help') || args.includes('-h')) {
    io.stdout(CLUSTER_USAGE);
    return 0;
  }
  try {
    const p = parse(args, io.env);
    const reply = await adminRequest(adminSocketPath(p.stateDir), 'POST', '/v1/cluster/forget', {
      node: p.node,
      force: p.force,
    });
    const body = decodeReply(forgetBody, reply, 'cluster forget');
    io.stdout(p.json ? jsonOutput(reply) : formatForget(body));
    return 0;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (e instanceof UsageError) return reportUsageError(e, CLUSTER_USAGE, io);
    io.stderr(`truss: ${message}\n`);
    return e instanceof AdminError && e.status === 400 ? 2 : 1;
  }
}
