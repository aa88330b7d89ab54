/**
 * What this host's WireGuard device tells about the paths to its peers, every 2 s (reach.ts
 * says what is done with it):
 *   - which peers have a live direct session: a handshake in the last 180 s (WireGuard's
 *     REJECT_AFTER_TIME), packets from them in the last 40 s (every peer sends at least a
 *     keepalive every 25 s), and no 15 s of sending without an answer. A pair of hosts behind NATs talks directly while this holds (a hole
 *     punched), through a relay otherwise. A change starts a reconcile pass.
 *   - where each peer's packets come from (the endpoint WireGuard roamed to): a host that is not
 *     behind a NAT publishes it in its node record (`seen`), which is how the others learn their
 *     NAT's outside endpoint and mapping.
 *   - this host's own NAT, from what the others saw of it (learnNat), published as `nat`; and,
 *     behind a NAT, its live direct sessions (`punched`): a pair talks directly only while both
 *     ends publish each other.
 * Only changes are written to etcd (one put of this host's node record).
 */

import type { ClusterView } from '../core/cluster/desired.ts';
import { canonicalEndpoint } from '../core/cluster/endpoint.ts';
import { type NodeRecord, nodeIdOf } from '../core/cluster/model.ts';
import { learnNat, reachable } from '../core/cluster/reach.ts';
import type { WireguardPeerStatus } from '../core/contracts.ts';
import type { Logger } from '../obs/logger.ts';

/** WireGuard's REJECT_AFTER_TIME: no session outlives it */
export const SESSION_MS = 180_000;
/** packets from a live peer arrive at least every keepalive (25 s): 40 s without any is a dead path */
export const SILENT_MS = 40_000;
/**
 * A peer that gets packets answers within WireGuard's passive keepalive (10 s) even with nothing
 * to say: sending for 15 s with nothing back is a dead path too (found sooner while traffic flows).
 */
export const UNANSWERED_MS = 15_000;
/**
 * What counts as sending: more than two keepalives (32 bytes each) in one look. Both ends send
 * their own keepalive every 25 s whether or not the other answered, so those alone prove nothing.
 */
const KEEPALIVES_BYTES = 64;
export const OBSERVE_MS = 2_000;

export interface PathsObserverDeps {
  readPeers(): Promise<readonly WireguardPeerStatus[]>;
  /**
   * Whether this host has a WireGuard device to look at (an encrypted cluster network). false: no
   * look (readPeers spawns `ip` and `wg`), taken as a device without peers, which is what a look
   * finds then. Absent: always look.
   */
  inUse?(): Promise<boolean>;
  view(): ClusterView | undefined;
  /** this host's record as published */
  own(): NodeRecord;
  /** publish this host's record with these fields changed */
  publish(patch: Pick<NodeRecord, 'seen' | 'nat' | 'punched'>): Promise<void>;
  /** the set of live direct peers changed: reconcile */
  onChange(): void;
  readonly log: Logger;
  readonly now?: () => number;
  readonly intervalMs?: number;
}

interface Counters {
  readonly rx: number;
  readonly tx: number;
  /** when rx last grew (ms) */
  readonly rxAt: number;
  /** when tx first grew after rx last did (ms): sending unanswered since */
  readonly unansweredSince?: number;
}

const sameSeen = (a: Readonly<Record<string, string>> | undefined, b: Readonly<Record<string, string>>): boolean => {
  const ka = Object.keys(a ?? {});
  return ka.length === Object.keys(b).length && ka.every((k) => a?.[k] === b[k]);
};

export class PathsObserver {
  readonly #d: PathsObserverDeps;
  readonly #seen = new Map<string, Counters>();
  #direct: readonly string[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(deps: PathsObserverDeps) {
    this.#d = deps;
  }

  /** node ids of the peers with a live direct session, sorted */
  direct(): readonly string[] {
    return this.#direct;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.tick(), this.#d.intervalMs ?? OBSERVE_MS);
    this.#timer.unref?.();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One look at the device (exported for tests); never throws. */
  async tick(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      await this.#observe();
    } catch (e) {
      this.#d.log.debug('could not read the WireGuard paths', { err: e });
    } finally {
      this.#running = false;
    }
  }

  /** The peer's counters with this sample taken in. */
  #count(p: WireguardPeerStatus, now: number): Counters {
    const prev = this.#seen.get(p.publicKey);
    const rxGrew = prev === undefined || p.rxBytes > prev.rx;
    const txGrew = prev !== undefined && p.txBytes - prev.tx > KEEPALIVES_BYTES;
    const unansweredSince = rxGrew ? undefined : (prev?.unansweredSince ?? (txGrew ? now : undefined));
    const c: Counters = {
      rx: p.rxBytes,
      tx: p.txBytes,
      rxAt: rxGrew ? now : (prev?.rxAt ?? now),
      ...(unansweredSince !== undefined ? { unansweredSince } : {}),
    };
    this.#seen.set(p.publicKey, c);
    return c;
  }

  async #observe(): Promise<void> {
    const view = this.#d.view();
    if (!view) return;
    const peers = this.#d.inUse && !(await this.#d.inUse()) ? [] : await this.#d.readPeers();
    const now = (this.#d.now ?? Date.now)();
    const byKey = new Map(view.nodes.map((n) => [n.wgPublicKey, nodeIdOf(n)]));
    const live: string[] = [];
    const seen: Record<string, string> = {};
    for (const p of peers) {
      const id = byKey.get(p.publicKey);
      if (id === undefined || id === view.self) continue;
      const c = this.#count(p, now);
      const session = p.latestHandshake > 0 && now - p.latestHandshake * 1000 < SESSION_MS;
      const answered = c.unansweredSince === undefined || now - c.unansweredSince < UNANSWERED_MS;
      if (session && now - c.rxAt < SILENT_MS && answered) live.push(id);
      const ep = session && p.endpoint !== undefined ? canonicalEndpoint(p.endpoint) : undefined;
      if (ep !== undefined) seen[id] = ep;
    }
    for (const key of this.#seen.keys()) if (!peers.some((p) => p.publicKey === key)) this.#seen.delete(key);
    live.sort();
    if (live.join() !== this.#direct.join()) {
      this.#direct = live;
      this.#d.onChange();
    }
    const own = this.#d.own();
    const nat = learnNat(own, view.nodes, own.nat);
    // a host others reach sees their true outside endpoints; one behind a NAT would only echo them
    const { nat: _, ...rest } = own;
    const open = reachable({ ...rest, ...(nat !== undefined ? { nat } : {}) });
    const publish = open ? seen : {};
    // behind a NAT: the live direct sessions, which the other end of a punched pair waits for
    const natted = new Set(view.nodes.filter((n) => !reachable(n)).map(nodeIdOf));
    const punched = open ? [] : live.filter((id) => natted.has(id));
    if (nat === own.nat && sameSeen(own.seen, publish) && punched.join() === (own.punched ?? []).join()) return;
    if (nat !== own.nat) this.#d.log.info('learnt how other hosts reach this one', { nat: nat ?? 'none' });
    await this.#d.publish({ ...(nat !== undefined ? { nat } : {}), seen: publish, punched });
  }
}
