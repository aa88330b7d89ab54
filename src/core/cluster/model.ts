/**
 * Multi-host ("cluster") networks: what truss keeps in the shared store (etcd).
 *
 * Host-local intent (networks, endpoints, local pools) always stays in the embedded store
 * under --state-dir, so a host keeps working, restarting and reconciling while etcd is
 * down. Only what hosts must agree on lives in etcd, under /truss/v1/cluster/:
 *   nodes/<node id>                    NodeRecord, under the node's lease (presence)
 *   networks/<cluster>                 ClusterNetworkRecord (create-if-absent, then compared)
 *   members/<cluster>/<node>           MemberRecord, under the node's lease
 *   blocks/<cluster>/<block cidr>      BlockRecord: a per-host address block (create-if-absent)
 *   addrs/<cluster>/<ip>               AddressClaim (create-if-absent; never under a lease)
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
}

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
}

export interface BlockRecord extends StoreMeta {
  readonly cluster: string;
  readonly block: string;
  readonly node: string;
}

export interface AddressClaim {
  readonly cluster: string;
  readonly address: string;
  readonly node: string;
  /** com.docker.network.endpoint.name when Docker gave one */
  readonly owner?: string;
}

export const CLUSTER_PREFIX = '/truss/v1/cluster/';

/** The key layout above, in one place (block CIDRs are stored with '/' as '_'). */
export const clusterKeys = {
  nodesPrefix: `${CLUSTER_PREFIX}nodes/`,
  networksPrefix: `${CLUSTER_PREFIX}networks/`,
  node: (n: string): string => `${CLUSTER_PREFIX}nodes/${n}`,
  network: (c: string): string => `${CLUSTER_PREFIX}networks/${c}`,
  membersPrefix: (c: string): string => `${CLUSTER_PREFIX}members/${c}/`,
  member: (c: string, n: string): string => `${CLUSTER_PREFIX}members/${c}/${n}`,
  blocksPrefix: (c: string): string => `${CLUSTER_PREFIX}blocks/${c}/`,
  block: (c: string, block: string): string => `${CLUSTER_PREFIX}blocks/${c}/${block.replace('/', '_')}`,
  addrsPrefix: (c: string): string => `${CLUSTER_PREFIX}addrs/${c}/`,
  addr: (c: string, ip: string): string => `${CLUSTER_PREFIX}addrs/${c}/${ip}`,
} as const;

/** The node name recorded for addresses every host uses (the anycast gateway, aux addresses). */
export const SHARED_OWNER = '*';
const NAME = /^[a-z0-9][a-z0-9.-]{0,62}$/;
export const isValidNodeName = (s: string): boolean => NAME.test(s);
export const isValidClusterName = (s: string): boolean => NAME.test(s);
