/**
 * This host's own address on each of its cluster networks (core/cluster/host-address.ts: what it
 * is for), one per family of the network: claimed through the cluster IPAM exactly like a
 * container's address (an etcd claim under this host's addrs/ prefix, owner HOST_OWNER, inside one
 * of its blocks) and recorded in the local pool (kind 'host'). The reconciler finds it in the
 * cluster view (this host's host claims) and programs it.
 *
 * When: as the host joins the network (network create: a host without containers needs one too)
 * and, on full passes, for any local network whose claim the view lacks (a network made by truss
 * before host addresses, a claim lost with an etcd restored from a backup); the first such pass
 * after a start also records every claim locally again (a crash between claim and record). Both
 * find an existing claim first, so a restart keeps the address. A failure is logged, never fatal:
 * the network works without one (only host-originated traffic to other hosts does not), and the
 * next full pass tries again. It goes with the host's other claims when the host leaves the
 * network (agent.leaveNetwork), and with the pool locally (ReleasePool).
 */
import type { ClusterView } from '../core/cluster/desired.ts';
import { isHostClaim } from '../core/cluster/host-address.ts';
import { formatIp, type Ip, type Prefix, parseIp, parsePrefix, prefixContains } from '../core/ip.ts';
import type { NetworkSpec } from '../core/model.ts';
import type { Logger } from '../obs/logger.ts';
import { KeyedLock } from './mutex.ts';

export interface HostAddressesDeps {
  /** the cluster IPAM (cluster/cluster-ipam.ts) */
  readonly cluster: { claimHost(cluster: string, subnet: Prefix): Promise<Ip> };
  /** the local IPAM (ipam-service.ts) */
  readonly ipam: {
    poolsOf(pool: string): Promise<readonly unknown[]>;
    recordHostAddress(pool: string, ip: Ip): Promise<boolean>;
  };
  readonly log: Logger;
}

type ClusterNetwork = Pick<NetworkSpec, 'cluster' | 'ipv4' | 'ipv6'>;
const poolsOf = (n: ClusterNetwork): string[] => [...n.ipv4, ...n.ipv6].map((d) => d.pool);

export class HostAddresses {
  readonly #d: HostAddressesDeps;
  /** one claim at a time per cluster: a create and a repair never claim two */
  readonly #lock = new KeyedLock();
  /** the last failure logged per cluster (logged again only when it changes) */
  readonly #failed = new Map<string, string>();
  #recordedAll = false;
  #repairing = false;

  constructor(deps: HostAddressesDeps) {
    this.#d = deps;
  }

  /**
   * Claim (or find) and record the host address in each pool of the network that truss's IPAM
   * holds (another IPAM driver's addresses are not claimed in etcd: nothing to claim beside them).
   * Returns the addresses.
   */
  ensure(cluster: string, pools: readonly string[]): Promise<string[]> {
    return this.#lock.run(cluster, async () => {
      const out: string[] = [];
      for (const pool of pools) {
        const subnet = parsePrefix(pool);
        if (!subnet || (await this.#d.ipam.poolsOf(pool)).length === 0) continue;
        const ip = await this.#d.cluster.claimHost(cluster, subnet);
        await this.#d.ipam.recordHostAddress(pool, ip);
        out.push(formatIp(ip));
      }
      this.#failed.delete(cluster);
      return out;
    });
  }

  /** The host joins the network (network create): its address now, or by a later repair. */
  async join(n: ClusterNetwork): Promise<void> {
    const cluster = n.cluster?.name;
    if (cluster !== undefined) await this.#attempt(cluster, poolsOf(n));
  }

  /**
   * Give every local cluster network whose host claim `view` lacks one (the first call: every
   * network, so each claim is recorded locally again). Not concurrent with itself.
   */
  async repair(networks: readonly ClusterNetwork[], view: ClusterView): Promise<void> {
    if (this.#repairing) return;
    this.#repairing = true;
    try {
      let all = true;
      for (const n of networks) {
        const cluster = n.cluster?.name;
        if (cluster === undefined) continue;
        const pools = poolsOf(n);
        if (this.#recordedAll && !missing(pools, cluster, view)) continue;
        all = (await this.#attempt(cluster, pools)) && all;
      }
      if (all) this.#recordedAll = true;
    } finally {
      this.#repairing = false;
    }
  }

  async #attempt(cluster: string, pools: readonly string[]): Promise<boolean> {
    try {
      await this.ensure(cluster, pools);
      return true;
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      if (this.#failed.get(cluster) !== why) {
        this.#d.log.warn('no host address on the cluster network yet; retried on the next full pass', {
          cluster,
          err: e,
        });
      }
      this.#failed.set(cluster, why);
      return false;
    }
  }
}

/** Some pool of the network has no host claim of this host in the view. */
function missing(pools: readonly string[], cluster: string, view: ClusterView): boolean {
  const claimed = (view.hostClaims ?? [])
    .filter((c) => c.cluster === cluster && c.node === view.self && isHostClaim(c))
    .map((c) => parseIp(c.address))
    .filter((ip) => ip !== undefined);
  return pools.some((p) => {
    const s = parsePrefix(p);
    return s !== undefined && !claimed.some((ip) => prefixContains(s, ip));
  });
}
