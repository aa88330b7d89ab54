/**
 * The path walk of `truss doctor SRC DST [PORT/PROTO]`: would a new flow from SRC reach DST,
 * and if not, the one thing that stops it. Pure: it reads the daemon's status (the stored
 * intent, the live kernel check, the reconciler's objects, the cluster's peers and their
 * handshakes) and the two ends as the CLI resolved them through Docker (addresses, and for a
 * container its networks and endpoint ids). Steps, in the order a packet meets them: where
 * each end is (this host, a cluster peer, neither); a network they share (truss never routes
 * between networks); both endpoints joined; the WireGuard peer that carries it to another host
 * and its last handshake; the destination's port policy (the rule that admits the flow, or
 * none, and where the policy comes from); anti-spoofing; published ports; kernel drift and
 * objects in error on the path. The first blocking step is the verdict's summary.
 *
 * Name and label rules (`tcp/5432@name=api-*`) are judged as the kernel judges them: the source
 * address is in a selector's set when a container of the name catalog (any host) at that address
 * is one the selector names (core/desired.ts selectorSet). The daemon hands the catalog in.
 */
import type { PathBody, PathRequest, StatusView } from './admin-api.ts';
import { age } from './age.ts';
import { WG_DEVICE } from './cluster/desired.ts';
import { HANDSHAKE_STALE_S } from './cluster/handshake.ts';
import { effectiveIngress } from './desired.ts';
import { antispoofEnabled } from './guard.ts';
import { type Ip, ipEquals, parseIp, parsePrefix, prefixContains } from './ip.ts';
import type { NamedEndpoint } from './names/model.ts';
import { shortId, VXLAN_DEVICE } from './naming.ts';
import type { IngressPolicy, IngressRule } from './policy/model.ts';
import { admittingRule, type Flow, formatIngress, formatRule } from './policy/parse.ts';

type Net = StatusView['networks'][number];
type Ep = StatusView['endpoints'][number];
type Cluster = NonNullable<StatusView['cluster']>;
type Peer = Cluster['peers'][number];
type End = PathRequest['from'];
type Addr = End['addresses'][number];
type Step = PathBody['steps'][number];
type EndView = PathBody['from'];

/** Where one address of an end is, as this host sees it. */
type Place =
  | { readonly kind: 'local'; readonly addr: Addr; readonly ip: Ip; readonly net: Net; readonly ep: Ep }
  | { readonly kind: 'remote'; readonly addr: Addr; readonly ip: Ip; readonly net: Net; readonly peer?: Peer }
  | { readonly kind: 'outside'; readonly addr: Addr };
type OnNet = Exclude<Place, { kind: 'outside' }>;

const bareIp = (cidr: string | undefined): Ip | undefined =>
  cidr === undefined ? undefined : parseIp(cidr.split('/')[0] as string);
const contains = (cidr: string, ip: Ip): boolean => {
  const p = parsePrefix(cidr);
  return p !== undefined && prefixContains(p, ip);
};
const hasIp = (e: Ep, ip: Ip): boolean =>
  [e.ipv4, e.ipv6].some((a) => {
    const b = bareIp(a);
    return b !== undefined && ipEquals(b, ip);
  });
const peerLabel = (p: Peer): string => p.name ?? p.node;

function locate(addr: Addr, s: StatusView): Place {
  const ip = parseIp(addr.ip);
  if (ip === undefined) return { kind: 'outside', addr };
  const ep = s.endpoints.find((e) =>
    addr.endpointId !== undefined
      ? e.id === addr.endpointId
      : hasIp(e, ip) && (addr.networkId === undefined || e.networkId === addr.networkId),
  );
  const epNet = ep && s.networks.find((n) => n.id === ep.networkId);
  if (ep && epNet) return { kind: 'local', addr, ip, net: epNet, ep };
  const net = s.networks.find((n) => n.cluster && [...n.ipv4, ...n.ipv6].some((d) => contains(d.pool, ip)));
  if (!net) return { kind: 'outside', addr };
  const peer = s.cluster?.peers.find((p) => p.allowedIps.some((a) => contains(a, ip)));
  return { kind: 'remote', addr, ip, net, ...(peer ? { peer } : {}) };
}

/** The pair of places on one network to walk: both here first, then IPv4 first. */
function choosePair(src: readonly Place[], dst: readonly Place[]): [OnNet, OnNet] | undefined {
  const pairs: [OnNet, OnNet][] = [];
  for (const a of src) {
    for (const b of dst) {
      if (a.kind === 'outside' || b.kind === 'outside') continue;
      if (a.net.id === b.net.id && a.ip.family === b.ip.family) pairs.push([a, b]);
    }
  }
  const rank = ([a, b]: [OnNet, OnNet]): number =>
    (a.kind === 'remote' ? 2 : 0) + (b.kind === 'remote' ? 2 : 0) + (a.ip.family === 6 ? 1 : 0);
  return pairs.sort((x, y) => rank(x) - rank(y))[0];
}

const nameOf = (e: End): string => e.container ?? e.ref;
const netLabel = (p: OnNet, other?: OnNet): string =>
  p.addr.network ?? other?.addr.network ?? (p.net.cluster ? p.net.cluster.name : shortId(p.net.id));

function endView(e: End, p: Place | undefined): EndView {
  if (p === undefined || p.kind === 'outside') return { ref: e.ref, ...(p ? { ip: p.addr.ip } : {}), where: 'outside' };
  const common = {
    ref: e.ref,
    ip: p.addr.ip,
    networkId: p.net.id,
    network: netLabel(p),
  };
  if (p.kind === 'local') return { ...common, where: 'this-host', endpointId: p.ep.id };
  return { ...common, where: 'cluster-peer', ...(p.peer ? { node: peerLabel(p.peer) } : {}) };
}

/** The networks an end's places are on, for the operator (Docker's names when the CLI gave them). */
function networksOf(places: readonly Place[]): string {
  const names = [...new Set(places.map((p) => (p.kind === 'outside' ? (p.addr.network ?? p.addr.ip) : netLabel(p))))];
  return names.length === 1 ? `network ${names[0]}` : `networks ${names.join(', ')}`;
}

/** No pair of places on one network: different networks (blocked), or an end truss does not know. */
function unpaired(req: PathRequest, src: readonly Place[], dst: readonly Place[], flow: string): PathBody {
  const [srcName, dstName] = [nameOf(req.from), nameOf(req.to)];
  const view = { flow, from: endView(req.from, src[0]), to: endView(req.to, dst[0]) };
  const ends: readonly (readonly [End, readonly Place[]])[] = [
    [req.from, src],
    [req.to, dst],
  ];
  const lost = ends.find(([, p]) => !p.some((x) => x.kind !== 'outside'));
  // a container on Docker's own networks only, to a truss one: truss drops new traffic between them
  const dockerOnly = lost?.[0] === req.from && req.from.container !== undefined && src.length > 0;
  if (lost && !(dockerOnly && dst.some((p) => p.kind !== 'outside'))) {
    const [end, places] = lost;
    const ips = places.map((p) => p.addr.ip).join(', ') || 'no address';
    const who = end.container === undefined && ips === end.ref ? end.ref : `${nameOf(end)} (${ips})`;
    const summary = `${who} is on no truss network this host or its cluster knows: truss doctor walks paths between containers on truss networks`;
    return { verdict: 'unknown', summary, ...view, steps: [{ id: 'endpoints', status: 'unknown', detail: summary }] };
  }
  const dstNet = dst.find((p): p is OnNet => p.kind !== 'outside') as OnNet;
  const shared = src.find(
    (a): a is OnNet => a.kind !== 'outside' && dst.some((b) => b.kind !== 'outside' && b.net.id === a.net.id),
  );
  if (shared) {
    const summary = `${srcName} and ${dstName} share network ${netLabel(shared)} but no address family: give addresses of one family (IPv4 or IPv6)`;
    return { verdict: 'unknown', summary, ...view, steps: [{ id: 'network', status: 'unknown', detail: summary }] };
  }
  const summary =
    `${srcName} is on ${networksOf(src)} and ${dstName} on ${networksOf(dst)}: they share no network, ` +
    `and truss keeps networks apart. Put both on one network, e.g. docker network connect ${netLabel(dstNet)} ${srcName}`;
  return { verdict: 'blocked', summary, ...view, steps: [{ id: 'network', status: 'blocked', detail: summary }] };
}

/** "web 198.18.1.2", or the IP alone when it is what the operator gave. */
const named = (name: string, p: OnNet): string => (name === p.addr.ip ? name : `${name} ${p.addr.ip}`);

function whereText(p: OnNet): string {
  if (p.kind === 'local') return `this host (${p.ep.hostVeth})`;
  return p.peer ? `host ${peerLabel(p.peer)} (cluster peer ${p.peer.endpoint})` : 'another host of the cluster';
}

function tunnelStep(p: Extract<OnNet, { kind: 'remote' }>, c: Cluster | undefined, nowMs: number): Step {
  const cl = p.net.cluster;
  if (cl && !cl.encrypt) {
    return { id: 'tunnel', status: 'info', detail: `carried by VXLAN to the other host (no handshake to check)` };
  }
  if (!c) return { id: 'tunnel', status: 'unknown', detail: 'this daemon shows no cluster section' };
  const { peer } = p;
  if (!peer) {
    return {
      id: 'tunnel',
      status: 'blocked',
      detail: `no cluster peer of this host carries ${p.addr.ip}: the host that holds it is not a peer here (truss status: PEERS; is it a member of cluster network ${cl?.name ?? shortId(p.net.id)}?)`,
    };
  }
  const who = `cluster peer ${peerLabel(peer)} (${peer.endpoint})`;
  const fix = `is truss (and its WireGuard) running on ${peerLabel(peer)}, and does UDP reach ${peer.endpoint} over the underlay?`;
  if (peer.latestHandshake === 0) {
    return { id: 'tunnel', status: 'blocked', detail: `${who} has never completed a WireGuard handshake: ${fix}` };
  }
  const ago = nowMs / 1000 - peer.latestHandshake;
  if (ago > HANDSHAKE_STALE_S) {
    return {
      id: 'tunnel',
      status: 'blocked',
      detail: `${who}: last WireGuard handshake ${age(ago)} ago (over ${HANDSHAKE_STALE_S} s: the tunnel is down): ${fix}`,
    };
  }
  return { id: 'tunnel', status: 'ok', detail: `${who}, last WireGuard handshake ${age(ago)} ago` };
}

/** The catalog's containers at `ip`, on any host: whom the kernel's name/label sets count the address as. */
function containersAt(names: readonly NamedEndpoint[], ip: Ip): NamedEndpoint[] {
  const seen = new Set<string>();
  return names.filter((e) => {
    if (seen.has(e.containerId)) return false;
    const at = e.addresses.some((a) => {
      const x = parseIp(a);
      return x !== undefined && ipEquals(x, ip);
    });
    if (at) seen.add(e.containerId);
    return at;
  });
}

/**
 * The first rule that admits the flow from any of `peers` (or from its address alone): a set
 * holds every selected container's addresses, so one matching container at the address is enough.
 */
function firstAdmitting(rules: IngressPolicy, flow: Flow, peers: readonly NamedEndpoint[]): IngressRule | undefined {
  const hits = [admittingRule(rules, flow), ...peers.map((peer) => admittingRule(rules, { ...flow, peer }))];
  let first: IngressRule | undefined;
  for (const r of hits) if (r && (first === undefined || rules.indexOf(r) < rules.indexOf(first))) first = r;
  return first;
}

/** The name/label rules of `rules` that cover the flow's protocol and port (whatever its source). */
function peerRulesFor(rules: IngressPolicy, flow: Flow): IngressRule[] {
  return rules.filter(
    (r) =>
      r.peer !== undefined &&
      r.proto === flow.proto &&
      (r.ports === undefined || (flow.port !== undefined && flow.port >= r.ports.from && flow.port <= r.ports.to)),
  );
}

/** Why names may not be what the kernel holds now, or cannot be known here; undefined when they are. */
function namesCaveat(
  s: StatusView,
  names: readonly NamedEndpoint[] | undefined,
): { readonly pending: boolean; readonly text: string } | undefined {
  const n = s.names;
  if (!n || names === undefined) return { pending: false, text: 'this daemon knows no container names' };
  if (n.docker.state === 'connecting' || n.clusterSynced === false) {
    const what = n.docker.state === 'connecting' ? "Docker's containers" : "the other hosts' names";
    return {
      pending: true,
      text: `truss has not read ${what} yet, and keeps the kernel's name/label sets as they were until it has: run truss doctor again in a moment`,
    };
  }
  if (n.docker.state === 'off' || n.docker.state === 'unreachable') {
    return {
      pending: false,
      text: `the Docker API is ${n.docker.state} here (${n.docker.reason ?? 'truss status: names'}), so this host's containers have no names`,
    };
  }
  return undefined;
}

const labelsText = (e: NamedEndpoint): string => {
  const all = Object.entries(e.labels).map(([k, v]) => (v === '' ? k : `${k}=${v}`));
  if (all.length === 0) return 'no labels';
  return `labels ${all.slice(0, 5).join(', ')}${all.length > 5 ? `, +${all.length - 5} more` : ''}`;
};

/** Who the source is to the name/label rules `peerRules`, which admit none of `peers`. */
function unmatchedText(ip: string, peers: readonly NamedEndpoint[], peerRules: readonly IngressRule[]): string {
  const list = peerRules.map(formatRule).join(', ');
  if (peers.length === 0) {
    return `${ip} is not a known container (on this host or another), so the name/label rules (${list}) do not match it`;
  }
  const byLabel = peerRules.some((r) => r.peer?.by === 'label');
  const who = peers.map((p) => (byLabel ? `${p.name} (${labelsText(p)})` : p.name)).join(', ');
  return `${ip} is container ${who}, which the name/label rules (${list}) do not match`;
}

function policyStep(
  s: StatusView,
  req: PathRequest,
  a: OnNet,
  b: Extract<OnNet, { kind: 'local' }>,
  flow: string,
  names: readonly NamedEndpoint[] | undefined,
): Step {
  const dst = nameOf(req.to);
  const label = netLabel(b, a);
  const runtime = s.policies.find((p) => p.networkId === b.net.id);
  const rules = effectiveIngress(b.net, b.ep, runtime);
  const source =
    b.ep.ingress !== undefined
      ? `${dst}'s own truss.ingress option`
      : runtime !== undefined
        ? `the run-time policy of network ${label} (truss policy set)`
        : `network ${label}'s truss.ingress option (docker network create)`;
  if (rules === undefined) {
    const why = runtime !== undefined ? ' (cleared at run time)' : '';
    return { id: 'policy', status: 'ok', detail: `no port policy on ${dst}${why}: every ${flow} is admitted` };
  }
  const f: Flow = {
    proto: req.proto,
    ...(req.port !== undefined ? { port: req.port } : {}),
    source: a.addr.ip,
  };
  const peers = containersAt(names ?? [], a.ip);
  const rule = firstAdmitting(rules, f, peers);
  const peerRules = peerRulesFor(rules, f);
  const caveat = namesCaveat(s, names);
  const text = formatIngress(rules);
  if (rule) {
    const admits = `rule ${formatRule(rule)} of ${source} (${text}) admits ${flow}`;
    if (rule.peer === undefined) return { id: 'policy', status: 'ok', detail: admits };
    const who = peers
      .filter((p) => admittingRule([rule], { ...f, peer: p }))
      .map((p) => p.name)
      .join(', ');
    const detail = `${admits} from container ${who} (${a.addr.ip})`;
    if (caveat?.pending) return { id: 'policy', status: 'unknown', detail: `${detail}, but ${caveat.text}` };
    return { id: 'policy', status: 'ok', detail };
  }
  const denied = s.policyCounters[b.ep.id]?.packets ?? 0;
  const wanted = rules.length === 0 ? flow : `${text},${flow}`;
  const fix =
    b.ep.ingress !== undefined
      ? `docker network disconnect ${label} ${dst}, then docker network connect --driver-opt truss.ingress=${wanted} ${label} ${dst}`
      : `truss policy set ${label} --ingress ${wanted}`;
  let byName = '';
  if (peerRules.length > 0) {
    byName = ` ${unmatchedText(a.addr.ip, peers, peerRules)}${caveat ? `; ${caveat.text}` : ''}.`;
    if (caveat?.pending) {
      return {
        id: 'policy',
        status: 'unknown',
        detail: `${dst}'s port policy, ${source}: ${text}, admits no ${flow} from ${a.addr.ip} as far as truss knows now.${byName}`,
      };
    }
  }
  return {
    id: 'policy',
    status: 'blocked',
    detail: `${dst}'s port policy, ${source}: ${text}, admits no ${flow} from ${a.addr.ip} (${denied} packet(s) denied so far).${byName} To allow it: ${fix}`,
  };
}

function antispoofStep(s: StatusView, a: Extract<OnNet, { kind: 'local' }>, name: string): Step {
  if (!antispoofEnabled(a.net, a.ep)) {
    return { id: 'anti-spoofing', status: 'info', detail: `off for ${name} (truss.antispoof=false)` };
  }
  const drops = Object.values(s.guardCounters).reduce((n, c) => n + c.packets, 0);
  return {
    id: 'anti-spoofing',
    status: 'info',
    detail: `on: ${name} may send only as ${a.addr.ip} from ${a.ep.mac} (${drops} spoofed packet(s) dropped on this host)`,
  };
}

function publishedStep(req: PathRequest, b: Extract<OnNet, { kind: 'local' }>): Step | undefined {
  const ports = b.ep.published?.ports ?? [];
  if (ports.length === 0) return undefined;
  const list = ports.map((p) => `${p.hostIp ?? '*'}:${p.hostPort}->${p.port}/${p.proto}`).join(', ');
  const hit = ports.some((p) => p.port === req.port && p.proto === req.proto);
  const note = hit ? ' (from outside this host: the host port; between containers: the container port)' : '';
  return { id: 'published', status: 'info', detail: `${nameOf(req.to)} publishes ${list}${note}` };
}

/** Kernel drift and objects in error that name this path's bridge, veths or policy chains. */
function kernelStep(s: StatusView, places: readonly OnNet[]): Step {
  const marks = new Set<string>();
  /** the reconciler's whole-host objects on a cross-host path (their keys name no link) */
  const wholeKeys = new Set<string>();
  for (const p of places) {
    marks.add(p.net.bridge);
    if (p.kind === 'local') {
      marks.add(p.ep.hostVeth);
      marks.add(shortId(p.ep.id));
    } else if (p.net.cluster?.encrypt === false) {
      marks.add(VXLAN_DEVICE);
      wholeKeys.add('vxlan');
    } else {
      marks.add(WG_DEVICE);
      for (const k of ['wireguard', 'routes']) wholeKeys.add(k);
    }
  }
  const onPath = (text: string): boolean => [...marks].some((m) => text.includes(m));
  const errors = Object.entries(s.reconciler.objects)
    .filter(([key, o]) => o.state === 'error' && (wholeKeys.has(key) || onPath(key)))
    .map(([key, o]) => `${key} in error: ${o.lastError ?? o.code ?? 'no message'}`);
  const drift = s.kernel.problems.filter(onPath);
  const unread = (s.errors ?? []).filter((e) => e.startsWith('kernel check:'));
  const found = [...errors, ...drift, ...unread];
  if (found.length === 0) return { id: 'kernel', status: 'ok', detail: 'the kernel matches the intent on this path' };
  return {
    id: 'kernel',
    status: 'unknown',
    detail: `the kernel differs from the intent on this path: ${found.join('; ')} (truss reconcile repairs; truss status shows why)`,
  };
}

function verdictOf(steps: readonly Step[], allowed: string): Pick<PathBody, 'verdict' | 'summary'> {
  const blocked = steps.find((x) => x.status === 'blocked');
  if (blocked) return { verdict: 'blocked', summary: blocked.detail };
  const unknown = steps.find((x) => x.status === 'unknown');
  if (unknown) return { verdict: 'unknown', summary: unknown.detail };
  return { verdict: 'allowed', summary: allowed };
}

/**
 * Walk the path of a new flow `req` from its source to its destination, as `s` shows this host.
 * `names`: the name catalog (this host's and the other hosts' named endpoints), which name= and
 * label= rules are judged against; absent in a daemon without names (such rules admit nobody).
 */
export function walkPath(s: StatusView, req: PathRequest, nowMs: number, names?: readonly NamedEndpoint[]): PathBody {
  const flow = req.proto === 'icmp' ? 'icmp' : `${req.proto}/${req.port ?? '?'}`;
  const src = req.from.addresses.map((x) => locate(x, s));
  const dst = req.to.addresses.map((x) => locate(x, s));
  const pair = choosePair(src, dst);
  if (!pair) return unpaired(req, src, dst, flow);
  const [a, b] = pair;
  const [srcName, dstName] = [nameOf(req.from), nameOf(req.to)];
  const steps: Step[] = [
    {
      id: 'endpoints',
      status: a.kind === 'remote' && b.kind === 'remote' ? 'unknown' : 'info',
      detail: `${named(srcName, a)} on ${whereText(a)}; ${named(dstName, b)} on ${whereText(b)}${
        a.kind === 'remote' && b.kind === 'remote'
          ? `: neither is on this host, run truss doctor on ${srcName}'s host`
          : ''
      }`,
    },
  ];
  const cl = a.net.cluster;
  const kind = a.kind === 'remote' || b.kind === 'remote' ? ` (cluster network ${cl?.name ?? '?'})` : '';
  steps.push({ id: 'network', status: 'ok', detail: `both on network ${netLabel(a, b)}${kind}` });
  for (const [p, name] of [
    [a, srcName],
    [b, dstName],
  ] as const) {
    if (p.kind === 'local' && p.ep.sandboxKey === undefined) {
      steps.push({
        id: 'joined',
        status: 'blocked',
        detail: `${name}'s endpoint on ${netLabel(p)} is not joined: its container is not running (docker start ${name})`,
      });
    }
  }
  for (const p of [a, b]) if (p.kind === 'remote') steps.push(tunnelStep(p, s.cluster, nowMs));
  if (b.kind === 'local') steps.push(policyStep(s, req, a, b, flow, names));
  else if (a.kind === 'local') {
    const host = b.peer ? peerLabel(b.peer) : 'its host';
    steps.push({
      id: 'policy',
      status: 'unknown',
      detail: `${dstName}'s port policy is enforced on ${host}, which this host cannot see: run truss doctor there`,
    });
  }
  if (a.kind === 'local') steps.push(antispoofStep(s, a, srcName));
  const published = b.kind === 'local' ? publishedStep(req, b) : undefined;
  if (published) steps.push(published);
  steps.push(kernelStep(s, [a, b]));
  const allowed = `nothing on the path blocks ${flow} from ${srcName} to ${dstName}`;
  return { ...verdictOf(steps, allowed), flow, from: endView(req.from, a), to: endView(req.to, b), steps };
}
