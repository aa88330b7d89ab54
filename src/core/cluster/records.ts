/**
 * Every value read from the cluster store, checked before use (pure). etcd is shared by every
 * host and, without RBAC, by anyone who reaches it: a record is used only when it has the
 * shape it must have AND sits under its owner's key (model.ts): its `node` (a node record:
 * its id) is the key's <id>, its cluster, block or address the rest of the key. Anything else
 * (`null`, garbage, a record copied under another host's key) is malformed: it is skipped and
 * reported, and affects only its own key.
 */
import { formatIp, formatPrefix, parseIp, parsePrefix } from '../ip.ts';
import {
  type AddressClaim,
  type BlockRecord,
  type ClusterKey,
  type ClusterNetworkRecord,
  isValidNodeName,
  type MemberRecord,
  type NodeRecord,
  nodeIdOf,
  parseClusterKey,
} from './model.ts';

/** What decodeClusterRecord needs of a store entry (store.ts KeyValue has it). */
export interface RawRecord {
  readonly key: string;
  readonly value: string;
  readonly createRevision?: number;
}

export type ClusterRecord =
  | { readonly kind: 'nodes'; readonly key: ClusterKey; readonly record: NodeRecord }
  | { readonly kind: 'networks'; readonly key: ClusterKey; readonly record: ClusterNetworkRecord }
  | { readonly kind: 'members'; readonly key: ClusterKey; readonly record: MemberRecord }
  | { readonly kind: 'blocks'; readonly key: ClusterKey; readonly record: BlockRecord }
  | { readonly kind: 'addrs'; readonly key: ClusterKey; readonly record: AddressClaim }
  | { readonly kind: 'shared'; readonly key: ClusterKey; readonly record: AddressClaim };

export type Decoded = ClusterRecord | { readonly kind: 'malformed'; readonly key: string; readonly why: string };

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const canonIp = (s: unknown): boolean => {
  const ip = isStr(s) ? parseIp(s) : undefined;
  return ip !== undefined && formatIp(ip) === s;
};
const canonPrefix = (s: unknown): boolean => {
  const p = isStr(s) ? parsePrefix(s) : undefined;
  return p !== undefined && formatPrefix(p) === s;
};

/** Why `v` is not a valid record for key `k`, or undefined. */
function problem(k: ClusterKey, v: unknown): string | undefined {
  if (!isObj(v)) return `not a JSON object (${v === null ? 'null' : typeof v})`;
  if (k.kind === 'nodes') {
    if (!isStr(v.name) || !isValidNodeName(v.name)) return 'name is not a node name';
    if (v.id !== undefined && (!isStr(v.id) || !isValidNodeName(v.id))) return 'id is not a node id';
    if (nodeIdOf(v as { id?: string; name: string }) !== k.owner) return `its node id is not ${k.owner}, the key's`;
    if (!isStr(v.address) || parseIp(v.address) === undefined) return 'address is not an IP address';
    if (!isStr(v.wgPublicKey)) return 'wgPublicKey is not a string';
    if (typeof v.wgPort !== 'number') return 'wgPort is not a number';
    if (v.instance !== undefined && !isStr(v.instance)) return 'instance is not a string';
    return undefined;
  }
  if (k.kind === 'networks') {
    if (v.name !== k.cluster) return `name is not ${k.cluster}, the key's`;
    if (!Array.isArray(v.subnets) || !v.subnets.every(canonPrefix)) return 'subnets are not CIDRs';
    if (typeof v.encrypt !== 'boolean') return 'encrypt is not a boolean';
    if (!isStr(v.fingerprint)) return 'fingerprint is not a string';
    return undefined;
  }
  if (v.cluster !== k.cluster) return `cluster is not ${k.cluster}, the key's`;
  if (v.node !== k.owner) return `node is not ${k.owner}, the key's owner`;
  if (k.kind === 'blocks' && (v.block !== k.item || !canonPrefix(v.block))) return `block is not ${k.item}, the key's`;
  if (k.kind === 'addrs' || k.kind === 'shared') {
    if (v.address !== k.item || !canonIp(v.address)) return `address is not ${k.item}, the key's`;
    if (v.owner !== undefined && !isStr(v.owner)) return 'owner is not a string';
  }
  return undefined;
}

/**
 * A store entry of the cluster layout as a checked record (with its createRevision on nodes,
 * members and blocks), or why it is malformed. Keys outside the layout are malformed too.
 */
export function decodeClusterRecord(kv: RawRecord): Decoded {
  const k = parseClusterKey(kv.key);
  if (!k) return { kind: 'malformed', key: kv.key, why: 'not a key of the cluster layout' };
  let v: unknown;
  try {
    v = JSON.parse(kv.value);
  } catch {
    return { kind: 'malformed', key: kv.key, why: 'not JSON' };
  }
  const why = problem(k, v);
  if (why) return { kind: 'malformed', key: kv.key, why };
  const rev = kv.createRevision !== undefined ? { createRevision: kv.createRevision } : {};
  const o = v as Obj;
  switch (k.kind) {
    case 'nodes': {
      const n = o as unknown as NodeRecord;
      const record: NodeRecord = {
        ...(n.id !== undefined ? { id: n.id } : {}),
        name: n.name,
        ...(n.instance !== undefined ? { instance: n.instance } : {}),
        address: n.address,
        wgPublicKey: n.wgPublicKey,
        wgPort: n.wgPort,
        ...rev,
      };
      return { kind: 'nodes', key: k, record };
    }
    case 'networks': {
      const n = o as unknown as ClusterNetworkRecord;
      const record = { name: n.name, subnets: [...n.subnets], encrypt: n.encrypt, fingerprint: n.fingerprint };
      return { kind: 'networks', key: k, record };
    }
    case 'members':
      return { kind: 'members', key: k, record: { cluster: k.cluster as string, node: k.owner, ...rev } };
    case 'blocks':
      return {
        kind: 'blocks',
        key: k,
        record: { cluster: k.cluster as string, block: k.item as string, node: k.owner, ...rev },
      };
    default: {
      const owner = (o as { owner?: string }).owner;
      const record: AddressClaim = {
        cluster: k.cluster as string,
        address: k.item as string,
        node: k.owner,
        ...(owner !== undefined ? { owner } : {}),
      };
      return k.kind === 'shared' ? { kind: 'shared', key: k, record } : { kind: 'addrs', key: k, record };
    }
  }
}

/** Only the well-formed records of `kind` among `kvs` (the malformed ones go to `bad`, if given). */
export function recordsOf<K extends ClusterRecord['kind']>(
  kind: K,
  kvs: Iterable<RawRecord>,
  bad?: (key: string, why: string) => void,
): Extract<ClusterRecord, { kind: K }>[] {
  const out: Extract<ClusterRecord, { kind: K }>[] = [];
  for (const kv of kvs) {
    const d = decodeClusterRecord(kv);
    if (d.kind === 'malformed') bad?.(d.key, d.why);
    else if (d.kind === kind) out.push(d as Extract<ClusterRecord, { kind: K }>);
  }
  return out;
}
