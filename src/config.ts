/**
 * Configuration: flags, each with a TRUSS_* environment twin (flag wins). process.env is
 * read here and nowhere else. DOCKER_PLUGIN_DEBUG=true turns on debug logs.
 */
import { parseArgs } from 'node:util';
import { canonicalEndpoint } from './core/cluster/endpoint.ts';
import { isValidNodeName } from './core/cluster/model.ts';
import { errors } from './core/errors.ts';
import { parseIp } from './core/ip.ts';
import { DEFAULT_POOLS } from './core/ipam/default-pools.ts';
import { type ListenAddress, parseListenAddress } from './core/listen-address.ts';
import { DEFAULT_DOCKER_HOST, type DockerEndpoint, parseDockerHost } from './docker/api.ts';
import type { Level, LogFormat } from './obs/logger.ts';

export interface Config {
  readonly socket: string;
  readonly stateDir: string;
  readonly logLevel: Level;
  /** --log-format: JSON lines (default) or text for a terminal */
  readonly logFormat: LogFormat;
  /** raw --default-pools text; parsed by the IPAM ("CIDR:LEN,CIDR:LEN") */
  readonly defaultPools?: string;
  readonly resyncMs: number;
  /** how long a joined endpoint must look orphaned before truss reclaims it */
  readonly gcGraceMs: number;
  /** --store: raw text ("embedded" or etcd://HOST:PORT,...); parsed by store/etcd.ts */
  readonly store?: string;
  readonly etcdTls?: { readonly ca: string; readonly cert: string; readonly key: string };
  /** etcd user auth: the user, and the file holding its password (read at start, never logged) */
  readonly etcdAuth?: { readonly user: string; readonly passwordFile: string };
  /** accept plaintext to an etcd that is not on this host (--etcd-insecure) */
  readonly etcdInsecure?: boolean;
  /** this host's name in the cluster (default: the hostname) */
  readonly nodeName?: string;
  /** underlay address peers reach this host at (default: detected towards etcd) */
  readonly advertiseAddress?: string;
  readonly wgPort: number;
  /** --public-endpoint: where other hosts dial this one (a port forwarded to it), canonical IP:PORT */
  readonly publicEndpoint?: string;
  /** --relay: forward WireGuard traffic between hosts that cannot reach each other */
  readonly relay?: boolean;
  /** iptables to program the TRUSS-FORWARD shim with (its backend must be the one dockerd uses) */
  readonly iptables?: string;
  /** a writable /proc/sys mounted elsewhere (the managed plugin's /proc/sys is read-only) */
  readonly procSys?: string;
  /** --wireguard-go: the admin's wireguard-go, run instead of the newest found (kernel WireGuard still wins) */
  readonly wireguardGo?: string;
  /** --metrics-address: where /metrics, /healthz, /readyz and /topology are served over TCP (off by default) */
  readonly metricsAddress?: ListenAddress;
  /**
   * --docker-host: the Docker API container names, aliases and labels are followed from
   * (docker/watch.ts, off the request path); absent when it is `none` (the follower is off)
   */
  readonly dockerHost?: DockerEndpoint;
}

export const DEFAULTS = {
  socket: '/run/docker/plugins/truss.sock',
  stateDir: '/var/lib/truss',
  logLevel: 'info' as Level,
  logFormat: 'json' as LogFormat,
  resyncSeconds: 30,
  gcGraceSeconds: 120,
  wgPort: 51820,
};

const LEVELS: readonly Level[] = ['debug', 'info', 'warn', 'error'];
const LOG_FORMATS: readonly LogFormat[] = ['json', 'text'];

/** One `truss serve` flag: its parseArgs type, its TRUSS_* twin, its default and its help line. */
export interface ServeOption {
  readonly type: 'string' | 'boolean';
  /** the value's name in the usage (string flags) */
  readonly value?: string;
  /** the values it takes, when they are a fixed few */
  readonly choices?: readonly string[];
  readonly env: `TRUSS_${string}`;
  /** the default as the help shows it ('' = none); not parseArgs's `default` (the env twin comes first) */
  readonly defaultText: string;
  readonly help: string;
}

/**
 * The one table of serve's flags: parseArgs reads it, `truss serve --help` and the shell
 * completion are generated from it, and a unit test holds docs/reference.md to it.
 */
export const SERVE_OPTIONS = {
  socket: {
    type: 'string',
    value: 'PATH',
    env: 'TRUSS_SOCKET',
    defaultText: DEFAULTS.socket,
    help: 'plugin socket dockerd connects to; its file name is the driver name',
  },
  'state-dir': {
    type: 'string',
    value: 'DIR',
    env: 'TRUSS_STATE_DIR',
    defaultText: DEFAULTS.stateDir,
    help: 'durable state, the WireGuard key and the root-only admin.sock',
  },
  'log-level': {
    type: 'string',
    value: 'LEVEL',
    choices: LEVELS,
    env: 'TRUSS_LOG_LEVEL',
    defaultText: DEFAULTS.logLevel,
    help: `${LEVELS.join(', ')} (DOCKER_PLUGIN_DEBUG=true: debug)`,
  },
  'log-format': {
    type: 'string',
    value: 'FORMAT',
    choices: LOG_FORMATS,
    env: 'TRUSS_LOG_FORMAT',
    defaultText: DEFAULTS.logFormat,
    help: `${LOG_FORMATS.join(', ')}: one JSON object a line, or text for a terminal`,
  },
  'default-pools': {
    type: 'string',
    value: 'LIST',
    env: 'TRUSS_DEFAULT_POOLS',
    defaultText: DEFAULT_POOLS.map((p) => `${p.base}:${p.size}`).join(','),
    help: 'CIDR:PREFIXLEN,... ranges dynamic pools are cut from',
  },
  'resync-seconds': {
    type: 'string',
    value: 'N',
    env: 'TRUSS_RESYNC_SECONDS',
    defaultText: String(DEFAULTS.resyncSeconds),
    help: 'interval of the full reconcile pass (1-99999)',
  },
  'gc-grace-seconds': {
    type: 'string',
    value: 'N',
    env: 'TRUSS_GC_GRACE_SECONDS',
    defaultText: String(DEFAULTS.gcGraceSeconds),
    help: 'how long an endpoint must look orphaned before truss reclaims it (1-99999)',
  },
  store: {
    type: 'string',
    value: 'URL',
    env: 'TRUSS_STORE',
    defaultText: 'embedded',
    help: 'etcd://HOST:PORT[,HOST:PORT...]: etcd as the shared store, multi-host networks on',
  },
  'etcd-ca': {
    type: 'string',
    value: 'FILE',
    env: 'TRUSS_ETCD_CA',
    defaultText: '',
    help: 'TLS to etcd: CA certificate',
  },
  'etcd-cert': {
    type: 'string',
    value: 'FILE',
    env: 'TRUSS_ETCD_CERT',
    defaultText: '',
    help: 'TLS to etcd: client certificate',
  },
  'etcd-key': {
    type: 'string',
    value: 'FILE',
    env: 'TRUSS_ETCD_KEY',
    defaultText: '',
    help: 'TLS to etcd: client key',
  },
  'etcd-user': {
    type: 'string',
    value: 'NAME',
    env: 'TRUSS_ETCD_USER',
    defaultText: '',
    help: 'etcd user auth: the user (with --etcd-password-file)',
  },
  'etcd-password-file': {
    type: 'string',
    value: 'FILE',
    env: 'TRUSS_ETCD_PASSWORD_FILE',
    defaultText: '',
    help: "etcd user auth: the file holding the user's password",
  },
  'etcd-insecure': {
    type: 'boolean',
    env: 'TRUSS_ETCD_INSECURE',
    defaultText: 'off',
    help: 'accept plaintext to an etcd that is not on this host',
  },
  'node-name': {
    type: 'string',
    value: 'NAME',
    env: 'TRUSS_NODE_NAME',
    defaultText: 'the hostname',
    help: "this host's display name in the cluster",
  },
  'advertise-address': {
    type: 'string',
    value: 'IP',
    env: 'TRUSS_ADVERTISE_ADDRESS',
    defaultText: 'detected',
    help: 'underlay address other hosts reach this one at',
  },
  'wg-port': {
    type: 'string',
    value: 'N',
    env: 'TRUSS_WG_PORT',
    defaultText: String(DEFAULTS.wgPort),
    help: "UDP port of this host's WireGuard device",
  },
  'public-endpoint': {
    type: 'string',
    value: 'IP:PORT',
    env: 'TRUSS_PUBLIC_ENDPOINT',
    defaultText: 'none',
    help: 'where other hosts reach this one when a NAT forwards a port to it',
  },
  relay: {
    type: 'boolean',
    env: 'TRUSS_RELAY',
    defaultText: 'off',
    help: 'relay WireGuard traffic between hosts behind NATs (a host others can reach)',
  },
  iptables: {
    type: 'string',
    value: 'PROG',
    env: 'TRUSS_IPTABLES',
    defaultText: 'iptables',
    help: "the iptables the TRUSS-FORWARD shim is written with (dockerd's backend)",
  },
  'proc-sys': {
    type: 'string',
    value: 'DIR',
    env: 'TRUSS_PROC_SYS',
    defaultText: '/proc/sys',
    help: 'where net sysctls are written (the managed plugin: /host/proc/sys)',
  },
  'wireguard-go': {
    type: 'string',
    value: 'PATH',
    env: 'TRUSS_WIREGUARD_GO',
    defaultText: "the newest of truss's own and the PATH's",
    help: 'the wireguard-go to run where the kernel has no WireGuard',
  },
  'metrics-address': {
    type: 'string',
    value: 'HOST:PORT',
    env: 'TRUSS_METRICS_ADDRESS',
    defaultText: 'off',
    help: 'serve /metrics (Prometheus), /healthz, /readyz and /topology over HTTP here, e.g. 127.0.0.1:9733',
  },
  'docker-host': {
    type: 'string',
    value: 'URL',
    env: 'TRUSS_DOCKER_HOST',
    defaultText: `DOCKER_HOST, else ${DEFAULT_DOCKER_HOST}`,
    help: 'the Docker API container names, aliases and labels are read from: unix:///PATH, tcp://HOST:PORT, or none (off)',
  },
} as const satisfies Record<string, ServeOption>;

export function adminSocketPath(stateDir: string): string {
  return `${stateDir}/admin.sock`;
}

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Config {
  const { values } = parseArgs({ args: [...argv], options: SERVE_OPTIONS, strict: true, allowPositionals: false });
  const pick = (flag: string | undefined, envName: string): string | undefined => flag ?? (env[envName] || undefined);
  const debug = env.DOCKER_PLUGIN_DEBUG === 'true' || env.DOCKER_PLUGIN_DEBUG === '1';
  const level = (debug ? 'debug' : pick(values['log-level'], 'TRUSS_LOG_LEVEL')) ?? DEFAULTS.logLevel;
  if (!LEVELS.includes(level as Level)) {
    throw errors.badOption(`--log-level ${JSON.stringify(level)}: expected one of ${LEVELS.join(', ')}`);
  }
  const logFormat = pick(values['log-format'], 'TRUSS_LOG_FORMAT') ?? DEFAULTS.logFormat;
  if (!LOG_FORMATS.includes(logFormat as LogFormat)) {
    throw errors.badOption(`--log-format ${JSON.stringify(logFormat)}: expected one of ${LOG_FORMATS.join(', ')}`);
  }
  const socket = pick(values.socket, 'TRUSS_SOCKET') ?? DEFAULTS.socket;
  const stateDir = pick(values['state-dir'], 'TRUSS_STATE_DIR') ?? DEFAULTS.stateDir;
  for (const [name, p] of [
    ['--socket', socket],
    ['--state-dir', stateDir],
  ] as const) {
    if (!p.startsWith('/') || p.includes('\0'))
      throw errors.badOption(`${name} ${JSON.stringify(p)}: expected an absolute path`);
  }
  if (Buffer.byteLength(socket) > 107)
    throw errors.badOption(`--socket ${socket}: unix socket paths are limited to 107 bytes`);
  // checked before anything is bound: a late listen EINVAL left a stale plugin socket (L6)
  if (Buffer.byteLength(adminSocketPath(stateDir)) > 107) {
    throw errors.badOption(
      `--state-dir ${stateDir}: its admin socket ${adminSocketPath(stateDir)} would exceed the 107 bytes of a unix socket path; use a shorter state dir`,
    );
  }
  const seconds = (flag: string | undefined, envName: string, name: string, dflt: number): number => {
    const text = pick(flag, envName) ?? String(dflt);
    if (!/^[1-9][0-9]{0,4}$/.test(text)) throw errors.badOption(`--${name} ${JSON.stringify(text)}: expected 1..99999`);
    return Number(text) * 1000;
  };
  const pools = pick(values['default-pools'], 'TRUSS_DEFAULT_POOLS');
  const store = pick(values.store, 'TRUSS_STORE');
  const tlsParts = [
    pick(values['etcd-ca'], 'TRUSS_ETCD_CA'),
    pick(values['etcd-cert'], 'TRUSS_ETCD_CERT'),
    pick(values['etcd-key'], 'TRUSS_ETCD_KEY'),
  ];
  const tlsGiven = tlsParts.filter((x) => x !== undefined).length;
  if (tlsGiven !== 0 && tlsGiven !== 3) {
    throw errors.badOption('--etcd-ca, --etcd-cert and --etcd-key go together: give all three for TLS, or none');
  }
  const etcdUser = pick(values['etcd-user'], 'TRUSS_ETCD_USER');
  const passwordFile = pick(values['etcd-password-file'], 'TRUSS_ETCD_PASSWORD_FILE');
  if ((etcdUser === undefined) !== (passwordFile === undefined)) {
    throw errors.badOption('--etcd-user and --etcd-password-file go together: give both for etcd user auth, or none');
  }
  if (etcdUser !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/.test(etcdUser)) {
    throw errors.badOption(`--etcd-user ${JSON.stringify(etcdUser.slice(0, 80))}: expected 1-128 of [A-Za-z0-9._@-]`);
  }
  if (passwordFile !== undefined && (!passwordFile.startsWith('/') || passwordFile.includes('\0'))) {
    throw errors.badOption(`--etcd-password-file ${JSON.stringify(passwordFile)}: expected an absolute path`);
  }
  const insecureText = env.TRUSS_ETCD_INSECURE;
  const etcdInsecure = values['etcd-insecure'] === true || insecureText === '1' || insecureText === 'true';
  const nodeName = pick(values['node-name'], 'TRUSS_NODE_NAME');
  if (nodeName !== undefined && !isValidNodeName(nodeName)) {
    throw errors.badOption(`--node-name ${JSON.stringify(nodeName)}: expected 1-63 of [a-z0-9.-]`);
  }
  const advertise = pick(values['advertise-address'], 'TRUSS_ADVERTISE_ADDRESS');
  if (advertise !== undefined && !parseIp(advertise)) {
    throw errors.badOption(`--advertise-address ${JSON.stringify(advertise)}: expected an IP address`);
  }
  const wgPortText = pick(values['wg-port'], 'TRUSS_WG_PORT') ?? String(DEFAULTS.wgPort);
  if (!/^[1-9][0-9]{0,4}$/.test(wgPortText) || Number(wgPortText) > 65535) {
    throw errors.badOption(`--wg-port ${JSON.stringify(wgPortText)}: expected 1-65535`);
  }
  const publicText = pick(values['public-endpoint'], 'TRUSS_PUBLIC_ENDPOINT');
  const publicEndpoint = publicText === undefined ? undefined : canonicalEndpoint(publicText);
  if (publicText !== undefined && publicEndpoint === undefined) {
    throw errors.badOption(
      `--public-endpoint ${JSON.stringify(publicText.slice(0, 80))}: expected IP:PORT (IPv6: [IP]:PORT), the address and UDP port other hosts reach this host's WireGuard at, e.g. 203.0.113.7:51820`,
    );
  }
  const relayText = env.TRUSS_RELAY;
  const relay = values.relay === true || relayText === '1' || relayText === 'true';
  const iptables = pick(values.iptables, 'TRUSS_IPTABLES');
  if (iptables !== undefined && !/^(?:\/[\w.+-]+)+$|^[\w.+-]+$/.test(iptables)) {
    throw errors.badOption(`--iptables ${JSON.stringify(iptables)}: expected a program name or an absolute path`);
  }
  const wireguardGo = pick(values['wireguard-go'], 'TRUSS_WIREGUARD_GO');
  if (wireguardGo !== undefined && (!wireguardGo.startsWith('/') || wireguardGo.includes('\0'))) {
    throw errors.badOption(`--wireguard-go ${JSON.stringify(wireguardGo)}: expected an absolute path`);
  }
  const procSys = pick(values['proc-sys'], 'TRUSS_PROC_SYS');
  if (procSys !== undefined && (!procSys.startsWith('/') || procSys.includes('\0'))) {
    throw errors.badOption(`--proc-sys ${JSON.stringify(procSys)}: expected an absolute path`);
  }
  const metricsText = pick(values['metrics-address'], 'TRUSS_METRICS_ADDRESS');
  const metricsAddress = metricsText === undefined ? undefined : parseListenAddress(metricsText);
  if (metricsText !== undefined && metricsAddress === undefined) {
    throw errors.badOption(
      `--metrics-address ${JSON.stringify(metricsText.slice(0, 80))}: expected HOST:PORT with an IP address and a port 1-65535, e.g. 127.0.0.1:9733 (IPv6: [::1]:9733)`,
    );
  }
  const dockerHost = loadDockerHost(values['docker-host'], env);
  return {
    ...(dockerHost !== undefined ? { dockerHost } : {}),
    ...(metricsAddress !== undefined ? { metricsAddress } : {}),
    ...(iptables !== undefined ? { iptables } : {}),
    ...(procSys !== undefined ? { procSys } : {}),
    ...(wireguardGo !== undefined ? { wireguardGo } : {}),
    ...(store !== undefined ? { store } : {}),
    ...(tlsGiven === 3
      ? { etcdTls: { ca: tlsParts[0] as string, cert: tlsParts[1] as string, key: tlsParts[2] as string } }
      : {}),
    ...(etcdUser !== undefined && passwordFile !== undefined ? { etcdAuth: { user: etcdUser, passwordFile } } : {}),
    ...(etcdInsecure ? { etcdInsecure } : {}),
    ...(nodeName !== undefined ? { nodeName } : {}),
    ...(advertise !== undefined ? { advertiseAddress: advertise } : {}),
    wgPort: Number(wgPortText),
    ...(publicEndpoint !== undefined ? { publicEndpoint } : {}),
    ...(relay ? { relay } : {}),
    socket,
    stateDir,
    logLevel: level as Level,
    logFormat: logFormat as LogFormat,
    ...(pools !== undefined ? { defaultPools: pools } : {}),
    resyncMs: seconds(values['resync-seconds'], 'TRUSS_RESYNC_SECONDS', 'resync-seconds', DEFAULTS.resyncSeconds),
    gcGraceMs: seconds(
      values['gc-grace-seconds'],
      'TRUSS_GC_GRACE_SECONDS',
      'gc-grace-seconds',
      DEFAULTS.gcGraceSeconds,
    ),
  };
}

/** --docker-host, else TRUSS_DOCKER_HOST, else DOCKER_HOST, else the local socket; `none`: off. */
function loadDockerHost(flag: string | undefined, env: NodeJS.ProcessEnv): DockerEndpoint | undefined {
  const given = flag ?? (env.TRUSS_DOCKER_HOST || undefined);
  const text = given ?? (env.DOCKER_HOST || DEFAULT_DOCKER_HOST);
  if (text === 'none') return undefined;
  const parsed = parseDockerHost(text, env);
  if ('endpoint' in parsed) return parsed.endpoint;
  const source = given === undefined ? ` (from DOCKER_HOST)` : '';
  throw errors.badOption(
    `--docker-host${source} ${JSON.stringify(text.slice(0, 200))}: ${parsed.why}; give --docker-host unix:///PATH, tcp://HOST:PORT or none (container names, truss DNS and name/label policy off)`,
  );
}
