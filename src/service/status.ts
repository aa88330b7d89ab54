/**
 * StatusService: what `truss status` shows — the stored intent (networks, endpoints, IPAM
 * pools and addresses), the reconciler's per-object state, and whether the kernel matches.
 */
import type { Reconciler } from '../reconcile/reconciler.ts';
import type { Store } from '../store/store.ts';
import type { IntentRepo } from './intent.ts';

export const IPAM_POOLS_PREFIX = '/truss/v1/ipam/pools/';
export const IPAM_ADDRS_PREFIX = '/truss/v1/ipam/addrs/';

export interface StatusDeps {
  readonly repo: IntentRepo;
  readonly store: Store;
  readonly reconciler: Pick<Reconciler, 'check' | 'status' | 'reconcileNow' | 'policyCounters' | 'guardCounters'>;
  readonly version: string;
  readonly startedAt: string;
  /** the cluster section (node, peers and their handshakes), when running with a cluster store */
  cluster?(): Promise<Record<string, unknown>>;
  /** this daemon's state id, and the truss links of other states it leaves alone (issue 13) */
  ownership?(): Record<string, unknown>;
}

export class StatusService {
  readonly #d: StatusDeps;
  constructor(deps: StatusDeps) {
    this.#d = deps;
  }

  async status(): Promise<Record<string, unknown>> {
    const [intent, pools, addrs, problems, policyCounters, guardCounters] = await Promise.all([
      this.#d.repo.snapshot(),
      this.#d.store.list(IPAM_POOLS_PREFIX),
      this.#d.store.list(IPAM_ADDRS_PREFIX),
      this.#d.reconciler.check(),
      this.#d.reconciler.policyCounters(),
      this.#d.reconciler.guardCounters(),
    ]);
    return {
      version: this.#d.version,
      startedAt: this.#d.startedAt,
      revision: intent.revision,
      networks: intent.networks,
      endpoints: intent.endpoints,
      policies: intent.policies,
      policyCounters,
      /** anti-spoofing drops on this host by reason (mac, ethertype, arp, ip4, ip6, nd) */
      guardCounters,
      pools: pools.items.map((kv) => JSON.parse(kv.value) as unknown),
      addresses: addrs.items.map((kv) => JSON.parse(kv.value) as unknown),
      kernel: { inSync: problems.length === 0, problems },
      reconciler: this.#d.reconciler.status(),
      ...(this.#d.ownership ? { ownership: this.#d.ownership() } : {}),
      ...(this.#d.cluster ? { cluster: await this.#d.cluster() } : {}),
    };
  }

  async reconcile(): Promise<Record<string, unknown>> {
    const pass = await this.#d.reconciler.reconcileNow();
    const problems = await this.#d.reconciler.check();
    return { pass, kernel: { inSync: problems.length === 0, problems } };
  }
}
