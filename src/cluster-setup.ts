/**
 * Composition of the multi-host parts (only with --store etcd://...): this host's node id
 * (<state-dir>/node-id, cluster/node-id.ts) and display name (--node-name or the hostname), its
 * WireGuard key (made on first start, kept in <state-dir>/wireguard, mode 0600), its
 * underlay address and the link whose MTU the tunnels derive from (core/cluster/underlay.ts:
 * --advertise-address, else towards etcd, else for an etcd on this host its own address),
 * the lazily connecting etcd store, the cluster IPAM and the agent.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { ClusterAgent } from './cluster/agent.ts';
import { ClusterIpam } from './cluster/cluster-ipam.ts';
import { LazyClusterStore } from './cluster/lazy-store.ts';
import { ensureNodeId, takeInstance } from './cluster/node-id.ts';
import type { Config } from './config.ts';
import { isValidNodeName } from './core/cluster/model.ts';
import { chooseUnderlay } from './core/cluster/underlay.ts';
import { errors, type TrussError } from './core/errors.ts';
import { parseIp } from './core/ip.ts';
import type { LinuxDataplane } from './dataplane/linux/linux-dataplane.ts';
import { computeVxlanMtu } from './dataplane/linux/vxlan.ts';
import { computeWireguardMtu } from './dataplane/linux/wireguard.ts';
import { ensurePrivateKey } from './dataplane/linux/wireguard-keys.ts';
import type { Logger } from './obs/logger.ts';
import type { IntentRepo } from './service/intent.ts';
import { parseStoreUrl } from './store/store-url.ts';

export interface Cluster {
  readonly agent: ClusterAgent;
  readonly ipam: ClusterIpam;
  readonly store: LazyClusterStore;
  readonly keyDir: string;
  readonly listenPort: number;
  /** container MTU of encrypted (WireGuard) and unencrypted (VXLAN) cluster networks */
  readonly mtu: { readonly wireguard: number; readonly vxlan: number };
  /** the VXLAN device's settings: its MTU, local (advertise) address and underlay link */
  readonly vxlan: { readonly mtu: number; readonly local: string; readonly dev?: string };
}

export const wireguardKeyDir = (stateDir: string): string => `${stateDir}/wireguard`;

export async function setupCluster(
  config: Config,
  dataplane: LinuxDataplane,
  repo: IntentRepo,
  log: Logger,
  onChange: () => void,
  onFatal: (e: TrussError) => void = () => {},
): Promise<Cluster | undefined> {
  const url = parseStoreUrl(config.store);
  if (url.kind !== 'etcd') return undefined;
  const etcd = (url.endpoints[0] as string).replace(/^\[?([^\]]*)\]?:\d+$/, '$1');
  const [route, links, defaultRoutes] = await Promise.all([
    parseIp(etcd) ? dataplane.underlayTowards(etcd) : undefined,
    dataplane.readLinks(),
    dataplane.readDefaultRoutes(),
  ]);
  const underlay = chooseUnderlay({
    ...(config.advertiseAddress !== undefined ? { advertise: config.advertiseAddress } : {}),
    etcd,
    ...(route ? { route } : {}),
    links,
    defaultRoutes,
  });
  const { address } = underlay;
  const family = parseIp(address)?.family ?? 4;
  const mtu = { wireguard: computeWireguardMtu(underlay.mtu, family), vxlan: computeVxlanMtu(underlay.mtu, family) };
  const vxlan = { mtu: mtu.vxlan, local: address, ...(underlay.dev ? { dev: underlay.dev } : {}) };
  const name = config.nodeName ?? hostname().toLowerCase();
  if (!isValidNodeName(name)) {
    throw errors.badOption(`node name ${JSON.stringify(name)} (the hostname): give --node-name [a-z0-9.-]`);
  }
  const keyDir = wireguardKeyDir(config.stateDir);
  // before the key dir is made: a host with one (or with cluster networks) ran truss before node ids
  const legacy = async (): Promise<boolean> =>
    existsSync(keyDir) || (await repo.listNetworks()).some((n) => n.cluster !== undefined);
  const node = await ensureNodeId(config.stateDir, name, legacy);
  const instance = await takeInstance(config.stateDir);
  mkdirSync(keyDir, { recursive: true, mode: 0o700 });
  const key = await ensurePrivateKey(keyDir);
  const clog = log.child({ component: 'cluster' });
  // why: etcd3 (gRPC, protobufjs, its .proto files) takes ~0.2 s to load on an idle machine, more
  // on a busy one: loaded on first use, after the plugin socket is bound (dockerd dials at 0.5 s)
  const store = new LazyClusterStore(async () =>
    (await import('./store/etcd.ts')).openEtcdStore({
      endpoints: url.endpoints,
      ...(config.etcdTls ? { tls: config.etcdTls } : {}),
      log: clog,
    }),
  );
  const ipam = new ClusterIpam({ store, node: node.id, log: clog });
  const agent = new ClusterAgent({
    store,
    node: {
      id: node.id,
      name,
      instance: instance.current,
      address,
      wgPublicKey: key.publicKey,
      wgPort: config.wgPort,
    },
    ...(instance.previous ? { previousInstance: instance.previous } : {}),
    nodeIdFile: node.file,
    mtu,
    ipam,
    log: clog,
    onChange,
    onFatal,
    localClusters: async () => [
      ...new Set((await repo.listNetworks()).flatMap((n) => (n.cluster ? [n.cluster.name] : []))),
    ],
  });
  clog.info('cluster mode', {
    node: name,
    nodeId: node.id,
    ...(node.origin !== 'stored' ? { nodeIdOrigin: node.origin } : {}),
    address,
    addressFrom: underlay.how,
    mtu,
    underlay: underlay.dev,
    wgPort: config.wgPort,
    publicKey: key.publicKey,
  });
  return { agent, ipam, store, keyDir, listenPort: config.wgPort, mtu, vxlan };
}
