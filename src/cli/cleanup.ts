/**
 * `truss cleanup --foreign`: asks the running daemon to remove the truss bridges and veths that
 * another or an unknown state made (a daemon started with another --state-dir, a lost or new
 * state database). The daemon never prunes them by itself; it lists them in `truss status`.
 * Their containers lose their network: adopt them instead by starting truss with the state dir
 * that made them, when it still exists.
 */
import { parseArgs } from 'node:util';
import { adminSocketPath, DEFAULTS } from '../config.ts';
import { type CleanupView, cleanupBody } from '../core/admin-api.ts';
import { adminRequest, decodeReply, jsonOutput } from './admin-client.ts';

export interface CleanupIo {
  readonly env: NodeJS.ProcessEnv;
  stdout(text: string): void;
  stderr(text: string): void;
}

export const CLEANUP_USAGE = `usage: truss cleanup --foreign [--json] [--state-dir DIR]

Removes the truss bridges and veths on this host that another or an unknown state made
(truss status lists them under "truss objects of another state"), then prunes the shared
objects (nft tables, routes) that were kept for them. The containers on them lose their
network. To keep them, start truss with the --state-dir that made them instead.
`;

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

export async function cleanupCommand(args: readonly string[], io: CleanupIo): Promise<number> {
  const { values } = parseArgs({
    args: [...args],
    options: {
      foreign: { type: 'boolean' },
      json: { type: 'boolean' },
      'state-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    io.stdout(CLEANUP_USAGE);
    return 0;
  }
  if (!values.foreign) {
    io.stderr(`truss cleanup: say what to remove (--foreign)\n\n${CLEANUP_USAGE}`);
    return 2;
  }
  const stateDir = values['state-dir'] ?? (io.env.TRUSS_STATE_DIR || DEFAULTS.stateDir);
  const reply = await adminRequest(adminSocketPath(stateDir), 'POST', '/v1/cleanup/foreign');
  const body = decodeReply(cleanupBody, reply, 'cleanup');
  io.stdout(values.json ? jsonOutput(reply) : formatCleanup(body));
  return body.remaining.length > 0 ? 1 : 0;
}
