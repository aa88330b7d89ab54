/**
 * ClusterAgent: this host's life in the cluster store (etcd). It registers the host under a
 * lease (presence), keeps a watched copy of everything under /truss/v2/ (nodes, cluster
 * networks, members, blocks, names; every record checked for shape and owner, records.ts) from
 * which the reconciler derives WireGuard peers and routes, joins/leaves cluster networks for
 * the network service, and publishes this host's container names (names.ts).
 *
 * Availability: the agent never blocks start-up or running traffic. Until etcd answers it
 * keeps trying in the background; meanwhile (and during any later outage) the last view
 * stays in force, so established traffic keeps flowing, while operations that need the
 * shared store (joining a network, allocating an address) fail fast with etcd's error.
 * A graceful stop does NOT revoke the lease: a restarting plugin re-registers within the
 * TTL and peers never notice; a host that is gone for good drops out when its lease expires.
 *
 * Lapsed peers (a host cut off from etcd past its lease TTL while the underlay still works):
 * its node and member records go with its lease, but its blocks are not leased and stay. The
 * agent keeps such a host's last node and member records in the view for `lapsedGraceMs`
 * (default 15 min) while it still holds blocks, so peers keep its WireGuard/VXLAN entry and
 * traffic to its running containers flows on; its addresses are never given to anyone else
 * (only `truss cluster forget` frees them). When it comes back it re-registers and its fresh
 * records replace the kept ones.
 *
 * Identity: the host is its node id (every key it writes names it); its name is for display.
 * Before registering, the agent looks for another live host with this host's name or node id
 * (core/cluster/identity.ts). A suspect record is given one lease TTL to expire (a crashed
 * predecessor's would); if it is still there, the agent calls onFatal with an error naming
 * both hosts' addresses and the fix, and never registers.
 */

import type { ClusterView } from '../core/cluster/desired.ts';
import {
  CLUSTER_PREFIX,
  type ClusterNetworkRecord,
  clusterKeys,
  type MemberRecord,
  type NodeRecord,
  nodeIdOf,
} from '../core/cluster/model.ts';
import type { ClusterJoin, ClusterMembership, ClusterNames, WireguardPeerStatus } from '../core/contracts.ts';
import { errors, type TrussError } from '../core/errors.ts';
import { type Prefix, parseIp, parsePrefix } from '../core/ip.ts';
import type { NamedEndpoint } from '../core/names/model.ts';
import type { Logger } from '../obs/logger.ts';
import { settledWithin } from '../obs/settled.ts';
import type { KeyValue, Store } from '../store/store.ts';
import type { ClusterIpam } from './cluster-ipam.ts';
import { NamesPublisher } from './names.ts';
import { agreeOnNetwork } from './network-agreement.ts';
import { PathsObserver } from './paths-observer.ts';
import { type countAllocations, type Released, releaseHeld } from './reclaim.ts';
import { checkIdentity, earlierTwin, migrate } from './registration.ts';
import { type WatchEvent, WatchedRecords } from './view-cache.ts';

/** What the agent needs of the cluster store (store/etcd.ts provides it). */
export interface LeaseLike {
  put(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
  /** alive while keepalives succeed; lost from TTL − 2 s without one until re-granted (etcd-lease.ts) */
  readonly state?: 'alive' | 'lost' | 'revoked';
  /** after a re-grant wrote every key again (etcd-lease.ts); names are then checked whole */
  onRestored?(cb: (id: string) => void): () => void;
}

/** The agent's own links to etcd, for status: registered (its lease) and watching. */
export interface AgentConnection {
  /** none: not registered yet */
  readonly lease: 'alive' | 'lost' | 'revoked' | 'none';
  /** the watch of the cluster records: none until registered */
  readonly watch: 'connected' | 'disconnected' | 'none';
  /** why the watch is disconnected */
  readonly watchError?: string;
  /** when the watch state last changed (ISO 8601) */
  readonly watchSince?: string;
}
export interface ClusterStore extends Store {
  grantLease(ttlSeconds: number): Promise<LeaseLike>;
  watchPrefix(
    prefix: string,
    fromRevision: number,
    handlers: {
      onEvents(events: readonly WatchEvent[], revision: number): void;
      onResync(items: readonly KeyValue[], revision: number): void;
      onStatus?(status: { readonly connected: boolean; readonly error?: string }): void;
    },
  ): { close(): Promise<void> };
}

export interface ClusterAgentDeps {
  readonly store: ClusterStore;
  /** this host's record: id (identity), name (display), instance (this process's nonce) */
  readonly node: NodeRecord;
  /** the instance nonce of this state dir's previous process: its node record is not a conflict */
  readonly previousInstance?: string;
  /** where the node id is kept (<state-dir>/node-id), for the conflict message */
  readonly nodeIdFile?: string;
  /** another live host has this host's name or node id: the daemon must stop with this error */
  onFatal?(e: TrussError): void;
  /** MTU of container interfaces on cluster networks: the WireGuard tunnel's and the VXLAN device's */
  readonly mtu: { readonly wireguard: number; readonly vxlan: number };
  readonly ipam: ClusterIpam;
  readonly log: Logger;
  /** the cluster view changed: reconcile */
  onChange(): void;
  /** only other hosts' names changed (names()): called instead of onChange when given */
  onNamesChange?(): void;
  /** names of the cluster networks this host has (from local intent), re-joined at start */
  localClusters(): Promise<readonly string[]>;
  readonly leaseTtlSeconds?: number;
  /** the WireGuard device's peers (the dataplane's): with it, the agent watches the paths to them */
  readPeers?(): Promise<readonly WireguardPeerStatus[]>;
  /** whether this host has an encrypted cluster network (no device to look at otherwise: paths-observer.ts) */
  wireguardInUse?(): Promise<boolean>;
  /** how long a peer whose lease lapsed but who still holds blocks stays programmed (default 15 min) */
  readonly lapsedGraceMs?: number;
  readonly now?: () => number;
  readonly retryMs?: number;
  /** waited on top of the lease TTL before a suspect record counts as live (default 2000) */
  readonly conflictSlackMs?: number;
}

const { node: nodeKey, network: networkKey, member: memberKey } = clusterKeys;

/** how long a cluster network join waits for the registration under way (then: etcd unreachable) */
const REGISTRATION_WAIT_MS = 4_000;

export class ClusterAgent implements ClusterMembership, ClusterNames {
  readonly #d: ClusterAgentDeps;
  #node: NodeRecord;
  /** the watched copy of everything under CLUSTER_PREFIX, and the lapsed peers kept (view-cache.ts) */
  readonly #records: WatchedRecords;
  /** cluster networks joined in this process and not left since (the claim GC leaves them alone) */
  readonly #joined = new Set<string>();
  #lease: LeaseLike | undefined;
  #watch: { close(): Promise<void> } | undefined;
  #watchState: Omit<AgentConnection, 'lease'> = { watch: 'none' };
  #stopped = false;
  #registeredOnce = false;
  #timer: NodeJS.Timeout | undefined;
  #connected: Promise<void>;
  #resolveConnected: () => void = () => {};
  /** this host's names under its lease (names.ts) */
  readonly #names: NamesPublisher;
  /** the paths to peers as the WireGuard device shows them (paths-observer.ts); absent in tests without a device */
  readonly #paths: PathsObserver | undefined;

  constructor(deps: ClusterAgentDeps) {
    this.#d = deps;
    this.#node = deps.node;
    this.#records = new WatchedRecords(deps, () => this.self);
    this.#names = new NamesPublisher({ ...deps, self: () => this.self, lease: () => this.#lease });
    const readPeers = deps.readPeers?.bind(deps);
    const inUse = deps.wireguardInUse?.bind(deps);
    this.#paths = readPeers
      ? new PathsObserver({
          readPeers,
          ...(inUse ? { inUse } : {}),
          view: () => this.#records.view(),
          own: () => this.#node,
          publish: (patch) => this.publishReach(patch),
          onChange: deps.onChange,
          log: deps.log,
          ...(deps.now ? { now: deps.now } : {}),
        })
      : undefined;
    this.#connected = new Promise((r) => {
      this.#resolveConnected = r;
    });
  }

  enabled(): boolean {
    return true;
  }

  mtu(encrypt: boolean): number {
    return encrypt ? this.#d.mtu.wireguard : this.#d.mtu.vxlan;
  }

  /** this host's node id: its identity in every cluster key and record */
  get self(): string {
    return nodeIdOf(this.#node);
  }

  /** this host's display name (--node-name or the hostname) */
  get name(): string {
    return this.#node.name;
  }

  /**
   * Publish a new WireGuard public key for this host (after the key file was rotated):
   * peers watch the node record and re-key their entry for this host within a moment.
   */
  async publishKey(publicKey: string): Promise<void> {
    const lease = this.#lease;
    if (!lease)
      throw errors.storeUnavailable('truss is not registered in the cluster store yet; retry when etcd is reachable');
    this.#node = { ...this.#node, wgPublicKey: publicKey };
    await lease.put(nodeKey(this.self), JSON.stringify(this.#node));
    this.#d.log.info('published a new WireGuard public key', { publicKey });
  }

  /**
   * Publish this host's record with reachability fields changed (paths-observer.ts): what it sees
   * of its peers, and its NAT as they see it. Skipped while not registered (the next look retries).
   */
  async publishReach(patch: Pick<NodeRecord, 'seen' | 'nat' | 'punched'>): Promise<void> {
    const lease = this.#lease;
    if (!lease) return;
    const { seen: _s, nat: _n, punched: _p, ...rest } = this.#node;
    const seen = patch.seen !== undefined && Object.keys(patch.seen).length > 0 ? { seen: patch.seen } : {};
    const punched = patch.punched !== undefined && patch.punched.length > 0 ? { punched: patch.punched } : {};
    this.#node = { ...rest, ...(patch.nat !== undefined ? { nat: patch.nat } : {}), ...seen, ...punched };
    await lease.put(nodeKey(this.self), JSON.stringify(this.#node));
  }

  /** this host's record as last published */
  get record(): NodeRecord {
    return this.#node;
  }

  /** Starts in the background; resolves at once. `connected()` resolves once registered. */
  start(): void {
    void this.#connect();
  }

  connected(): Promise<void> {
    return this.#connected;
  }

  async #connect(): Promise<void> {
    let identityChecked = false;
    while (!this.#stopped) {
      try {
        if (!identityChecked) {
          const conflict = await checkIdentity(
            this.#d,
            this.#node,
            (ms) => this.#sleep(ms),
            () => this.#stopped,
          );
          if (conflict) {
            this.#d.log.error("another live host has this host's identity; not registering", {
              code: conflict.code,
              err: conflict.message,
            });
            this.#d.onFatal?.(conflict);
            return;
          }
          identityChecked = true;
        }
        if (this.#stopped) return;
        const lease = await this.#d.store.grantLease(this.#d.leaseTtlSeconds ?? 15);
        await lease.put(nodeKey(this.self), JSON.stringify(this.#node));
        if (!this.#registeredOnce && (await earlierTwin(this.#d, this.#node))) {
          // two hosts of one name registered at the same moment: the later one steps back
          await lease.delete(nodeKey(this.self));
          identityChecked = false;
          continue;
        }
        this.#registeredOnce = true;
        this.#lease = lease;
        await migrate(this.#d, this.self);
        for (const c of await this.#d.localClusters()) {
          const m: MemberRecord = { cluster: c, node: this.self };
          await lease.put(memberKey(c, this.self), JSON.stringify(m));
        }
        const { items, revision } = await this.#d.store.list(CLUSTER_PREFIX);
        this.#records.replace(items);
        this.#watch = this.#d.store.watchPrefix(CLUSTER_PREFIX, revision + 1, {
          onEvents: (events) => this.#records.apply(events),
          onResync: (all) => this.#records.replace(all),
          onStatus: ({ connected, error }) => {
            const since = new Date().toISOString();
            this.#watchState = connected
              ? { watch: 'connected', watchSince: since }
              : { watch: 'disconnected', watchSince: since, ...(error !== undefined ? { watchError: error } : {}) };
          },
        });
        lease.onRestored?.(() => void this.#names.registered());
        void this.#names.registered();
        this.#d.log.info('registered in the cluster store', {
          node: this.name,
          nodeId: this.self,
          address: this.#node.address,
        });
        this.#resolveConnected();
        this.#paths?.start();
        this.#d.onChange();
        return;
      } catch (e) {
        this.#d.log.warn('cluster store not reachable yet; retrying', { err: e });
        await this.#sleep(this.#d.retryMs ?? 2000);
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((r) => {
      this.#timer = setTimeout(r, ms);
    });
  }

  /** This host's lease and watch (status); a frozen etcd shows as a lost lease within its TTL. */
  connection(): AgentConnection {
    const lease = this.#lease ? (this.#lease.state ?? 'alive') : 'none';
    return { lease, ...this.#watchState };
  }

  /** Node ids of peers whose lease lapsed and which are kept programmed (for status and tests). */
  lapsedPeers(): string[] {
    return this.#records.lapsedPeers();
  }

  /** This host's complete list of named endpoints, written as changes under its lease (ClusterNames). */
  publishNames(entries: readonly NamedEndpoint[]): Promise<void> {
    return this.#names.publish(entries);
  }

  /** Every other host's names, live or kept with a lapsed peer (view-cache.ts). */
  names(): readonly NamedEndpoint[] {
    return this.#records.names();
  }

  /** Whether names() holds the initial listing of the store yet. */
  namesSynced(): boolean {
    return this.#records.synced;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#names.stop();
    this.#paths?.stop();
    await this.#watch?.close();
  }
  /**
   * The cluster as last seen, or undefined until the first sync: nothing cluster-wide may be
   * pruned before that. Every record is checked for shape and owner (records.ts): a bad one is
   * left out (and logged once); nodes, members and blocks carry their createRevision.
   */
  view(): ClusterView | undefined {
    const v = this.#records.view();
    if (!v) return undefined;
    const lapsed = this.#records.lapsedPeers();
    const direct = this.#paths?.direct() ?? [];
    // why: while this host's own record is away from etcd (its lease lapsed, not re-registered
    // yet) it is still this host: without it every path would go, and a peer behind a NAT,
    // re-added without a session, is silent until its next handshake (up to 2 minutes)
    const own = v.nodes.some((n) => nodeIdOf(n) === this.self) ? [] : [this.#node];
    return {
      ...v,
      nodes: [...v.nodes, ...own],
      ...(lapsed.length > 0 ? { lapsed } : {}),
      ...(direct.length > 0 ? { direct } : {}),
    };
  }

  /** The records the last view() left out, and why (for status). */
  malformed(): readonly { readonly key: string; readonly why: string }[] {
    return this.#records.malformed();
  }

  /** Per cluster and node: blocks and claims held, member or not (from the watched copy). */
  allocations(): ReturnType<typeof countAllocations> {
    return this.#records.allocations();
  }

  joined(cluster: string): boolean {
    return this.#joined.has(cluster);
  }

  async joinNetwork(j: ClusterJoin): Promise<void> {
    const had = this.#joined.has(j.name);
    this.#joined.add(j.name); // first, synchronously: a leave or GC release under way stops
    this.#names.rejoined(j.name);
    try {
      await this.#join(j);
    } catch (e) {
      if (!had) this.#joined.delete(j.name); // no network will be created: the GC may look again
      throw e;
    }
  }

  async #join(j: ClusterJoin): Promise<void> {
    // why: a network created right after start (a boot, a restart) would fail while registration is
    // a moment away; waiting is bounded so an unreachable etcd still fails the request in seconds
    if (!this.#lease) await settledWithin(this.#connected, REGISTRATION_WAIT_MS);
    const lease = this.#lease;
    if (!lease) {
      throw errors.storeUnavailable(
        `truss is not registered in the cluster store yet (is etcd reachable?); cluster network ${j.name} cannot be joined now`,
      );
    }
    const rec: ClusterNetworkRecord = {
      name: j.name,
      subnets: j.subnets,
      encrypt: j.encrypt,
      fingerprint: j.fingerprint,
    };
    await agreeOnNetwork(this.#d.store, rec, this.self);
    for (const a of j.shared) {
      const p = parsePrefix(a);
      const subnet = p && j.subnets.map((s) => parsePrefix(s)).find((s) => s && s.family === p.family);
      const ip = p && parseIp(a.split('/')[0] as string);
      if (subnet && ip) await this.#d.ipam.reserveShared(j.name, subnet as Prefix, ip);
    }
    const m: MemberRecord = { cluster: j.name, node: this.self };
    await lease.put(memberKey(j.name, this.self), JSON.stringify(m));
    this.#d.log.info('joined cluster network', { cluster: j.name });
  }

  /**
   * Leave a cluster network on purpose (this host's last network of it was deleted): drop the
   * membership, then return this host's claims and blocks of it to the pool. Every delete
   * compares its record's revision and that this host is still not a member, and the release
   * stops if the network is joined again meanwhile. A crash or an outage is not a leave:
   * nothing calls this then, and the host keeps its allocations.
   */
  async leaveNetwork(name: string): Promise<Released> {
    this.#joined.delete(name);
    const key = memberKey(name, this.self);
    if (this.#lease) await this.#lease.delete(key);
    else await this.#d.store.txn([], [{ type: 'delete', key }]);
    if (!this.#joined.has(name)) await this.#names.leave(name); // whatever the last list said
    const released = await releaseHeld(this.#d.store, name, this.self, {
      guard: [{ key, version: 0 }],
      proceed: () => !this.#joined.has(name),
    });
    // this host's copy of the network record goes too (unless it joined again meanwhile)
    const net = networkKey(name, this.self);
    if (!this.#joined.has(name)) await this.#d.store.txn([{ key, version: 0 }], [{ type: 'delete', key: net }]);
    this.#d.log.info('left cluster network', {
      cluster: name,
      claims: released.claims.length,
      blocks: released.blocks,
    });
    return released;
  }
}
