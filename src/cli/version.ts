/**
 * `truss version [--json|--short]`: the version, the git commit it was built from and the
 * Node.js version it runs on (obs/version.ts knows where the commit comes from).
 */
import { readCommit, VERSION } from '../obs/version.ts';
import { FLAGS } from './commands.ts';
import { type CliIo, parseCommandLine, UsageError } from './usage.ts';

export async function versionCommand(args: readonly string[], io: Pick<CliIo, 'stdout'>): Promise<number> {
  const { values } = parseCommandLine(args, FLAGS.version);
  if (values.json && values.short) throw new UsageError('version: --json and --short exclude each other');
  if (values.short) {
    io.stdout(`${VERSION}\n`);
    return 0;
  }
  const info = { version: VERSION, commit: readCommit(), node: process.version };
  if (values.json) {
    // why loaded here: the contract brings zod, which the human output never needs
    const { SCHEMA_VERSION } = await import('../core/admin-api.ts');
    io.stdout(`${JSON.stringify({ schemaVersion: SCHEMA_VERSION, ...info }, null, 2)}\n`);
  } else io.stdout(`truss ${info.version}\ncommit ${info.commit}\nnode ${info.node}\n`);
  return 0;
}
