/**
 * The CLI's conventions, in one place: `--help`/`-h` anywhere prints the command's usage on
 * stdout (exit 0); a command-line mistake (unknown flag, missing or extra argument, bad value)
 * is a UsageError: one line and the usage on stderr, exit 2; anything else that fails is a
 * runtime failure, exit 1.
 */
import { parseArgs } from 'node:util';
import { DEFAULTS } from '../config.ts';
import { isTrussError } from '../core/errors.ts';

/** A command-line mistake: exit 2 with the message and the command's usage. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

/** A flag as parseArgs reads it, with its value's name for the usage and the completion. */
export interface Flag {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** the value's name (string flags): FILE, PATH and DIR complete as paths */
  readonly value?: string;
  /** the values it takes, when they are a fixed few (completed) */
  readonly choices?: readonly string[];
}
export type Flags = Readonly<Record<string, Flag>>;

/** `--help` or `-h` before a `--`. */
export function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

/** parseArgs (strict) whose mistakes are UsageErrors. */
export function parseCommandLine<F extends Flags>(args: readonly string[], flags: F, allowPositionals = false) {
  try {
    return parseArgs({ args: [...args], options: flags, strict: true, allowPositionals });
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}

/** Runs `fn`; a bad flag or value it throws (parseArgs's, or TRUSS_ERR_*_INVALID) is a UsageError. */
export function usageErrors<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const code = (e as { code?: unknown } | null)?.code;
    const parseError = typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
    if (parseError || (isTrussError(e) && e.kind === 'invalid')) {
      throw new UsageError((e as Error).message, { cause: e });
    }
    throw e;
  }
}

/** Where the daemon's admin socket is: --state-dir, else TRUSS_STATE_DIR, else the default. */
export function stateDirOf(flag: string | undefined, env: CliIo['env']): string {
  return flag ?? (env.TRUSS_STATE_DIR || DEFAULTS.stateDir);
}

/** Exit 2 with the one-line message and the usage on stderr. */
export function reportUsageError(e: UsageError, usage: string, io: Pick<CliIo, 'stderr'>): number {
  io.stderr(`truss: ${e.message}\n\n${usage}`);
  return 2;
}
