/**
 * The network driver's use cases. Each one validates, writes intent durably, then waits
 * (bounded) for the reconciler to program it. A create whose programming fails removes
 * its own intent again (Docker will not call Delete for it) and reports the cause.
 * Deletes of unknown things succeed. Nothing here touches the kernel.
 */

import type {
  ClusterMembership,
  CreateEndpointInput,
  CreateEndpointResult,
  CreateNetworkInput,
  JoinInput,
  JoinResult,
  NetworkCapabilities,
  NetworkDriver,
  RequestContext,
} from '../core/contracts.ts';
import { checkEgressVia, egressTableClash } from '../core/egress.ts';
import { errors, isTrussError } from '../core/errors.ts';
import type { EndpointId, NetworkId } from '../core/ids.ts';
import { formatIp, type Prefix, parsePrefix, prefixesOverlap } from '../core/ip.ts';
import { checkEndpointAddress, checkNetworkPools } from '../core/ipam/network-pools.ts';
import type { EndpointSpec, NetworkSpec } from '../core/model.ts';
import { bridgeName, hostVethName, macFor, peerVethName, shortId } from '../core/naming.ts';
import { parseEndpointOptions, parseNetworkOptions } from '../core/options.ts';
import { describePort, NO_PROXY_6TO4_OPTION, parsePortmap, publishFamilies, resolvePorts } from '../core/portmap.ts';
import type { Capabilities } from '../core/preflight.ts';
import { checkRoutedEndpoint, isRouted, routedGroup, routedStaticRoutes } from '../core/routed.ts';
import { showValue } from '../core/safe-json.ts';
import { fault } from '../obs/fault.ts';
import type { Logger } from '../obs/logger.ts';
import type { Owner, Reconciler } from '../reconcile/reconciler.ts';
import { checkEndpointFeatures, checkNetworkFeatures } from './feature-checks.ts';
import type { HostAddresses } from './host-addresses.ts';
import type { IntentRepo } from './intent.ts';
import type { Journal } from './journal.ts';
import { Mutex } from './mutex.ts';
import { clusterMtu, joinCluster, leaveIfLast } from './network-cluster.ts';

export interface NetworkServiceDeps {
  readonly repo: IntentRepo;
  readonly reconciler: Pick<Reconciler, 'waitFor'>;
  readonly log: Logger;
  /** how long a request waits for the kernel (ms) */
  readonly programTimeoutMs?: number;
  /** multi-host networks (truss.cluster); absent or disabled without a cluster store */
  readonly cluster?: ClusterMembership;
  /** what the host lacks (preflight.ts); features needing it are refused before any intent is written */
  readonly capabilities?: Capabilities;
  /** CreateNetwork with a RequestContext journals its undo (journal.ts) */
  readonly journal?: Journal;
  /** this host's own address on a cluster network, claimed as it joins (host-addresses.ts) */
  readonly hostAddresses?: Pick<HostAddresses, 'join'>;
}

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

/** "198.18.0.5" of "198.18.0.5/24", canonical. */
const bareAddress = (cidr: string): string => {
  const p = parsePrefix(cidr);
  return p ? formatIp(p) : cidr;
};

const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

export class NetworkService implements NetworkDriver {
  readonly #d: NetworkServiceDeps;
  readonly #lock = new Mutex();
  constructor(deps: NetworkServiceDeps) {
    this.#d = deps;
  }

  get #timeout(): number {
    return this.#d.programTimeoutMs ?? 15_000;
  }

  capabilities(): NetworkCapabilities {
    return { scope: 'local', connectivityScope: 'local' };
  }

  async createNetwork(input: CreateNetworkInput, ctx?: RequestContext): Promise<void> {
    // the same checks as truss's IPAM, whichever IPAM driver gave the pools (M3)
    const v4 = checkNetworkPools(4, input.ipv4);
    const v6 = checkNetworkPools(6, input.ipv6);
    if (v4.length + v6.length === 0) throw errors.badRequest('the network has no IPv4 or IPv6 pool');
    const opts = parseNetworkOptions(input.generic, v6.length > 0);
    const mtu = clusterMtu(this.#d.cluster, opts.cluster, opts.mtu, opts.mtuGiven);
    checkNetworkFeatures(this.#d.capabilities, opts, v6.length > 0 ? input.ipv6[0]?.pool : undefined);
    const spec: NetworkSpec = {
      id: input.networkId,
      bridge: opts.bridgeName ?? bridgeName(input.networkId),
      bridgeNamed: opts.bridgeName !== undefined,
      mtu,
      internal: input.internal,
      nat: opts.nat,
      ipv4: input.ipv4,
      ipv6: input.ipv6,
      options: input.generic,
      ...(opts.ingress !== undefined ? { ingress: opts.ingress } : {}),
      ...(opts.cluster !== undefined ? { cluster: opts.cluster } : {}),
      ...(opts.egressVia !== undefined ? { egressVia: opts.egressVia } : {}),
      ...(opts.bandwidth !== undefined ? { bandwidth: opts.bandwidth } : {}),
      ...(opts.routed ? { mode: 'routed' as const } : {}),
    };
    if (spec.egressVia) checkEgressVia(spec.egressVia, spec, spec.cluster !== undefined);
    if (spec.cluster) {
      await joinCluster(this.#d.cluster, spec);
      await this.#d.hostAddresses?.join(spec); // never fails the create: a full pass tries again
    }
    // what undoes this create if dockerd never gets the reply: written with the intent (journal.ts)
    const pools = [...spec.ipv4, ...spec.ipv6].map((d) => d.pool);
    const journal = ctx && this.#d.journal;
    const key = journal?.begin();
    const entry = journal && key ? [journal.put(key, { kind: 'create-network', networkId: spec.id, pools })] : [];
    try {
      const revision = await this.#lock
        .run(async () => {
          const existing = await this.#d.repo.getNetwork(spec.id);
          if (existing) {
            if (!sameJson(existing, spec))
              throw errors.networkConflict(`network ${shortId(spec.id)} already exists with other settings`);
            return 0; // a replay: make sure it is programmed
          }
          for (const other of await this.#d.repo.listNetworks()) {
            this.#checkNoClash(spec, [...v4, ...v6], other);
            const clash = egressTableClash(spec, other);
            if (clash) throw errors.networkConflict(clash);
          }
          return this.#d.repo.createNetwork(spec, entry);
        })
        .catch(async (e: unknown) => {
          if (spec.cluster) await this.#leaveIfLast(spec.cluster.name); // joined above for nothing
          throw e;
        });
      fault('create-network:after-intent');
      await this.#programOrUndo(revision, { network: spec.id }, async () => {
        if (revision === 0) return 0;
        const undone = await this.#d.repo.deleteNetwork(spec.id);
        if (spec.cluster) await this.#leaveIfLast(spec.cluster.name);
        return undone;
      });
    } finally {
      if (key !== undefined && ctx) journal?.follow(key, ctx);
    }
    this.#d.log.info('network created', { nid: shortId(spec.id), bridge: spec.bridge, cluster: spec.cluster?.name });
  }

  #checkNoClash(spec: NetworkSpec, pools: readonly Prefix[], other: NetworkSpec): void {
    if (other.bridge === spec.bridge) {
      throw errors.networkConflict(`bridge name ${spec.bridge} is already used by truss network ${shortId(other.id)}`);
    }
    if (isRouted(spec) && isRouted(other) && routedGroup(spec.id) === routedGroup(other.id)) {
      throw errors.networkConflict(
        `routed network ${shortId(spec.id)} would share interface group ${routedGroup(spec.id)} with routed network ` +
          `${shortId(other.id)} (both ids start ${spec.id.slice(0, 6)}): create it again (a new id), or remove the other`,
      );
    }
    for (const d of [...other.ipv4, ...other.ipv6]) {
      const theirs = parsePrefix(d.pool);
      const clash = theirs && pools.find((p) => prefixesOverlap(p, theirs));
      if (clash)
        throw errors.poolOverlap(`subnet ${d.pool} of truss network ${shortId(other.id)} overlaps this network's`);
    }
  }

  async deleteNetwork(networkId: NetworkId): Promise<void> {
    const spec = await this.#d.repo.getNetwork(networkId);
    if (!spec) return;
    const revision = await this.#lock.run(() => this.#d.repo.deleteNetwork(networkId));
    await this.#settle(revision);
    if (spec.cluster) await this.#leaveIfLast(spec.cluster.name);
    this.#d.log.info('network deleted', { nid: shortId(networkId) });
  }

  #leaveIfLast(cluster: string): Promise<void> {
    return leaveIfLast(this.#d.repo, this.#d.cluster, cluster, this.#d.log);
  }

  async allocateNetwork(
    _networkId: string,
    options: Readonly<Record<string, string>>,
  ): Promise<Record<string, string>> {
    return { ...options }; // Swarm: echo so workers receive the -o options
  }

  async freeNetwork(): Promise<void> {}

  async createEndpoint(input: CreateEndpointInput): Promise<CreateEndpointResult> {
    const net = await this.#d.repo.getNetwork(input.networkId);
    if (!net) {
      throw errors.networkNotFound(
        `network ${shortId(input.networkId)} is not known to truss (was it created with another state dir?)`,
      );
    }
    if (input.macAddress !== undefined && !MAC.test(input.macAddress.toLowerCase())) {
      throw errors.badAddress(`MacAddress ${showValue(input.macAddress)} is not a colon-separated MAC`);
    }
    await this.#checkAddresses(net, input);
    const epOpts = parseEndpointOptions(input.options);
    if (isRouted(net)) checkRoutedEndpoint(epOpts.raw);
    await checkEndpointFeatures(
      this.#d.capabilities,
      net,
      { ownIngress: epOpts.ingress !== undefined, addressIpv6: input.addressIpv6 },
      () => this.#d.repo.getPolicy(net.id),
    );
    const spec: EndpointSpec = {
      networkId: net.id,
      id: input.endpointId,
      hostVeth: hostVethName(input.endpointId),
      peerVeth: peerVethName(input.endpointId),
      mac: input.macAddress?.toLowerCase() ?? macFor(input.endpointId, input.address),
      ...(input.address !== undefined ? { ipv4: input.address } : {}),
      ...(input.addressIpv6 !== undefined ? { ipv6: input.addressIpv6 } : {}),
      options: epOpts.raw,
      ...(epOpts.ingress !== undefined ? { ingress: epOpts.ingress } : {}),
      ...(epOpts.bandwidth !== undefined ? { bandwidth: epOpts.bandwidth } : {}),
    };
    const existing = await this.#d.repo.getEndpoint(net.id, spec.id);
    if (existing && !sameJson({ ...existing, sandboxKey: undefined, published: undefined }, spec)) {
      throw errors.endpointConflict(`endpoint ${shortId(spec.id)} already exists with other settings`);
    }
    const revision = existing ? 0 : await this.#d.repo.createEndpoint(spec);
    fault('create-endpoint:after-intent');
    // the limits are programmed with the veth: a container never runs unshaped; the guard is waited
    // for too: the container must never send unchecked (core/guard.ts)
    await this.#programOrUndo(revision, { endpoint: spec.id }, async () =>
      revision === 0 ? 0 : this.#d.repo.deleteEndpoint(net.id, spec.id),
    );
    fault('create-endpoint:before-response');
    return input.macAddress === undefined ? { macAddress: spec.mac } : {};
  }

  /** Host addresses of the network's pools, not a gateway, not another endpoint's (M3). */
  async #checkAddresses(net: NetworkSpec, input: CreateEndpointInput): Promise<void> {
    const wanted = [
      [input.address, 4, net.ipv4],
      [input.addressIpv6, 6, net.ipv6],
    ] as const;
    const mine: string[] = [];
    for (const [cidr, family, data] of wanted) {
      if (cidr === undefined) continue;
      checkEndpointAddress(cidr, family, data, shortId(net.id));
      mine.push(bareAddress(cidr));
    }
    if (mine.length === 0) return;
    // the repo's index of its cache, not a store listing: decoding every endpoint of the network
    // made an attach cost O(endpoints) (issue 18 item 5); the cache holds every committed write
    const holders = (await Promise.all(mine.map((a) => this.#d.repo.holding(net.id, a)))).flat();
    for (const other of holders) {
      // an unjoined holder is a leftover of a crash (Docker's IPAM gave its address out again, so
      // Docker is done with it): it does not block the new container, and the endpoint GC reclaims
      // it without releasing the address it no longer owns
      if (other.id === input.endpointId || other.sandboxKey === undefined) continue;
      const clash = [other.ipv4, other.ipv6].find((a) => a !== undefined && mine.includes(bareAddress(a)));
      if (clash) {
        throw errors.addressInUse(
          `address ${bareAddress(clash)} is already held by endpoint ${shortId(other.id)} of network ` +
            `${shortId(net.id)}: give the container another address (--ip), or remove the other container`,
        );
      }
    }
  }

  async deleteEndpoint(networkId: NetworkId, endpointId: EndpointId): Promise<void> {
    if (!(await this.#d.repo.getEndpoint(networkId, endpointId))) return;
    const revision = await this.#d.repo.deleteEndpoint(networkId, endpointId);
    fault('delete-endpoint:after-intent');
    await this.#settle(revision);
  }

  async endpointOperInfo(networkId: NetworkId, endpointId: EndpointId): Promise<Record<string, unknown>> {
    const ep = await this.#d.repo.getEndpoint(networkId, endpointId);
    if (!ep) return {};
    const ports = ep.published?.ports.map(describePort);
    return { 'truss.veth': ep.hostVeth, 'truss.mac': ep.mac, ...(ports?.length ? { 'truss.ports': ports } : {}) };
  }

  async join(input: JoinInput): Promise<JoinResult> {
    const net = await this.#d.repo.getNetwork(input.networkId);
    const ep = net && (await this.#d.repo.getEndpoint(net.id, input.endpointId));
    if (!net || !ep) throw errors.endpointNotFound(`endpoint ${shortId(input.endpointId)} is not known to truss`);
    if (ep.sandboxKey !== input.sandboxKey) {
      const revision = await this.#d.repo.putEndpoint({ ...ep, sandboxKey: input.sandboxKey });
      fault('join:after-intent');
      // the container must not get its interface before its policy is in the kernel
      await this.#programOrUndo(revision, { endpoint: ep.id }, () => this.#d.repo.putEndpoint(ep));
    }
    const gw4 = net.ipv4.find((d) => d.gateway)?.gateway;
    const gw6 = net.ipv6.find((d) => d.gateway)?.gateway;
    const bare = (cidr: string | undefined): string | undefined => {
      const p = cidr === undefined ? undefined : parsePrefix(cidr);
      return p ? formatIp(p) : undefined;
    };
    const gateway = net.internal ? undefined : bare(gw4);
    const gatewayIpv6 = net.internal ? undefined : bare(gw6);
    fault('join:before-response');
    this.#d.log.info('endpoint joined', {
      nid: shortId(net.id),
      eid: shortId(ep.id),
      hostVeth: ep.hostVeth,
      containerVeth: ep.peerVeth,
    });
    return {
      srcName: ep.peerVeth,
      dstPrefix: 'eth',
      ...(gateway ? { gateway } : {}),
      ...(gatewayIpv6 ? { gatewayIpv6 } : {}),
      staticRoutes: routedStaticRoutes(net),
      disableGatewayService: net.internal,
    };
  }

  async leave(networkId: NetworkId, endpointId: EndpointId): Promise<void> {
    const ep = await this.#d.repo.getEndpoint(networkId, endpointId);
    if (!ep || ep.sandboxKey === undefined) return;
    // the sandbox is gone: so are its published ports (Docker 29 also revokes; <= 28 may not)
    const { sandboxKey: _gone, published: _unpublished, ...rest } = ep;
    const revision = await this.#d.repo.putEndpoint(rest);
    fault('leave:after-intent');
    await this.#settle(revision);
    this.#d.log.info('endpoint left', { nid: shortId(networkId), eid: shortId(endpointId), hostVeth: ep.hostVeth });
  }

  /**
   * Publish the endpoint's ports (-p). Both protocol generations land here: Docker <= 28 calls it
   * whenever the endpoint becomes the container's gateway, with the sandbox's portmap; Docker 29
   * only when its gateway state changes, with the Join options it remembered. Either way the
   * options hold the portmap in force, so it replaces what the endpoint published before; a
   * repeat of the same portmap changes nothing (an ephemeral pick stays). Stored durably, then
   * programmed; a failure removes it again and fails `docker run`.
   */
  async programExternalConnectivity(
    networkId: NetworkId,
    endpointId: EndpointId,
    options: Readonly<Record<string, unknown>>,
  ): Promise<void> {
    const request = parsePortmap(options);
    const ipv4Only = options[NO_PROXY_6TO4_OPTION] === true;
    const asked = { request, ...(ipv4Only ? { ipv4Only: true as const } : {}) };
    const step = await this.#lock.run(async () => {
      const net = await this.#d.repo.getNetwork(networkId);
      const ep = net && (await this.#d.repo.getEndpoint(net.id, endpointId));
      if (!net || !ep) throw errors.endpointNotFound(`endpoint ${shortId(endpointId)} is not known to truss`);
      if (net.internal || (request.length === 0 && ep.published === undefined)) return undefined;
      const had = ep.published && {
        request: ep.published.request,
        ...(ep.published.ipv4Only ? { ipv4Only: true } : {}),
      };
      if (had && sameJson(had, asked)) return { revision: 0, before: ep, after: ep };
      if (request.length === 0) {
        const { published: _none, ...after } = ep;
        return { revision: await this.#d.repo.putEndpoint(after), before: ep, after };
      }
      const families = publishFamilies({ ipv4: ep.ipv4 !== undefined, ipv6: ep.ipv6 !== undefined }, options);
      const taken = (await this.#d.repo.snapshot()).endpoints
        .filter((e) => e.id !== ep.id)
        .flatMap((e) => e.published?.ports ?? []);
      const after = { ...ep, published: { ...asked, ports: resolvePorts(request, families, taken) } };
      return { revision: await this.#d.repo.putEndpoint(after), before: ep, after };
    });
    if (!step) return;
    await this.#programOrUndo(step.revision, { endpoint: endpointId }, async () =>
      step.revision === 0 ? 0 : this.#d.repo.putEndpoint(step.before),
    );
    if (step.revision > 0) {
      this.#d.log.info('ports published', {
        eid: shortId(endpointId),
        ports: ((step.after as EndpointSpec).published?.ports ?? []).map(describePort),
      });
    }
  }

  /** The endpoint is no longer the gateway (or leaves): its ports go. Errors are only logged by Docker. */
  async revokeExternalConnectivity(networkId: NetworkId, endpointId: EndpointId): Promise<void> {
    const revision = await this.#lock.run(async () => {
      const ep = await this.#d.repo.getEndpoint(networkId, endpointId);
      if (!ep?.published) return 0;
      const { published: _gone, ...rest } = ep;
      return this.#d.repo.putEndpoint(rest);
    });
    if (revision > 0) await this.#settle(revision);
  }

  /** Wait for programming; on failure remove the intent just written and rethrow the cause. */
  async #programOrUndo(revision: number, owner: Owner, undo: () => Promise<number>): Promise<void> {
    try {
      await this.#d.reconciler.waitFor(revision, owner, this.#timeout);
    } catch (e) {
      const undoRevision = await undo();
      if (undoRevision > 0) await this.#settle(undoRevision);
      throw isTrussError(e) ? e : errors.reconcileFailed(`programming the kernel failed: ${(e as Error).message}`, e);
    }
  }

  /** Wait for a removal to be programmed; failures are retried by the reconciler, not reported. */
  async #settle(revision: number): Promise<void> {
    try {
      await this.#d.reconciler.waitFor(revision, [], this.#timeout);
    } catch (e) {
      this.#d.log.warn('removal not yet programmed; the reconciler will retry', { err: e });
    }
  }
}
