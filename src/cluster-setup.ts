/**
 * Composition of the multi-host parts (only with --store etcd://...): this host's
 * WireGuard key (made on first start, kept in <state-dir>/wireguard, mode 0600), its
 * underlay address and MTU (detected towards etcd unless --advertise-address is given), the
 * VXLAN device's underlay link (the one holding that address) and MTU,
 * the lazily connecting etcd store, the cluster IPAM and the agent.
 */
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { ClusterAgent } from './cluster/agent.ts';
import { ClusterIpam } from './cluster/cluster-ipam.ts';
import { LazyClusterStore } from './cluster/lazy-store.ts';
import type { Config } from './config.ts';
import { isValidNodeName } from './core/cluster/model.ts';
import { errors } from './core/errors.ts';
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
): Promise<Cluster | undefined> {
  const url = parseStoreUrl(config.store);
  if (url.kind !== 'etcd') return undefined;
  const first = (url.endpoints[0] as string).replace(/^\[?([^\]]*)\]?:\d+$/, '$1');
  const path = parseIp(first) ? await dataplane.underlayTowards(first) : undefined;
  const address = config.advertiseAddress ?? path?.address;
  if (!address) {
    throw errors.badOption(
      `cannot tell this host's underlay address towards ${first}: give --advertise-address (and an IP etcd endpoint)`,
    );
  }
  const family = parseIp(address)?.family ?? 4;
  const wgMtu = computeWireguardMtu(path?.mtu ?? 1500, family);
  const link = (await dataplane.linkWithAddress(address)) ?? (path ? { dev: path.dev, mtu: path.mtu } : undefined);
  const vxlan = { mtu: computeVxlanMtu(link?.mtu ?? 1500, family), local: address, ...(link ? { dev: link.dev } : {}) };
  const mtu = { wireguard: wgMtu, vxlan: vxlan.mtu };
  const name = config.nodeName ?? hostname().toLowerCase();
  if (!isValidNodeName(name)) throw errors.badOption(`node name ${JSON.stringify(name)}: give --node-name [a-z0-9.-]`);
  const keyDir = wireguardKeyDir(config.stateDir);
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
  const ipam = new ClusterIpam({ store, node: name, log: clog });
  const agent = new ClusterAgent({
    store,
    node: { name, address, wgPublicKey: key.publicKey, wgPort: config.wgPort },
    mtu,
    ipam,
    log: clog,
    onChange,
    localClusters: async () => [
      ...new Set((await repo.listNetworks()).flatMap((n) => (n.cluster ? [n.cluster.name] : []))),
    ],
  });
  clog.info('cluster mode', {
    node: name,
    address,
    mtu,
    underlay: link?.dev,
    wgPort: config.wgPort,
    publicKey: key.publicKey,
  });
  return { agent, ipam, store, keyDir, listenPort: config.wgPort, mtu, vxlan };
}
