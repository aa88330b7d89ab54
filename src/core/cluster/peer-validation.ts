/**
 * Which records of the cluster view may be programmed (pure). Every record comes from etcd,
 * which any cluster host (or anyone who reaches a plaintext etcd) can write, so each record is
 * checked for shape AND for consistency with the others; a bad record is left out on its own,
 * with the reason (status), and never takes anything else down. The rules, in order:
 *
 * Node records
 *   N1 shape: name and id match [a-z0-9][a-z0-9.-]{0,62}, address is a bare IP.
 *   N2 the etcd key a record was read under (when the agent gives it) names the same node id.
 *   N3 one record per node id: the older claim (lower createRevision) wins; when that cannot be
 *      told (a revision missing, or equal), no record of that id is used (alarm).
 *   N4 a peer's underlay address is a unicast address (not unspecified, loopback, multicast,
 *      link-local or 255.255.255.255), not this host's own address (alarm) and not inside a
 *      local cluster network (it would route the tunnel into itself).
 *   N5 a value that must be unique (WireGuard public key; VXLAN underlay address and VTEP MAC):
 *      this host's own value is never given to a peer (alarm); among peers the older claim
 *      wins and the newer one is rejected; when that cannot be told, no claimant is used (alarm).
 * Block records (per cluster network this host is in; only blocks of its members count)
 *   B1 a canonical network CIDR, inside the cluster network's subnets and exactly of the
 *      cluster's block size (default /26 IPv4, /122 IPv6; a subnet smaller than that is one block).
 *   B2 the owner's node record was accepted (N1-N5); an owner with no record is reported.
 *   B3 never containing an address of this host's own containers on that network (alarm).
 *   B4 never overlapping this host's own blocks: such a peer block is not routed (alarm).
 *   B5 overlapping blocks of peers: the older claim wins, the newer is rejected; when that
 *      cannot be told, the contested range is routed to neither (alarm).
 * A peer gets as allowed IPs / routes exactly its accepted blocks, nothing else.
 */
import {
  formatIp,
  formatPrefix,
  type Ip,
  isNetworkAddress,
  type Prefix,
  parseIp,
  parsePrefix,
  prefixContains,
  prefixesOverlap,
  prefixWithin,
} from '../ip.ts';
import type { ClusterView, LocalClusterNetwork } from './desired.ts';
import { type BlockRecord, CLUSTER_PREFIX, isValidNodeName, type NodeRecord, nodeIdOf } from './model.ts';

/** Block prefix length per family when the cluster does not say otherwise (cluster-ipam.ts's default). */
export const DEFAULT_BLOCK_LENGTH: { readonly 4: number; readonly 6: number } = { 4: 26, 6: 122 };

/** What was left out and why; alarms are the rejections that look like an attack or a cloned host. */
export class Findings {
  readonly rejected: string[] = [];
  readonly alarms: string[] = [];
  reject(why: string, alarm = false): void {
    if (!this.rejected.includes(why)) this.rejected.push(why);
    if (alarm && !this.alarms.includes(why)) this.alarms.push(why);
  }
}

const isStr = (v: unknown): v is string => typeof v === 'string';
const revOf = (r: { readonly createRevision?: unknown }): number | undefined =>
  typeof r.createRevision === 'number' && Number.isSafeInteger(r.createRevision) && r.createRevision > 0
    ? r.createRevision
    : undefined;

/** The one claim that keeps a contested value: strictly the oldest one, or undefined when that cannot be told. */
export function oldestClaim<T extends { readonly createRevision?: number }>(claims: readonly T[]): T | undefined {
  const revs = claims.map(revOf);
  if (revs.some((r) => r === undefined)) return undefined;
  const min = Math.min(...(revs as number[]));
  const first = claims.filter((c) => revOf(c) === min);
  return first.length === 1 ? first[0] : undefined;
}

/** The key's path below the cluster prefix, split ("nodes/v" -> ["nodes", "v"]); undefined when absent. */
const keyParts = (key: unknown): string[] | undefined =>
  isStr(key) ? (key.startsWith(CLUSTER_PREFIX) ? key.slice(CLUSTER_PREFIX.length) : key).split('/') : undefined;

/** N2 for a node record: nodes/<id>. */
function nodeKeyAgrees(n: NodeRecord): boolean {
  const p = keyParts(n.key);
  return p === undefined || (p.length === 2 && p[0] === 'nodes' && p[1] === nodeIdOf(n));
}

/** N2 for a block record: blocks/<node>/<cluster>/<cidr> ('/' as '_'; the layout of model.ts). */
function blockKeyAgrees(b: BlockRecord): boolean {
  const p = keyParts(b.key);
  if (p === undefined) return true;
  const [kind, node, cluster, cidr] = p;
  return (
    p.length === 4 &&
    kind === 'blocks' &&
    node === b.node &&
    cluster === b.cluster &&
    cidr === b.block.replace('/', '_')
  );
}

/** N1, N2 and the shape of members and blocks. */
export function wellFormed(view: ClusterView, f: Findings): ClusterView {
  const nodes = view.nodes.filter((n) => {
    const ok =
      typeof n === 'object' &&
      n !== null &&
      isStr(n.name) &&
      isValidNodeName(n.name) &&
      (n.id === undefined || (isStr(n.id) && isValidNodeName(n.id))) &&
      isStr(n.address) &&
      parseIp(n.address) !== undefined;
    const label = (n as { id?: unknown; name?: unknown } | null)?.id ?? (n as { name?: unknown } | null)?.name ?? null;
    if (!ok) f.reject(`node record ${JSON.stringify(label)}: malformed`);
    else if (!nodeKeyAgrees(n))
      f.reject(`node record under ${n.key} names node ${nodeIdOf(n)}: a record's key and content must agree`, true);
    return ok && nodeKeyAgrees(n);
  });
  const members = view.members.filter((m) => typeof m === 'object' && m !== null && isStr(m.cluster) && isStr(m.node));
  const blocks = view.blocks.filter((b) => {
    const ok = typeof b === 'object' && b !== null && isStr(b.cluster) && isStr(b.node) && isStr(b.block);
    if (!ok) f.reject('block record: malformed');
    else if (!blockKeyAgrees(b))
      f.reject(
        `block record under ${b.key} says ${b.block} of node ${b.node}: a record's key and content must agree`,
        true,
      );
    return ok && blockKeyAgrees(b);
  });
  return { ...view, nodes, members, blocks };
}

/** N3: one record per node id. */
export function onePerId(nodes: readonly NodeRecord[], f: Findings): Map<string, NodeRecord> {
  const byId = new Map<string, NodeRecord[]>();
  for (const n of nodes) byId.set(nodeIdOf(n), [...(byId.get(nodeIdOf(n)) ?? []), n]);
  const out = new Map<string, NodeRecord>();
  for (const [id, group] of byId) {
    if (group.length === 1) {
      out.set(id, group[0] as NodeRecord);
      continue;
    }
    const first = oldestClaim(group);
    if (first) {
      out.set(id, first);
      f.reject(
        `node ${id}: ${group.length - 1} newer record(s) claim this node id too (${where(group, first)}): rejected`,
        true,
      );
    } else {
      f.reject(
        `node ${id}: ${group.length} records claim this node id and which came first is unknown: none is used`,
        true,
      );
    }
  }
  return out;
}

const where = (group: readonly NodeRecord[], keep: NodeRecord): string =>
  group
    .filter((n) => n !== keep)
    .map((n) => n.key ?? `address ${n.address}`)
    .join(', ');

/** N4: why a peer's underlay address must not be used, or undefined. */
export function underlayProblem(address: Ip, local: Ip | undefined, nets: readonly Prefix[]): string | undefined {
  const v = address.value;
  if (address.family === 4) {
    if (v === 0n) return 'the unspecified address';
    if (v >> 24n === 127n) return 'a loopback address';
    if (v >> 28n === 14n) return 'a multicast address';
    if (v >> 16n === 0xa9fen) return 'a link-local address';
    if (v === 0xffffffffn) return 'the broadcast address';
  } else {
    if (v === 0n) return 'the unspecified address';
    if (v === 1n) return 'a loopback address';
    if (v >> 120n === 0xffn) return 'a multicast address';
    if (v >> 118n === 0x3fan) return 'a link-local address';
  }
  if (local && local.family === address.family && local.value === v) return "this host's own address";
  const inside = nets.find((p) => prefixContains(p, address));
  return inside ? `inside cluster network ${formatPrefix(inside)}` : undefined;
}

/**
 * N5: ids of peers that lose a value that must be unique. `selfValue` (this host's) is never
 * given to a peer; among peers the oldest claim keeps it, or nobody when that cannot be told.
 */
export function duplicatesOf(
  peers: readonly NodeRecord[],
  value: (n: NodeRecord) => string | undefined,
  selfValue: string | undefined,
  what: string,
  f: Findings,
): Set<string> {
  const out = new Set<string>();
  const byValue = new Map<string, NodeRecord[]>();
  for (const n of peers) {
    const v = value(n);
    if (v === undefined) continue;
    if (v === selfValue) {
      out.add(nodeIdOf(n));
      f.reject(`node ${nodeIdOf(n)}: its ${what} ${v} is this host's own: rejected`, true);
    } else byValue.set(v, [...(byValue.get(v) ?? []), n]);
  }
  for (const [v, group] of byValue) {
    if (group.length < 2) continue;
    const first = oldestClaim(group);
    for (const n of group) if (n !== first) out.add(nodeIdOf(n));
    const ids = group.map(nodeIdOf).join(', ');
    f.reject(
      first
        ? `${what} ${v} is claimed by nodes ${ids}: node ${nodeIdOf(first)} claimed it first and keeps it, the others are rejected`
        : `${what} ${v} is claimed by nodes ${ids} and which came first is unknown: none of them is used`,
      true,
    );
  }
  return out;
}

/** A local cluster network with its subnets parsed (several local networks of one cluster merged). */
interface Net {
  readonly cluster: string;
  readonly subnets: readonly Prefix[];
  readonly ownAddresses: readonly Ip[];
}

export function mergeNets(nets: readonly LocalClusterNetwork[]): Net[] {
  const by = new Map<string, { subnets: Prefix[]; ownAddresses: Ip[] }>();
  for (const n of nets) {
    const m = by.get(n.cluster) ?? { subnets: [], ownAddresses: [] };
    m.subnets.push(...n.subnets.map((s) => parsePrefix(s)).filter((p) => p !== undefined));
    m.ownAddresses.push(...(n.localAddresses ?? []).map((a) => parseIp(a)).filter((a) => a !== undefined));
    by.set(n.cluster, m);
  }
  return [...by].map(([cluster, m]) => ({ cluster, ...m }));
}

interface Claim {
  readonly node: string;
  readonly block: string;
  readonly prefix: Prefix;
  readonly createRevision?: number;
}

/** B1: why a block record is not a block of this network, or undefined. */
function blockProblem(b: BlockRecord, p: Prefix | undefined, net: Net, len: { 4: number; 6: number }) {
  if (!p || !isNetworkAddress(p) || formatPrefix(p) !== b.block)
    return `block ${JSON.stringify(b.block)} of node ${b.node}: not a canonical network CIDR`;
  const subnet = net.subnets.find((s) => prefixWithin(p, s));
  if (!subnet) return `block ${b.block} of node ${b.node} is outside cluster network ${net.cluster}`;
  const want = Math.max(len[p.family], subnet.length);
  return p.length === want
    ? undefined
    : `block ${b.block} of node ${b.node} is a /${p.length}, not cluster network ${net.cluster}'s block size /${want}`;
}

/** Claims in the order they keep their range: this host's own first, then the oldest; unknown age last. */
const claimOrder = (self: string) => (a: Claim, b: Claim) =>
  Number(a.node !== self) - Number(b.node !== self) ||
  (revOf(a) ?? Number.MAX_SAFE_INTEGER) - (revOf(b) ?? Number.MAX_SAFE_INTEGER) ||
  (a.node < b.node ? -1 : a.node > b.node ? 1 : 0) ||
  (a.block < b.block ? -1 : a.block > b.block ? 1 : 0);

/** B5: the winner of a claim against an already accepted overlapping one, or undefined (neither). */
function contest(kept: Claim, c: Claim, self: string, f: Findings): Claim | undefined {
  if (kept.node === self) {
    f.reject(
      `block ${c.block} of node ${c.node} overlaps this host's own block ${kept.block}: not routed to ${c.node}`,
      true,
    );
    return kept;
  }
  if (revOf(kept) !== undefined && revOf(c) !== undefined && (revOf(kept) as number) < (revOf(c) as number)) {
    f.reject(
      `block ${c.block} of node ${c.node} overlaps block ${kept.block} of node ${kept.node}, claimed first: rejected`,
      true,
    );
    return kept;
  }
  f.reject(
    `block ${c.block} of node ${c.node} overlaps block ${kept.block} of node ${kept.node} and which came first is unknown: routed to neither`,
    true,
  );
  return undefined;
}

/**
 * B1-B5: node id -> the blocks it may be given, for the peers in `owners` (ids whose node record
 * passed N1-N5 for this transport), sorted by node id.
 */
export function acceptBlocks(
  view: ClusterView,
  nets: readonly Net[],
  owners: ReadonlyMap<string, NodeRecord>,
  len: { 4: number; 6: number },
  f: Findings,
): [string, string[]][] {
  const out = new Map<string, Set<string>>();
  const registered = new Set(view.nodes.map(nodeIdOf));
  for (const net of nets) {
    const members = new Set(view.members.filter((m) => m.cluster === net.cluster).map((m) => m.node));
    members.add(view.self);
    const claims: Claim[] = [];
    for (const b of view.blocks) {
      if (b.cluster !== net.cluster || !members.has(b.node)) continue;
      const p = parsePrefix(b.block);
      const why = blockProblem(b, p, net, len);
      if (why || !p) {
        if (b.node !== view.self) f.reject(why ?? b.block);
        continue;
      }
      if (b.node !== view.self && !owners.has(b.node)) {
        // B2: a rejected node's own rejection says why
        if (!registered.has(b.node)) f.reject(`node ${b.node} has blocks but is not registered`);
        continue;
      }
      const own = b.node === view.self ? undefined : net.ownAddresses.find((a) => prefixContains(p, a));
      if (own) {
        f.reject(
          `block ${b.block} of node ${b.node} contains this host's container address ${formatIp(own)}: not routed to ${b.node}`,
          true,
        );
        continue;
      }
      const rev = revOf(b);
      claims.push({ node: b.node, block: b.block, prefix: p, ...(rev !== undefined ? { createRevision: rev } : {}) });
    }
    const kept: (Claim & { contested?: boolean })[] = [];
    for (const c of claims.sort(claimOrder(view.self))) {
      if (kept.some((k) => k.node === c.node && k.block === c.block)) continue; // the same claim twice
      const rivals = kept.filter((k) => prefixesOverlap(k.prefix, c.prefix));
      if (rivals.length === 0) kept.push(c);
      else if (c.node !== view.self) {
        for (const r of rivals) {
          if (r.contested)
            f.reject(`block ${c.block} of node ${c.node} overlaps contested block ${r.block}: rejected`, true);
          else if (contest(r, c, view.self, f) === undefined) r.contested = true;
        }
      }
    }
    for (const k of kept) {
      if (k.node !== view.self && !k.contested) out.set(k.node, (out.get(k.node) ?? new Set()).add(k.block));
    }
  }
  return [...out].map(([n, s]): [string, string[]] => [n, [...s].sort()]).sort(([a], [b]) => (a < b ? -1 : 1));
}
