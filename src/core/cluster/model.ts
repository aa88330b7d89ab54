/**
 * Multi-host ("cluster") networks: what truss keeps in the shared store (etcd).
 *
 * Host-local intent (networks, endpoints, local pools) always stays in the embedded store
 * under --state-dir, so a host keeps working, restarting and reconciling while etcd is
 * down. Only what hosts must agree on lives in etcd, under /truss/v2/, laid out by owner:
 * every key a host writes has its node id right after the kind, so etcd RBAC can give each
 * host readwrite on its own prefixes and read on the rest (`truss cluster rbac`):
 *   nodes/<id>                          NodeRecord, under the node's lease (presence)
 *   networks/<id>/<cluster>             ClusterNetworkRecord: this host's copy; the cluster's
 *                                       settings are the oldest copy's (lowest createRevision)
 *   members/<id>/<cluster>              MemberRecord, under the node's lease
 *   blocks/<id>/<cluster>/<block cidr>  BlockRecord: a per-host address block, unique across
 *                                       hosts (claimed with a compare on all of blocks/)
 *   addrs/<id>/<cluster>/<ip>           AddressClaim, only inside the host's own blocks
 *   shared/<id>/<cluster>/<ip>          AddressClaim of an address every host uses (gateway,
 *                                       aux): each member records the ones it was given
 *   names/<id>/<cluster>/<endpoint id>  NameRecord: the container behind one of the host's
 *                                       endpoints (name, aliases, labels), under its lease
 * A record is honoured only under its owner: its `node` (a node record: its id) must be the
 * <id> of its key, and its cluster, block or address the rest of the key; any other record
 * is malformed and ignored (core/cluster/records.ts). Before this layout (truss <= issue 12)
 * everything was under /truss/v1/cluster/ keyed by cluster and CIDR or IP; a host moves its
 * own records from there at start (cluster/migrate.ts).
 *
 * A host's identity is its node id (<state-dir>/node-id, made once, like Docker's engine id):
 * every key and every `node` field above holds the id. Its name (--node-name, default the
 * hostname) is only shown (status, logs, peers). Hosts upgraded from truss before node ids
 * took their old name as id, and their records (no `id` field) read as id = name (nodeIdOf).
 */
export interface NodeRecord extends StoreMeta {
  /** the node id: [a-z0-9][a-z0-9.-]{0,62}; absent in records of truss before node ids (= name) */
  readonly id?: string;
  /** display name (--node-name or the hostname): unique among live hosts, same pattern */
  readonly name: string;
  /** random per daemon process: tells a copied state dir from this host's previous process */
  readonly instance?: string;
  /** underlay address peers send WireGuard/VXLAN traffic to (bare IP) */
  readonly address: string;
  /** WireGuard public key, base64 (never the private key) */
  readonly wgPublicKey: string;
  readonly wgPort: number;
  /** its WireGuard tunnel MTU (from its underlay link): the others cap their routes to it (desired.ts) */
  readonly mtu?: number;
  /**
   * Reachability (core/cluster/reach.ts). `publicEndpoint`: where other hosts dial this one
   * ("IP:PORT" / "[IPv6]:PORT", --public-endpoint: a port forwarded to it); absent: its
   * address and wgPort, unless it is behind a NAT.
   */
  readonly publicEndpoint?: string;
  /** --relay: this host forwards WireGuard traffic between hosts that cannot reach each other */
  readonly relay?: boolean;
  /**
   * Learnt: this host is behind a NAT (the hosts that see it report another source than its
   * address and wgPort), and how its NAT maps: the same outside endpoint towards every host
   * (independent), another one per host (dependent), or unknown (one host saw it). Absent: not
   * behind a NAT, as far as known.
   */
  readonly nat?: NatMapping;
  /**
   * What this host sees: peer node id -> the endpoint its WireGuard packets come from
   * (published only by hosts not behind a NAT; how NATed hosts learn their own outside endpoint).
   */
  readonly seen?: Readonly<Record<string, string>>;
  /**
   * Peers this host, behind a NAT, has a live direct session with (sorted node ids): a pair talks
   * directly only while both ends say so, so both switch to and from their relay together.
   */
  readonly punched?: readonly string[];
  /** etcd's create revision of the record, set when read (never stored): the older claim wins */
  readonly createRevision?: number;
}

export type NatMapping = 'independent' | 'dependent' | 'unknown';
export const NAT_MAPPINGS: readonly NatMapping[] = ['independent', 'dependent', 'unknown'];
/** at most this many entries in a node record's `seen` (one per peer): a record cannot flood the others */
export const SEEN_LIMIT = 1024;

/**
 * Read side only, never written to etcd: the agent sets these from the key-value it read
 * (etcd's create_revision and key), overwriting anything a record's JSON says about them.
 * createRevision orders claims (the older claim wins a conflict); key is checked against
 * the record's content. Without createRevision, a conflict that needs it rejects every claimant.
 */
export interface StoreMeta {
  readonly createRevision?: number;
  readonly key?: string;
}

export interface ClusterNetworkRecord {
  /** the truss.cluster option value */
  readonly name: string;
  readonly subnets: readonly string[];
  /** false = unencrypted VXLAN (truss.encrypt=false) */
  readonly encrypt: boolean;
  /** canonical text of the options every host must agree on (compared on join) */
  readonly fingerprint: string;
}

/** A node record's identity: its id, or (a record of truss before node ids) its name. */
export const nodeIdOf = (n: Pick<NodeRecord, 'id' | 'name'>): string => n.id ?? n.name;

export interface MemberRecord extends StoreMeta {
  readonly cluster: string;
  readonly node: string;
  /** etcd's create revision of the record, set when read (never stored) */
  readonly createRevision?: number;
}

export interface BlockRecord extends StoreMeta {
  readonly cluster: string;
  readonly block: string;
  readonly node: string;
  /** etcd's create revision of the record, set when read (never stored): the older claim wins */
  readonly createRevision?: number;
}

export interface AddressClaim {
  readonly cluster: string;
  readonly address: string;
  readonly node: string;
  /** com.docker.network.endpoint.name when Docker gave one */
  readonly owner?: string;
}

/**
 * The container behind one endpoint of a cluster network, published by the host that runs it
 * (cluster/names.ts) so that every host can resolve it and select it by name or label
 * (core/names/model.ts NamedEndpoint). Under the host's lease: a dead host's names go with it.
 */
export interface NameRecord {
  readonly cluster: string;
  readonly node: string;
  /** Docker's endpoint id on the owning host (64 lowercase hex) = the key's last part */
  readonly endpoint: string;
  /** the Docker network's name */
  readonly network: string;
  /** Docker's container id (64 lowercase hex) */
  readonly container: string;
  readonly name: string;
  readonly aliases: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  /** canonical bare IPs */
  readonly addresses: readonly string[];
}

export const CLUSTER_PREFIX = '/truss/v2/';
/** the layout before owner prefixes (cluster/migrate.ts moves a host's records from it) */
export const LEGACY_CLUSTER_PREFIX = '/truss/v1/cluster/';

export type ClusterKind = 'nodes' | 'networks' | 'members' | 'blocks' | 'addrs' | 'shared' | 'names';
export const CLUSTER_KINDS: readonly ClusterKind[] = [
  'nodes',
  'networks',
  'members',
  'blocks',
  'addrs',
  'shared',
  'names',
];

/** The key layout above, in one place (block CIDRs are stored with '/' as '_'). */
export const clusterKeys = {
  kindPrefix: (kind: ClusterKind): string => `${CLUSTER_PREFIX}${kind}/`,
  /** everything `node` may write under one kind (nodes: its one key) */
  ownerPrefix: (kind: ClusterKind, node: string): string =>
    kind === 'nodes' ? `${CLUSTER_PREFIX}nodes/${node}` : `${CLUSTER_PREFIX}${kind}/${node}/`,
  nodesPrefix: `${CLUSTER_PREFIX}nodes/`,
  node: (n: string): string => `${CLUSTER_PREFIX}nodes/${n}`,
  network: (c: string, n: string): string => `${CLUSTER_PREFIX}networks/${n}/${c}`,
  member: (c: string, n: string): string => `${CLUSTER_PREFIX}members/${n}/${c}`,
  block: (c: string, block: string, n: string): string =>
    `${CLUSTER_PREFIX}blocks/${n}/${c}/${block.replace('/', '_')}`,
  addrsOf: (c: string, n: string): string => `${CLUSTER_PREFIX}addrs/${n}/${c}/`,
  blocksOf: (c: string, n: string): string => `${CLUSTER_PREFIX}blocks/${n}/${c}/`,
  sharedOf: (c: string, n: string): string => `${CLUSTER_PREFIX}shared/${n}/${c}/`,
  addr: (c: string, ip: string, n: string): string => `${CLUSTER_PREFIX}addrs/${n}/${c}/${ip}`,
  shared: (c: string, ip: string, n: string): string => `${CLUSTER_PREFIX}shared/${n}/${c}/${ip}`,
  namesOf: (c: string, n: string): string => `${CLUSTER_PREFIX}names/${n}/${c}/`,
  name: (c: string, endpoint: string, n: string): string => `${CLUSTER_PREFIX}names/${n}/${c}/${endpoint}`,
} as const;

export interface ClusterKey {
  readonly kind: ClusterKind;
  /** the node id the key belongs to */
  readonly owner: string;
  /** the cluster name (all kinds but nodes) */
  readonly cluster?: string;
  /** blocks: the CIDR ('_' back to '/'); addrs, shared: the address text; names: the endpoint id */
  readonly item?: string;
}

/** A key of the layout above, split; undefined for anything else (too few or too many parts). */
export function parseClusterKey(key: string): ClusterKey | undefined {
  if (!key.startsWith(CLUSTER_PREFIX)) return undefined;
  const parts = key.slice(CLUSTER_PREFIX.length).split('/');
  const kind = parts[0] as ClusterKind;
  if (!CLUSTER_KINDS.includes(kind)) return undefined;
  const [, owner, cluster, item] = parts;
  if (owner === undefined || !isValidNodeName(owner)) return undefined;
  const want = kind === 'nodes' ? 2 : kind === 'networks' || kind === 'members' ? 3 : 4;
  if (parts.length !== want) return undefined;
  if (cluster !== undefined && !isValidClusterName(cluster)) return undefined;
  if (item !== undefined && item === '') return undefined;
  return {
    kind,
    owner,
    ...(cluster !== undefined ? { cluster } : {}),
    ...(item !== undefined ? { item: kind === 'blocks' ? item.replace('_', '/') : item } : {}),
  };
}

/** The node name recorded for addresses every host uses (the anycast gateway, aux addresses). */
export const SHARED_OWNER = '*';
const NAME = /^[a-z0-9][a-z0-9.-]{0,62}$/;
export const isValidNodeName = (s: string): boolean => NAME.test(s);
export const isValidClusterName = (s: string): boolean => NAME.test(s);
