/**
 * StatusService: what `truss status` shows — the stored intent (networks, endpoints, IPAM
 * pools and addresses), the reconciler's per-object state, and whether the kernel matches.
 */
import type { ClusterBody, OwnershipBody, ReconcileBody, StatusBody } from '../core/admin-api.ts';
import type { Reconciler } from '../reconcile/reconciler.ts';
import type { Store } from '../store/store.ts';
import type { IntentRepo } from './intent.ts';

export const IPAM_POOLS_PREFIX = '/truss/v1/ipam/pools/';
export const IPAM_ADDRS_PREFIX = '/truss/v1/ipam/addrs/';

export interface StatusDeps {
  readonly repo: IntentRepo;
  readonly store: Store;
  readonly reconciler: Pick<Reconciler, 'check' | 'status' | 'reconcileNow' | 'policyCounters' | 'guardCounters'> &
    Partial<Pick<Reconciler, 'checkLookedAt'>>;
  readonly version: string;
  readonly startedAt: string;
  /** the cluster section (node, peers and their handshakes), when running with a cluster store */
  cluster?(): Promise<ClusterBody>;
  /** this daemon's state id, and the truss links of other states it leaves alone (issue 13) */
  ownership?(): OwnershipBody;
  /** the endpoints waiting for the GC grace period (service/endpoint-gc.ts) */
  orphans?(): NonNullable<StatusBody['orphans']>;
  /** names across hosts: the Docker follower, the catalog, truss DNS */
  names?(): NonNullable<StatusBody['names']>;
}

export class StatusService {
  readonly #d: StatusDeps;
  constructor(deps: StatusDeps) {
    this.#d = deps;
  }

  /**
   * Never depends on a successful reconcile pass or kernel read: each part that fails is left
   * at its empty value and its error is listed under `errors`, so status shows all it can.
   * `brief` (what human `truss status` reads): no address list (each pool says how many it has)
   * and only the reconciler objects in error; `omitted` counts what was left out.
   */
  async status(opts: { readonly brief?: boolean } = {}): Promise<StatusBody> {
    const errs: string[] = [];
    const safe = <T>(what: string, p: () => Promise<T>, empty: T): Promise<T> =>
      Promise.resolve()
        .then(p)
        .catch((e: unknown) => {
          errs.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
          return empty;
        });
    const none = { items: [], revision: 0 };
    const [intent, pools, addrs, problems, policyCounters, guardCounters, cluster] = await Promise.all([
      safe('stored intent', () => this.#d.repo.snapshot(), undefined),
      safe('IPAM pools', () => this.#d.store.list(IPAM_POOLS_PREFIX), none),
      safe('IPAM addresses', () => this.#d.store.list(IPAM_ADDRS_PREFIX), none),
      safe('kernel check', () => this.#d.reconciler.check(), undefined),
      safe('policy counters', () => this.#d.reconciler.policyCounters(), {}),
      safe('anti-spoofing counters', () => this.#d.reconciler.guardCounters(), {}),
      this.#d.cluster ? safe('cluster', this.#d.cluster, undefined) : undefined,
    ]);
    // why not decoded here: this daemon wrote these records, and the admin server checks the
    // whole reply against the contract (a record that does not fit is logged there)
    const parse = <T>(items: readonly { value: string }[]): T[] =>
      items.flatMap((kv) => {
        try {
          const record: T = JSON.parse(kv.value);
          return [record];
        } catch {
          return [];
        }
      });
    const addresses = parse<StatusBody['addresses'][number]>(addrs.items);
    const used = new Map<string, number>();
    for (const a of addresses) used.set(a.poolId, (used.get(a.poolId) ?? 0) + 1);
    const reconciler = this.#d.reconciler.status();
    const listed = opts.brief
      ? Object.fromEntries(Object.entries(reconciler.objects).filter(([, o]) => o.state !== 'ok'))
      : reconciler.objects;
    return {
      version: this.#d.version,
      startedAt: this.#d.startedAt,
      revision: intent?.revision,
      networks: intent?.networks ?? [],
      endpoints: intent?.endpoints ?? [],
      policies: intent?.policies ?? [],
      policyCounters,
      /** anti-spoofing drops on this host by reason (mac, ethertype, arp, ip4, ip6, nd) */
      guardCounters,
      pools: parse<StatusBody['pools'][number]>(pools.items).map((p) => ({ ...p, used: used.get(p.id) ?? 0 })),
      addresses: opts.brief ? [] : addresses,
      kernel: problems
        ? { inSync: problems.length === 0, problems, ...this.#lookedAt() }
        : { inSync: false, problems: [] },
      reconciler: opts.brief ? { ...reconciler, objects: listed } : reconciler,
      ...(this.#d.ownership ? { ownership: this.#d.ownership() } : {}),
      ...(cluster ? { cluster } : {}),
      ...(this.#d.orphans ? { orphans: this.#d.orphans() } : {}),
      ...(this.#d.names ? { names: this.#d.names() } : {}),
      /** what could not be read (status shows the rest) */
      ...(errs.length > 0 ? { errors: errs } : {}),
      ...(opts.brief
        ? {
            omitted: {
              addresses: addresses.length,
              okObjects: Object.keys(reconciler.objects).length - Object.keys(listed).length,
            },
          }
        : {}),
    };
  }

  /** the age of the listing the last check rested on, when it was an earlier one */
  #lookedAt(): { lookedAt?: string } {
    const at = this.#d.reconciler.checkLookedAt?.();
    return at === undefined ? {} : { lookedAt: at };
  }

  async reconcile(): Promise<ReconcileBody> {
    const pass = await this.#d.reconciler.reconcileNow();
    const problems = await this.#d.reconciler.check();
    return { pass, kernel: { inSync: problems.length === 0, problems, ...this.#lookedAt() } };
  }
}
