/**
 * The `truss` command: `serve` runs the daemon; every other command talks to a running
 * daemon over its admin socket (never to the kernel directly). This file dispatches; the words,
 * flags and usage of every command are the table in commands.ts, the conventions (--help, exit
 * 2 for usage errors) are usage.ts.
 */
import { loadConfig } from '../config.ts';
import { USAGE, usageOf } from './commands.ts';
import { type CliIo, parseCommandLine, reportUsageError, UsageError, usageErrors, wantsHelp } from './usage.ts';

/** A command: its exit code, or -1 to keep running (serve). Throws UsageError for exit 2. */
type Run = (args: readonly string[], io: CliIo) => Promise<number>;

/** why each loads on use: the admin contract brings zod (about 50 ms of CPU), which help and version never need */
const RUN: Readonly<Record<string, Run>> = {
  serve: async (args) => {
    const config = usageErrors(() => loadConfig(args, process.env));
    const { serve } = await import('../main.ts');
    await serve(config, process.env);
    return -1; // keep running
  },
  doctor: async (args, io) => (await import('./doctor.ts')).doctorCommand(args, io),
  status: async (args, io) => (await import('./status.ts')).statusCommand(args, io),
  topology: async (args, io) => (await import('./topology.ts')).topologyCommand(args, io),
  reconcile: async (args, io) => (await import('./admin-commands.ts')).reconcileCommand(args, io),
  keys: async (args, io) => (await import('./admin-commands.ts')).keysCommand(args, io),
  policy: async (args, io) => (await import('./policy.ts')).policyCommand(args, io),
  cluster: async (args, io) => (await import('./cluster.ts')).clusterCommand(args, io),
  cleanup: async (args, io) => (await import('./cleanup.ts')).cleanupCommand(args, io),
  version: async (args, io) => (await import('./version.ts')).versionCommand(args, io),
  completion: async (args, io) => {
    const { renderCompletion } = await import('./completion.ts');
    const [shell, ...extra] = parseCommandLine(args, {}, true).positionals;
    if (shell === undefined) throw new UsageError('completion: missing shell (bash or zsh)');
    const render = renderCompletion[shell];
    if (!render) throw new UsageError(`completion: unknown shell ${JSON.stringify(shell)} (bash or zsh)`);
    if (extra.length > 0) throw new UsageError(`completion: unexpected argument ${JSON.stringify(extra[0])}`);
    io.stdout(render());
    return 0;
  },
  help: async (args, io) => {
    const topic = parseCommandLine(args, {}, true).positionals;
    const usage = topic.length === 0 ? USAGE : usageOf(topic);
    if (usage === undefined) {
      io.stderr(`truss: help: unknown topic ${JSON.stringify(topic.join(' '))}\n\n${USAGE}`);
      return 2;
    }
    io.stdout(usage);
    return 0;
  },
};

const processIo: CliIo = {
  env: process.env,
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

/** Run `truss ARGV`: the exit code (0 done, 1 failed, 2 bad command line), or -1 to keep running. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === '--help' || cmd === '-h') {
    io.stdout(USAGE);
    return 0;
  }
  const run = cmd === '--version' ? RUN.version : cmd === undefined ? undefined : RUN[cmd];
  if (!run) {
    io.stderr(`truss: ${cmd === undefined ? 'missing command' : `unknown command ${JSON.stringify(cmd)}`}\n\n${USAGE}`);
    return 2;
  }
  const usage = usageOf(argv) ?? USAGE;
  if (wantsHelp(rest)) {
    io.stdout(usage);
    return 0;
  }
  try {
    return await run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) return reportUsageError(e, usage, io);
    throw e;
  }
}

/**
 * Exit once stdout and stderr have handed everything to the kernel: process.exit right after
 * write() cut piped output at the pipe's 64 KiB (security review L2). A write error (the
 * reader went away) still calls back, so this never hangs.
 */
function exitAfterFlush(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const done = (): void => {
    if (--pending === 0) process.exit(code);
  };
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', () => {}); // EPIPE: nothing left to flush to
    if (stream.destroyed || !stream.writable) done();
    else stream.write('', done);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) exitAfterFlush(code);
  },
  (e: unknown) => {
    process.stderr.write(`truss: ${e instanceof Error ? e.message : String(e)}\n`);
    exitAfterFlush(1);
  },
);
