/**
 * GET /events, followed: Docker keeps the reply open and writes one JSON object per event, each
 * ending in a newline (moby's json.Encoder, flushed per event). The stream has no heartbeat, so
 * there is no idle deadline once the reply has begun; TCP keepalive notices a dead peer.
 */
import http from 'node:http';
import { connectTarget, DockerApiError, type DockerEndpoint, messageOf, requestError } from './api.ts';

/** An event as far as we read it (Docker ≥ 1.22's shape; older fields are ignored). */
export interface DockerEvent {
  /** container, network, image, volume ... */
  readonly type: string;
  /** start, die, connect ... (health_status and exec_* carry a suffix after ': ') */
  readonly action: string;
  /** the object's id: a container's, or for network events the network's */
  readonly actorId: string;
  readonly attributes: Readonly<Record<string, string>>;
  /** seconds since the epoch */
  readonly time: number;
}

export interface FollowOptions {
  /** `since` (seconds): Docker first replays what happened from then on */
  readonly since?: number;
  /** Docker's filters, e.g. { type: ['container'], event: ['start'] } */
  readonly filters: Readonly<Record<string, readonly string[]>>;
  readonly signal: AbortSignal;
  /** deadline for the reply to begin */
  readonly timeoutMs?: number;
  /** Docker answered 200: events flow from now on */
  readonly onOpen: () => void;
  readonly onEvent: (e: DockerEvent) => void;
}

/** a line longer than this is not an event: the stream is not Docker's */
const MAX_LINE = 1024 * 1024;

/** One event line, or undefined when it is not one we can read. */
export function decodeEvent(line: string): DockerEvent | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  const e = (v ?? {}) as {
    Type?: unknown;
    Action?: unknown;
    Actor?: { ID?: unknown; Attributes?: unknown };
    time?: unknown;
  };
  if (typeof e.Type !== 'string' || typeof e.Action !== 'string' || typeof e.Actor?.ID !== 'string') return undefined;
  const attributes: Record<string, string> = {};
  const raw = e.Actor.Attributes;
  if (raw !== null && typeof raw === 'object') {
    for (const [k, val] of Object.entries(raw)) if (typeof val === 'string') attributes[k] = val;
  }
  return {
    type: e.Type,
    action: e.Action,
    actorId: e.Actor.ID,
    attributes,
    time: typeof e.time === 'number' && Number.isFinite(e.time) ? e.time : 0,
  };
}

/**
 * Follow GET /events until Docker ends the reply (resolves) or it fails (rejects with a
 * DockerApiError, or the AbortError of `signal`). Lines that are not events are skipped.
 */
export function followEvents(ep: DockerEndpoint, opts: FollowOptions): Promise<void> {
  const query = new URLSearchParams({ filters: JSON.stringify(opts.filters) });
  if (opts.since !== undefined) query.set('since', String(Math.floor(opts.since)));
  const path = `/events?${query}`;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { ...connectTarget(ep), method: 'GET', path, headers: { accept: 'application/json' }, signal: opts.signal },
      (res) => {
        clearTimeout(deadline);
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.length < 16 && chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const msg = `Docker answered ${res.statusCode} to GET /events: ${messageOf(text)}`;
            reject(new DockerApiError('DOCKER_FAILED', msg, res.statusCode));
          });
          res.on('error', (e) => reject(requestError(ep, e)));
          return;
        }
        opts.onOpen();
        let pending = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          pending += chunk;
          let nl = pending.indexOf('\n');
          while (nl >= 0) {
            const line = pending.slice(0, nl).trim();
            pending = pending.slice(nl + 1);
            const e = line === '' ? undefined : decodeEvent(line);
            if (e !== undefined) opts.onEvent(e);
            nl = pending.indexOf('\n');
          }
          if (pending.length > MAX_LINE) {
            req.destroy(
              new DockerApiError('DOCKER_FAILED', `an event from ${ep.url} is longer than ${MAX_LINE} bytes`),
            );
          }
        });
        res.on('end', () => resolve());
        res.on('error', (e) => reject(requestError(ep, e)));
        // a reply cut short (dockerd killed) may close without 'end'; the first settle wins
        res.on('close', () => resolve());
      },
    );
    // why a timer, not http's `timeout`: that one is an idle timeout and would cut a quiet stream
    const deadline = setTimeout(() => {
      req.destroy(
        new DockerApiError(
          'DOCKER_UNREACHABLE',
          `the Docker daemon at ${ep.url} did not answer within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    req.on('socket', (s) => {
      if (ep.kind === 'tcp') s.setKeepAlive(true, 30_000);
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(deadline);
      reject(requestError(ep, e));
    });
    req.on('close', () => clearTimeout(deadline));
    req.end();
  });
}
