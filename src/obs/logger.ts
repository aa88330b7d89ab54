/**
 * Structured JSON logs on stdout, one object per line (pino's shape: level, time, msg,
 * bindings). Child loggers add fields. Keys that may hold key material are redacted.
 * Messages are constant lower-case text; data goes in fields. `text` renders the same entry
 * as one human line (`TIME LEVEL msg key=value ...`) for a foreground terminal.
 */
import { safeStringify } from '../core/safe-json.ts';

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'json' | 'text';

const RANK: Record<Level, number> = { debug: 20, info: 30, warn: 40, error: 50 };
const REDACT = /(private.?key|secret|password|token)/i;

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(bindings: Record<string, unknown>): Logger;
  isDebug(): boolean;
}

export type Sink = (line: string) => void;

/**
 * A sink writing to `stream` (stdout by default) that never crashes the daemon: a write
 * error (EPIPE when the log reader went away, EBADF, EIO …) stops logging to that stream
 * instead of raising an unhandled 'error' event. Logs are lost; Docker keeps being served.
 */
export function streamSink(stream: NodeJS.WritableStream = process.stdout): Sink {
  let broken = false;
  guardStream(stream, () => {
    broken = true;
  });
  return (line) => {
    if (broken) return;
    try {
      stream.write(line);
    } catch {
      broken = true; // a synchronous throw (EBADF on a closed fd)
    }
  };
}

const guarded = new WeakSet<object>();

/** Listen for 'error' on `stream` once, so that a failed write never kills the process. */
export function guardStream(stream: NodeJS.WritableStream, onError: (err: Error) => void = () => {}): void {
  stream.on('error', onError);
  if (guarded.has(stream)) return;
  guarded.add(stream);
  stream.on('error', () => {});
}

/** stdout and stderr: an error on either (EPIPE) is ignored rather than fatal. */
export function guardStdio(): void {
  guardStream(process.stdout);
  guardStream(process.stderr);
}

function redact(value: unknown, depth = 0): unknown {
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    const e = value as Error & { code?: unknown; cause?: unknown };
    return { type: e.name, code: e.code, message: e.message, cause: redact(e.cause, depth + 1) };
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = REDACT.test(k) ? '[redacted]' : redact(v, depth + 1);
  return out;
}

/** A field's value in a text line: bare when it reads unambiguously, else JSON. */
function textValue(v: unknown): string {
  if (typeof v === 'string' && /^[^\s"=]+$/.test(v)) return v;
  return safeStringify(v) ?? String(v);
}

/** Pure: one log entry as a human line. */
export function renderText(entry: { level: Level; time: string; msg: string } & Record<string, unknown>): string {
  const { level, time, msg, ...fields } = entry;
  const pairs = Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${textValue(v)}`);
  return `${[time, level.toUpperCase().padEnd(5), msg, ...pairs].join(' ')}\n`;
}

export function createLogger(
  level: Level,
  sink: Sink = defaultSink(),
  bindings: Record<string, unknown> = {},
  format: LogFormat = 'json',
): Logger {
  const min = RANK[level];
  const write = (lvl: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (RANK[lvl] < min) return;
    const entry = { level: lvl, time: new Date().toISOString(), msg, ...bindings, ...(redact(fields ?? {}) as object) };
    sink(format === 'text' ? renderText(entry) : `${safeStringify(entry)}\n`);
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (b) => createLogger(level, sink, { ...bindings, ...b }, format),
    isDebug: () => min <= RANK.debug,
  };
}

let stdoutSink: Sink | undefined;
function defaultSink(): Sink {
  stdoutSink ??= streamSink(process.stdout);
  guardStdio();
  return stdoutSink;
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = createLogger('error', () => {});
