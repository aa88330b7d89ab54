/**
 * `truss doctor`: the checks `truss serve` runs before it starts (core/preflight.ts), without
 * a daemon, as a table (OK / WARN / MISSING / INFO, what each affects, the fix) or --json.
 * Takes serve's flags (--socket, --state-dir, --store, --iptables, --proc-sys, ...) so it
 * checks what that serve would. Read-only. Exit 0 when every must-have is there (warnings
 * allowed), 1 otherwise. Unlike serve it waits for the etcd probe (bounded). This file parses
 * and formats; what is probed is wired in src/doctor.ts. With SRC DST it walks a path instead
 * (cli/doctor-path.ts).
 */
import { loadConfig } from '../config.ts';
import { type DoctorBody, SCHEMA_VERSION } from '../core/admin-api.ts';
import { type Check, isFailedRequirement } from '../core/preflight.ts';
import { DOCTOR_USAGE, FLAGS, SERVE_FLAGS } from './commands.ts';
import { parseCommandLine, usageErrors, wantsHelp } from './usage.ts';

export { DOCTOR_USAGE };

export interface DoctorIo {
  readonly env: NodeJS.ProcessEnv;
  stdout(text: string): void;
}

const LABEL: Readonly<Record<Check['status'], string>> = {
  ok: 'OK',
  missing: 'MISSING',
  warn: 'WARN',
  info: 'INFO',
};

/** Pure: the human table. */
export function formatDoctor(checks: readonly Check[]): string {
  const width = Math.max(...checks.map((c) => c.title.length));
  const lines: string[] = [];
  for (const c of checks) {
    lines.push(`${LABEL[c.status].padEnd(8)} ${c.title.padEnd(width)}  ${c.detail}`);
    if (c.status === 'ok' || c.status === 'info') continue;
    lines.push(`${' '.repeat(9)}affects: ${c.affects}`);
    if (c.fix) lines.push(`${' '.repeat(9)}fix: ${c.fix}`);
  }
  const failed = checks.filter(isFailedRequirement).length;
  const warned = checks.filter((c) => c.status === 'warn').length;
  lines.push('');
  lines.push(
    failed > 0
      ? `${failed} must-have(s) missing: truss serve will not start`
      : `every must-have is present${warned > 0 ? ` (${warned} warning(s))` : ''}`,
  );
  return `${lines.join('\n')}\n`;
}

export async function doctorCommand(args: readonly string[], io: DoctorIo): Promise<number> {
  if (wantsHelp(args)) {
    io.stdout(DOCTOR_USAGE);
    return 0;
  }
  // SRC DST: the path walk (cli/doctor-path.ts), which needs the daemon
  const { positionals } = parseCommandLine(args, { ...SERVE_FLAGS, ...FLAGS.doctorPath }, true);
  if (positionals.length > 0) return (await import('./doctor-path.ts')).doctorPathCommand(args, io);
  const json = args.includes('--json');
  // a bad flag or value is a usage error (exit 2); a missing must-have is exit 1
  const config = usageErrors(() =>
    loadConfig(
      args.filter((a) => a !== '--json'),
      io.env,
    ),
  );
  // the probes are wired in the composition root src/doctor.ts (loaded only for this command)
  const { diagnose } = await import('../doctor.ts');
  const checks = await diagnose(config);
  const ok = !checks.some(isFailedRequirement);
  const report: DoctorBody = { ok, checks };
  io.stdout(json ? `${JSON.stringify({ schemaVersion: SCHEMA_VERSION, ...report }, null, 2)}\n` : formatDoctor(checks));
  return ok ? 0 : 1;
}
