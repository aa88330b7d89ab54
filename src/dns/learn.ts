/**
 * Upstream servers learnt from the traffic. truss computes the servers Docker's embedded DNS
 * forwards to from the host's resolv.conf and each container's --dns; it cannot compute
 * daemon.json "dns" servers (Docker dials them from the container) nor a server a program
 * queries on its own. The kernel records those instead (the seen sets of `inet truss_dns`,
 * dataplane/linux/dns-redirect.ts): every 2 s, while a dns network exists, the learner reads
 * them; a new address becomes an upstream (a responder port, then a redirect) on the pass it
 * triggers. The first query of a container to such a server is not redirected.
 *
 * Learnt servers are kept for the daemon's life (once redirected they no longer reach the seen
 * sets, so the kernel cannot say they are still used), at most LEARN_MAX of them so that the
 * computed upstreams keep their responder ports.
 */
import { formatIp, parseIp } from '../core/ip.ts';
import type { Logger } from '../obs/logger.ts';

export const LEARN_EVERY_MS = 2000;
export const LEARN_MAX = 64;

/** The canonical address, or undefined for what is never an upstream to redirect (loopback, unspecified). */
export function learnable(s: string): string | undefined {
  const ip = parseIp(s);
  if (!ip) return undefined;
  const text = formatIp(ip);
  if (ip.family === 4 && (text.startsWith('127.') || text === '0.0.0.0')) return undefined;
  if (ip.family === 6 && (text === '::1' || text === '::')) return undefined;
  return text;
}

export interface LearnerDeps {
  /** what the kernel saw queried (bare IPs); the dataplane's readDnsSeen */
  readonly read: () => Promise<readonly string[]>;
  /** a dns network exists on this host (nothing to read otherwise) */
  readonly active: () => boolean;
  /** something new was learnt: reconcile */
  readonly trigger: () => void;
  readonly log: Logger;
  readonly everyMs?: number;
}

export class UpstreamLearner {
  readonly #d: LearnerDeps;
  readonly #learnt = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #reading = false;

  constructor(d: LearnerDeps) {
    this.#d = d;
  }

  /** the servers learnt so far, in the order learnt */
  learnt(): readonly string[] {
    return [...this.#learnt];
  }

  /** One read; resolves once done (a read still running makes this one a no-op). */
  async tick(): Promise<void> {
    if (this.#reading || !this.#d.active()) return;
    this.#reading = true;
    try {
      const fresh: string[] = [];
      for (const s of await this.#d.read()) {
        const a = learnable(s);
        if (a === undefined || this.#learnt.has(a)) continue;
        if (this.#learnt.size >= LEARN_MAX) break;
        this.#learnt.add(a);
        fresh.push(a);
      }
      if (fresh.length > 0) {
        this.#d.log.info('dns upstreams learnt', { upstreams: fresh });
        this.#d.trigger();
      }
    } catch (err) {
      // the reconciler reports a broken table; this read is retried on the next tick
      this.#d.log.debug('dns seen sets not read', { err });
    } finally {
      this.#reading = false;
    }
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.tick(), this.#d.everyMs ?? LEARN_EVERY_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
