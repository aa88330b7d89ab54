/**
 * The one reconciler: makes the kernel match the stored intent. Passes are serialised;
 * a request that wrote intent at revision R waits (bounded) for a pass that read R.
 *   - incremental pass: converge objects whose desired form changed since they were last
 *     applied (or that failed), remove objects that are no longer desired;
 *   - full pass (start-up, every resyncMs, on demand): observe every truss-owned kernel
 *     object, repair drift, prune leftovers that carry truss's mark.
 * Order: bridges -> veths -> firewall -> policies -> guards -> shapers -> published ports -> cluster
 * (WireGuard, VXLAN, routes) -> egress (truss.egress.via policy routing: its routes need the
 * bridges), then removals veths -> bridges.
 * Failures keep the
 * object dirty and are retried with backoff; other objects are unaffected.
 */

import {
  type ClusterDesired,
  type ClusterView,
  computeClusterDesired,
  type VxlanObject,
  WG_DEFAULT_PORT,
  WG_DEVICE,
  type WireguardObject,
} from '../core/cluster/desired.ts';
import {
  type BridgeObject,
  computeDesired,
  type DesiredKernel,
  type FirewallObject,
  type VethObject,
  withVxlanGuard,
} from '../core/desired.ts';
import { computeEgress } from '../core/egress.ts';
import { errors, TrussError } from '../core/errors.ts';
import type { EndpointSpec, NetworkPolicyRecord, NetworkSpec } from '../core/model.ts';
import { FOREIGN_FIX, VXLAN_DEVICE, VXLAN_PORT, VXLAN_VNI } from '../core/naming.ts';
import type { Dataplane, PolicyCounter } from '../core/ports.ts';
import type { Logger } from '../obs/logger.ts';
import { AppliedSet, fingerprint } from './applied.ts';
import { type EndpointKind, type EndpointKinds, endpointKinds } from './endpoint-kinds.ts';
import { type ForeignLink, type OrphanCandidate, planLinks, type StateOwner } from './plan.ts';

export interface Intent {
  readonly networks: readonly NetworkSpec[];
  readonly endpoints: readonly EndpointSpec[];
  readonly policies: readonly NetworkPolicyRecord[];
  readonly revision: number;
  /**
   * the shared cluster state as this host last saw it; absent without a cluster store;
   * 'pending' until the first sync (cluster objects are then left exactly as they are)
   */
  readonly cluster?: ClusterView | 'pending';
}

export interface ReconcilerDeps {
  /** `fresh`: re-read the store (full passes); otherwise the intent as last written may be served from memory */
  loadIntent(opts?: { readonly fresh?: boolean }): Promise<Intent>;
  readonly dataplane: Dataplane;
  readonly log: Logger;
  readonly resyncMs?: number;
  /** WireGuard settings of this host (cluster networks) */
  readonly wireguard?: { readonly listenPort: number; readonly mtu: number };
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
}

export interface KeyStatus {
  readonly state: 'ok' | 'error';
  readonly lastError?: string;
  readonly code?: string;
  readonly updatedAt: string;
}

export interface PassResult {
  readonly full: boolean;
  readonly revision: number;
  readonly changes: number;
  readonly failures: number;
  readonly durationMs: number;
}

interface Waiter {
  readonly revision: number;
  readonly keys: readonly string[];
  resolve(): void;
  reject(e: unknown): void;
}

const FIREWALL_KEY = 'firewall';
/** check() waits at most this long for a running pass */
const CHECK_WAIT_MS = 10_000;

/** Resolves when p settles or after ms, whichever is first (the timer does not hold the process). */
function settledWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((r) => {
    timer = setTimeout(r, ms);
  });
  return Promise.race([
    p.then(
      () => {},
      () => {},
    ),
    late,
  ]).finally(() => clearTimeout(timer));
}
const ABSENT = 'absent';
export const bridgeKey = (name: string): string => `bridge:${name}`;
const WIREGUARD_KEY = 'wireguard';
const VXLAN_KEY = 'vxlan';
const ROUTES_KEY = 'routes';
/** truss.egress.via: every network's policy-routing rules and table, one whole object */
export const EGRESS_KEY = 'egress';
export const vethKey = (name: string): string => `veth:${name}`;
export { guardKey, policyKey, portsKey, shaperKey } from './endpoint-kinds.ts';
export { FIREWALL_KEY };

export class Reconciler {
  readonly #deps: ReconcilerDeps;
  /** fingerprints of the whole objects: firewall, policy table, WireGuard, VXLAN, routes */
  readonly #applied = new Map<string, string>();
  readonly #bridges = new AppliedSet<BridgeObject>();
  readonly #veths = new AppliedSet<VethObject>();
  readonly #kinds: EndpointKinds;
  readonly #status = new Map<string, KeyStatus>();
  readonly #failed = new Map<string, unknown>();
  #waiters: Waiter[] = [];
  #reconciled = -1;
  #running: Promise<void> | undefined;
  /** the rejected records last logged (logged again only when they change) */
  #lastRejected = '';
  #queued: 'none' | 'incremental' | 'full' = 'none';
  #timer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #soonTimers = new Set<NodeJS.Timeout>();
  #backoffMs = 0;
  #stopped = false;
  #lastPass: PassResult | undefined;
  /** the start-up pass: what a restart had to repair (0 changes when the kernel was right) */
  #firstPass: PassResult | undefined;
  /** truss links of another or an unknown state, as the last full pass saw them */
  #foreign: readonly ForeignLink[] = [];
  /** `truss cleanup --foreign` asked: the next full pass removes them */
  #cleanupForeign = false;
  #removedForeign: ForeignLink[] = [];

  constructor(deps: ReconcilerDeps) {
    this.#deps = deps;
    this.#kinds = endpointKinds(deps.dataplane, deps.log);
  }

  /** First full pass now, then one every resyncMs. */
  start(): void {
    this.trigger('full');
    const every = this.#deps.resyncMs ?? 30_000;
    this.#timer = setInterval(() => this.trigger('full'), every);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#retryTimer);
    for (const t of this.#soonTimers) clearTimeout(t);
    await this.#running;
    for (const w of this.#waiters) w.reject(errors.reconcileTimeout('truss is shutting down'));
    this.#waiters = [];
  }

  trigger(mode: 'incremental' | 'full' = 'incremental'): void {
    if (this.#stopped) return;
    if (mode === 'full' || this.#queued === 'none') this.#queued = mode;
    if (!this.#running) this.#running = this.#loop();
  }

  /** A full pass now and one after each delay (ms): for changes others make to shared tables around an event. */
  resyncAfter(delaysMs: readonly number[]): void {
    this.trigger('full');
    for (const ms of delaysMs) {
      const t = setTimeout(() => {
        this.#soonTimers.delete(t);
        this.trigger('full');
      }, ms);
      t.unref();
      this.#soonTimers.add(t);
    }
  }

  /** Links of another or an unknown state that the last full pass saw and left alone. */
  foreign(): readonly ForeignLink[] {
    return this.#foreign;
  }

  /**
   * `truss cleanup --foreign`: a full pass that removes the links of other states (veths first,
   * then bridges), then prunes as usual. Returns what it removed and what is still there.
   */
  async cleanupForeign(): Promise<{ removed: readonly ForeignLink[]; remaining: readonly ForeignLink[] }> {
    while (this.#running) await this.#running;
    this.#cleanupForeign = true;
    this.#removedForeign = [];
    await this.reconcileNow();
    // a second pass: the shared objects the first one kept for the foreign links
    const removed = this.#removedForeign;
    await this.reconcileNow();
    return { removed, remaining: this.#foreign };
  }

  /** Shared objects (tables, routes, devices) are removed only when no foreign link is present or we made them. */
  #mayRemoveShared(madeByUs: boolean): boolean {
    return madeByUs || this.#foreign.length === 0;
  }

  /** Run a full pass now and return its result (for `truss reconcile`). */
  async reconcileNow(): Promise<PassResult | undefined> {
    this.trigger('full');
    while (this.#running) await this.#running;
    return this.#lastPass;
  }

  /**
   * Resolve once a pass that read intent at `revision` or later has finished and none of
   * `keys` failed in it; reject with the key's error, or on timeout.
   */
  waitFor(revision: number, keys: readonly string[], timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(errors.reconcileTimeout(`the kernel was not programmed within ${timeoutMs} ms; see truss status`));
      }, timeoutMs);
      const waiter: Waiter = {
        revision,
        keys,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.#waiters.push(waiter);
      this.trigger('incremental');
    });
  }

  status(): {
    reconciledRevision: number;
    lastPass?: PassResult;
    firstPass?: PassResult;
    objects: Record<string, KeyStatus>;
  } {
    return {
      reconciledRevision: this.#reconciled,
      ...(this.#lastPass ? { lastPass: this.#lastPass } : {}),
      ...(this.#firstPass ? { firstPass: this.#firstPass } : {}),
      objects: Object.fromEntries(this.#status),
    };
  }

  /** Differences between intent and kernel, changing nothing. */
  async check(): Promise<string[]> {
    // why: read mid-pass, the kernel shows what the running pass is about to fix (bounded: a
    // stuck pass must not stall status)
    if (this.#running) await settledWithin(this.#running, CHECK_WAIT_MS);
    const intent = await this.#deps.loadIntent();
    const desired = await this.#desired(intent);
    const plan = planLinks(desired, await this.#deps.dataplane.listLinks(), this.#deps.owner);
    const fw = desired.firewall.networks.length > 0 ? await this.#deps.dataplane.checkFirewall(desired.firewall) : [];
    const pol = await this.#deps.dataplane.checkPolicies(desired.policies);
    const eg = await this.#deps.dataplane.checkEgress(computeEgress(intent.networks));
    const bw = (
      await this.#deps.dataplane
        .checkShapers(desired.shapers)
        .catch((e: unknown) =>
          desired.shapers.length === 0 ? { problems: [] } : { problems: [`bandwidth limits could not be read: ${e}`] },
        )
    ).problems;
    const pub = await this.#deps.dataplane.checkPorts(desired.ports);
    const guard = (await this.#deps.dataplane.checkGuards(desired.guards)).problems;
    const local = [...plan.problems, ...fw, ...pol.problems, ...guard, ...pub.problems, ...bw, ...eg];
    if (intent.cluster === 'pending') return [...local, 'cluster store not synced yet'];
    const cd = this.clusterDesired(intent);
    // why: one unreadable cluster device must not hide the rest (status shows what it can)
    const safe = (what: string, p: Promise<readonly string[]>) =>
      p.catch((e: unknown) => [`${what} could not be checked: ${e instanceof Error ? e.message : String(e)}`]);
    const wg = await safe('WireGuard device', this.#deps.dataplane.checkWireguard(cd.wireguard, WG_DEVICE));
    const vx = await safe('VXLAN device', this.#deps.dataplane.checkVxlan(cd.vxlan, VXLAN_DEVICE));
    const routes = await safe('cluster routes', this.#deps.dataplane.checkRoutes(cd.routes));
    return [...local, ...wg, ...vx, ...routes];
  }

  /** The local kernel objects, the firewall with its VXLAN guard for the cluster as known. */
  async #desired(intent: Intent): Promise<DesiredKernel> {
    const desired = computeDesired(intent.networks, intent.endpoints, intent.policies);
    return { ...desired, firewall: await this.#guarded(desired.firewall, intent) };
  }

  /**
   * The VXLAN guard admits the current peers. Before the first sync the peers are unknown:
   * the guard keeps admitting the ones the device sends to now (its FDB), so running traffic
   * is untouched while etcd is away.
   */
  async #guarded(f: FirewallObject, intent: Intent): Promise<FirewallObject> {
    const guard = (peers: readonly string[]) => ({ port: VXLAN_PORT, vni: VXLAN_VNI, peers });
    if (intent.cluster !== 'pending') {
      const vx = this.clusterDesired(intent).vxlan;
      return withVxlanGuard(f, vx ? guard(vx.peers.map((p) => p.address)) : undefined);
    }
    if (!intent.networks.some((n) => n.cluster && !n.cluster.encrypt)) return f;
    const peers = await this.#deps.dataplane.readVxlanPeers(VXLAN_DEVICE).catch(() => []);
    return withVxlanGuard(f, guard(peers));
  }

  /** Denied packets per endpoint id, from the policy chains' counters. */
  async policyCounters(): Promise<Record<string, PolicyCounter>> {
    const intent = await this.#deps.loadIntent();
    const desired = computeDesired(intent.networks, intent.endpoints, intent.policies);
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

  async #loop(): Promise<void> {
    try {
      while (this.#queued !== 'none' && !this.#stopped) {
        const full = this.#queued === 'full';
        this.#queued = 'none';
        try {
          await this.#pass(full);
        } catch (e) {
          // loading intent failed (store unavailable): waiters time out, retry later
          this.#deps.log.error('reconcile pass failed', { err: e, full });
          this.#scheduleRetry();
        }
      }
    } finally {
      this.#running = undefined;
    }
  }

  async #pass(full: boolean): Promise<void> {
    const started = performance.now();
    const intent = await this.#deps.loadIntent({ fresh: full });
    const desired = await this.#desired(intent);
    const before = this.#failed.size;
    this.#failed.clear();
    let changes = 0;
    let plan = full
      ? planLinks(desired, await this.#deps.dataplane.listLinks(), this.#deps.owner)
      : this.#incrementalPlan(desired);
    if (full) {
      if (this.#cleanupForeign) plan = await this.#removeForeign(desired, plan);
      this.#noteForeign(plan.foreign);
    }
    if (full) for (const p of plan.problems) this.#deps.log.warn('kernel drift', { problem: p });
    const failedBridges = new Set<string>();
    for (const b of plan.ensureBridges) {
      if (await this.#applyTo(this.#bridges, bridgeKey(b.name), b, () => this.#deps.dataplane.ensureBridge(b)))
        changes++;
      else failedBridges.add(b.name);
    }
    for (const v of plan.ensureVeths) {
      const run = failedBridges.has(v.bridge)
        ? () => Promise.reject(errors.reconcileFailed(`bridge ${v.bridge} could not be programmed`))
        : () => this.#deps.dataplane.ensureVeth(v);
      if (await this.#applyTo(this.#veths, vethKey(v.name), v, run)) changes++;
    }
    changes += await this.#firewall(desired, full);
    const k = this.#kinds;
    changes += await this.#perEndpoint(k.policies, desired, full);
    changes += await this.#perEndpoint(k.guards, desired, full);
    changes += await this.#perEndpoint(k.shapers, desired, full);
    changes += await this.#perEndpoint(k.ports, desired, full);
    changes += await this.#cluster(intent, full);
    changes += await this.#egress(intent, full);
    for (const r of plan.remove) {
      const key = r.kind === 'bridge' ? bridgeKey(r.name) : vethKey(r.name);
      const run =
        r.kind === 'bridge'
          ? () => this.#deps.dataplane.removeBridge(r.name)
          : () => this.#deps.dataplane.removeVeth(r.name);
      if (await this.#attempt(key, run)) {
        (r.kind === 'bridge' ? this.#bridges : this.#veths).delete(r.name);
        this.#status.delete(key);
        changes++;
      }
    }
    if (full) this.#markSteady(desired);
    this.#reconciled = intent.revision;
    this.#lastPass = {
      full,
      revision: intent.revision,
      changes,
      failures: this.#failed.size,
      durationMs: Math.round(performance.now() - started),
    };
    const startUp = full && this.#firstPass === undefined;
    if (startUp) this.#firstPass = this.#lastPass;
    this.#deps.log.debug('reconcile pass', { ...this.#lastPass });
    if (startUp) this.#deps.log.info('start-up reconcile pass', { ...this.#lastPass });
    else if (this.#failed.size > 0 || before > 0) this.#deps.log.info('reconcile pass', { ...this.#lastPass });
    this.#settleWaiters();
    if (this.#failed.size > 0) this.#scheduleRetry();
    else this.#backoffMs = 0;
    if (full && this.#deps.afterFullPass) await this.#deps.afterFullPass({ orphans: plan.orphans });
  }

  #incrementalPlan(desired: DesiredKernel): ReturnType<typeof planLinks> {
    const bridges = this.#bridges.diff(desired.bridges);
    const veths = this.#veths.diff(desired.veths);
    return {
      ensureBridges: bridges.changed,
      ensureVeths: veths.changed,
      // veths before bridges: a bridge goes last
      remove: [
        ...veths.stale.map((name) => ({ name, kind: 'veth' })),
        ...bridges.stale.map((name) => ({ name, kind: 'bridge' })),
      ],
      problems: [],
      orphans: [],
      foreign: [],
    };
  }

  /** Removes the foreign links (veths before bridges) and plans again from the kernel. */
  async #removeForeign(
    desired: DesiredKernel,
    plan: ReturnType<typeof planLinks>,
  ): Promise<ReturnType<typeof planLinks>> {
    this.#cleanupForeign = false;
    const dp = this.#deps.dataplane;
    const order = [...plan.foreign].sort((a, b) => Number(a.kind === 'bridge') - Number(b.kind === 'bridge'));
    for (const f of order) {
      try {
        if (f.kind === 'bridge') await dp.removeBridge(f.name);
        else await dp.removeVeth(f.name);
        this.#removedForeign.push(f);
      } catch (e) {
        this.#deps.log.warn('could not remove a foreign truss link', { link: f.name, err: e });
      }
    }
    if (this.#removedForeign.length > 0) {
      this.#deps.log.warn('removed truss links of another state', {
        count: this.#removedForeign.length,
        links: this.#removedForeign.map((f) => f.name),
      });
    }
    return planLinks(desired, await dp.listLinks(), this.#deps.owner);
  }

  /** Says loudly (warn) when the set of foreign links changes; they are in status meanwhile. */
  #noteForeign(found: readonly ForeignLink[]): void {
    const key = (l: readonly ForeignLink[]) => l.map((f) => f.name).join(',');
    const changed = key(found) !== key(this.#foreign);
    this.#foreign = found;
    if (!changed) return;
    if (found.length === 0) {
      this.#deps.log.info('no truss objects of another state are left; pruning as usual');
      return;
    }
    const states = [...new Set(found.map((f) => f.state ?? 'unstamped'))];
    this.#deps.log.warn('truss objects of another state found: leaving them alone, pruning nothing shared', {
      count: found.length,
      links: found.map((f) => f.name),
      states,
      ownState: this.#deps.owner?.stateId,
      fix: FOREIGN_FIX,
    });
  }

  async #firewall(desired: DesiredKernel, full: boolean): Promise<number> {
    const fw = desired.firewall;
    const dp = this.#deps.dataplane;
    if (fw.networks.length === 0) {
      const prev = this.#applied.get(FIREWALL_KEY);
      const wasAbsent = prev === ABSENT;
      if (!full && wasAbsent) return 0;
      if (!this.#mayRemoveShared(prev !== undefined && !wasAbsent)) return 0;
      const ok = await this.#attempt(FIREWALL_KEY, () => dp.removeFirewall());
      if (ok) this.#applied.set(FIREWALL_KEY, ABSENT);
      return ok && !wasAbsent ? 1 : 0;
    }
    const json = JSON.stringify(fw);
    let needed = this.#applied.get(FIREWALL_KEY) !== json;
    if (full) {
      // the kernel decides: after a restart a firewall that checks clean is adopted, not rewritten
      const problems = await dp.checkFirewall(fw);
      if (!needed) for (const p of problems) this.#deps.log.warn('kernel drift', { problem: p });
      needed = problems.length > 0;
      if (!needed) this.#applied.set(FIREWALL_KEY, json);
    }
    if (!needed) return 0;
    const ok = await this.#apply(FIREWALL_KEY, fw, async () => {
      await dp.applyFirewall(fw);
      await dp.ensureSysctls(fw);
    });
    return ok ? 1 : 0;
  }

  /**
   * One per-endpoint kind (endpoint-kinds.ts). Incremental: what changed is applied and what is
   * no longer wanted removed, in one look at the list. Full: the kernel's listing decides; an
   * object it found right is adopted without a write (a restart costs one listing, not n writes).
   * The shared table goes with the last object.
   */
  async #perEndpoint<T extends { readonly name: string }>(
    kind: EndpointKind<T>,
    desired: DesiredKernel,
    full: boolean,
  ): Promise<number> {
    const { applied } = kind;
    const wanted = kind.wanted(desired);
    if (kind.table) {
      const { key, remove } = kind.table;
      if (wanted.length === 0) {
        const hadAny = applied.size > 0 || this.#applied.get(key) !== ABSENT;
        if (!full && !hadAny) return 0;
        if (!this.#mayRemoveShared(applied.size > 0)) return 0;
        // a full pass looks first: no table (the usual case after a restart) costs no write
        // a full pass looks first: no table (the usual case after a restart) costs no write
        const absent = full && (await kind.check([]))?.tablePresent === false;
        if (!absent && !(await this.#attempt(key, remove))) return 0;
        for (const n of applied.names()) {
          applied.delete(n);
          this.#status.delete(kind.key(n));
        }
        this.#applied.set(key, ABSENT);
        return !absent && hadAny ? 1 : 0;
      }
      this.#applied.delete(key);
    }
    const diff = full ? undefined : applied.diff(wanted);
    const stale = new Set(diff ? diff.stale : applied.stale(wanted));
    const checked = full ? await kind.check(wanted) : undefined;
    for (const p of checked?.problems ?? []) this.#deps.log.warn('kernel drift', { problem: p });
    // what the kernel has beyond our intent may be another state's: left alone while foreign links exist
    if (this.#mayRemoveShared(false)) for (const n of checked?.extra ?? []) stale.add(n);
    const drifted = new Set(checked?.drifted);
    const exact = new Set(checked?.exact);
    let changes = 0;
    const removeStale = async () => {
      for (const n of stale) {
        if (await this.#attempt(kind.key(n), () => kind.remove(n, applied.get(n)))) {
          applied.delete(n);
          this.#status.delete(kind.key(n));
          changes++;
        }
      }
    };
    if (kind.removeFirst) await removeStale();
    for (const o of diff ? diff.changed : wanted) {
      if (!drifted.has(o.name) && applied.current(o)) continue;
      if (checked && !drifted.has(o.name)) {
        applied.set(o);
        continue;
      }
      const veth = kind.onVeth?.(o);
      const how = { replace: drifted.has(o.name) || applied.get(o.name) !== undefined, exact: exact.has(o.name) };
      const run =
        veth !== undefined && this.#failed.has(vethKey(veth))
          ? () => Promise.reject(errors.reconcileFailed(`veth ${veth} could not be programmed`))
          : () => kind.ensure(o, how);
      if (await this.#applyTo(applied, kind.key(o.name), o, run)) changes++;
    }
    if (!kind.removeFirst) await removeStale();
    return changes;
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

  /** One cluster device (WireGuard or VXLAN) as a whole object: ensured when wanted, removed when not. */
  async #device<T>(
    key: string,
    want: T | undefined,
    full: boolean,
    ops: { ensure(w: T): Promise<void>; remove(): Promise<void>; check(w: T | undefined): Promise<readonly string[]> },
  ): Promise<number> {
    const json = want ? fingerprint(want) : ABSENT;
    let need = this.#applied.get(key) !== json;
    if (full) {
      const problems = await ops.check(want);
      if (!need) for (const p of problems) this.#deps.log.warn('kernel drift', { problem: p });
      need = problems.length > 0;
      if (!need) this.#applied.set(key, json);
    }
    if (!need) return 0;
    const prev = this.#applied.get(key);
    if (!want && !this.#mayRemoveShared(prev !== undefined && prev !== ABSENT)) return 0;
    const run = want ? () => ops.ensure(want) : () => ops.remove();
    if (await this.#attempt(key, run)) {
      this.#applied.set(key, json);
      return 1;
    }
    this.#applied.delete(key);
    return 0;
  }

  /** The WireGuard device, the VXLAN device, then the routes through them (whole objects, converged). */
  async #cluster(intent: Intent, full: boolean): Promise<number> {
    if (intent.cluster === 'pending') return 0; // never prune peers before the first sync
    const dp = this.#deps.dataplane;
    const d = this.clusterDesired(intent);
    this.#reportRejected(d);
    let changes = await this.#device<WireguardObject>(WIREGUARD_KEY, d.wireguard, full, {
      ensure: (w) => dp.ensureWireguard(w),
      remove: () => dp.removeWireguard(WG_DEVICE),
      check: (w) => dp.checkWireguard(w, WG_DEVICE),
    });
    changes += await this.#device<VxlanObject>(VXLAN_KEY, d.vxlan, full, {
      ensure: (v) => dp.ensureVxlan(v),
      remove: () => dp.removeVxlan(VXLAN_DEVICE),
      check: (v) => dp.checkVxlan(v, VXLAN_DEVICE),
    });
    const routesJson = fingerprint(d.routes);
    let needRoutes = this.#applied.get(ROUTES_KEY) !== routesJson;
    if (full) {
      needRoutes = (await dp.checkRoutes(d.routes)).length > 0;
      if (!needRoutes) this.#applied.set(ROUTES_KEY, routesJson);
    }
    const routesMadeByUs = this.#applied.has(ROUTES_KEY) && this.#applied.get(ROUTES_KEY) !== fingerprint([]);
    if (d.routes.length === 0 && !this.#mayRemoveShared(routesMadeByUs)) needRoutes = false;
    // why: routes need their devices (the kernel refuses a route via a missing link)
    if (needRoutes && !this.#failed.has(WIREGUARD_KEY) && !this.#failed.has(VXLAN_KEY)) {
      if (await this.#apply(ROUTES_KEY, d.routes, () => dp.ensureRoutes(d.routes))) changes++;
    }
    return changes;
  }

  /** Policy routing (truss.egress.via): converged when it changed, checked and repaired on full passes. */
  async #egress(intent: Intent, full: boolean): Promise<number> {
    const want = computeEgress(intent.networks);
    const json = want.networks.length === 0 ? ABSENT : JSON.stringify(want);
    const prev = this.#applied.get(EGRESS_KEY); // undefined: nothing programmed since start-up
    let need = prev !== json;
    if (!full && prev === undefined && json === ABSENT) need = false;
    if (full) {
      const problems = await this.#deps.dataplane.checkEgress(want);
      if (!need) for (const p of problems) this.#deps.log.warn('kernel drift', { problem: p });
      need = problems.length > 0;
      if (!need) this.#applied.set(EGRESS_KEY, json);
    }
    if (!need) return 0;
    if (json === ABSENT && !this.#mayRemoveShared(prev !== undefined && prev !== ABSENT)) return 0;
    if (await this.#attempt(EGRESS_KEY, () => this.#deps.dataplane.ensureEgress(want))) {
      this.#applied.set(EGRESS_KEY, json);
      return 1;
    }
    this.#applied.set(EGRESS_KEY, 'failed'); // retried, and removed when it is no longer wanted
    return 0;
  }

  async #apply(key: string, obj: unknown, run: () => Promise<void>): Promise<boolean> {
    const ok = await this.#attempt(key, run);
    if (ok) this.#applied.set(key, fingerprint(obj));
    else this.#applied.delete(key);
    return ok;
  }

  async #applyTo<T extends { readonly name: string }>(
    set: AppliedSet<T>,
    key: string,
    obj: T,
    run: () => Promise<void>,
  ): Promise<boolean> {
    const ok = await this.#attempt(key, run);
    if (ok) set.set(obj);
    else set.failed(obj); // maybe half made: removed like an applied one once no longer wanted
    return ok;
  }

  async #attempt(key: string, run: () => Promise<void>): Promise<boolean> {
    try {
      await run();
      this.#status.set(key, { state: 'ok', updatedAt: new Date().toISOString() });
      return true;
    } catch (e) {
      this.#failed.set(key, e);
      const code = e instanceof TrussError ? e.code : ((e as { code?: string }).code ?? 'UNKNOWN');
      this.#status.set(key, {
        state: 'error',
        lastError: e instanceof Error ? e.message : String(e),
        code,
        updatedAt: new Date().toISOString(),
      });
      this.#deps.log.warn('reconcile object failed', { key, err: e });
      return false;
    }
  }

  /** After a full pass every desired object that did not fail is known to be applied. */
  #markSteady(desired: DesiredKernel): void {
    const now = new Date().toISOString();
    for (const b of desired.bridges) if (this.#steady(bridgeKey(b.name), now)) this.#bridges.set(b);
    for (const v of desired.veths) if (this.#steady(vethKey(v.name), now)) this.#veths.set(v);
    for (const kind of Object.values(this.#kinds) as EndpointKind<{ readonly name: string }>[]) {
      for (const o of kind.wanted(desired)) if (this.#steady(kind.key(o.name), now)) kind.applied.set(o);
    }
    if (desired.firewall.networks.length > 0 && this.#steady(FIREWALL_KEY, now)) {
      this.#applied.set(FIREWALL_KEY, fingerprint(desired.firewall));
    }
  }

  /**
   * false when the key failed in this pass; otherwise records it as ok (keeping the timestamp of
   * an earlier ok: an earlier error is over, the full pass found the object right)
   */
  #steady(key: string, now: string): boolean {
    if (this.#failed.has(key)) return false;
    if (this.#status.get(key)?.state !== 'ok') this.#status.set(key, { state: 'ok', updatedAt: now });
    return true;
  }

  #settleWaiters(): void {
    const keep: Waiter[] = [];
    for (const w of this.#waiters) {
      if (w.revision > this.#reconciled) {
        keep.push(w);
        continue;
      }
      const failedKey = w.keys.find((k) => this.#failed.has(k));
      if (failedKey === undefined) w.resolve();
      else w.reject(this.#failed.get(failedKey));
    }
    this.#waiters = keep;
  }

  #scheduleRetry(): void {
    if (this.#stopped) return;
    this.#backoffMs = Math.min(30_000, this.#backoffMs === 0 ? 500 : this.#backoffMs * 2);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.trigger('incremental'), this.#backoffMs);
    this.#retryTimer.unref();
  }
}
