/**
 * EndpointGc: reclaims endpoints Docker forgot to tell truss about. libnetwork swallows
 * Leave/DeleteEndpoint failures and, after a daemon crash, force-removes stale sandboxes
 * without loading the plugin at all, so a joined endpoint can outlive its container. The
 * reconciler's full pass reports such orphan candidates; a candidate is reclaimed only
 * after it was seen on two passes at least `graceMs` apart (Calico's two-observation
 * rule) and re-validated from the store right before: its intent is deleted (the
 * reconciler then removes the veth) and its IPAM endpoint address released.
 */
import { shortId } from '../core/naming.ts';
import type { Logger } from '../obs/logger.ts';
import type { OrphanCandidate } from '../reconcile/plan.ts';
import type { IntentRepo } from './intent.ts';

export interface EndpointGcDeps {
  readonly repo: IntentRepo;
  /** release an endpoint address truss's IPAM still holds (no-op when it holds none) */
  releaseAddress(address: string): Promise<unknown>;
  /** ask for a reconcile pass after intent was removed */
  trigger(): void;
  readonly log: Logger;
  readonly graceMs: number;
  readonly now?: () => number;
}

export class EndpointGc {
  readonly #d: EndpointGcDeps;
  readonly #firstSeen = new Map<string, number>();
  constructor(deps: EndpointGcDeps) {
    this.#d = deps;
  }

  /** Feed one full pass's candidates; returns how many endpoints were reclaimed. */
  async observe(orphans: readonly OrphanCandidate[]): Promise<number> {
    const now = (this.#d.now ?? Date.now)();
    const seen = new Set<string>();
    let reclaimed = 0;
    for (const o of orphans) {
      const key = `${o.networkId}/${o.endpointId}`;
      seen.add(key);
      const first = this.#firstSeen.get(key);
      if (first === undefined) {
        this.#firstSeen.set(key, now);
        this.#d.log.info('endpoint looks orphaned; reclaiming after the grace period', {
          nid: shortId(o.networkId),
          eid: shortId(o.endpointId),
          reason: o.reason,
          graceMs: this.#d.graceMs,
        });
      } else if (now - first >= this.#d.graceMs && (await this.#reclaim(o))) {
        this.#firstSeen.delete(key);
        reclaimed++;
      }
    }
    for (const key of [...this.#firstSeen.keys()]) if (!seen.has(key)) this.#firstSeen.delete(key);
    if (reclaimed > 0) this.#d.trigger();
    return reclaimed;
  }

  async #reclaim(o: OrphanCandidate): Promise<boolean> {
    const ep = await this.#d.repo.getEndpoint(o.networkId, o.endpointId);
    if (!ep || ep.sandboxKey === undefined) return false; // changed meanwhile: not an orphan
    await this.#d.repo.deleteEndpoint(o.networkId, o.endpointId);
    for (const a of [ep.ipv4, ep.ipv6]) if (a !== undefined) await this.#d.releaseAddress(a);
    this.#d.log.warn('reclaimed orphaned endpoint', {
      nid: shortId(o.networkId),
      eid: shortId(o.endpointId),
      reason: o.reason,
      addresses: [ep.ipv4, ep.ipv6].filter(Boolean),
    });
    return true;
  }
}
