/**
 * Every value read from the cluster store, checked before use (pure). etcd is shared by every
 * host and, without RBAC, by anyone who reaches it: a record is used only when it has the
 * shape it must have AND sits under its owner's key (model.ts): its `node` (a node record:
 * its id) is the key's <id>, its cluster, block or address the rest of the key. Anything else
 * (`null`, garbage, a record copied under another host's key) is malformed: it is skipped and
 * reported, and affects only its own key.
 */
import { formatIp, formatPrefix, parseIp, parsePrefix } from '../ip.ts';
import { CONTAINER_NAME } from '../names/model.ts';
import { canonicalEndpoint } from './endpoint.ts';
import {
  type AddressClaim,
  type BlockRecord,
  type ClusterKey,
  type ClusterNetworkRecord,
  isValidNodeName,
  type MemberRecord,
  NAT_MAPPINGS,
  type NameRecord,
  type NatMapping,
  type NodeRecord,
  nodeIdOf,
  parseClusterKey,
  SEEN_LIMIT,
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
  | { readonly kind: 'shared'; readonly key: ClusterKey; readonly record: AddressClaim }
  | { readonly kind: 'names'; readonly key: ClusterKey; readonly record: NameRecord };

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

/**
 * Limits of a name record: another host's records become DNS answers and policy sets here, so
 * one host can't flood the others (Docker's own limits are looser; a container beyond them is
 * not published, cluster/names.ts).
 */
export const NAME_LIMITS = {
  aliases: 64,
  aliasLength: 255,
  labels: 128,
  labelKeyLength: 128,
  labelValueLength: 1024,
  addresses: 4,
  /** bytes of the whole JSON value */
  valueBytes: 16 * 1024,
} as const;
const ID64 = /^[0-9a-f]{64}$/;
const utf8Bytes = (s: string): number => new TextEncoder().encode(s).length;
const ALIAS = /^[A-Za-z0-9_.-]+$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Why `v` (the checked shape of a names/ record) is not a valid name record, or undefined. */
function nameProblem(v: Obj): string | undefined {
  if (!isStr(v.network) || v.network === '' || v.network.length > 255 || CONTROL.test(v.network))
    return 'network is not a network name';
  if (!isStr(v.container) || !ID64.test(v.container)) return 'container is not a container id (64 hex)';
  if (!isStr(v.name) || v.name.length > 255 || !CONTAINER_NAME.test(v.name)) return 'name is not a container name';
  const { aliases, labels, addresses } = v;
  if (!Array.isArray(aliases) || aliases.length > NAME_LIMITS.aliases) {
    return `aliases is not a list of at most ${NAME_LIMITS.aliases}`;
  }
  if (!aliases.every((a) => isStr(a) && a.length <= NAME_LIMITS.aliasLength && ALIAS.test(a))) {
    return `an alias is not [A-Za-z0-9_.-]{1,${NAME_LIMITS.aliasLength}}`;
  }
  if (!isObj(labels)) return 'labels is not an object';
  const entries = Object.entries(labels);
  if (entries.length > NAME_LIMITS.labels) return `more than ${NAME_LIMITS.labels} labels`;
  for (const [key, value] of entries) {
    if (key === '' || key.length > NAME_LIMITS.labelKeyLength || CONTROL.test(key)) {
      return `a label key is empty, longer than ${NAME_LIMITS.labelKeyLength} or has control characters`;
    }
    if (!isStr(value) || value.length > NAME_LIMITS.labelValueLength || CONTROL.test(value)) {
      return `label ${key}: not a string of at most ${NAME_LIMITS.labelValueLength} without control characters`;
    }
  }
  if (!Array.isArray(addresses) || addresses.length > NAME_LIMITS.addresses || !addresses.every(canonIp)) {
    return `addresses is not a list of at most ${NAME_LIMITS.addresses} canonical IPs`;
  }
  return undefined;
}

/** Why a node record's reachability fields (model.ts NodeRecord) are malformed, or undefined. */
function reachProblem(v: Obj): string | undefined {
  if (
    v.publicEndpoint !== undefined &&
    (!isStr(v.publicEndpoint) || canonicalEndpoint(v.publicEndpoint) !== v.publicEndpoint)
  )
    return 'publicEndpoint is not IP:PORT or [IPv6]:PORT';
  if (v.relay !== undefined && typeof v.relay !== 'boolean') return 'relay is not a boolean';
  if (v.mtu !== undefined && !(Number.isInteger(v.mtu) && (v.mtu as number) >= 576 && (v.mtu as number) <= 65535))
    return 'mtu is not 576-65535';
  if (v.nat !== undefined && !NAT_MAPPINGS.includes(v.nat as NatMapping))
    return `nat is not one of ${NAT_MAPPINGS.join(', ')}`;
  if (v.punched !== undefined) {
    if (!Array.isArray(v.punched) || v.punched.length > SEEN_LIMIT)
      return `punched is not a list of at most ${SEEN_LIMIT}`;
    if (!v.punched.every((id) => isStr(id) && isValidNodeName(id))) return 'punched has an entry that is not a node id';
  }
  if (v.seen === undefined) return undefined;
  if (!isObj(v.seen)) return 'seen is not an object';
  const seen = Object.entries(v.seen);
  if (seen.length > SEEN_LIMIT) return `seen has more than ${SEEN_LIMIT} entries`;
  for (const [id, ep] of seen) {
    if (!isValidNodeName(id)) return 'seen has a key that is not a node id';
    if (!isStr(ep) || canonicalEndpoint(ep) !== ep) return `seen.${id} is not IP:PORT or [IPv6]:PORT`;
  }
  return undefined;
}

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
    return reachProblem(v);
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
  if (k.kind === 'names') {
    if (v.endpoint !== k.item || !ID64.test(k.item ?? '')) return `endpoint is not ${k.item}, the key's (64 hex)`;
    return nameProblem(v);
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
  if (k.kind === 'names' && utf8Bytes(kv.value) > NAME_LIMITS.valueBytes) {
    return { kind: 'malformed', key: kv.key, why: `larger than ${NAME_LIMITS.valueBytes} bytes` };
  }
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
        ...(n.mtu !== undefined ? { mtu: n.mtu } : {}),
        ...(n.publicEndpoint !== undefined ? { publicEndpoint: n.publicEndpoint } : {}),
        ...(n.relay === true ? { relay: true } : {}),
        ...(n.nat !== undefined ? { nat: n.nat } : {}),
        ...(n.seen !== undefined ? { seen: { ...n.seen } } : {}),
        ...(n.punched !== undefined ? { punched: [...n.punched] } : {}),
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
    case 'names': {
      const n = o as unknown as NameRecord;
      const record: NameRecord = {
        cluster: k.cluster as string,
        node: k.owner,
        endpoint: n.endpoint,
        network: n.network,
        container: n.container,
        name: n.name,
        aliases: [...n.aliases],
        labels: Object.fromEntries(Object.entries(n.labels)),
        addresses: [...n.addresses],
      };
      return { kind: 'names', key: k, record };
    }
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
