/**
 * The Docker follower: what the daemon knows of each running container (name, labels, `--dns`,
 * and per network its endpoint id, aliases and addresses), kept current from Docker's event
 * stream. The plugin protocol never carries these, so truss asks Docker, but only here, in the
 * background: dockerd may call the plugin before its own API is up, and a plugin that waits on
 * that API at start-up or on a request deadlocks dockerd's boot (moby#32815). Nothing waits on
 * this class; readers take what it has and its state() says how current that is.
 *
 * Loop: open GET /events (since the last event seen), then list the running containers and
 * inspect each; from then on inspect a container again on each event about it. When the stream
 * ends or fails: back off, reopen, relist. Inspections are coalesced per container and at most
 * MAX_INFLIGHT run at once.
 */
import type { Logger } from '../obs/logger.ts';
import { DockerApiError, type DockerEndpoint, listRunningContainerIds, readContainer, readVersion } from './api.ts';
import { CoalescingQueue } from './coalescing-queue.ts';
import { type DockerEvent, followEvents } from './events.ts';
import { type ContainerFacts, decodeContainerFacts, type EndpointFacts, sameFacts } from './facts.ts';
import { failureReason, lostReason, OFF_REASON } from './watch-reason.ts';

export type { ContainerFacts, EndpointFacts } from './facts.ts';

export type DockerWatchState = 'off' | 'connecting' | 'synced' | 'unreachable';

export interface DockerWatchStatus {
  readonly state: DockerWatchState;
  /** why it is not synced, and the fix */
  readonly reason?: string;
  /** when it entered this state (ms since the epoch) */
  readonly since: number;
}

export interface DockerWatchOptions {
  /** undefined: turned off (--docker-host none) */
  readonly endpoint: DockerEndpoint | undefined;
  readonly log: Logger;
  /** after each applied change and each state change (debounced) */
  readonly onChange: () => void;
  /** the first delay before reconnecting; it doubles per failure up to 30 s (default 1000) */
  readonly retryMs?: number;
  readonly now?: () => number;
}

/** the events that can change what we keep; the rest (exec, health, pause ...) cannot */
const ACTIONS = ['start', 'rename', 'die', 'stop', 'destroy', 'connect', 'disconnect'];
/** a container's events after which it has no endpoint: dropped without asking dockerd */
const GONE = ['die', 'stop', 'destroy'];
const FILTERS = { type: ['container', 'network'], event: ACTIONS };
const MAX_INFLIGHT = 4;
const DEBOUNCE_MS = 10;
const DOCKER_ID = /^[0-9a-f]{64}$/;

export class DockerWatch {
  readonly #ep: DockerEndpoint | undefined;
  readonly #log: Logger;
  readonly #onChange: () => void;
  readonly #retryMs: number;
  readonly #maxRetryMs: number;
  readonly #now: () => number;

  readonly #containers = new Map<string, ContainerFacts>();
  /** the sequence number at which a container (or one of its endpoints) last went away */
  readonly #goneAt = new Map<string, number>();
  /** the sequence number at which each container's facts were asked for */
  readonly #seqOf = new Map<string, number>();
  readonly #byEndpoint = new Map<string, { container: ContainerFacts; endpoint: EndpointFacts }>();
  #seq = 0;
  /** the engine's version, read at each (re)connection */
  #version: string | undefined;

  readonly #queue = new CoalescingQueue((id) => this.#inspect(id), MAX_INFLIGHT);
  readonly #failed = new Set<string>();

  #status: DockerWatchStatus;
  #everSynced = false;
  #lastEventTime: number | undefined;
  #started = false;
  #stopped = false;
  readonly #stop = new AbortController();
  #session: AbortController | undefined;
  #running: Promise<void> = Promise.resolve();
  #sleepTimer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryFailedMs: number;
  #debounce: NodeJS.Timeout | undefined;

  constructor(opts: DockerWatchOptions) {
    this.#ep = opts.endpoint;
    this.#log = opts.log.child({ component: 'docker' });
    this.#onChange = opts.onChange;
    this.#retryMs = Math.max(1, opts.retryMs ?? 1000);
    this.#maxRetryMs = Math.max(this.#retryMs, 30_000);
    this.#retryFailedMs = this.#retryMs;
    this.#now = opts.now ?? Date.now;
    this.#status =
      this.#ep === undefined
        ? { state: 'off', reason: OFF_REASON, since: this.#now() }
        : { state: 'connecting', since: this.#now() };
  }

  /** Returns at once; the following runs in the background until stop(). */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    if (this.#ep === undefined) {
      this.#log.info('docker api off', { reason: OFF_REASON });
      return;
    }
    this.#log.debug('docker api connecting', { url: this.#ep.url });
    this.#running = this.#run(this.#ep).catch((e: unknown) => {
      this.#log.error('docker follower stopped on an internal error', { err: e }); // a bug: never expected
    });
  }

  /** Ends the stream and every request and timer; resolves when the background loop has returned. */
  stop(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      this.#stop.abort();
      this.#session?.abort();
      clearTimeout(this.#sleepTimer);
      clearTimeout(this.#retryTimer);
      clearTimeout(this.#debounce);
      this.#wake?.();
      this.#queue.stop();
    }
    return this.#running;
  }

  state(): DockerWatchStatus {
    return this.#status;
  }

  /** Running containers by id. */
  /** Docker's engine version as last read ("28.5.2"), undefined before the first sync. */
  version(): string | undefined {
    return this.#version;
  }

  containers(): ReadonlyMap<string, ContainerFacts> {
    return this.#containers;
  }

  /** The container behind a Docker endpoint id, and that endpoint. */
  byEndpoint(endpointId: string): { readonly container: ContainerFacts; readonly endpoint: EndpointFacts } | undefined {
    return this.#byEndpoint.get(endpointId);
  }

  async #run(ep: DockerEndpoint): Promise<void> {
    let delay = this.#retryMs;
    while (!this.#stopped) {
      const { opened, synced, error } = await this.#follow(ep);
      if (this.#stopped) return;
      // lost after a sync: reconnect quietly; never synced this time: Docker is not usable
      if (synced) {
        delay = this.#retryMs;
        this.#setState('connecting', lostReason(ep, error));
      } else {
        this.#setState('unreachable', await failureReason(ep, error, this.#everSynced));
        this.#log.debug('docker api retry', { inMs: delay, err: error, opened });
      }
      await this.#sleep(delay);
      delay = Math.min(delay * 2, this.#maxRetryMs);
    }
  }

  /** One session: open the stream, relist, follow until it ends. Never throws. */
  async #follow(ep: DockerEndpoint): Promise<{ opened: boolean; synced: boolean; error?: unknown }> {
    const session = new AbortController();
    this.#session = session;
    let opened = false;
    let synced = false;
    let markOpen: () => void = () => {};
    const open = new Promise<void>((resolve) => {
      markOpen = resolve;
    });
    const stream = followEvents(ep, {
      ...(this.#lastEventTime !== undefined ? { since: this.#lastEventTime } : {}),
      filters: FILTERS,
      signal: session.signal,
      onOpen: () => {
        opened = true;
        markOpen();
      },
      onEvent: (e) => this.#onEvent(e),
    });
    try {
      await Promise.race([open, stream]);
      if (!opened) return { opened, synced }; // ended before it began
      await this.#relist(ep, session.signal);
      if (session.signal.aborted) return { opened, synced };
      synced = true;
      this.#everSynced = true;
      this.#retryFailedMs = this.#retryMs;
      this.#setState('synced');
      await stream;
      return { opened, synced };
    } catch (error) {
      return { opened, synced, error };
    } finally {
      session.abort();
      stream.catch(() => {}); // its rejection is the abort we just caused
      if (this.#session === session) this.#session = undefined;
    }
  }

  /** Every running container is inspected again; one known but not listed has stopped. */
  async #relist(ep: DockerEndpoint, signal: AbortSignal): Promise<void> {
    const gen = ++this.#seq;
    // a proxy may refuse /version: names still work, only the version-dependent DNS advice is lost
    this.#version = await readVersion(ep, { signal }).catch(() => this.#version);
    const running = new Set(await listRunningContainerIds(ep, { signal }));
    if (signal.aborted) return;
    for (const id of [...this.#containers.keys()]) {
      // why the seq check: an inspect begun after the listing saw a container the listing could not
      const stale = (this.#seqOf.get(id) ?? 0) < gen;
      if (!running.has(id) && stale && !this.#queue.has(id)) this.#apply(id, undefined, gen);
    }
    for (const id of running) this.#queue.mark(id);
    await this.#queue.idle();
  }

  #onEvent(e: DockerEvent): void {
    if (e.time > 0) this.#lastEventTime = Math.max(this.#lastEventTime ?? 0, e.time);
    const id = e.type === 'network' ? e.attributes.container : e.type === 'container' ? e.actorId : undefined;
    if (id === undefined || !DOCKER_ID.test(id) || !ACTIONS.includes(e.action)) return;
    if (this.#log.isDebug()) {
      this.#log.debug('docker event', { type: e.type, action: e.action, container: id.slice(0, 12) });
    }
    // why no inspect for what goes away: a `docker rm -f` of many containers would have us ask
    // dockerd about each while it tears them down. A stopped container has no endpoints; a
    // disconnect takes one endpoint off what we know. Answers of inspects begun earlier are stale.
    if (e.type === 'container' && GONE.includes(e.action)) {
      this.#wentAway(id);
      this.#apply(id, undefined, this.#seq);
      return;
    }
    const known = this.#containers.get(id);
    if (e.type === 'network' && e.action === 'disconnect' && known) {
      this.#wentAway(id);
      const endpoints = known.endpoints.filter((x) => x.networkId !== e.actorId);
      this.#apply(id, { ...known, endpoints }, this.#seq);
      return;
    }
    this.#queue.mark(id);
  }

  /** Marks `id` as changed by an event now: inspects asked before are stale. Bounded: inspects last moments. */
  #wentAway(id: string): void {
    this.#goneAt.set(id, ++this.#seq);
    if (this.#goneAt.size > 256) {
      for (const [k, at] of this.#goneAt) if (at < this.#seq - 256) this.#goneAt.delete(k);
    }
  }

  async #inspect(id: string): Promise<void> {
    const seq = ++this.#seq;
    const ep = this.#ep as DockerEndpoint;
    try {
      const json = await readContainer(ep, id, { signal: this.#stop.signal });
      if (seq < (this.#goneAt.get(id) ?? 0)) return; // asked before it went: stale
      if (!this.#stopped) this.#apply(id, decodeContainerFacts(json), seq);
    } catch (e) {
      if (this.#stopped) return;
      if (e instanceof DockerApiError && e.code === 'DOCKER_NOT_FOUND') this.#apply(id, undefined, seq);
      else this.#inspectFailed(id, e);
    }
  }

  /** A container we could not inspect is asked again later, with backoff (a relist asks it too). */
  #inspectFailed(id: string, e: unknown): void {
    this.#log.debug('docker inspect failed', { container: id.slice(0, 12), err: e });
    this.#failed.add(id);
    if (this.#retryTimer !== undefined) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#retryFailedMs = Math.min(this.#retryFailedMs * 2, this.#maxRetryMs);
      const ids = [...this.#failed];
      this.#failed.clear();
      for (const f of ids) this.#queue.mark(f);
    }, this.#retryFailedMs);
  }

  #apply(id: string, facts: ContainerFacts | undefined, seq: number): void {
    this.#failed.delete(id);
    const old = this.#containers.get(id);
    if (facts === undefined) this.#seqOf.delete(id);
    else this.#seqOf.set(id, seq);
    if (sameFacts(old, facts)) return;
    for (const ep of old?.endpoints ?? []) this.#byEndpoint.delete(ep.endpointId);
    if (facts === undefined) {
      this.#containers.delete(id);
      this.#log.debug('docker container gone', { container: id.slice(0, 12), name: old?.name });
    } else {
      this.#containers.set(id, facts);
      for (const endpoint of facts.endpoints) this.#byEndpoint.set(endpoint.endpointId, { container: facts, endpoint });
      this.#log.debug('docker container', { container: id.slice(0, 12), name: facts.name });
    }
    this.#changed();
  }

  #setState(state: DockerWatchState, reason?: string): void {
    const prev = this.#status;
    if (prev.state === state && prev.reason === reason) return;
    this.#status = { state, ...(reason !== undefined ? { reason } : {}), since: this.#now() };
    if (prev.state === state) this.#log.debug('docker api state', { state, reason });
    else if (state === 'unreachable') this.#log.warn('docker api unreachable', { reason });
    else if (state === 'synced') this.#log.info('docker api synced', { containers: this.#containers.size });
    else if (prev.state === 'synced') this.#log.info('docker api stream lost', { reason });
    else this.#log.debug('docker api state', { state, reason });
    this.#changed();
  }

  #changed(): void {
    if (this.#stopped || this.#debounce !== undefined) return;
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      try {
        this.#onChange();
      } catch (e) {
        this.#log.error('docker onChange failed', { err: e });
      }
    }, DEBOUNCE_MS);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#sleepTimer = setTimeout(resolve, ms);
    });
  }
}
