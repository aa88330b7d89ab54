/**
 * One long-lived `nft -i` fed whole transactions, for the attach path's small nft transactions
 * (an endpoint's guard elements): ~1 ms each here against ~3-6 ms for a fresh `nft -f -`
 * (process start, the iproute2 tables it reads, its cache fetch, its exit).
 *
 * Why it is exact (verified on nft 1.0.6, and by nft-session.netns.ts):
 *   - `nft -i` on a pipe prints no prompt and runs each LINE as one transaction (one
 *     nft_run_cmd_from_buffer: all of the line's commands commit together or none does), so a
 *     script of one-line commands is sent as one line joined with "; ";
 *   - after it we send a sentinel line `truss-sync-<n>` that nft cannot parse: its error block
 *     on stderr marks the end of the transaction's own output. stderr is unbuffered and nft
 *     handles lines in order, so everything on stderr before the sentinel's block is the
 *     transaction's; an `Error:` line there means it failed (nothing of it was applied);
 *   - its cache is refreshed when the ruleset generation changes (another process's commit), so
 *     it sees what a fresh process would.
 * Errors are rewritten to `nft -f -`'s form (`/dev/stdin:<line>:<col>: Error: …`, the line of the
 * original script) so callers see the same KernelError as from a one-shot run.
 *
 * One transaction at a time (a queue). If nft dies or a transaction outlives its timeout, that
 * transaction fails (its outcome is unknown; exec.ts runs the caller's idempotent script again as
 * `nft -f -`) and the next one starts a new process.
 */
import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

type Child = ChildProcessByStdio<Writable, Readable, Readable>;

export interface SessionResult {
  /** the transaction's own stderr (in `nft -f -` form); empty when it said nothing */
  readonly stderr: string;
  /** 0 ok, 1 nft reported an error, 128 the process ended mid-transaction, 137 timed out */
  readonly exitCode: number;
  readonly timedOut: boolean;
}

const MAX_SCRIPT = 256 * 1024;

/**
 * Pure: the script as one `nft -i` line, or undefined when it cannot be sent as one: a command
 * spans lines (a `table x { … }` block), or a `#` (a comment would swallow the rest of the line).
 * Also returns where each original line starts in the joined line, to map error columns back.
 */
export function joinScript(script: string): { line: string; starts: number[] } | undefined {
  if (script.length > MAX_SCRIPT || script.includes('#') || script.includes('\r')) return undefined;
  const lines = script.split('\n');
  const starts: number[] = [];
  const parts: string[] = [];
  let at = 0;
  for (const raw of lines) {
    const l = raw.trim();
    if (l === '') {
      starts.push(at);
      continue;
    }
    let depth = 0;
    for (const ch of l) {
      if (ch === '{') depth++;
      else if (ch === '}' && --depth < 0) return undefined;
    }
    if (depth !== 0) return undefined;
    starts.push(at);
    parts.push(l);
    at += l.length + 2; // "; "
  }
  if (parts.length === 0) return undefined;
  return { line: parts.join('; '), starts };
}

/**
 * Pure: nft -i's error blocks ("Error: …" / the line / carets) with the location as `nft -f -`
 * prints it, `/dev/stdin:<line>:<first>-<last>: Error: …` (1-based, the original script's line).
 */
export function locateErrors(stderr: string, starts: readonly number[]): string {
  const lines = stderr.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const head = lines[i] as string;
    const carets = lines[i + 2];
    const m = carets === undefined ? null : /^( *)(\^+)/.exec(carets);
    if (!/^(Error|Warning):/.test(head) || !m) {
      out.push(head);
      continue;
    }
    const col = (m[1] as string).length;
    let n = 0;
    while (n + 1 < starts.length && (starts[n + 1] as number) <= col) n++;
    const from = col - (starts[n] as number) + 1;
    out.push(
      `/dev/stdin:${n + 1}:${from}-${from + (m[2] as string).length - 1}: ${head}`,
      lines[i + 1] as string,
      carets as string,
    );
    i += 2;
  }
  return out.join('\n');
}

interface Pending {
  readonly token: string;
  readonly resolve: (r: SessionResult) => void;
  readonly timer: NodeJS.Timeout;
}

export class NftSession {
  readonly #spawn: () => Child;
  #child: Child | undefined;
  #stderr = '';
  #pending: Pending | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #seq = 0;
  /** processes started so far (tests: a dead one is replaced) */
  started = 0;
  /** transactions that ran to their sentinel (ok or not) */
  answered = 0;

  /** `spawn`: starts `nft -i` (through nsenter for another namespace) with three pipes */
  constructor(spawn: () => Child) {
    this.#spawn = spawn;
  }

  /** Runs one joined transaction line; serialised with every other. */
  run(line: string, timeoutMs: number): Promise<SessionResult> {
    const next = this.#queue.then(() => this.#runOne(line, timeoutMs));
    this.#queue = next.catch(() => {});
    return next;
  }

  #runOne(line: string, timeoutMs: number): Promise<SessionResult> {
    const child = this.#ensure();
    const token = `truss-sync-${++this.#seq}`;
    child.ref();
    for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { ref?(): void }).ref?.();
    return new Promise<SessionResult>((resolve) => {
      const timer = setTimeout(() => {
        this.#finish({ stderr: `timed out: ${this.#stderr}`, exitCode: 137, timedOut: true });
        this.#kill();
      }, timeoutMs);
      this.#pending = { token, resolve, timer };
      child.stdin.write(`${line}\n${token}\n`);
    });
  }

  #ensure(): Child {
    if (this.#child) return this.#child;
    const child = this.#spawn();
    this.started++;
    this.#child = child;
    this.#stderr = '';
    child.stdin.on('error', () => {}); // EPIPE when it died: 'exit' tells
    child.stdout.on('data', () => {}); // nothing is listed; drained so it never blocks
    child.stderr.on('data', (b: Buffer) => {
      if (this.#child !== child) return;
      this.#stderr += b.toString('utf8');
      this.#scan();
    });
    const gone = (): void => {
      if (this.#child !== child) return;
      this.#child = undefined;
      this.#finish({ stderr: `nft ended mid-transaction: ${this.#stderr}`, exitCode: 128, timedOut: false });
    };
    child.on('exit', gone);
    child.on('error', gone);
    this.#idle(child);
    return child;
  }

  /** The sentinel's error block ends the pending transaction's output. */
  #scan(): void {
    const p = this.#pending;
    if (!p) return;
    const re = new RegExp(`(?:^|\\n)[^\\n]*\\n${p.token}\\n *\\^+\\n`);
    const m = re.exec(this.#stderr);
    if (!m) return;
    const before = this.#stderr.slice(0, m.index + (m[0].startsWith('\n') ? 1 : 0));
    this.#stderr = this.#stderr.slice(m.index + m[0].length);
    this.answered++;
    this.#finish({ stderr: before, exitCode: /(?:^|\n)Error:/.test(before) ? 1 : 0, timedOut: false });
  }

  #finish(r: SessionResult): void {
    const p = this.#pending;
    if (!p) return;
    this.#pending = undefined;
    clearTimeout(p.timer);
    if (this.#child) this.#idle(this.#child);
    p.resolve(r);
  }

  /** a waiting session keeps nothing alive (the daemon, a test run) */
  #idle(child: Child): void {
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { unref?(): void }).unref?.();
  }

  #kill(): void {
    const child = this.#child;
    this.#child = undefined;
    child?.kill('SIGKILL');
  }

  /** Ends the process (EOF: nft exits). */
  close(): void {
    const child = this.#child;
    this.#child = undefined;
    child?.stdin.end();
  }

  /** Tests: the running process's pid. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }
}
