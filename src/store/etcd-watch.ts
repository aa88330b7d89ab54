/**
 * A prefix watch on etcd that resumes after the last event delivered and relists the prefix
 * when etcd has compacted past it (see etcd.ts for why not etcd3's).
 */
import type { IDuplexStream, IWatchRequest, IWatchResponse } from 'etcd3';
import type { Logger } from '../obs/logger.ts';
import { type EtcdOps, prefixEnd, type Watch, type WatchEvent, type WatchHandlers, ZERO_KEY } from './etcd-shared.ts';

export class EtcdWatch implements Watch {
  readonly #ops: EtcdOps;
  readonly #prefix: string;
  readonly #handlers: WatchHandlers;
  readonly #forget: () => void;
  readonly #log: Logger;
  /** the revision our caller's view is at; the stream starts at #revision + 1 */
  #revision: number;
  #needRelist: boolean;
  #stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  /** last state told to onStatus (undefined: nothing told yet) */
  #connected: boolean | undefined;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #backoffMs = 100;

  constructor(ops: EtcdOps, prefix: string, fromRevision: number, handlers: WatchHandlers, forget: () => void) {
    this.#ops = ops;
    this.#prefix = prefix;
    this.#handlers = handlers;
    this.#forget = forget;
    this.#log = ops.log.child({ watch: prefix });
    this.#revision = Math.max(0, fromRevision - 1);
    this.#needRelist = fromRevision <= 0;
    void this.#connect();
  }

  get revision(): number {
    return this.#revision;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    const stream = this.#stream;
    this.#stream = undefined;
    stream?.cancel();
    this.#forget();
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    try {
      if (this.#needRelist) {
        const { items, revision } = await this.#ops.list(this.#prefix);
        if (this.#closed) return;
        this.#needRelist = false;
        this.#revision = revision;
        this.#call('onResync', () => this.#handlers.onResync(items, revision));
      }
      const stream = await this.#ops.watchStream();
      if (this.#closed) return void stream.cancel();
      this.#stream = stream;
      stream.on('error', (e) => this.#broken(stream, e));
      stream.on('end', () => this.#broken(stream, new Error('watch stream ended')));
      stream.on('data', (res) => this.#onResponse(stream, res));
      const start = this.#ops.key(this.#prefix);
      stream.write({
        create_request: {
          key: start.length === 0 ? ZERO_KEY : start,
          range_end: prefixEnd(start),
          start_revision: this.#revision + 1,
          progress_notify: true,
        },
      });
    } catch (e) {
      this.#retry(e);
    }
  }

  #retry(e: unknown): void {
    if (this.#closed) return;
    const error = this.#ops.fail(`watch ${this.#prefix}`, e).message;
    if (this.#connected !== false) {
      this.#connected = false;
      this.#log.warn('etcd watch disconnected', { error });
      this.#status({ connected: false, error });
    } else {
      this.#log.debug('etcd watch still not connected', { error });
    }
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#connect(), this.#backoffMs);
    this.#backoffMs = Math.min(this.#backoffMs * 2, 2000);
  }

  #broken(stream: IDuplexStream<IWatchRequest, IWatchResponse>, e: Error): void {
    if (this.#stream !== stream) return;
    this.#stream = undefined;
    stream.cancel();
    this.#retry(e);
  }

  #onResponse(stream: IDuplexStream<IWatchRequest, IWatchResponse>, res: IWatchResponse): void {
    if (this.#stream !== stream || this.#closed) return;
    if (res.canceled) {
      this.#stream = undefined;
      stream.cancel();
      if (Number(res.compact_revision) > 0) {
        // why: etcd compacted the history after our revision; a new watch there fails too (etcd-io/etcd#8668)
        this.#log.info('etcd watch fell behind compaction: relisting', {
          revision: this.#revision,
          compactRevision: Number(res.compact_revision),
        });
        this.#needRelist = true;
        this.#backoffMs = 100;
        return void this.#connect();
      }
      this.#retry(new Error(`watch canceled by etcd: ${res.cancel_reason || 'no reason given'}`));
      return;
    }
    if (res.created) {
      this.#backoffMs = 100;
      if (this.#connected !== true) {
        this.#connected = true;
        this.#log.debug('etcd watch connected', { from: this.#revision + 1 });
        this.#status({ connected: true });
      }
    }
    if (res.events.length === 0) {
      // progress notification: nothing under the prefix up to header.revision (only sent when in sync)
      if (!res.created) this.#revision = Math.max(this.#revision, Number(res.header.revision));
      return;
    }
    const events = res.events.map((ev): WatchEvent => {
      const key = this.#ops.unkey(ev.kv.key);
      const modRevision = Number(ev.kv.mod_revision);
      return String(ev.type).toLowerCase() === 'delete'
        ? { type: 'delete', key, modRevision }
        : {
            type: 'put',
            key,
            value: ev.kv.value.toString('utf8'),
            modRevision,
            createRevision: Number(ev.kv.create_revision),
          };
    });
    // why: the header revision may be ahead of these events while etcd sends history in batches
    const revision = events.at(-1)?.modRevision ?? this.#revision;
    this.#revision = revision;
    this.#call('onEvents', () => this.#handlers.onEvents(events, revision));
  }

  #status(status: { readonly connected: boolean; readonly error?: string }): void {
    const cb = this.#handlers.onStatus;
    if (cb) this.#call('onStatus', () => cb(status));
  }

  #call(name: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.#log.error('etcd watch handler threw', { handler: name, error: e });
    }
  }
}
