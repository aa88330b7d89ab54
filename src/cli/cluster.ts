/**
 * `truss cluster forget NODE [--force]`: release the cluster allocations (address claims,
 * blocks, memberships) of a host that is gone for good, through this host's daemon (the CLI
 * never talks to etcd). Refused while NODE is registered (its lease is alive) unless --force.
 * Calico's `calicoctl ipam release` / `docker node rm` model.
 */
import { parseArgs } from 'node:util';
import { adminSocketPath, DEFAULTS } from '../config.ts';
import { type ForgetView as ForgetReply, forgetBody } from '../core/admin-api.ts';
import { AdminError, adminRequest, decodeReply, jsonOutput } from './admin-client.ts';
import type { CliIo } from './policy.ts';

export const CLUSTER_USAGE = `usage:
  truss cluster forget NODE [--force] [--json]
  truss cluster rbac --node ID [--apply ...]   etcd role and user of host ID (truss cluster rbac --help)

NODE is the host's node id, as \`truss status\` shows it (NODE ID column; for a host that ran
truss before node ids, its old node name).
Frees what host NODE holds in every cluster network (its address claims and blocks, and its
membership), so other hosts can use that address space. Only for a host that is gone for good:
refused while NODE is registered (its truss runs, or stopped less than a lease time ago, 15 s)
unless --force, which also drops its host record (peers remove it at once). A forgotten host
must not come back with its old state: remove its containers and cluster networks first.
Flags: --state-dir DIR (env TRUSS_STATE_DIR) finds the daemon.
`;

export type ForgetView = ForgetReply;

class UsageError extends Error {}

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
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: typeof FLAGS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: [...args], options: FLAGS, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  const [verb, node, ...extra] = parsed.positionals;
  if (verb !== 'forget') {
    throw new UsageError(verb === undefined ? 'missing subcommand' : `unknown subcommand ${JSON.stringify(verb)}`);
  }
  if (node === undefined || node === '') throw new UsageError('cluster forget: missing NODE');
  if (extra.length > 0) throw new UsageError(`cluster forget: unexpected argument ${JSON.stringify(extra[0])}`);
  const stateDir = parsed.values['state-dir'] ?? (env.TRUSS_STATE_DIR || DEFAULTS.stateDir);
  return { node, force: parsed.values.force === true, json: parsed.values.json === true, stateDir };
}

const FLAGS = {
  force: { type: 'boolean' },
  json: { type: 'boolean' },
  'state-dir': { type: 'string' },
} as const;

/** Run `truss cluster ARGS`; returns the exit code (0 done, 1 refused or failed, 2 bad command line). */
export async function clusterCommand(args: readonly string[], io: CliIo): Promise<number> {
  if (args[0] === 'rbac') {
    const { RBAC_USAGE, rbacCommand } = await import('./cluster-rbac.ts');
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
    if (e instanceof UsageError) {
      io.stderr(`truss: ${message}\n\n${CLUSTER_USAGE}`);
      return 2;
    }
    io.stderr(`truss: ${message}\n`);
    return e instanceof AdminError && e.status === 400 ? 2 : 1;
  }
}
