/**
 * A presence lease on etcd that comes back by itself (see etcd.ts for why not etcd3's): kept
 * alive over our own stream, declared lost before etcd deletes its keys, then re-granted with
 * every registered key written again.
 */
import {
  EtcdLeaseInvalidError,
  type IDuplexStream,
  type ILeaseKeepAliveRequest,
  type ILeaseKeepAliveResponse,
} from 'etcd3';
import { errors } from '../core/errors.ts';
import type { Logger } from '../obs/logger.ts';
import { type EtcdOps, firstLine, type Lease, type LeaseState } from './etcd-shared.ts';
import { assertKey } from './keys.ts';

export class EtcdLease implements Lease {
  readonly ttlSeconds: number;
  readonly #ops: EtcdOps;
  readonly #log: Logger;
  readonly #forget: () => void;
  readonly #lossAfterMs: number;
  readonly #intervalMs: number;
  readonly #keys = new Map<string, string>();
  /** registered keys whose last write failed while the lease was alive */
  readonly #dirty = new Set<string>();
  readonly #lostHandlers = new Set<(reason: string) => void>();
  readonly #restoredHandlers = new Set<(id: string) => void>();
  #id: string;
  #state: LeaseState = 'alive';
  #stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> | undefined;
  #opening = false;
  #flushing = false;
  #tick: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #retryMs = 250;

  constructor(ops: EtcdOps, ttlSeconds: number, id: string, forget: () => void) {
    this.#ops = ops;
    this.ttlSeconds = ttlSeconds;
    this.#id = id;
    this.#forget = forget;
    this.#log = ops.log;
    // why: etcd3 reports `lost` after 2×TTL; etcd deletes our keys after TTL
    this.#lossAfterMs = (ttlSeconds - Math.min(2, ttlSeconds / 3)) * 1000;
    this.#intervalMs = this.#lossAfterMs / 3;
    this.#startKeepalive();
  }

  get id(): string {
    return this.#id;
  }

  get state(): LeaseState {
    return this.#state;
  }

  leaseKeys(): ReadonlyMap<string, string> {
    return new Map(this.#keys);
  }

  onLost(cb: (reason: string) => void): () => void {
    this.#lostHandlers.add(cb);
    return () => this.#lostHandlers.delete(cb);
  }

  onRestored(cb: (id: string) => void): () => void {
    this.#restoredHandlers.add(cb);
    return () => this.#restoredHandlers.delete(cb);
  }

  async put(key: string, value: string): Promise<void> {
    assertKey(key);
    if (this.#state === 'revoked') {
      throw errors.storeUnavailable(`etcd lease ${this.#id} is revoked: cannot put ${key}`);
    }
    this.#keys.set(key, value);
    if (this.#state === 'lost') {
      this.#dirty.add(key); // why: a re-grant in flight may be writing the keys without this one
      throw errors.storeUnavailable(`etcd lease ${this.#id} is lost: ${key} will be written when it is re-granted`);
    }
    this.#dirty.add(key);
    const id = this.#id;
    try {
      await this.#ops.putAll([[key, value]], id);
      if (this.#keys.get(key) === value && this.#id === id) this.#dirty.delete(key);
    } catch (e) {
      if (e instanceof EtcdLeaseInvalidError) this.#declareLost(`etcd no longer knows lease ${id}`);
      throw this.#ops.fail(`put ${key} with lease ${id}`, e);
    }
  }

  async delete(key: string): Promise<void> {
    this.#keys.delete(key);
    this.#dirty.delete(key);
    try {
      await this.#ops.remove(key);
    } catch (e) {
      throw this.#ops.fail(`delete ${key}`, e);
    }
  }

  async revoke(): Promise<void> {
    const id = this.#id;
    this.stop();
    this.#keys.clear();
    try {
      await this.#ops.revokeLease(id);
    } catch (e) {
      throw this.#ops.fail(`revoke lease ${id} (its keys expire within ${this.ttlSeconds} s anyway)`, e);
    }
  }

  /** Stops everything locally; the lease expires on etcd after its TTL. */
  stop(): void {
    this.#state = 'revoked';
    this.#stopKeepalive();
    this.#forget();
  }

  /** Runs `fn` after `ms` unless the keepalive stops first (one pending retry at a time). */
  #later(ms: number, fn: () => void): void {
    clearTimeout(this.#retry);
    this.#retry = setTimeout(fn, ms);
  }

  #startKeepalive(): void {
    this.#armWatchdog();
    this.#tick = setInterval(() => this.#keepalive(), this.#intervalMs);
  }

  #stopKeepalive(): void {
    clearInterval(this.#tick);
    clearTimeout(this.#watchdog);
    clearTimeout(this.#retry);
    const stream = this.#stream;
    this.#stream = undefined;
    stream?.cancel();
  }

  #armWatchdog(): void {
    clearTimeout(this.#watchdog);
    this.#watchdog = setTimeout(() => {
      if (this.#state === 'alive') this.#declareLost(`no successful keepalive for ${this.#lossAfterMs / 1000} s`);
    }, this.#lossAfterMs);
  }

  #keepalive(): void {
    if (this.#state !== 'alive') return;
    if (this.#stream) {
      try {
        this.#stream.write({ ID: this.#id });
      } catch {
        // the stream is ending: its 'error'/'end' handler schedules a new one
      }
      return;
    }
    if (this.#opening) return;
    this.#opening = true;
    this.#ops.keepAliveStream().then(
      (stream) => {
        this.#opening = false;
        if (this.#state !== 'alive') return void stream.cancel();
        this.#stream = stream;
        const broken = (e: Error): void => {
          if (this.#stream !== stream) return;
          this.#stream = undefined;
          this.#log.debug('etcd keepalive stream broken', { lease: this.#id, error: firstLine(e.message) });
          this.#later(500, () => this.#keepalive());
        };
        stream.on('error', broken);
        stream.on('end', () => broken(new Error('stream ended')));
        stream.on('data', (res) => this.#onKeepalive(res));
        stream.write({ ID: this.#id });
      },
      (e: Error) => {
        this.#opening = false;
        this.#log.debug('etcd keepalive stream not opened', { lease: this.#id, error: firstLine(e.message) });
        this.#later(500, () => this.#keepalive());
      },
    );
  }

  #onKeepalive(res: ILeaseKeepAliveResponse): void {
    if (this.#state !== 'alive' || res.ID !== this.#id) return;
    if (Number(res.TTL) <= 0) {
      this.#declareLost(`etcd no longer knows lease ${this.#id}`);
      return;
    }
    this.#armWatchdog();
    if (this.#dirty.size > 0 && !this.#flushing) this.#flush();
  }

  /** Writes again the keys whose last write failed. */
  #flush(): void {
    const id = this.#id;
    const batch = [...this.#dirty].flatMap((k): [string, string][] => {
      const v = this.#keys.get(k);
      return v === undefined ? [] : [[k, v]];
    });
    this.#dirty.clear();
    this.#flushing = true;
    this.#ops.putAll(batch, id).then(
      () => {
        this.#flushing = false;
      },
      (e: Error) => {
        this.#flushing = false;
        for (const [k] of batch) if (this.#keys.has(k)) this.#dirty.add(k);
        if (e instanceof EtcdLeaseInvalidError) this.#declareLost(`etcd no longer knows lease ${id}`);
      },
    );
  }

  #declareLost(reason: string): void {
    if (this.#state !== 'alive') return;
    this.#state = 'lost';
    this.#stopKeepalive();
    this.#log.warn('etcd lease lost', { lease: this.#id, reason, keys: this.#keys.size });
    for (const cb of this.#lostHandlers) {
      try {
        cb(reason);
      } catch (e) {
        this.#log.error('etcd lease onLost handler threw', { lease: this.#id, error: e });
      }
    }
    this.#retryMs = 250;
    this.#later(0, () => void this.#regrant());
  }

  /** Grants a new lease and writes every registered key under it; retries until it works. */
  async #regrant(): Promise<void> {
    if (this.#state !== 'lost') return;
    const old = this.#id;
    let id: string | undefined;
    try {
      id = await this.#ops.grant(this.ttlSeconds);
      if (this.#state !== 'lost') return void this.#ops.revokeLease(id).catch(() => {});
      this.#dirty.clear();
      await this.#ops.putAll([...this.#keys], id);
    } catch (e) {
      if (id !== undefined) void this.#ops.revokeLease(id).catch(() => {});
      if (this.#state !== 'lost') return;
      this.#log.debug('etcd lease re-grant failed', { lease: old, error: this.#ops.fail('lease re-grant', e).message });
      this.#later(this.#retryMs, () => void this.#regrant());
      this.#retryMs = Math.min(this.#retryMs * 2, 2000);
      return;
    }
    if (this.#state !== 'lost') return void this.#ops.revokeLease(id).catch(() => {});
    this.#id = id;
    this.#state = 'alive';
    this.#startKeepalive();
    if (this.#dirty.size > 0) this.#flush();
    // why: after an etcd restart the old lease is alive again for a TTL; its keys are ours now
    void this.#ops.revokeLease(old).catch(() => {});
    this.#log.info('etcd lease re-granted', { lease: id, old, keys: this.#keys.size });
    for (const cb of this.#restoredHandlers) {
      try {
        cb(id);
      } catch (e) {
        this.#log.error('etcd lease onRestored handler threw', { lease: id, error: e });
      }
    }
  }
}

// ---------- watches ----------
