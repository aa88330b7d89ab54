/** Human-readable rendering of `truss status` and `truss policy` (replies of core/admin-api.ts). */
import type { ClusterBody, OwnershipBody, StatusBody } from '../core/admin-api.ts';
import { effectiveBandwidth, formatRate } from '../core/bandwidth.ts';
import { OPT_ANTISPOOF } from '../core/guard.ts';
import { networkIngressText, type PolicyEndpointView, type PolicyView } from '../core/policy/view.ts';
import { describePort } from '../core/portmap.ts';
import { assessHealth } from './health.ts';
import {
  formatEtcdConnection,
  formatHealthLine,
  formatIpam,
  formatKernel,
  formatOrphans,
  formatPeers,
  formatReach,
} from './status-sections.ts';
import { table } from './table.ts';

// the daemon's types (optional fields may read undefined): a decoded reply is one as well
type Ep = StatusBody['endpoints'][number];

/** What formatStatus reads of a status reply; the counters may be missing (a daemon before them). */
export type StatusText = Pick<
  StatusBody,
  | 'version'
  | 'revision'
  | 'networks'
  | 'endpoints'
  | 'pools'
  | 'addresses'
  | 'kernel'
  | 'ownership'
  | 'cluster'
  | 'errors'
> &
  Partial<
    Pick<StatusBody, 'policyCounters' | 'guardCounters' | 'policies' | 'reconciler' | 'orphans' | 'names' | 'omitted'>
  >;

/** Docker's names of networks and containers (cli/docker-names.ts), looked up by the CLI when Docker answers. */
export interface DockerNames {
  /** network id -> name */
  readonly networks: ReadonlyMap<string, string>;
  /** endpoint id -> container name */
  readonly endpoints: ReadonlyMap<string, string>;
}

export interface StatusOptions {
  /** the clock ages are measured against (ms since the epoch; default now) */
  readonly now?: number;
  /** list every IPAM address */
  readonly verbose?: boolean;
  readonly names?: DockerNames;
}

type Net = StatusBody['networks'][number];

const limits = (b: Net['bandwidth']): string =>
  b === undefined
    ? '-'
    : `${b.egress === undefined ? '-' : formatRate(b.egress)}/${b.ingress === undefined ? '-' : formatRate(b.ingress)}`;

/** The network's anti-spoofing default (an endpoint's own truss.antispoof may differ). */
const antispoof = (n: Net): string => {
  const text = n.options?.[OPT_ANTISPOOF]; // ?.: a reply without options (older fixtures) reads as the default
  return text === 'false' || text === '0' ? 'off' : 'on';
};

function formatNetworks(s: StatusText, names: DockerNames | undefined): string[] {
  const { networks: nets, endpoints: eps } = s;
  const named = names !== undefined && nets.some((n) => names.networks.has(n.id));
  // as in ENDPOINTS: CLUSTER, EGRESS and BANDWIDTH only when some network has one
  const cluster = nets.some((n) => n.cluster);
  const egress = nets.some((n) => (n.egressVia ?? []).length > 0);
  const shaped = nets.some((n) => n.bandwidth);
  return [
    `NETWORKS (${nets.length})`,
    table([
      [
        'ID',
        ...(named ? ['NAME'] : []),
        'BRIDGE',
        'SUBNETS',
        'MTU',
        'FLAGS',
        ...(cluster ? ['CLUSTER'] : []),
        ...(egress ? ['EGRESS'] : []),
        'POLICY',
        'ANTISPOOF',
        ...(shaped ? ['BANDWIDTH(OUT/IN)'] : []),
        'ENDPOINTS',
      ],
      ...nets.map((n) => [
        n.id.slice(0, 12),
        ...(named ? [names.networks.get(n.id) ?? '-'] : []),
        // routed mode (core/routed.ts): no bridge; FLAGS says routed
        n.mode === 'routed' ? '-' : n.bridge,
        [...n.ipv4, ...n.ipv6].map((d) => d.pool).join(',') || '-',
        String(n.mtu),
        // what is in force: an internal network never NATs, whatever truss.nat says
        [n.internal ? 'internal' : n.nat ? 'nat' : '', n.mode === 'routed' ? 'routed' : ''].filter(Boolean).join(',') ||
          '-',
        ...(cluster ? [n.cluster ? `${n.cluster.name}(${n.cluster.encrypt ? 'wireguard' : 'vxlan'})` : '-'] : []),
        ...(egress ? [(n.egressVia ?? []).join(',') || '-'] : []),
        networkIngressText(n, s.policies),
        antispoof(n),
        ...(shaped ? [limits(n.bandwidth)] : []),
        String(eps.filter((e) => e.networkId === n.id).length),
      ]),
    ]),
  ];
}

export function formatStatus(s: StatusText, opts: StatusOptions = {}): string {
  const { networks: nets, endpoints: eps } = s;
  const now = opts.now ?? Date.now();
  const names = opts.names;
  const out: string[] = [`truss ${String(s.version)}  (state revision ${String(s.revision)})`];
  out.push(formatHealthLine(assessHealth(s, now)), '');
  out.push(...formatNetworks(s, names));
  // DENIED only when the daemon reports policy counters (endpoints without a policy show '-')
  const counters = s.policyCounters;
  const denied = (id: string): string[] => {
    if (counters === undefined) return [];
    const c = counters[id];
    return [typeof c?.packets === 'number' ? String(c.packets) : '-'];
  };
  // PORTS only when some endpoint publishes (-p): host binding -> container port
  const publishing = eps.some((e) => (e.published?.ports?.length ?? 0) > 0);
  const ports = (e: Ep): string[] =>
    publishing ? [(e.published?.ports ?? []).map((p) => `${describePort(p)}->${p.port}`).join(',') || '-'] : [];
  // BANDWIDTH only when some endpoint has a limit in force: send/receive, its own or its network's
  const netById = new Map(nets.map((n) => [n.id, n]));
  const limitOf = (e: Ep) => effectiveBandwidth(netById.get(e.networkId)?.bandwidth, e.bandwidth);
  const limited = eps.some((e) => limitOf(e) !== undefined);
  const rate = (bits: number | undefined): string => (bits === undefined ? '-' : formatRate(bits));
  const bandwidth = (e: Ep): string[] => {
    if (!limited) return [];
    const l = limitOf(e);
    return [l === undefined ? '-' : `${rate(l.egress)}/${rate(l.ingress)}`];
  };
  const containers = names && eps.some((e) => names.endpoints.has(e.id)) ? names.endpoints : undefined;
  out.push('', `ENDPOINTS (${eps.length})`);
  out.push(
    table([
      [
        'ID',
        ...(containers ? ['CONTAINER'] : []),
        'NETWORK',
        'VETH',
        'ADDRESSES',
        'JOINED',
        ...(counters ? ['DENIED'] : []),
        ...(publishing ? ['PORTS'] : []),
        ...(limited ? ['BANDWIDTH(OUT/IN)'] : []),
      ],
      ...eps.map((e) => [
        e.id.slice(0, 12),
        ...(containers ? [containers.get(e.id) ?? '-'] : []),
        e.networkId.slice(0, 12),
        e.hostVeth,
        [e.ipv4, e.ipv6].filter(Boolean).join(',') || '-',
        e.sandboxKey ? 'yes' : 'no',
        ...denied(e.id),
        ...ports(e),
        ...bandwidth(e),
      ]),
    ]),
  );
  // frames the anti-spoofing guards dropped, by reason (only while some port is guarded)
  const spoof = Object.entries(s.guardCounters ?? {});
  if (spoof.length > 0) {
    const total = spoof.reduce((n, [, c]) => n + c.packets, 0);
    out.push('', `ANTI-SPOOFING: ${total} frame(s) dropped (${spoof.map(([k, c]) => `${k} ${c.packets}`).join(', ')})`);
  }
  out.push('', ...formatIpam(s, opts.verbose === true));
  out.push('', ...formatKernel(s, now));
  out.push(...formatOrphans(s.orphans, containers));
  out.push(...formatForeign(s.ownership));
  if (s.cluster) out.push('', ...formatClusterAllocations(s.cluster, now));
  if (s.names) out.push('', ...formatNames(s.names));
  const errs = s.errors ?? [];
  if (errs.length > 0) out.push('', `ERRORS: ${errs.length} part(s) of the status could not be read`);
  for (const e of errs) out.push(`  - ${e}`);
  return `${out.join('\n')}\n`;
}

/** Names across hosts: where they come from, how many are known, truss DNS (docs/names.md). */
export function formatNames(n: NonNullable<StatusBody['names']>): string[] {
  const d = n.docker;
  const version = d.version ? ` (dockerd ${d.version})` : '';
  const synced = n.clusterSynced === false ? ', other hosts not read yet' : '';
  const out = [`NAMES: Docker API ${d.state}${version}; ${n.local} named here, ${n.remote} from other hosts${synced}`];
  if (d.reason) out.push(`  ${d.state === 'synced' ? 'note' : 'WARNING'}: ${d.reason}`);
  if (n.dns.networks > 0) {
    const ups = n.dns.upstreams.map((u) => `${u.address}->:${u.port}`).join(', ') || 'none';
    out.push(
      `DNS: ${n.dns.networks} truss.dns network(s); upstreams redirected: ${ups}; ` +
        `answered ${n.dns.answered}, relayed ${n.dns.forwarded}, failed ${n.dns.failed}`,
    );
    if (n.dns.warning && n.dns.warning !== d.reason) out.push(`  WARNING: ${n.dns.warning}`);
  }
  return out;
}

/** The links of other states this daemon leaves alone (issue 13); nothing when there are none. */
export function formatForeign(o: OwnershipBody | undefined): string[] {
  const f = o?.foreign;
  if (!f?.count) return [];
  const own = o?.stateId;
  return [
    '',
    `WARNING: ${f.count} truss object(s) of another state (this state: ${own ?? '?'}), left alone and never pruned:`,
    ...(f.links ?? []).map((l) => `  - ${l.kind || 'link'} ${l.name} (${l.state ? `state ${l.state}` : 'unstamped'})`),
    `  fix: ${f.fix ?? ''}`,
  ];
}

/** Per cluster network: blocks and claims per host, and what the claim GC is waiting to reclaim. */
export function formatClusterAllocations(c: Partial<ClusterBody>, now = Date.now()): string[] {
  const id = c.nodeId !== undefined && c.nodeId !== c.node ? ` (node id ${c.nodeId})` : '';
  const out = [`CLUSTER: host ${c.node ?? '?'}${id}${c.synced ? '' : ' (not synced with etcd yet)'}`];
  out.push(...formatReach(c.reach));
  if (c.wireguard) out.push(`wireguard: ${c.wireguard}`);
  if (c.etcd) {
    const auth = c.etcd.auth === 'password' ? `user ${c.etcd.user ?? '?'}` : c.etcd.auth;
    out.push(`etcd: ${c.etcd.tls ? 'TLS' : 'plaintext'}, auth ${auth}`);
    if (c.etcd.warning) out.push(`  WARNING: ${c.etcd.warning}`);
    out.push(...formatEtcdConnection(c.etcd, now));
  }
  for (const m of c.malformed ?? []) out.push(`  ! ignored record ${m.key}: ${m.why}`);
  const self = c.nodeId ?? c.node; // a daemon before node ids sent its name only
  const names = { ...(c.names ?? {}), ...(self !== undefined && c.node ? { [self]: c.node } : {}) };
  const rows = Object.entries(c.allocations ?? {}).flatMap(([cluster, byNode]) =>
    Object.entries(byNode).map(([node, a]) => [
      cluster,
      node,
      node === '*' ? '-' : (names[node] ?? '?'), // ?: not registered now (stopped, or gone)
      String(a.blocks),
      String(a.claims),
      node === '*' ? 'shared' : a.member ? 'yes' : 'no',
    ]),
  );
  if (rows.length > 0) out.push(table([['NETWORK', 'NODE ID', 'NAME', 'BLOCKS', 'CLAIMS', 'MEMBER'], ...rows]));
  for (const a of c.hostAddresses ?? []) out.push(`host address on ${a.cluster}: ${a.address} (${a.dev})`);
  const alarms = c.alarms ?? [];
  const rejected = c.rejected ?? [];
  if (rejected.length > 0)
    out.push(`rejected: ${rejected.length} cluster record(s) left out (${alarms.length} alarm(s))`);
  for (const r of rejected) out.push(`  ${alarms.includes(r) ? '!' : '-'} ${r}`);
  const r = c.reclaim;
  if (r) {
    out.push(
      `reclaim: ${r.orphans.length} orphan(s) waiting for the grace period; ` +
        `reclaimed ${r.reclaimedClaims} claim(s), ${r.reclaimedClusters} left network(s)` +
        `${r.lastError ? `; last pass failed: ${r.lastError}` : ''}`,
    );
    for (const o of r.orphans) {
      const deadline = o.deadline ? `, released after ${o.deadline}` : '';
      out.push(`  - ${o.cluster} ${o.kind}${o.address ? ` ${o.address}` : ''} since ${o.firstSeen}${deadline}`);
    }
    for (const u of r.unclaimed ?? []) {
      const by = u.holder ? ` (held by ${u.holder})` : '';
      out.push(`  ! ${u.cluster} ${u.address} is used here without this host's claim${by}`);
    }
  }
  out.push(...formatPeers(c, now));
  return out;
}

// ---------- truss policy ----------

/** GET/PUT /v1/networks/{id}/policy. `ingress` is canonical policy text; null = open. */
export type { PolicyEndpointView, PolicyView };

const ruleCount = (text: string): number => (text === 'none' ? 0 : text.split(',').length);

/** A policy as shown in a line or a column: whole if short, else cut at a rule boundary. */
export function summarizeIngress(text: string | null, max: number): string {
  if (text === null) return 'open';
  if (text.length <= max) return text;
  const cut = text.lastIndexOf(',', max);
  return `${text.slice(0, cut > 0 ? cut : max)},… (${ruleCount(text)} rules)`;
}

function describePolicy(v: PolicyView): string {
  if (v.ingress === null) {
    return v.source === 'runtime'
      ? 'open (cleared at run time: truss policy clear)'
      : 'open (no policy: all inbound traffic admitted)';
  }
  const what = v.ingress === 'none' ? 'none (nothing inbound)' : summarizeIngress(v.ingress, 200);
  const from =
    v.source === 'runtime'
      ? 'set at run time: truss policy set'
      : v.source === 'created'
        ? 'from creation: -o truss.ingress'
        : v.source;
  return `${what} (${from})`;
}

/** The containers a name=/label= rule admits from now: `api-1 198.18.0.5 (node n2)`, comma-separated. */
function describeMatches(matches: NonNullable<PolicyView['selectorRules']>[number]['matches']): string {
  if (matches.length === 0) return '(no container matches now)';
  return matches
    .map((m) => `${m.name} ${m.addresses.join(',') || '-'}${m.node === undefined ? '' : ` (node ${m.node})`}`)
    .join(', ');
}

export function formatPolicyView(v: PolicyView): string {
  const out = [`network ${v.networkId.slice(0, 12)}  ingress: ${describePolicy(v)}`, ''];
  if (v.endpoints.length === 0) out.push('(no endpoints on this network)');
  else {
    out.push(
      table([
        ['ENDPOINT', 'ADDRESSES', 'POLICY', 'DENIED'],
        ...v.endpoints.map((e) => [
          e.endpointId.slice(0, 12),
          e.addresses.join(',') || '-',
          e.override ? summarizeIngress(e.ingress, 40) : '(network)',
          e.joined ? String(e.denied.packets) : '- (not joined)',
        ]),
      ]),
    );
  }
  if (v.selectorRules !== undefined && v.selectorRules.length > 0) {
    out.push('', table([['RULE', 'MATCHES'], ...v.selectorRules.map((r) => [r.rule, describeMatches(r.matches)])]));
  }
  return `${out.join('\n')}\n`;
}
