/**
 * EndpointGc: reclaims endpoints Docker forgot, or never learnt, about.
 *
 * - Joined orphans: libnetwork swallows Leave/DeleteEndpoint failures and, after a daemon
 *   crash, force-removes stale sandboxes without loading the plugin, so a joined endpoint can
 *   outlive its container. The reconciler's full pass reports them (its veth is gone, or its
 *   container end is back in the host namespace). They are reclaimed only when the sandbox is
 *   really gone: the SandboxKey file is absent or no longer a network namespace (nsfs). While
 *   it is still a namespace the endpoint is kept (its veth may have been removed by someone
 *   else: H3). When truss cannot see Docker's netns directory at all (the managed plugin),
 *   the veth evidence alone counts, as before.
 * - Unjoined endpoints (M1): Docker joins within milliseconds of CreateEndpoint and deletes
 *   at once after Leave, so an endpoint unjoined for a whole grace period is a leak: a
 *   CreateEndpoint whose reply was lost (kill -9 while programming), or a DeleteEndpoint
 *   that failed on a full disk (Docker only logs it and never retries).
 *
 * Same safety for both: a candidate is reclaimed only after it was seen on two full passes
 * at least `graceMs` apart with the same stored record (Calico's two-observation rule), and
 * the delete compares that record (a Join, Leave or re-create meanwhile wins). Its addresses
 * are released only if the IPAM allocated them before the endpoint was created (else they
 * were handed to a newer endpoint after Docker released them). A store failure (a full disk)
 * leaves the candidate for the next pass: failed reclaims and releases are retried.
 */
import { statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { EndpointSpec } from '../core/model.ts';
import { shortId } from '../core/naming.ts';
import type { Logger } from '../obs/logger.ts';
import type { OrphanCandidate } from '../reconcile/plan.ts';
import type { IntentRepo } from './intent.ts';

/** statfs f_type of a mounted network namespace file (linux/magic.h NSFS_MAGIC) */
const NSFS_MAGIC = 0x6e736673;

export type SandboxState = 'alive' | 'gone' | 'unknown';

/** Is the SandboxKey still a network namespace? 'unknown': its directory is not visible here. */
export function sandboxState(path: string): SandboxState {
  try {
    return statfsSync(path).type === NSFS_MAGIC ? 'alive' : 'gone';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return 'unknown';
  }
  try {
    statfsSync(dirname(path));
    return 'gone';
  } catch {
    return 'unknown';
  }
}

export interface EndpointGcDeps {
  readonly repo: IntentRepo;
  /**
   * Release an endpoint address truss's IPAM still holds, if it was allocated before store
   * revision `allocatedBefore` (no-op when it holds none).
   */
  releaseAddress(address: string, allocatedBefore: number): Promise<unknown>;
  /** ask for a reconcile pass after intent was removed */
  trigger(): void;
  readonly log: Logger;
  readonly graceMs: number;
  readonly now?: () => number;
  /** default: sandboxState (statfs of the SandboxKey) */
  readonly sandbox?: (key: string) => SandboxState;
}

interface Seen {
  readonly since: number;
  readonly record: string;
  readonly reason: string;
  /** logged once that its sandbox still exists */
  held?: boolean;
}

export interface PendingOrphan {
  readonly networkId: string;
  readonly endpointId: string;
  readonly reason: string;
  /** first seen orphaned (ISO 8601) */
  readonly since: string;
  /** reclaimed by the first full pass after this */
  readonly deadline: string;
  /** its sandbox is still a network namespace: kept past the deadline */
  readonly held?: true;
}

export class EndpointGc {
  readonly #d: EndpointGcDeps;
  readonly #seen = new Map<string, Seen>();
  /** addresses of reclaimed endpoints whose release failed (store error): retried each pass */
  readonly #releases = new Map<string, number>();
  constructor(deps: EndpointGcDeps) {
    this.#d = deps;
  }

  /** Feed one full pass's joined orphans (unjoined ones come from the intent); returns how many were reclaimed. */
  async observe(orphans: readonly OrphanCandidate[]): Promise<number> {
    const now = (this.#d.now ?? Date.now)();
    const endpoints = (await this.#d.repo.snapshot()).endpoints;
    const byKey = new Map(endpoints.map((e) => [`${e.networkId}/${e.id}`, e]));
    const candidates = new Map<string, { ep: EndpointSpec; reason: string }>();
    for (const e of endpoints) {
      if (e.sandboxKey === undefined)
        candidates.set(`${e.networkId}/${e.id}`, { ep: e, reason: 'no container joined it' });
    }
    for (const o of orphans) {
      const ep = byKey.get(`${o.networkId}/${o.endpointId}`);
      if (ep?.sandboxKey !== undefined) candidates.set(`${o.networkId}/${o.endpointId}`, { ep, reason: o.reason });
    }
    let reclaimed = 0;
    for (const [key, { ep, reason }] of candidates) {
      const record = JSON.stringify(ep);
      const seen = this.#seen.get(key);
      if (!seen || seen.record !== record) {
        this.#seen.set(key, { since: now, record, reason });
        const log = ep.sandboxKey === undefined ? this.#d.log.debug : this.#d.log.info;
        log.call(this.#d.log, 'endpoint looks orphaned; reclaiming after the grace period', {
          ...ids(ep),
          reason,
          graceMs: this.#d.graceMs,
        });
      } else if (now - seen.since >= this.#d.graceMs && this.#mayReclaim(ep, seen)) {
        if (await this.#reclaim(ep, reason)) reclaimed++;
        this.#seen.delete(key);
      }
    }
    for (const key of [...this.#seen.keys()]) if (!candidates.has(key)) this.#seen.delete(key);
    await this.#retryReleases();
    if (reclaimed > 0) this.#d.trigger();
    return reclaimed;
  }

  /** How many candidates wait for their grace period, and releases for a retry (status, tests). */
  pending(): { readonly candidates: number; readonly releases: number } {
    return { candidates: this.#seen.size, releases: this.#releases.size };
  }

  /**
   * The endpoints waiting for their grace period (status): each is reclaimed by the first full
   * pass after its deadline, unless Docker joins, leaves or deletes it first (or its sandbox is
   * still a network namespace: `held`).
   */
  orphans(): readonly PendingOrphan[] {
    return [...this.#seen.entries()].map(([key, s]) => {
      const [networkId = '', endpointId = ''] = key.split('/');
      return {
        networkId,
        endpointId,
        reason: s.reason,
        since: new Date(s.since).toISOString(),
        deadline: new Date(s.since + this.#d.graceMs).toISOString(),
        ...(s.held ? { held: true } : {}),
      };
    });
  }

  #mayReclaim(ep: EndpointSpec, seen: Seen): boolean {
    if (ep.sandboxKey === undefined) return true;
    const state = (this.#d.sandbox ?? sandboxState)(ep.sandboxKey);
    if (state !== 'alive') return true;
    if (!seen.held) {
      seen.held = true;
      this.#d.log.warn('endpoint interface is gone but its sandbox is still a network namespace: kept', {
        ...ids(ep),
        sandboxKey: ep.sandboxKey,
      });
    }
    return false;
  }

  async #reclaim(ep: EndpointSpec, reason: string): Promise<boolean> {
    let createdAt: number | undefined;
    try {
      createdAt = await this.#d.repo.deleteEndpointIfUnchanged(ep);
    } catch (err) {
      this.#d.log.warn('could not reclaim an orphaned endpoint; retrying on the next pass', { ...ids(ep), err });
      return false;
    }
    if (createdAt === undefined) return false; // changed meanwhile: a Join, Leave or delete won
    for (const a of [ep.ipv4, ep.ipv6]) if (a !== undefined) this.#releases.set(a, createdAt);
    this.#d.log.warn('reclaimed orphaned endpoint', {
      ...ids(ep),
      reason,
      addresses: [ep.ipv4, ep.ipv6].filter(Boolean),
    });
    return true;
  }

  async #retryReleases(): Promise<void> {
    for (const [address, before] of this.#releases) {
      try {
        await this.#d.releaseAddress(address, before);
        this.#releases.delete(address);
      } catch (err) {
        this.#d.log.warn('could not release a reclaimed address; retrying on the next pass', { address, err });
      }
    }
  }
}

const ids = (ep: EndpointSpec) => ({ nid: shortId(ep.networkId), eid: shortId(ep.id) });
