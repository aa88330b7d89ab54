/**
 * The host preflight, pure half: from the facts dataplane/linux/host-checks.ts probes (which
 * programs exist, whether nf_tables works, where dockerd's iptables rules live, ...) to a list
 * of checks, each with a name, whether truss cannot run without it (required) or only loses
 * features (optional), its result and the fix naming the Debian package or flag. `truss serve`
 * refuses to start on a missing must-have and logs optional misses; `truss doctor` prints
 * them all. What optional pieces are missing becomes a Capabilities object the services ask
 * before they write any intent, so a feature is refused at `docker network create`/`connect`
 * with a message naming the option and the fix, never by a failed Join.
 */
import { errors, type TrussError } from './errors.ts';
import {
  chooseWireguard,
  compareVersions,
  describeWireguard,
  mixedFamilyBug,
  type WireguardGoCandidate,
} from './wireguard-impl.ts';

export type IptBackendName = 'nf_tables' | 'legacy';

/** What the probes found. Paths are absolute; null = not found. */
export interface HostFacts {
  readonly programs: Readonly<Record<string, string | null>>;
  /** a dry-run nft transaction (inet table + forward hook) was accepted by the kernel */
  readonly nftables: { readonly ok: boolean; readonly error?: string };
  readonly iptables: {
    /** the --iptables value or "iptables" */
    readonly configured: string;
    readonly path: string | null;
    readonly backend?: IptBackendName;
    /** the matching restore tool (iptables-nft-restore / iptables-legacy-restore / iptables-restore) */
    readonly restore: string | null;
    /** per backend: whether dockerd's DOCKER chains are in its filter table (absent: could not tell) */
    readonly dockerRules: { readonly nf_tables?: boolean; readonly legacy?: boolean };
    /**
     * /run/xtables.lock is a character device: the managed plugin's placeholder mount
     * (/dev/null), not the host's lock file that dockerd's legacy iptables takes
     */
    readonly lockPlaceholder?: boolean;
  };
  readonly wireguard: {
    /** the module is loaded or can be (in /lib/modules or built in) */
    readonly kernel: boolean;
    /** /dev/net/tun can be opened (wireguard-go needs it) */
    readonly tun: boolean;
    /**
     * the wireguard-go binaries found, with their versions (probed only without kernel WireGuard
     * and with a TUN device); absent: programs['wireguard-go'] alone, version unknown
     */
    readonly go?: readonly WireguardGoCandidate[];
  };
  /** net/bridge/bridge-nf-call-iptables exists */
  readonly brNetfilter: boolean;
  /** net/ipv6/conf/all/forwarding: its value, or null when IPv6 is off on the host */
  readonly ipv6Forwarding: string | null;
  readonly procSys: { readonly path: string; readonly writable: boolean; readonly error?: string };
  readonly dirs: readonly {
    readonly flag: '--socket' | '--state-dir';
    readonly path: string;
    readonly writable: boolean;
    readonly error?: string;
  }[];
  /** cluster mode only: which etcd endpoints accepted a TCP connection (absent: not probed) */
  readonly etcd?: { readonly endpoints: readonly string[]; readonly reachable: readonly string[] };
}

/** Features that need an optional piece; refused at create/connect when it is missing. */
export type Feature = 'port-policy' | 'encrypted-cluster' | 'ipv6';

export const FEATURE_TEXT: Readonly<Record<Feature, string>> = {
  'port-policy': 'port policy (truss.ingress, truss policy set)',
  'encrypted-cluster': 'encrypted cluster networks (truss.cluster with truss.encrypt=true, the default)',
  ipv6: 'IPv6 networks (--ipv6, IPv6 pools)',
};

export type CheckStatus = 'ok' | 'missing' | 'warn' | 'info';

export interface Check {
  /** stable id: "program:nft", "nf_tables", "iptables-backend", ... */
  readonly id: string;
  readonly title: string;
  readonly need: 'required' | 'optional';
  readonly status: CheckStatus;
  /** the path found, or what is wrong */
  readonly detail: string;
  /** what stops working without it */
  readonly affects: string;
  /** what to do, naming the package or flag (absent when ok) */
  readonly fix?: string;
  /** optional checks: the features refused while it fails */
  readonly features?: readonly Feature[];
  /** the piece and its state, for refusal messages: "the program 'conntrack'", "is not installed" */
  readonly piece?: { readonly what: string; readonly state: string; readonly restart: boolean };
}

/** The programs the daemon always runs, and their Debian packages. */
export const REQUIRED_PROGRAMS: readonly (readonly [string, string])[] = [
  ['ip', 'iproute2'],
  ['bridge', 'iproute2'],
  ['tc', 'iproute2'],
  ['nft', 'nftables'],
];

/** Every program the probes look up (the iptables tools are found beside --iptables). */
export const PROBED_PROGRAMS: readonly string[] = [
  ...REQUIRED_PROGRAMS.map(([p]) => p),
  'conntrack',
  'wg',
  'wireguard-go',
  'setsid',
  'env',
];

const EVERYTHING = 'everything: truss cannot start without it';

function program(name: string, pkg: string, path: string | null | undefined): Check {
  const base = { id: `program:${name}`, title: `program '${name}' (${pkg})`, need: 'required' as const };
  if (path) return { ...base, status: 'ok', detail: path, affects: EVERYTHING };
  return {
    ...base,
    status: 'missing',
    detail: `the program '${name}' was not found`,
    affects: EVERYTHING,
    fix: `apt-get install ${pkg}`,
  };
}

const other = (b: IptBackendName): IptBackendName => (b === 'nf_tables' ? 'legacy' : 'nf_tables');
const iptName = (b: IptBackendName): string => (b === 'nf_tables' ? 'iptables-nft' : 'iptables-legacy');

function iptablesChecks(f: HostFacts['iptables']): Check[] {
  const tool: Check = f.path
    ? {
        id: 'program:iptables',
        title: `program '${f.configured}' (iptables)`,
        need: 'required',
        status: 'ok',
        detail: `${f.path} (${f.backend ?? 'unknown'} backend)`,
        affects: EVERYTHING,
      }
    : {
        id: 'program:iptables',
        title: `program '${f.configured}' (iptables)`,
        need: 'required',
        status: 'missing',
        detail: `the program '${f.configured}' was not found`,
        affects: `${EVERYTHING} (dockerd's FORWARD DROP policy would drop truss traffic)`,
        fix: f.configured === 'iptables' ? 'apt-get install iptables' : `apt-get install iptables, or fix --iptables`,
      };
  if (!f.path) return [tool];
  const restore: Check = f.restore
    ? { ...tool, id: 'program:iptables-restore', title: 'iptables-restore of that backend', detail: f.restore }
    : {
        ...tool,
        id: 'program:iptables-restore',
        title: 'iptables-restore of that backend',
        status: 'missing',
        detail: `the program '${f.configured}-restore' was not found beside ${f.path}`,
        fix: 'apt-get install iptables',
      };
  return [tool, restore, backendCheck(f)];
}

function backendCheck(f: HostFacts['iptables']): Check {
  const base = {
    id: 'iptables-backend',
    title: "iptables backend matches dockerd's",
    need: 'required' as const,
    affects: `${EVERYTHING} (truss's FORWARD rules must be where dockerd's are)`,
  };
  const mine = f.backend;
  if (!mine) return { ...base, status: 'info', detail: 'the backend of iptables is unknown' };
  if (mine === 'legacy' && f.lockPlaceholder) {
    // why: legacy iptables replaces whole tables; without dockerd's lock two writers lose each other's rules (M6)
    return {
      ...base,
      status: 'missing',
      detail:
        "iptables-legacy must share dockerd's lock /run/xtables.lock, but the plugin's is a placeholder (/dev/null)",
      fix: 'touch /run/xtables.lock; docker plugin set truss xtables-lock.source=/run/xtables.lock',
    };
  }
  const theirs = f.dockerRules;
  if (theirs[mine]) return { ...base, status: 'ok', detail: `dockerd's rules are in ${mine}, as --iptables uses` };
  if (theirs[other(mine)]) {
    return {
      ...base,
      status: 'missing',
      detail: `dockerd's rules are in ${other(mine)}, but ${f.configured} uses ${mine}`,
      fix: `start truss with --iptables ${iptName(other(mine))}`,
    };
  }
  return {
    ...base,
    status: 'info',
    detail: `dockerd has no iptables rules yet (not running, or --iptables=false): truss uses ${mine}`,
  };
}

const missingPiece = (what: string, state: string, restart: boolean) => ({ what, state, restart });

function optionalChecks(f: HostFacts): Check[] {
  const p = f.programs;
  const conntrack: Check = {
    id: 'program:conntrack',
    title: "program 'conntrack' (conntrack)",
    need: 'optional',
    affects: FEATURE_TEXT['port-policy'],
    features: ['port-policy'],
    ...(p.conntrack
      ? { status: 'ok', detail: p.conntrack }
      : {
          status: 'warn',
          detail: "the program 'conntrack' was not found",
          fix: 'apt-get install conntrack',
          piece: missingPiece("the program 'conntrack'", 'is not installed', true),
        }),
  };
  const brnf: Check = {
    id: 'br_netfilter',
    title: 'kernel module br_netfilter',
    need: 'optional',
    affects: `${FEATURE_TEXT['port-policy']} between containers of one network`,
    features: ['port-policy'],
    ...(f.brNetfilter
      ? { status: 'ok', detail: 'loaded' }
      : {
          status: 'warn',
          detail: 'not loaded (dockerd loads it when it starts)',
          fix: 'modprobe br_netfilter',
          piece: missingPiece('the kernel module br_netfilter', 'is not loaded', false),
        }),
  };
  const ipv6: Check = {
    id: 'ipv6',
    title: 'IPv6 on the host',
    need: 'optional',
    affects: FEATURE_TEXT.ipv6,
    features: ['ipv6'],
    ...(f.ipv6Forwarding === null
      ? {
          status: 'warn',
          detail: `IPv6 is off (${f.procSys.path}/net/ipv6 does not exist)`,
          fix: 'boot without ipv6.disable=1',
          piece: missingPiece('IPv6 on the host', 'is off', false),
        }
      : {
          status: 'ok',
          detail:
            f.ipv6Forwarding === '1'
              ? 'on, forwarding on'
              : 'on; forwarding is off: truss turns it on when an IPv6 network reaches out',
        }),
  };
  return [conntrack, brnf, ipv6, wireguardCheck(f)];
}

/**
 * the first wireguard-go release with GSO/GRO on its TUN device: upstream's offloads came in
 * 2023 (TCP in March, UDP in October: d0bc03c), after the 0.0.20230223 tag; Debian's 0.0.20231211
 * snapshot is the first package with both
 */
const GSO_SINCE = '0.0.20231211';

function wireguardCheck(f: HostFacts): Check {
  const p = f.programs;
  const base = {
    id: 'wireguard',
    title: 'WireGuard (wg; kernel or wireguard-go)',
    need: 'optional' as const,
    affects: FEATURE_TEXT['encrypted-cluster'],
    features: ['encrypted-cluster'] as const,
  };
  if (!p.wg) {
    return {
      ...base,
      status: 'warn',
      detail: "the program 'wg' was not found",
      fix: 'apt-get install wireguard-tools',
      piece: missingPiece("the program 'wg'", 'is not installed', true),
    };
  }
  if (f.wireguard.kernel) return { ...base, status: 'ok', detail: `kernel module; ${p.wg}` };
  const go = f.wireguard.go ?? (p['wireguard-go'] ? [{ path: p['wireguard-go'], source: 'path' as const }] : []);
  const userspace = ['setsid', 'env'].filter((t) => !p[t]);
  if (go.length === 0) userspace.unshift('wireguard-go');
  const impl = chooseWireguard({ kernel: false, tun: f.wireguard.tun, wireguardGo: go });
  if (userspace.length === 0 && impl.kind === 'wireguard-go') {
    const old = impl.version !== undefined && compareVersions(impl.version, GSO_SINCE) < 0;
    const hint = old
      ? `; older than ${GSO_SINCE} (no GSO/GRO: several times slower): scripts/prepare.sh fetches the newest`
      : mixedFamilyBug(impl.version) && !go.some((c) => !mixedFamilyBug(c.version))
        ? '; this version loses IPv6 packets on a device whose peers mix IPv4 and IPv6 endpoints (upstream' +
          ' wireguard-go#135): on such a cluster install an unaffected wireguard-go beside it (Debian 12:' +
          ' apt-get install wireguard-go), which truss then runs for that device, or use kernel WireGuard'
        : '';
    return { ...base, status: 'ok', detail: `${describeWireguard(impl)}${hint}; ${p.wg}` };
  }
  if (userspace.includes('wireguard-go')) {
    return {
      ...base,
      status: 'warn',
      detail: "the kernel has no WireGuard module and the program 'wireguard-go' was not found",
      fix: 'apt-get install wireguard-go',
      piece: missingPiece("WireGuard (no kernel module, and the program 'wireguard-go')", 'is not installed', true),
    };
  }
  if (userspace.length > 0) {
    const which = userspace.map((t) => `'${t}'`).join(', ');
    return {
      ...base,
      status: 'warn',
      detail: `wireguard-go needs ${which}, not found`,
      fix: 'apt-get install util-linux coreutils',
      piece: missingPiece(`WireGuard (wireguard-go needs ${which})`, 'is not installed', true),
    };
  }
  return {
    ...base,
    status: 'warn',
    detail: 'the kernel has no WireGuard module and /dev/net/tun cannot be opened (wireguard-go needs it)',
    fix: 'modprobe tun (a managed plugin needs the /dev/net/tun device)',
    piece: missingPiece('WireGuard (a usable /dev/net/tun for wireguard-go)', 'is not available', true),
  };
}

function systemChecks(f: HostFacts): Check[] {
  const nft: Check = {
    id: 'nf_tables',
    title: 'nf_tables in the kernel',
    need: 'required',
    affects: EVERYTHING,
    ...(f.nftables.ok
      ? { status: 'ok', detail: 'an inet table with a forward hook is accepted' }
      : !f.programs.nft
        ? { status: 'info', detail: "not checked: the program 'nft' is missing" }
        : {
            status: 'missing',
            detail: `nf_tables is not usable: ${f.nftables.error ?? 'unknown error'}`,
            fix: 'modprobe nf_tables (kernel 5.2 or later; needs CAP_NET_ADMIN)',
          }),
  };
  const procSys: Check = {
    id: 'proc-sys',
    title: 'writable /proc/sys/net',
    need: 'required',
    affects: `${EVERYTHING} (forwarding and per-interface sysctls)`,
    ...(f.procSys.writable
      ? { status: 'ok', detail: f.procSys.path }
      : {
          status: 'missing',
          detail: `${f.procSys.path}/net cannot be written: ${f.procSys.error ?? 'read-only'}`,
          fix: "mount /proc/sys read-write, or pass --proc-sys DIR (a writable mount of the host's /proc/sys)",
        }),
  };
  const dirs = f.dirs.map(
    (d): Check => ({
      id: `dir:${d.flag.slice(2)}`,
      title: d.flag === '--socket' ? 'plugin socket directory writable' : 'state directory writable',
      need: 'required',
      affects: EVERYTHING,
      ...(d.writable
        ? { status: 'ok', detail: d.path }
        : {
            status: 'missing',
            detail: `${d.path} cannot be written: ${d.error ?? 'permission denied'}`,
            fix: `run truss as root, or choose another ${d.flag}`,
          }),
    }),
  );
  return [nft, procSys, ...dirs];
}

function etcdCheck(e: NonNullable<HostFacts['etcd']>): Check {
  const base = {
    id: 'etcd',
    title: `etcd reachable (--store etcd://${e.endpoints.join(',')})`,
    need: 'optional' as const,
    affects: 'cluster networks (truss.cluster) until it is; truss keeps retrying',
  };
  if (e.reachable.length > 0) return { ...base, status: 'ok', detail: `connected to ${e.reachable.join(', ')}` };
  return {
    ...base,
    status: 'warn',
    detail: `no TCP connection to ${e.endpoints.join(', ')}`,
    fix: 'start etcd, or check --store and the firewall between this host and etcd',
  };
}

/** Pure: every check, in a fixed order (required first). */
export function evaluateHost(f: HostFacts): Check[] {
  return [
    ...REQUIRED_PROGRAMS.map(([name, pkg]) => program(name, pkg, f.programs[name])),
    ...iptablesChecks(f.iptables),
    ...systemChecks(f),
    ...optionalChecks(f),
    ...(f.etcd ? [etcdCheck(f.etcd)] : []),
  ];
}

export const isFailedRequirement = (c: Check): boolean => c.need === 'required' && c.status === 'missing';

/** Pure: the start-up error (`truss: cannot start: ...`), or undefined when every must-have is there. */
export function startError(checks: readonly Check[]): string | undefined {
  const failed = checks.filter(isFailedRequirement);
  if (failed.length === 0) return undefined;
  return `cannot start: ${failed.map((c) => `${c.detail}: ${c.fix ?? 'see truss doctor'}`).join('; ')}`;
}

/** Pure: the optional checks that fail (warnings at start). */
export const unavailable = (checks: readonly Check[]): Check[] =>
  checks.filter((c) => c.need === 'optional' && c.status !== 'ok' && c.features !== undefined);

// ---------- capabilities: what the services may ask ----------

export interface MissingPiece {
  /** "the program 'conntrack'" */
  readonly what: string;
  /** "is not installed" */
  readonly state: string;
  /** "apt-get install conntrack" */
  readonly fix: string;
  /** whether truss must be restarted to see the fix (programs are looked up once) */
  readonly restart: boolean;
}

/** What the host lacks for a feature; injected by main.ts. The services never probe. */
export interface Capabilities {
  missing(feature: Feature): MissingPiece | undefined;
}

export const ALL_CAPABILITIES: Capabilities = { missing: () => undefined };

/**
 * Pure: capabilities from the checks. `live` overrides single checks by id (br_netfilter can be
 * loaded by dockerd after truss started; it is asked again at each request).
 */
export function capabilitiesFrom(
  checks: readonly Check[],
  live: Readonly<Record<string, () => boolean>> = {},
): Capabilities {
  return {
    missing(feature) {
      for (const c of checks) {
        if (!c.features?.includes(feature) || c.status === 'ok' || !c.piece) continue;
        const fixed = live[c.id];
        if (fixed?.()) continue;
        return { what: c.piece.what, state: c.piece.state, fix: c.fix ?? 'see truss doctor', restart: c.piece.restart };
      }
      return undefined;
    },
  };
}

/** Pure: the refusal of `subject` (an option as the user wrote it) for a missing piece. */
export function featureRefused(subject: string, m: MissingPiece): TrussError {
  return errors.unsupported(
    `${subject} needs ${m.what}, which ${m.state}: ${m.fix}${m.restart ? ' (then restart truss)' : ''}`,
  );
}

/** Throws the refusal when the host lacks what `feature` needs. */
export function requireFeature(caps: Capabilities | undefined, feature: Feature, subject: string): void {
  const m = caps?.missing(feature);
  if (m) throw featureRefused(subject, m);
}
