/**
 * What this host's networks use of the cluster's address space (pure): which cluster a pool's
 * network belongs to (the cluster IPAM asks before it hands out an address), and the addresses
 * in use here per cluster (the claim GC keeps those claims).
 */

/** the parts of a stored network these read */
export interface NetworkPools {
  readonly cluster?: { readonly name: string };
  readonly ipv4: readonly { readonly pool: string }[];
  readonly ipv6: readonly { readonly pool: string }[];
}

/** The cluster whose network has `pool`, if a cluster network has it. */
export function clusterOfPool(networks: readonly NetworkPools[], pool: string): string | undefined {
  return networks.find((n) => n.cluster && [...n.ipv4, ...n.ipv6].some((d) => d.pool === pool))?.cluster?.name;
}

/** cluster name -> the addresses this host's networks of that cluster hold (from the IPAM's addresses by pool) */
export function localUseByCluster(
  networks: readonly NetworkPools[],
  byPool: ReadonlyMap<string, ReadonlySet<string>>,
): Map<string, Set<string>> {
  const use = new Map<string, Set<string>>();
  for (const n of networks) {
    if (!n.cluster) continue;
    const set = use.get(n.cluster.name) ?? new Set<string>();
    for (const d of [...n.ipv4, ...n.ipv6]) for (const a of byPool.get(d.pool) ?? []) set.add(a);
    use.set(n.cluster.name, set);
  }
  return use;
}
