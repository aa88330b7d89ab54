/**
 * Composition of the multi-host parts (only with --store etcd://...): this host's node id
 * (<state-dir>/node-id, cluster/node-id.ts) and display name (--node-name or the hostname), its
 * WireGuard key (made on first start, kept in <state-dir>/wireguard, mode 0600), its
 * underlay address and the link whose MTU the tunnels derive from (core/cluster/underlay.ts:
 * --advertise-address, else towards etcd, else for an etcd on this host its own address),
 * the lazily connecting etcd store, the cluster IPAM and the agent. The kernel facts and the key
 * file are given (ClusterSetupDeps): the composition root wires them from the dataplane.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isValidNodeName } from '../core/cluster/model.ts';
import { computeVxlanMtu, computeWireguardMtu } from '../core/cluster/mtu.ts';
import { chooseUnderlay, type LinkFacts, type UnderlayFacts } from '../core/cluster/underlay.ts';
import type { WireguardPeerStatus } from '../core/contracts.ts';
import { errors, type TrussError } from '../core/errors.ts';
import { formatIp, parseIp } from '../core/ip.ts';
import { onThisHost, parseStoreUrl, plaintextProblem } from '../core/store-url.ts';
import type { Logger } from '../obs/logger.ts';
import { ClusterAgent } from './agent.ts';
import { ClusterIpam } from './cluster-ipam.ts';
import { LazyClusterStore } from './lazy-store.ts';
import { ensureNodeId, takeInstance } from './node-id.ts';

/** The settings the cluster set-up reads (config.ts's Config carries them). */
export interface ClusterSettings {
  readonly stateDir: string;
  readonly store?: string;
  readonly etcdTls?: { readonly ca: string; readonly cert: string; readonly key: string };
  readonly etcdAuth?: { readonly user: string; readonly passwordFile: string };
  readonly etcdInsecure?: boolean;
  readonly nodeName?: string;
  readonly advertiseAddress?: string;
  readonly wgPort: number;
  readonly publicEndpoint?: string;
  readonly relay?: boolean;
}

/**
 * What the set-up is given by the composition root: the underlay facts (the kernel's routes and
 * links), this host's WireGuard key (made on first start), this host's networks.
 */
export interface ClusterSetupDeps {
  readonly underlay: {
    underlayTowards(ip: string): Promise<UnderlayFacts['route'] | undefined>;
    readLinks(): Promise<readonly LinkFacts[]>;
    readDefaultRoutes(): Promise<UnderlayFacts['defaultRoutes']>;
  };
  ensurePrivateKey(keyDir: string): Promise<{ readonly publicKey: string }>;
  listNetworks(): Promise<readonly { readonly cluster?: { readonly name: string; readonly encrypt?: boolean } }[]>;
  /** the WireGuard device's peers now ([] without one): the agent watches the paths to them */
  readWireguardPeers?(): Promise<readonly WireguardPeerStatus[]>;
  readonly log: Logger;
  /** the cluster view changed: reconcile */
  onChange(): void;
  /** another live host has this host's name or node id */
  onFatal?(e: TrussError): void;
}

export interface Cluster {
  readonly agent: ClusterAgent;
  readonly ipam: ClusterIpam;
  readonly store: LazyClusterStore;
  readonly keyDir: string;
  readonly listenPort: number;
  /** --relay: this host forwards WireGuard traffic between other hosts */
  readonly relay: boolean;
  /** container MTU of encrypted (WireGuard) and unencrypted (VXLAN) cluster networks */
  readonly mtu: { readonly wireguard: number; readonly vxlan: number };
  /** the VXLAN device's settings: its MTU, local (advertise) address and underlay link */
  readonly vxlan: { readonly mtu: number; readonly local: string; readonly dev?: string };
  /** how truss talks to etcd (for status): TLS or not, which auth, and the warning if plaintext */
  readonly etcd: EtcdTransport;
}

export interface EtcdTransport {
  readonly tls: boolean;
  readonly auth: 'certificate' | 'password' | 'none';
  readonly user?: string;
  readonly warning?: string;
}

/** The password in --etcd-password-file (one trailing newline dropped); never logged. */
export function readEtcdPassword(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw errors.badOption(`--etcd-password-file ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  const password = text.replace(/\r?\n$/, '');
  if (password === '' || password.includes('\n')) {
    throw errors.badOption(`--etcd-password-file ${file}: expected the password on one line`);
  }
  return password;
}

/** TLS or not, the auth in use, and (plaintext) the warning logged at start and shown in status. */
export function describeEtcdTransport(
  config: ClusterSettings,
  endpoints: readonly string[],
  ownAddress: (host: string) => boolean = () => false,
): EtcdTransport {
  const tls = config.etcdTls !== undefined;
  const auth = config.etcdAuth ? 'password' : tls ? 'certificate' : 'none';
  const local = endpoints.every((ep) => onThisHost(ep, ownAddress));
  const where = local ? 'on this host' : 'over the network (--etcd-insecure)';
  return {
    tls,
    auth,
    ...(config.etcdAuth ? { user: config.etcdAuth.user } : {}),
    ...(tls
      ? {}
      : {
          warning:
            `etcd connection is plaintext ${where}${auth === 'none' ? ', without authentication' : ''}: ` +
            'whoever reaches etcd can rewrite the routing of every host; use --etcd-ca/--etcd-cert/--etcd-key',
        }),
  };
}

/** Whether an etcd endpoint's host is one of these links' addresses (an IP; a name never is). */
export function ownAddressOf(links: readonly { readonly addresses: readonly string[] }[]): (host: string) => boolean {
  const own = new Set(links.flatMap((l) => l.addresses.map((a) => canonIp(a))));
  return (host) => {
    const ip = canonIp(host);
    return ip !== undefined && own.has(ip);
  };
}

const canonIp = (s: string): string | undefined => {
  const ip = parseIp(s);
  return ip ? formatIp(ip) : undefined;
};

export const wireguardKeyDir = (stateDir: string): string => `${stateDir}/wireguard`;

export async function setupCluster(config: ClusterSettings, deps: ClusterSetupDeps): Promise<Cluster | undefined> {
  const { underlay: dataplane, log, onChange, onFatal = () => {} } = deps;
  const url = parseStoreUrl(config.store);
  if (url.kind !== 'etcd') return undefined;
  const etcd = (url.endpoints[0] as string).replace(/^\[?([^\]]*)\]?:\d+$/, '$1');
  const [route, links, defaultRoutes] = await Promise.all([
    parseIp(etcd) ? dataplane.underlayTowards(etcd) : undefined,
    dataplane.readLinks(),
    dataplane.readDefaultRoutes(),
  ]);
  const ownAddress = ownAddressOf(links);
  const plain = plaintextProblem(url.endpoints, config.etcdTls !== undefined, config.etcdInsecure === true, ownAddress);
  if (plain) throw plain;
  const password = config.etcdAuth ? readEtcdPassword(config.etcdAuth.passwordFile) : undefined;
  const transport = describeEtcdTransport(config, url.endpoints, ownAddress);
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
    existsSync(keyDir) || (await deps.listNetworks()).some((n) => n.cluster !== undefined);
  const node = await ensureNodeId(config.stateDir, name, legacy);
  const instance = await takeInstance(config.stateDir);
  mkdirSync(keyDir, { recursive: true, mode: 0o700 });
  const key = await deps.ensurePrivateKey(keyDir);
  const clog = log.child({ component: 'cluster' });
  // why: etcd3 (gRPC, protobufjs, its .proto files) takes ~0.2 s to load on an idle machine, more
  // on a busy one: loaded on first use, after the plugin socket is bound (dockerd dials at 0.5 s)
  const store = new LazyClusterStore(async () =>
    (await import('../store/etcd.ts')).openEtcdStore({
      endpoints: url.endpoints,
      ...(config.etcdTls ? { tls: config.etcdTls } : {}),
      ...(config.etcdAuth && password !== undefined ? { auth: { user: config.etcdAuth.user, password } } : {}),
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
      mtu: mtu.wireguard,
      ...(config.publicEndpoint !== undefined ? { publicEndpoint: config.publicEndpoint } : {}),
      ...(config.relay ? { relay: true } : {}),
    },
    ...(deps.readWireguardPeers ? { readPeers: deps.readWireguardPeers } : {}),
    // why: the paths observer looks every 2 s; a host without an encrypted cluster network has no device
    wireguardInUse: async () => (await deps.listNetworks()).some((n) => n.cluster && n.cluster.encrypt !== false),
    ...(instance.previous ? { previousInstance: instance.previous } : {}),
    nodeIdFile: node.file,
    mtu,
    ipam,
    log: clog,
    onChange,
    onFatal,
    localClusters: async () => [
      ...new Set((await deps.listNetworks()).flatMap((n) => (n.cluster ? [n.cluster.name] : []))),
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
    ...(config.publicEndpoint !== undefined ? { publicEndpoint: config.publicEndpoint } : {}),
    ...(config.relay ? { relay: true } : {}),
    publicKey: key.publicKey,
    etcdTls: transport.tls,
    etcdAuth: transport.auth,
  });
  if (transport.warning)
    clog.warn('etcd connection is plaintext', { endpoints: url.endpoints, hint: transport.warning });
  return {
    agent,
    ipam,
    store,
    keyDir,
    listenPort: config.wgPort,
    relay: config.relay === true,
    mtu,
    vxlan,
    etcd: transport,
  };
}
