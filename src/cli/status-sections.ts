/**
 * The parts of human `truss status` that say what is wrong and what is pending: the HEALTH
 * line, the kernel verdict, objects in error, the last pass, orphans waiting for the GC, IPAM
 * usage per pool, and the cluster's etcd connection and peers. Pure; format.ts puts them together.
 */
import type { StatusBody } from '../core/admin-api.ts';
import { hostRange, parsePrefix } from '../core/ip.ts';
import { age, ageSince, type Health, objectsInError, peerName } from './health.ts';
import { table } from './table.ts';

const short = (id: string): string => id.slice(0, 12);

/** One line under the title: `HEALTH: ok`, or the count and what `truss status --check` lists. */
export function formatHealthLine(h: Health): string {
  const warn = h.warnings.length > 0 ? `, ${h.warnings.length} warning(s)` : '';
  if (h.problems.length === 0) return `HEALTH: ok${warn}`;
  return `HEALTH: ${h.problems.length} problem(s)${warn} (listed by truss status --check; details below)`;
}

/** `in sync` only when the kernel matches and no object is in error. */
export function formatKernel(
  s: Pick<StatusBody, 'kernel'> & { readonly reconciler?: Partial<StatusBody['reconciler']> },
  nowMs: number,
): string[] {
  const inError = objectsInError(s);
  const { kernel } = s;
  const head =
    kernel.inSync && inError.length === 0
      ? 'KERNEL: in sync'
      : `KERNEL: ${[
          kernel.inSync ? '' : `${kernel.problems.length} difference(s)`,
          inError.length > 0 ? `${inError.length} object(s) in error` : '',
        ]
          .filter(Boolean)
          .join(', ')}`;
  // why: the verdict may rest on an earlier listing (no change announced since): say how old
  const seen = kernel.lookedAt ? ` (listed ${ageSince(kernel.lookedAt, nowMs)} ago, no kernel change since)` : '';
  const out = [head + seen, ...kernel.problems.map((p) => `  - ${p}`)];
  if (inError.length > 0) {
    out.push(
      '',
      `OBJECTS IN ERROR (${inError.length})`,
      table([
        ['OBJECT', 'CODE', 'SINCE', 'LAST TRY', 'LAST ERROR'],
        ...inError.map((o) => [
          o.key,
          o.code ?? '-',
          `${ageSince(o.since, nowMs)} ago`,
          `${ageSince(o.updatedAt, nowMs)} ago`,
          o.lastError ?? '-',
        ]),
      ]),
    );
  }
  out.push(...formatLastPass(s.reconciler, nowMs));
  return out;
}

function formatLastPass(r: Partial<StatusBody['reconciler']> | undefined, nowMs: number): string[] {
  const out: string[] = [];
  const p = r?.lastPass;
  if (p) {
    const when = p.at ? ` ${ageSince(p.at, nowMs)} ago` : '';
    out.push(
      `LAST PASS: ${p.full ? 'full' : 'incremental'}${when}, revision ${p.revision}, ` +
        `${p.changes} change(s), ${p.failures} failure(s), ${p.durationMs} ms`,
    );
    for (const key of p.failed ?? []) {
      const o = r?.objects?.[key];
      out.push(`  - ${key}: ${o?.lastError ?? 'failed'}`);
    }
  }
  if (r?.passError) {
    out.push(`LAST PASS could not run ${ageSince(r.passError.at, nowMs)} ago: ${r.passError.error}`);
  }
  return out.length > 0 ? ['', ...out] : [];
}

/** Endpoints the GC will reclaim after the grace period, with the deadline. */
export function formatOrphans(
  orphans: StatusBody['orphans'],
  containers: ReadonlyMap<string, string> | undefined,
): string[] {
  if (!orphans || orphans.length === 0) return [];
  return [
    '',
    `ORPHANS (${orphans.length}) waiting for the GC grace period`,
    table([
      ['ENDPOINT', ...(containers ? ['CONTAINER'] : []), 'NETWORK', 'SINCE', 'RECLAIMED AFTER', 'WHY'],
      ...orphans.map((o) => [
        short(o.endpointId),
        ...(containers ? [containers.get(o.endpointId) ?? '-'] : []),
        short(o.networkId),
        o.since,
        o.held ? 'kept: its sandbox is still a network namespace' : o.deadline,
        o.reason,
      ]),
    ]),
  ];
}

// ?? '?': status prints what it can of a record that lacks its pool (never throws)
const rangeOf = (p: StatusBody['pools'][number]): string => p.subPool ?? p.pool ?? '?';

/** Usable addresses of the pool's allocation range: exact below 10^9, else a power of two. */
function poolSize(p: StatusBody['pools'][number]): { total: bigint | undefined; text: string } {
  const prefix = parsePrefix(rangeOf(p));
  if (!prefix) return { total: undefined, text: '?' };
  const { first, last } = hostRange(prefix);
  const total = last - first + 1n;
  if (total < 1_000_000_000n) return { total, text: String(total) };
  return { total, text: `~2^${total.toString(2).length - (total & (total - 1n) ? 0 : 1)}` };
}

/** Per pool: what is used, of how many, how many are free; `verbose` lists every address. */
export function formatIpam(
  s: Pick<StatusBody, 'pools' | 'addresses'> & Partial<Pick<StatusBody, 'omitted'>>,
  verbose: boolean,
): string[] {
  const { pools, addresses: addrs } = s;
  const count = s.omitted?.addresses ?? addrs.length;
  const out = [`IPAM POOLS (${pools.length})  ADDRESSES (${count})`];
  const counted = new Map<string, number>();
  for (const a of addrs) counted.set(a.poolId, (counted.get(a.poolId) ?? 0) + 1);
  // a brief reply lists no addresses: each pool says how many it has
  const used = new Map(pools.map((p) => [p.id, p.used ?? counted.get(p.id) ?? 0]));
  if (pools.length > 0) {
    out.push(
      table([
        ['POOL', 'RANGE', 'USED', 'TOTAL', 'FREE'],
        ...pools.map((p) => {
          const n = used.get(p.id) ?? 0;
          const size = poolSize(p);
          const free =
            size.total === undefined ? '?' : size.total < 1_000_000_000n ? String(size.total - BigInt(n)) : size.text;
          return [p.id, rangeOf(p), String(n), size.text, free];
        }),
      ]),
    );
  }
  if (verbose) {
    for (const p of pools) {
      const mine = addrs.filter((a) => a.poolId === p.id);
      out.push(`  ${p.id}:`);
      for (const a of mine) out.push(`    ${a.address}  ${a.kind}${a.owner ? ` ${a.owner}` : ''}`);
      if (mine.length === 0) out.push('    -');
    }
  } else if (count > 0) out.push('  (truss status --verbose lists the addresses)');
  return out;
}

type Cluster = NonNullable<StatusBody['cluster']>;

/** How this host reaches etcd now: a read, its lease, its watch. */
export function formatEtcdConnection(e: Cluster['etcd'], nowMs: number): string[] {
  if (e.reachable === undefined && e.lease === undefined) return []; // a daemon before these fields
  const parts = [
    e.reachable === false
      ? `UNREACHABLE (${e.error ?? 'no answer'})`
      : e.reachable
        ? `reachable (${e.latencyMs ?? '?'} ms)`
        : '',
    e.lease ? `lease ${e.lease === 'lost' ? 'LOST' : e.lease === 'none' ? 'none (not registered)' : e.lease}` : '',
    e.watch
      ? `watch ${e.watch === 'disconnected' ? 'DISCONNECTED' : e.watch}` +
        (e.watchSince && e.watch !== 'none' ? ` for ${ageSince(e.watchSince, nowMs)}` : '') +
        (e.watch === 'disconnected' && e.watchError ? ` (${e.watchError})` : '')
      : '',
  ];
  return [`etcd connection: ${parts.filter(Boolean).join(', ')}`];
}

const bytes = (n: number): string => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
};

/** How traffic reaches a peer (reach.ts): `relay via NAME` names the relay. */
function pathText(
  p: { readonly path?: string | undefined; readonly via?: string | undefined },
  names: Readonly<Record<string, string>>,
): string {
  if (p.path === 'relayed') return `relay via ${p.via !== undefined ? (names[p.via] ?? p.via) : '?'}`;
  if (p.path === 'unreachable') return 'UNREACHABLE (no relay)';
  return p.path ?? 'direct';
}

/**
 * This host's reachability: its address, and what the other hosts see (a NAT, how it maps), its
 * --public-endpoint and --relay.
 */
export function formatReach(r: Cluster['reach']): string[] {
  if (!r) return [];
  const nat =
    r.nat === undefined
      ? 'reachable'
      : `behind a NAT (${r.nat === 'independent' ? 'endpoint-independent mapping' : r.nat === 'dependent' ? 'a new mapping per destination: hole punching cannot work, relayed' : 'mapping not known yet'})`;
  const parts = [
    `address ${r.address}`,
    r.publicEndpoint !== undefined ? `public endpoint ${r.publicEndpoint}` : nat,
    ...(r.publicEndpoint !== undefined && r.nat !== undefined ? ['behind a NAT'] : []),
    ...(r.seenAs ? [`seen as ${r.seenAs.join(', ')}`] : []),
    ...(r.relay ? ['relay'] : []),
  ];
  return [`reachability: ${parts.join(', ')}`];
}

/** Each WireGuard peer: who, where, which blocks it is given, its last handshake and transfer. */
export function formatPeers(c: Partial<Cluster>, nowMs: number): string[] {
  const peers = c.peers ?? [];
  if (peers.length === 0) return [];
  return [
    `PEERS (${peers.length})`,
    table([
      ['NAME', 'NODE ID', 'ENDPOINT', 'PATH', 'ALLOWED', 'HANDSHAKE', 'TRANSFER(RX/TX)'],
      ...peers.map((p) => [
        peerName(p),
        p.node,
        p.endpoint ?? '-',
        pathText(p, c.names ?? {}),
        p.allowedIps.join(',') || '-',
        p.latestHandshake === 0 ? 'never' : `${age(nowMs / 1000 - p.latestHandshake)} ago`,
        p.rxBytes === undefined ? '-' : `${bytes(p.rxBytes)}/${bytes(p.txBytes ?? 0)}`,
      ]),
    ]),
  ];
}
