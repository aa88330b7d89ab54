/**
 * The network service's dealings with the cluster (truss.cluster networks): the tunnel's MTU,
 * joining the cluster network, leaving it with the host's last local network of it. Split from
 * network-service.ts; the request journal's settle (settle.ts) leaves through here too.
 */

import type { ClusterMembership } from '../core/contracts.ts';
import { errors } from '../core/errors.ts';
import type { NetworkSpec } from '../core/model.ts';
import { dnsEnabled } from '../core/names/catalog.ts';
import type { Logger } from '../obs/logger.ts';
import type { IntentRepo } from './intent.ts';

/** Cluster networks carry the tunnel's MTU; a larger -o mtu would fragment between hosts. */
export function clusterMtu(
  c: ClusterMembership | undefined,
  cluster: NetworkSpec['cluster'],
  mtu: number,
  given: boolean,
): number {
  if (!cluster) return mtu;
  if (!c?.enabled()) {
    throw errors.unsupported(
      `option truss.cluster=${cluster.name} needs a cluster store: run truss serve with --store etcd://HOST:PORT`,
    );
  }
  const tunnel = c.mtu(cluster.encrypt);
  if (!given) return tunnel;
  if (mtu > tunnel) {
    throw errors.badOption(
      `option com.docker.network.driver.mtu=${mtu} is larger than the ${cluster.encrypt ? 'WireGuard' : 'VXLAN'} ` +
        `tunnel allows between hosts (${tunnel})`,
    );
  }
  return mtu;
}

export async function joinCluster(c: ClusterMembership | undefined, spec: NetworkSpec): Promise<void> {
  const cl = spec.cluster as NonNullable<NetworkSpec['cluster']>;
  const data = [...spec.ipv4, ...spec.ipv6];
  const subnets = data.map((d) => d.pool);
  const fingerprint = JSON.stringify({
    subnets,
    encrypt: cl.encrypt,
    internal: spec.internal,
    ingress: spec.ingress ?? null,
    // only when on: the fingerprints of networks made before truss.dns stay as they were
    ...(dnsEnabled(spec) ? { dns: true } : {}),
  });
  const shared = data.flatMap((d) => [d.gateway, ...Object.values(d.auxAddresses)]).filter((a) => a !== undefined);
  await c?.joinNetwork({ name: cl.name, subnets, encrypt: cl.encrypt, fingerprint, shared });
}

/**
 * Leave the cluster network once this host has no local network of it left (its endpoints
 * are gone with it). A failure is logged, not reported (Docker only logs DeleteNetwork
 * errors): the claim GC completes the leave later.
 */
export async function leaveIfLast(
  repo: IntentRepo,
  c: ClusterMembership | undefined,
  cluster: string,
  log: Logger,
): Promise<void> {
  const others = (await repo.listNetworks()).filter((n) => n.cluster?.name === cluster);
  if (others.length > 0) return;
  await c?.leaveNetwork(cluster).catch((e: unknown) => {
    log.warn('leaving the cluster network failed; the claim GC releases its allocations later', { cluster, err: e });
  });
}
