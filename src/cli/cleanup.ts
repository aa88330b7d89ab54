/**
 * `truss cleanup --foreign`: asks the running daemon to remove the truss bridges and veths that
 * another or an unknown state made (a daemon started with another --state-dir, a lost or new
 * state database). The daemon never prunes them by itself; it lists them in `truss status`.
 * Their containers lose their network: adopt them instead by starting truss with the state dir
 * that made them, when it still exists.
 */
import { adminSocketPath } from '../config.ts';
import { type CleanupView, cleanupBody } from '../core/admin-api.ts';
import { adminRequest, decodeReply, jsonOutput } from './admin-client.ts';
import { CLEANUP_USAGE, FLAGS } from './commands.ts';
import { type CliIo, parseCommandLine, reportUsageError, stateDirOf, UsageError, wantsHelp } from './usage.ts';

export { CLEANUP_USAGE };

export type CleanupIo = CliIo;

const names = (l: CleanupView['removed']): string => l.map((f) => f.name).join(', ');

/** Pure: the human summary. */
export function formatCleanup(body: CleanupView): string {
  const { removed, remaining } = body;
  const out =
    removed.length === 0
      ? ['no truss links of another state on this host']
      : [`removed ${removed.length} truss link(s) of another state: ${names(removed)}`];
  if (remaining.length > 0) out.push(`still present (see the daemon's log): ${names(remaining)}`);
  return `${out.join('\n')}\n`;
}

export async function cleanupCommand(args: readonly string[], io: CliIo): Promise<number> {
  if (wantsHelp(args)) {
    io.stdout(CLEANUP_USAGE);
    return 0;
  }
  let values: { foreign?: boolean; json?: boolean; 'state-dir'?: string };
  try {
    values = parseCommandLine(args, FLAGS.cleanup).values;
    if (!values.foreign) throw new UsageError('cleanup: say what to remove (--foreign)');
  } catch (e) {
    if (e instanceof UsageError) return reportUsageError(e, CLEANUP_USAGE, io);
    throw e;
  }
  const reply = await adminRequest(
    adminSocketPath(stateDirOf(values['state-dir'], io.env)),
    'POST',
    '/v1/cleanup/foreign',
  );
  const body = decodeReply(cleanupBody, reply, 'cleanup');
  io.stdout(values.json ? jsonOutput(reply) : formatCleanup(body));
  return body.remaining.length > 0 ? 1 : 0;
}
