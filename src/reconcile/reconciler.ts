/**
 * The one reconciler: makes the kernel match the stored intent. It derives each pass's desired
 * state (the local objects, the firewall's VXLAN guard, the cluster's devices and routes, the
 * kernel's links on full passes) and hands it to the engine (engine.ts), which runs every kind of
 * the registry (registry.ts) over it.
 */

import { type ClusterDesired, computeClusterDesired, WG_DEFAULT_PORT, WG_DEVICE } from '../core/cluster/desired.ts';
import type { Dataplane, PolicyCounter } from '../core/contracts.ts';
import { computeDesired, type FirewallObject, withRelay, withVxlanGuard } from '../core/desired.ts';
import type { Intent } from '../core/intent.ts';
import { VXLAN_DEVICE, VXLAN_PORT, VXLAN_VNI } from '../core/naming.ts';
import type { Logger } from '../obs/logger.ts';
import { Engine, type EngineObserver, type PassResult } from './engine.ts';
import type { Owner } from './kind.ts';
import { Links } from './kinds/links.ts';
import type { PassState } from './kinds/pass.ts';
import type { ForeignLink, LinkPlan, OrphanCandidate, StateOwner } from './plan.ts';
import { registry } from './registry.ts';

export type { Intent } from '../core/intent.ts';
export type { EngineObserver, KeyStatus, PassResult } from './engine.ts';
export type { Owner } from './kind.ts';
export { guardKey, policyKey, portsKey, selectorKey, shaperKey } from './kinds/endpoint.ts';
export { EGRESS_KEY, FIREWALL_KEY } from './kinds/host.ts';
export { bridgeKey, vethKey } from './kinds/links.ts';

export interface ReconcilerDeps {
  /** `fresh`: re-read the store (full passes); otherwise the intent as last written may be served from memory */
  loadIntent(opts?: { readonly fresh?: boolean }): Promise<Intent>;
  readonly dataplane: Dataplane;
  readonly log: Logger;
  readonly resyncMs?: number;
  /** WireGuard settings of this host (cluster networks) */
  readonly wireguard?: { readonly listenPort: number; readonly mtu: number; readonly relay?: boolean };
  /** VXLAN settings of this host (unencrypted cluster networks): device MTU, underlay address and link */
  readonly vxlan?: { readonly mtu: number; readonly local: string; readonly dev?: string };
  /**
   * The state this daemon runs with (its id is stamped into the marks it makes). Links of another
   * or an unknown state are then never pruned; while any are present the shared objects (nft
   * tables, routes, rules, cluster devices) are not removed either. Absent: every mark is ours.
   */
  readonly owner?: StateOwner;
  /** Called after each full pass with what it observed (the endpoint GC listens here). */
  afterFullPass?(report: { readonly orphans: readonly OrphanCandidate[] }): Promise<void>;
  /** told of every pass and drift (the daemon's metrics) */
  readonly observer?: EngineObserver;
}

export class Reconciler {
  readonly #deps: ReconcilerDeps;
  readonly #engine: Engine<Intent, PassState>;
  readonly #links: Links;
  /** the rejected records last logged (logged again only when they change) */
  #lastRejected = '';

  constructor(deps: ReconcilerDeps) {
    this.#deps = deps;
    this.#links = new Links(deps.dataplane, deps.log, deps.owner);
    const after = deps.afterFullPass?.bind(deps);
    const generation = deps.dataplane.kernelGeneration?.bind(deps.dataplane);
    this.#engine = new Engine<Intent, PassState>({
      ...(generation ? { kernelGeneration: generation } : {}),
      load: (opts) => deps.loadIntent(opts),
      derive: (intent, mode) => this.#derive(intent, mode),
      kinds: registry(deps.dataplane, deps.log, this.#links),
      log: deps.log,
      ...(deps.resyncMs !== undefined ? { resyncMs: deps.resyncMs } : {}),
      // shared objects (tables, routes, devices) are removed only when no foreign link is present or we made them
      shareFree: () => this.#links.foreign.length === 0,
      ...(after ? { afterFullPass: (d: PassState) => after({ orphans: d.links?.orphans ?? [] }) } : {}),
      ...(deps.observer ? { observer: deps.observer } : {}),
    });
  }

  /** First full pass now, then one every resyncMs. */
  start(): void {
    this.#engine.start();
  }

  stop(): Promise<void> {
    return this.#engine.stop();
  }

  trigger(mode: 'incremental' | 'full' = 'incremental'): void {
    this.#engine.trigger(mode);
  }

  /** A full pass now and one after each delay (ms): for changes others make to shared tables around an event. */
  resyncAfter(delaysMs: readonly number[]): void {
    this.#engine.resyncAfter(delaysMs);
  }

  /** Links of another or an unknown state that the last full pass saw and left alone. */
  foreign(): readonly ForeignLink[] {
    return this.#links.foreign;
  }

  /**
   * `truss cleanup --foreign`: a full pass that removes the links of other states (veths first,
   * then bridges), then prunes as usual. Returns what it removed and what is still there.
   */
  async cleanupForeign(): Promise<{ removed: readonly ForeignLink[]; remaining: readonly ForeignLink[] }> {
    await this.#engine.idle();
    const removed = this.#links.cleanupNext();
    await this.reconcileNow();
    // a second pass: the shared objects the first one kept for the foreign links
    await this.reconcileNow();
    return { removed, remaining: this.#links.foreign };
  }

  /** Run a full pass now and return its result (for `truss reconcile`). */
  reconcileNow(): Promise<PassResult | undefined> {
    return this.#engine.reconcileNow();
  }

  /**
   * Resolve once a pass that read intent at `revision` or later has finished and none of the
   * objects `owner` derives (a network's or an endpoint's) failed in it; reject with the
   * object's error, or on timeout. (Status keys instead of an owner: tests and tools.)
   */
  waitFor(revision: number, owner: Owner | readonly string[], timeoutMs: number): Promise<void> {
    return this.#engine.waitFor(revision, owner, timeoutMs);
  }

  status(): ReturnType<Engine<Intent, PassState>['status']> {
    return this.#engine.status();
  }

  /** Differences between intent and kernel, changing nothing. */
  check(): Promise<string[]> {
    return this.#engine.check();
  }

  /** When the oldest look the last check() answered with was made (undefined: it listed the kernel itself). */
  checkLookedAt(): string | undefined {
    return this.#engine.checkLookedAt();
  }

  async #derive(intent: Intent, mode: 'incremental' | 'full' | 'check'): Promise<PassState> {
    // the name catalog: 'pending' leaves the name/label sets as they are (selectorKind pauses)
    const names = intent.names;
    const catalog = names === 'pending' ? [] : names;
    const local = computeDesired(intent.networks, intent.endpoints, intent.policies, catalog);
    const cluster = intent.cluster === 'pending' ? undefined : this.clusterDesired(intent);
    if (cluster && mode !== 'check') this.#reportRejected(cluster);
    const dns = intent.dns && intent.dns.bridges.length > 0 ? { dnsRedirect: intent.dns } : {};
    const relay =
      this.#deps.wireguard?.relay === true && intent.networks.some((n) => n.cluster?.encrypt !== false && n.cluster);
    const firewall = withRelay(await this.#guarded(local.firewall, intent, cluster), relay ? WG_DEVICE : undefined);
    const kernel = { ...local, ...dns, firewall };
    const links = mode === 'full' ? await this.#links.plan(kernel, mode) : undefined;
    // a check lists the links only when a link kind asks (not when it answers from the last look),
    // beside the other kinds' listings; the bridge and veth kinds share the one listing
    let listing: Promise<LinkPlan> | undefined;
    const lookLinks = mode === 'check' ? () => (listing ??= this.#links.plan(kernel, 'check')) : undefined;
    return {
      intent,
      kernel,
      cluster,
      ...(links ? { links } : {}),
      ...(lookLinks ? { lookLinks } : {}),
      ...(names === 'pending' ? { namesPending: true } : {}),
    };
  }

  /**
   * The VXLAN guard admits the current peers. Before the first sync the peers are unknown:
   * the guard keeps admitting the ones the device sends to now (its FDB), so running traffic
   * is untouched while etcd is away.
   */
  async #guarded(f: FirewallObject, intent: Intent, cluster: ClusterDesired | undefined): Promise<FirewallObject> {
    const guard = (peers: readonly string[]) => ({ port: VXLAN_PORT, vni: VXLAN_VNI, peers });
    if (cluster) return withVxlanGuard(f, cluster.vxlan ? guard(cluster.vxlan.peers.map((p) => p.address)) : undefined);
    if (!intent.networks.some((n) => n.cluster && !n.cluster.encrypt)) return f;
    const peers = await this.#deps.dataplane.readVxlanPeers(VXLAN_DEVICE).catch(() => []);
    return withVxlanGuard(f, guard(peers));
  }

  /** Denied packets per endpoint id, from the policy chains' counters. */
  async policyCounters(): Promise<Record<string, PolicyCounter>> {
    const intent = await this.#deps.loadIntent();
    const desired = computeDesired(intent.networks, intent.endpoints, intent.policies);
    // why: no chain, nothing to count (status must not list a table nobody uses)
    if (desired.policies.length === 0) return {};
    const byChain = await this.#deps.dataplane.readPolicyCounters();
    const out: Record<string, PolicyCounter> = {};
    for (const p of desired.policies) {
      const c = byChain[p.name];
      if (c) out[p.endpointId] = c;
    }
    return out;
  }

  /** Frames the anti-spoofing guards dropped on this host, by reason; {} when no port is guarded. */
  guardCounters(): Promise<Readonly<Record<string, PolicyCounter>>> {
    return this.#deps.dataplane.readGuardCounters();
  }

  clusterDesired(intent: Intent): ClusterDesired {
    const local = intent.networks
      .filter((n) => n.cluster !== undefined)
      .map((n) => ({
        cluster: n.cluster?.name as string,
        subnets: [...n.ipv4, ...n.ipv6].map((d) => d.pool),
        encrypt: n.cluster?.encrypt ?? true,
        // this host's containers: a peer block holding one of them is never routed to the peer
        localAddresses: intent.endpoints
          .filter((e) => e.networkId === n.id)
          .flatMap((e) => [e.ipv4, e.ipv6].filter((a) => a !== undefined).map((a) => a.split('/')[0] as string)),
      }));
    const view =
      intent.cluster === undefined || intent.cluster === 'pending'
        ? { self: '', nodes: [], members: [], blocks: [] }
        : intent.cluster;
    const wireguard = this.#deps.wireguard ?? { listenPort: WG_DEFAULT_PORT, mtu: 1440 };
    const vxlan = this.#deps.vxlan ?? { mtu: 1450, local: '' };
    return computeClusterDesired(view, local, { wireguard, vxlan });
  }

  /** Logs the records the cluster view leaves out when that list changes (alarms as warnings). */
  #reportRejected(d: ClusterDesired): void {
    const text = JSON.stringify([d.rejected, d.alarms]);
    if (text === this.#lastRejected) return;
    this.#lastRejected = text;
    if (d.alarms.length > 0) this.#deps.log.warn('cluster records rejected: possible attack', { alarms: d.alarms });
    const plain = d.rejected.filter((r) => !d.alarms.includes(r));
    if (plain.length > 0) this.#deps.log.info('cluster records rejected', { rejected: plain });
  }
}
