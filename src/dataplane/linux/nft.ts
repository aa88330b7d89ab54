/**
 * nftables: truss's whole firewall is ONE table, `inet truss`, rendered from the
 * FirewallObject by a pure function and replaced atomically in one `nft -f -` transaction
 * (create-if-absent, delete, create: the kernel swaps old for new with no gap). Other
 * tables (Docker's iptables-nft tables, firewalld, the admin's) are never read or touched.
 *
 * Ownership: the table name itself (naming.NFT_TABLE). Every rule carries a comment; rules
 * of one network name its short id, and the set elements of each bridge do too.
 *
 * Shape: the packet path does not grow with networks. `forward` does one conntrack test
 * (established flows, i.e. nearly every packet, stop there), one set lookup to let the first
 * packets of non-truss traffic go, then one verdict-map lookup (`egress`) by input
 * bridge into that network's own short chain; new flows into a truss bridge from anywhere
 * else are dropped by one set lookup. NAT rules are per network but only see the first
 * packet of each connection.
 *
 * VXLAN guard (only while the host has a VXLAN device): the kernel's VXLAN socket decapsulates
 * whatever arrives with our VNI, from anyone (there is no handshake), so an `input` chain drops
 * truss's VNI on the VXLAN port unless the source is a current peer's underlay address (sets
 * vxlan_peers4/6). Other VXLAN users of the port (Docker's overlay, other VNIs) are untouched:
 * the rule matches our VNI in the VXLAN header (`@th,96,24`: UDP header 8 bytes + flags 4).
 *
 * Published ports (table inet truss_ports, dnat.ts) DNAT new flows into truss bridges; `forward`
 * and the chains of non-internal networks admit flows whose conntrack entry was DNATed (`ct
 * status dnat`): a published port is public, from outside and from other networks alike, while
 * direct traffic between networks stays dropped and internal networks reach nothing.
 *
 * why br_netfilter matters: with bridge-nf-call-iptables=1 (dockerd loads br_netfilter and
 * sets it), bridged IPv4/IPv6 frames traverse the inet forward hook with
 * iifname == oifname == the bridge; the `same network` accept keeps them flowing.
 */

import { WG_DEVICE } from '../../core/cluster/desired.ts';
import type { FirewallNetwork, FirewallObject, VxlanGuard } from '../../core/desired.ts';
import { errors } from '../../core/errors.ts';
import { formatIp, parseIp } from '../../core/ip.ts';
import { isDockerId, NFT_FAMILY, NFT_TABLE, shortId, VXLAN_DEVICE } from '../../core/naming.ts';
import type { Exec } from './exec.ts';
import { canonicalCidr, checkIfName } from './links.ts';
import { diffNft, listTable } from './nft-read.ts';

export interface NftRenderOptions {
  /** Bridges that carry the host's default route: truss networks may send to them (rule 5 exempts them). */
  readonly uplinks?: readonly string[];
}

const TABLE = `${NFT_FAMILY} ${NFT_TABLE}`;
const q = (s: string): string => `"${s}"`;

function netTag(n: FirewallNetwork): string {
  if (!isDockerId(n.networkId)) throw errors.badId(`firewall: invalid network id ${JSON.stringify(n.networkId)}`);
  return shortId(n.networkId);
}

const chainOf = (n: FirewallNetwork): string => `net_${netTag(n)}`;

function ifnameSet(name: string, elements: readonly string[]): string[] {
  const body = elements.length > 0 ? [`\t\telements = { ${elements.join(', ')} }`] : [];
  return [`\tset ${name} {`, '\t\ttype ifname', ...body, '\t}', ''];
}

function egressMap(networks: readonly FirewallNetwork[]): string[] {
  const els = networks.map((n) => `${q(n.bridge)} : jump ${chainOf(n)}`);
  const body = els.length > 0 ? [`\t\telements = { ${els.join(', ')} }`] : [];
  return ['\tmap egress {', '\t\ttype ifname : verdict', ...body, '\t}', ''];
}

/** (peer link . bridge) pairs: other hosts of a cluster network may open flows into its bridge. */
function peerIngressSet(networks: readonly FirewallNetwork[]): string[] {
  const els = networks.flatMap((n) =>
    (n.peerLinks ?? []).map((l) => `${q(checkIfName(l))} . ${q(checkIfName(n.bridge))}`),
  );
  const body = els.length > 0 ? [`\t\telements = { ${els.join(', ')} }`] : [];
  return ['\tset peer_ingress {', '\t\ttype ifname . ifname', ...body, '\t}', ''];
}

/** Routed networks (core/routed.ts): their host ends' interface groups, as nft prints them. */
const groupOf = (n: FirewallNetwork): number | undefined => {
  const g = n.routed?.group;
  if (g === undefined) return undefined;
  if (!Number.isInteger(g) || g < 1 || g > 0xffffffff) throw errors.badOption(`firewall: invalid interface group ${g}`);
  return g;
};

/**
 * Present only with a routed network, so a host with bridges only keeps its table as it was:
 * `groups` (every routed network's host ends), `egress_group` (by input group, like `egress`),
 * `rpf_groups` (those whose sources are checked).
 */
function routedSets(networks: readonly FirewallNetwork[]): string[] {
  const routed = networks.filter((n) => groupOf(n) !== undefined);
  if (routed.length === 0) return [];
  const set = (name: string, els: readonly string[]): string[] => [
    `	set ${name} {`,
    '		type devgroup',
    ...(els.length > 0 ? [`		elements = { ${els.join(', ')} }`] : []),
    '	}',
    '',
  ];
  const map = routed.map((n) => `${groupOf(n)} : jump ${chainOf(n)}`);
  // (peer link . group): other hosts of a routed cluster network may open flows into its host ends
  const peers = routed.flatMap((n) => (n.peerLinks ?? []).map((l) => `${q(checkIfName(l))} . ${groupOf(n)}`));
  return [
    ...set(
      'groups',
      routed.map((n) => String(groupOf(n))),
    ),
    '	map egress_group {',
    '		type devgroup : verdict',
    `		elements = { ${map.join(', ')} }`,
    '	}',
    '',
    '\tset peer_ingress_group {',
    '\t\ttype ifname . devgroup',
    ...(peers.length > 0 ? [`\t\telements = { ${peers.join(', ')} }`] : []),
    '\t}',
    '',
    ...set(
      'rpf_groups',
      routed.filter((n) => n.routed?.rpf).map((n) => String(groupOf(n))),
    ),
  ];
}

/**
 * Anti-spoofing of routed networks: a source the host would not route back out of the link it
 * came in on is dropped, before conntrack (a point-to-point link: nothing else to check; ARP and
 * neighbour spoofing cannot redirect anything, the routes are the host's).
 */
function rpfChain(): string[] {
  return [
    '	chain prerouting {',
    '		type filter hook prerouting priority raw; policy accept;',
    '		iifgroup @rpf_groups fib saddr . iif oif missing drop comment "truss: routed: source not routed back to its link"',
    '	}',
    '',
  ];
}

/** forwardChain with routed networks: their groups are matched beside the bridges' names. */
function forwardChainRouted(): string[] {
  return [
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter - 10; policy accept;',
    '\t\tct state established,related accept comment "truss: replies of allowed flows"',
    '\t\tiifname != @bridges oifname != @bridges iifgroup != @groups oifgroup != @groups accept comment "truss: not truss traffic"',
    '\t\tiifname vmap @egress comment "truss: from a truss network: its own chain"',
    '\t\tiifgroup vmap @egress_group comment "truss: from a routed truss network: its own chain"',
    '\t\tiifname . oifname @peer_ingress accept comment "truss: from other hosts of a cluster network"',
    '\t\tiifname . oifgroup @peer_ingress_group accept comment "truss: from other hosts of a routed cluster network"',
    '\t\tct status dnat accept comment "truss: to a published port (table truss_ports)"',
    '\t\toifname @bridges drop comment "truss: new flows into a truss network from elsewhere"',
    '\t\toifgroup @groups drop comment "truss: new flows into a routed truss network from elsewhere"',
    '\t}',
    '',
  ];
}

function forwardChain(routed: boolean): string[] {
  if (routed) return forwardChainRouted();
  return [
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter - 10; policy accept;',
    // established first: nearly every packet is one, and this way it costs one conntrack test
    // (the first rule's two set lookups only for the first packets); both only accept, so the
    // order changes no verdict
    '\t\tct state established,related accept comment "truss: replies of allowed flows"',
    '\t\tiifname != @bridges oifname != @bridges accept comment "truss: not truss traffic"',
    '\t\tiifname vmap @egress comment "truss: from a truss network: its own chain"',
    '\t\tiifname . oifname @peer_ingress accept comment "truss: from other hosts of a cluster network"',
    '\t\tct status dnat accept comment "truss: to a published port (table truss_ports)"',
    '\t\toifname @bridges drop comment "truss: new flows into a truss network from elsewhere"',
    '\t}',
    '',
  ];
}

/**
 * truss.egress.via: what the network's policy routing sends to its next hop may leave, even when
 * the next hop sits behind a bridge (a gateway container on Docker's bridge, a LAN bridge).
 */
function egressViaRules(n: FirewallNetwork, tag: string): string[] {
  return (n.egressVia ?? []).map((v) => {
    const ip = parseIp(v);
    if (!ip) throw errors.badAddress(`firewall: invalid egress next hop ${JSON.stringify(v)}`);
    return `rt ${ip.family === 4 ? 'ip' : 'ip6'} nexthop ${formatIp(ip)} accept comment "${tag}: to its egress next hop"`;
  });
}

/** One network's egress decisions (rules 2, 3, 5, 6, 7), reached only via `egress`. */
function networkChain(n: FirewallNetwork, routed: boolean): string[] {
  const tag = `net ${netTag(n)}`;
  const br = q(checkIfName(n.bridge));
  const g = groupOf(n);
  const same = g === undefined ? `oifname ${br}` : `oifgroup ${g}`;
  const toRouted = routed ? [`oifgroup @groups drop comment "${tag}: to another truss network"`] : [];
  // only to its own subnets: the tunnel devices carry every cluster network of their mode, and the
  // host on the other end admits by device (peer_ingress), so anything else sent into them would
  // reach another network's containers there; other networks' chains drop into them outright
  const peers = [
    ...(n.peerLinks ?? []).flatMap((l) =>
      [
        ...n.subnets4.map((s) => `ip daddr ${canonicalCidr(s)}`),
        ...n.subnets6.map((s) => `ip6 daddr ${canonicalCidr(s)}`),
      ].map((d) => `oifname ${q(checkIfName(l))} ${d} accept comment "${tag}: to other hosts"`),
    ),
    ...[WG_DEVICE, VXLAN_DEVICE].map((l) => `oifname ${q(l)} drop comment "${tag}: to another network on other hosts"`),
  ];
  const rules = n.internal
    ? [`${same} accept comment "${tag}: same network"`, ...peers, `drop comment "${tag}: internal network"`]
    : [
        `${same} accept comment "${tag}: same network"`,
        ...peers,
        ...egressViaRules(n, tag),
        `ct status dnat accept comment "${tag}: to a published port (table truss_ports)"`,
        `oifname @bridges drop comment "${tag}: to another truss network"`,
        ...toRouted,
        `meta oifkind "bridge" oifname != @uplinks drop comment "${tag}: to a foreign bridge"`,
        `accept comment "${tag}: outbound"`,
      ];
  return [`\tchain ${chainOf(n)} {`, ...rules.map((r) => `\t\t${r}`), '\t}', ''];
}

function postroutingChain(networks: readonly FirewallNetwork[]): string[] {
  const rules = networks
    .filter((n) => n.nat && !n.internal)
    .flatMap((n) =>
      // why v6 too: as Docker 27+ does for its bridges; ULA (fd00::/8) subnets are not routed
      // back from outside, so without it a v6 network could only talk to the host
      [...n.subnets4.map((s) => ['ip', s] as const), ...n.subnets6.map((s) => ['ip6', s] as const)].map(([fam, s]) => {
        // traffic to the same cluster network on other hosts keeps its container source
        const peer = (n.peerLinks ?? []).map((l) => ` oifname != ${q(checkIfName(l))}`).join('');
        const g = groupOf(n);
        const out = g === undefined ? `oifname != ${q(checkIfName(n.bridge))}` : `oifgroup != ${g}`;
        return `\t\t${fam} saddr ${canonicalCidr(s)} ${out}${peer} masquerade comment "net ${netTag(n)}"`;
      }),
    );
  return [
    '\tchain postrouting {',
    '\t\ttype nat hook postrouting priority srcnat + 10; policy accept;',
    ...rules,
    '\t}',
  ];
}

function addrSet(name: string, type: 'ipv4_addr' | 'ipv6_addr', elements: readonly string[]): string[] {
  const body = elements.length > 0 ? [`\t\telements = { ${elements.join(', ')} }`] : [];
  return [`\tset ${name} {`, `\t\ttype ${type}`, ...body, '\t}', ''];
}

function checkGuard(g: VxlanGuard): { v4: string[]; v6: string[]; match: string } {
  if (!Number.isInteger(g.port) || g.port < 1 || g.port > 65535) throw errors.badOption(`VXLAN port ${g.port}`);
  if (!Number.isInteger(g.vni) || g.vni < 1 || g.vni > 0xffffff) throw errors.badOption(`VXLAN VNI ${g.vni}`);
  const ips = g.peers.map((p) => {
    const ip = parseIp(p);
    if (!ip) throw errors.badAddress(`firewall: invalid VXLAN peer address ${JSON.stringify(p)}`);
    return ip;
  });
  return {
    v4: ips.filter((i) => i.family === 4).map(formatIp),
    v6: ips.filter((i) => i.family === 6).map(formatIp),
    match: `udp dport ${g.port} @th,96,24 0x${g.vni.toString(16)}`,
  };
}

/** The VXLAN guard's sets (before the chains, as nft lists them). */
function vxlanSets(g: VxlanGuard | undefined): string[] {
  if (!g) return [];
  const c = checkGuard(g);
  return [...addrSet('vxlan_peers4', 'ipv4_addr', c.v4), ...addrSet('vxlan_peers6', 'ipv6_addr', c.v6)];
}

function inputChain(g: VxlanGuard | undefined): string[] {
  if (!g) return [];
  const { match } = checkGuard(g);
  return [
    '',
    '\tchain input {',
    '\t\ttype filter hook input priority filter - 10; policy accept;',
    `\t\t${match} ip saddr != @vxlan_peers4 drop comment "truss: VXLAN only from cluster peers"`,
    `\t\t${match} ip6 saddr != @vxlan_peers6 drop comment "truss: VXLAN only from cluster peers"`,
    '\t}',
  ];
}

/** Pure: the `inet truss` table for `f`, in the layout `nft list table` prints (modulo the normaliser). */
export function renderNftRuleset(f: FirewallObject, opts: NftRenderOptions = {}): string {
  const nets = f.networks;
  for (const n of nets) checkIfName(n.bridge);
  const routed = nets.some((n) => groupOf(n) !== undefined);
  const bridges = nets.map((n) => `${q(n.bridge)} comment "net ${netTag(n)}"`);
  const uplinks = [...new Set(opts.uplinks ?? [])].sort().map((u) => q(checkIfName(u)));
  const lines = [
    `table ${TABLE} {`,
    '\tcomment "truss: Docker network isolation and NAT; replaced whole by truss"',
    ...ifnameSet('bridges', bridges),
    ...ifnameSet('uplinks', uplinks),
    ...egressMap(nets),
    ...peerIngressSet(nets),
    ...routedSets(nets),
    ...vxlanSets(f.vxlan),
    ...(routed ? rpfChain() : []),
    ...forwardChain(routed),
    ...nets.flatMap((n) => networkChain(n, routed)),
    ...postroutingChain(nets),
    ...inputChain(f.vxlan),
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

/** The transaction that swaps the table: create-if-absent, delete, create — atomic, no window. */
export const renderNftTransaction = (ruleset: string): string => `table ${TABLE} {}\ndelete table ${TABLE}\n${ruleset}`;

// ---------- kernel ----------

export async function applyNft(exec: Exec, ruleset: string): Promise<void> {
  await exec.run('nft', ['-f', '-'], { stdin: renderNftTransaction(ruleset) });
}

/** Table inet truss as nft prints it, or undefined when it does not exist. */
export const readNft = (exec: Exec): Promise<string | undefined> => listTable(exec, NFT_FAMILY, NFT_TABLE);

/** Deletes the table; absent = success (the create-then-delete pair never fails on absence). */
export async function removeNft(exec: Exec): Promise<void> {
  await exec.run('nft', ['-f', '-'], { stdin: `table ${TABLE} {}\ndelete table ${TABLE}\n` });
}

export async function checkNft(exec: Exec, ruleset: string): Promise<string[]> {
  const observed = await readNft(exec);
  if (observed === undefined) return [`nft table ${TABLE} is missing`];
  return diffNft(ruleset, observed);
}
