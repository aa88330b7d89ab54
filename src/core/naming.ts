/**
 * Every kernel name and ownership mark truss derives lives here.
 * Links: a 3-letter prefix + 12 hex of the Docker id (15 chars = IFNAMSIZ-1), and an
 * ifalias mark "truss:<kind>:<full id>" so a freshly started daemon recognises its own
 * objects with no memory (a user-named bridge carries the same alias mark).
 */
import { type PeerSelector, selectorText } from './names/model.ts';
import { sha256Hex } from './sha256.ts';

export const IFNAMSIZ_MAX = 15;

export const NFT_TABLE = 'truss';
export const NFT_FAMILY = 'inet';
export const IPT_CHAIN = 'TRUSS-FORWARD';
/**
 * The first letters of every link truss makes (bridges, veths, ifbs, the tunnel devices; a new
 * family must keep them): the iptables FORWARD shim accepts `tr+` in two rules instead of two per
 * network (iptables.ts), as Calico's Felix owns `cali+`. The assumption, as there: a truss host
 * has no link of its own whose name starts with `tr` (tun/tap, wg, bond, vlan and Docker's
 * names do not); one that had would get its forwarded traffic past a FORWARD DROP policy
 * (docs/security.md).
 */
export const TRUSS_IFNAME_PREFIX = 'tr';
/** The port-policy table (inet family), updated per endpoint, never replaced whole. */
export const NFT_POLICY_TABLE = 'truss_policy';
/** The anti-spoofing table (bridge family: it sees frames as they enter the bridge from a port). */
export const NFT_GUARD_TABLE = 'truss_guard';
export const NFT_GUARD_FAMILY = 'bridge';

const HEX64 = /^[0-9a-f]{64}$/;
export const isDockerId = (s: unknown): s is string => typeof s === 'string' && HEX64.test(s);
export const shortId = (id: string): string => id.slice(0, 12);

export const bridgeName = (networkId: string): string => `trb${shortId(networkId)}`;
export const hostVethName = (endpointId: string): string => `trv${shortId(endpointId)}`;
export const peerVethName = (endpointId: string): string => `trc${shortId(endpointId)}`;

/** The ifb device that shapes an endpoint's egress (truss.bandwidth); not a tr[bvc] link: planLinks never sees it. */
export const ifbName = (endpointId: string): string => `trf${shortId(endpointId)}`;
/** The ifalias mark of an endpoint's ifb device (a kind parseOwnerMark does not read, for the same reason). */
export const ifbMark = (endpointId: string): string => `truss:ifb:${endpointId}`;
/** The endpoint id in an ifb mark, or undefined. */
export const parseIfbMark = (alias: string | undefined): string | undefined =>
  alias === undefined ? undefined : /^truss:ifb:([0-9a-f]{64})$/.exec(alias)?.[1];
export const isTrussIfbName = (name: string): boolean => /^trf[0-9a-f]{12}$/.test(name);
/** The host veth an ifb belongs to (same endpoint), and back: trf<12 hex> <-> trv<12 hex>. */
export const hostVethOfIfb = (ifb: string): string => `trv${ifb.slice(3)}`;
export const ifbOfHostVeth = (veth: string): string => `trf${veth.slice(3)}`;
/** The published-ports table (inet family, naming.ts owner tags on its elements), updated per endpoint. */
export const NFT_PORTS_TABLE = 'truss_ports';
/** The DNS redirection table (inet family): dns-enabled networks' queries to truss's responder, replaced whole. */
export const NFT_DNS_TABLE = 'truss_dns';
/** The comment tagging one endpoint's elements in the published-ports maps. */
export const portsOwnerName = (endpointId: string): string => `ep_${shortId(endpointId)}`;

/** The nft chain holding one endpoint's ingress policy. */
export const policyChainName = (endpointId: string): string => `ep_${shortId(endpointId)}`;
/**
 * The port-policy sets of a name= or label= source, shared by every endpoint chain that names it:
 * `sel_<10 hex of SHA-256 of selectorText>`, then `_4`/`_6` per family. The selector's own text
 * never reaches nft: a name glob or label value cannot break out of a batch, whatever it holds.
 */
export const selectorSetName = (s: PeerSelector): string => `sel_${sha256Hex(selectorText(s)).slice(0, 10)}`;

/** Linux interface names we accept from users: no '/', ':', whitespace, or shell metacharacters. */
const IFNAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$/;
export const isValidIfName = (s: string): boolean => IFNAME.test(s) && s !== '.' && s !== '..';

/**
 * Names in truss's own namespaces (bridges, veths, ifbs, the tunnel devices): never a
 * user's bridge name (com.docker.network.bridge.name), or a later endpoint or cluster
 * network would collide with it (security review L9).
 */
export const isReservedIfName = (s: string): boolean =>
  /^tr[bvcf][0-9a-f]{12}$/.test(s) || s === 'trwg0' || s === 'trvx0';

export type MarkKind = 'br' | 'ep';
/**
 * The ownership mark of a bridge or a host veth: "truss:<kind>:<full id>", stamped since
 * issue 13 with the id of the state database that made it: "truss:<kind>:<full id>:<state id>".
 * Objects of another (or an unknown) state are never pruned automatically (reconcile/plan.ts).
 */
export const ownerMark = (kind: MarkKind, id: string, stateId?: string): string =>
  stateId === undefined ? `truss:${kind}:${id}` : `truss:${kind}:${id}:${stateId}`;

/** A state id: 16 lower-case hex (64 random bits), made with the state database. */
const STATE_ID = /^[0-9a-f]{16}$/;
export const isStateId = (s: unknown): s is string => typeof s === 'string' && STATE_ID.test(s);

export interface OwnerMark {
  readonly kind: MarkKind;
  readonly id: string;
  /** the state that made the object; absent on marks of truss before issue 13 (unstamped) */
  readonly state?: string;
}

export function parseOwnerMark(alias: string | undefined): OwnerMark | undefined {
  if (!alias) return undefined;
  const m = /^truss:(br|ep):([0-9a-f]{64})(?::([0-9a-f]{16}))?$/.exec(alias);
  if (!m) return undefined;
  return { kind: m[1] as MarkKind, id: m[2] as string, ...(m[3] !== undefined ? { state: m[3] } : {}) };
}

/**
 * Whose is a marked object, seen from the state `owner`: 'own' when it carries owner's stamp,
 * or no stamp at all while owner adopts unstamped objects (a database that existed before
 * stamps: an upgrade); 'foreign' otherwise (another state's, or unstamped beside a new database).
 * Without an owner (tests, tools) every mark is own, as before stamps.
 */
export function markOwner(
  mark: OwnerMark,
  owner: { readonly stateId: string; readonly adoptUnstamped: boolean } | undefined,
): 'own' | 'foreign' {
  if (!owner) return 'own';
  if (mark.state === undefined) return owner.adoptUnstamped ? 'own' : 'foreign';
  return mark.state === owner.stateId ? 'own' : 'foreign';
}

/** What to do about foreign links (status, logs, `truss doctor`, docs/operations.md). */
export const FOREIGN_FIX =
  'start truss with the --state-dir that made them to adopt them, or remove them with `truss cleanup --foreign`';

/** Names the reconciler may remove when no mark is readable (e.g. a half-created veth). */
export const isTrussLinkName = (name: string): boolean => /^tr[bvc][0-9a-f]{12}$/.test(name);

/**
 * Deterministic MAC for an endpoint (locally administered, unicast). Like Docker's bridge
 * (02:42:<ip>), it is derived from the IPv4 address when there is one: an address handed
 * to a new container keeps its MAC, so neighbour entries that hosts and other containers
 * still hold for it stay right (no traffic to a stale MAC after reuse). Otherwise it is
 * derived from the endpoint id.
 */
export function macFor(endpointId: string, ipv4Cidr?: string): string {
  const octets = ipv4Cidr?.split('/')[0]?.split('.').map(Number);
  const tail =
    octets && octets.length === 4 && octets.every((o) => Number.isInteger(o) && o >= 0 && o <= 255)
      ? octets
      : [0, 2, 4, 6].map((i) => Number.parseInt(endpointId.slice(i, i + 2), 16));
  return [0x02, 0x5e, ...tail].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** The VXLAN device of unencrypted cluster networks (truss.encrypt=false): one per host. */
export const VXLAN_DEVICE = 'trvx0';
/** IANA's VXLAN port (RFC 7348); every host of a cluster uses it (no per-host port in the NodeRecord). */
export const VXLAN_PORT = 4789;
/** truss's VXLAN network identifier: 0x747275 ("tru"), far from Docker overlay's (4096 up) and Flannel's (1). */
export const VXLAN_VNI = 0x747275;
/** The ifalias mark of a truss VXLAN device. */
export const vxlanMark = (name: string): string => `truss:vx:${name}`;

/**
 * A host's VTEP MAC, derived from its node name (unique in the cluster): 02 (locally
 * administered, unicast) + 40 bits of FNV-1a-64 of "truss-vtep:<name>". Every host computes
 * the same MAC for a node, so nothing needs publishing; the receiving host sets it on its own
 * device. Collisions (2^-40 per pair) are detected where peers are computed and refused.
 */
export function vtepMac(node: string): string {
  return hashedMac(`truss-vtep:${node}`);
}

/**
 * A network's bridge MAC, the gateway MAC its containers hold in their neighbour tables:
 * 02 + 40 bits of FNV-1a-64 of "truss-bridge:<network id>", set when the bridge is made.
 * why: a bridge without an address of its own takes the lowest MAC among its ports and changes
 * it when that port leaves; every container still holding the old MAC for the gateway (and, on
 * cluster networks, for the proxied remote addresses) then sends into the void until its
 * neighbour entry is probed again, seconds later. Docker's bridge driver sets one for the same
 * reason; derived from the network id, it is also the same after a restart or reboot.
 */
export function bridgeMac(networkId: string): string {
  return hashedMac(`truss-bridge:${networkId}`);
}

/** 02 (locally administered, unicast) + 40 bits of FNV-1a-64 of `seed`. */
function hashedMac(seed: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(seed)) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  const tail = [32n, 24n, 16n, 8n, 0n].map((s) => Number((h >> s) & 0xffn));
  return [0x02, ...tail].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * truss's route protocol number. Free in the kernel's RTPROT_* list (include/uapi/linux/rtnetlink.h:
 * 0-4, 8-18, 42, 99, 186-192) and iproute2's rt_protos, and in the numbers other routing daemons
 * use (Calico Felix 80, BIRD 12, FRR 11 and 186-198, kube-router 17, keepalived 18). 116 = 0x74 = 't'.
 * The ownership mark of every route and `ip rule` truss makes (cluster routes, policy routing).
 */
export const TRUSS_ROUTE_PROTO = 116;
