/**
 * The commands that are one admin-socket request each: `truss reconcile`, `truss keys rotate`
 * (`truss status` is status.ts). Each prints a human view, or with --json the daemon's reply as it came
 * (versioned: docs/json/). Usage mistakes throw UsageError (cli/usage.ts).
 */
import { adminSocketPath } from '../config.ts';
import { type ReconcileBody, reconcileBody, rotateKeyBody } from '../core/admin-api.ts';
import { adminRequest, decodeReply, jsonOutput } from './admin-client.ts';
import { FLAGS } from './commands.ts';
import { type CliIo, parseCommandLine, stateDirOf, UsageError } from './usage.ts';

function parse(args: readonly string[], env: CliIo['env']): { socket: string; json: boolean } {
  const { values } = parseCommandLine(args, FLAGS.admin);
  return { socket: adminSocketPath(stateDirOf(values['state-dir'], env)), json: values.json === true };
}

/** Pure: what `truss reconcile` did, in words. */
export function formatReconcile(body: ReconcileBody): string {
  const { pass, kernel } = body;
  const lines = [
    pass === undefined
      ? 'no pass ran (the daemon is stopping)'
      : `${pass.full ? 'full' : 'incremental'} pass at revision ${pass.revision}: ${pass.changes} change(s), ` +
        `${pass.failures} failure(s), ${pass.durationMs} ms`,
    kernel.inSync ? 'kernel: in sync' : `kernel: NOT in sync (${kernel.problems.length} problem(s))`,
    ...kernel.problems.map((p) => `  ${p}`),
  ];
  return `${lines.join('\n')}\n`;
}

export async function reconcileCommand(args: readonly string[], io: CliIo): Promise<number> {
  const p = parse(args, io.env);
  const body = await adminRequest(p.socket, 'POST', '/v1/reconcile');
  const view = decodeReply(reconcileBody, body, 'reconcile');
  io.stdout(p.json ? jsonOutput(body) : formatReconcile(view));
  return 0;
}

export async function keysCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandLine(args, FLAGS.admin, true);
  const [sub, ...extra] = positionals;
  if (sub !== 'rotate') {
    throw new UsageError(
      sub === undefined ? 'keys: missing subcommand' : `keys: unknown subcommand ${JSON.stringify(sub)}`,
    );
  }
  if (extra.length > 0) throw new UsageError(`keys rotate: unexpected argument ${JSON.stringify(extra[0])}`);
  const socket = adminSocketPath(stateDirOf(values['state-dir'], io.env));
  const reply = await adminRequest(socket, 'POST', '/v1/keys/rotate');
  const body = decodeReply(rotateKeyBody, reply, 'keys rotate');
  io.stdout(
    values.json
      ? jsonOutput(reply)
      : `new WireGuard public key of ${body.node}: ${body.publicKey} (peers follow within seconds)\n`,
  );
  return 0;
}
