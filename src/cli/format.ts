/** Human-readable rendering of `truss status`. */
interface Net {
  id: string;
  bridge: string;
  mtu: number;
  internal: boolean;
  nat: boolean;
  ipv4: { pool: string; gateway?: string }[];
  ipv6: { pool: string; gateway?: string }[];
}
interface Ep {
  networkId: string;
  id: string;
  hostVeth: string;
  ipv4?: string;
  ipv6?: string;
  sandboxKey?: string;
}

function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function formatStatus(s: Record<string, unknown>): string {
  const nets = (s.networks ?? []) as Net[];
  const eps = (s.endpoints ?? []) as Ep[];
  const pools = (s.pools ?? []) as { id: string }[];
  const addrs = (s.addresses ?? []) as { poolId: string; address: string; kind: string; owner?: string }[];
  const kernel = (s.kernel ?? { inSync: false, problems: [] }) as { inSync: boolean; problems: string[] };
  const out: string[] = [`truss ${String(s.version)}  (state revision ${String(s.revision)})`, ''];
  out.push(`NETWORKS (${nets.length})`);
  out.push(
    table([
      ['ID', 'BRIDGE', 'SUBNETS', 'MTU', 'FLAGS', 'ENDPOINTS'],
      ...nets.map((n) => [
        n.id.slice(0, 12),
        n.bridge,
        [...n.ipv4, ...n.ipv6].map((d) => d.pool).join(',') || '-',
        String(n.mtu),
        [n.internal ? 'internal' : '', n.nat ? 'nat' : ''].filter(Boolean).join(',') || '-',
        String(eps.filter((e) => e.networkId === n.id).length),
      ]),
    ]),
  );
  out.push('', `ENDPOINTS (${eps.length})`);
  out.push(
    table([
      ['ID', 'NETWORK', 'VETH', 'ADDRESSES', 'JOINED'],
      ...eps.map((e) => [
        e.id.slice(0, 12),
        e.networkId.slice(0, 12),
        e.hostVeth,
        [e.ipv4, e.ipv6].filter(Boolean).join(',') || '-',
        e.sandboxKey ? 'yes' : 'no',
      ]),
    ]),
  );
  out.push('', `IPAM POOLS (${pools.length})  ADDRESSES (${addrs.length})`);
  for (const p of pools) {
    const mine = addrs.filter((a) => a.poolId === p.id);
    out.push(
      `  ${p.id}: ${mine.map((a) => `${a.address}(${a.kind}${a.owner ? `:${a.owner}` : ''})`).join(' ') || '-'}`,
    );
  }
  out.push('', `KERNEL: ${kernel.inSync ? 'in sync' : `${kernel.problems.length} difference(s)`}`);
  for (const p of kernel.problems) out.push(`  - ${p}`);
  return `${out.join('\n')}\n`;
}
