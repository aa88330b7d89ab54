/**
 * The table of `truss` commands: each one's words, flags and usage. The top-level usage,
 * `truss help TOPIC`, every `--help` and the bash and zsh completion (completion.ts) are made
 * from it, and the commands parse their flags with it. Light on purpose (no zod): help and
 * completion load nothing else.
 */
import { SERVE_OPTIONS } from '../config.ts';
import type { Flags } from './usage.ts';

export interface Command {
  /** the words that name it: `status`, `cluster rbac` */
  readonly name: string;
  /** how it is called, for the top-level usage (one line a form) */
  readonly synopsis: readonly string[];
  readonly summary: string;
  readonly flags: Flags;
  /** the words that may follow it (subcommands, shells, help topics) */
  readonly words?: readonly string[];
  /** the full usage; a subcommand without its own shows its parent's */
  readonly usage?: string;
}

const STATE_DIR = { 'state-dir': { type: 'string', value: 'DIR' } } as const satisfies Flags;
const JSON_FLAG = { json: { type: 'boolean' } } as const satisfies Flags;
const FIND_DAEMON = 'Flags: --state-dir DIR (env TRUSS_STATE_DIR, default /var/lib/truss) finds the daemon.\n';

/** serve's flags as parseArgs and the completion read them (config.ts holds the table). */
export const SERVE_FLAGS: Flags = Object.fromEntries(
  Object.entries(SERVE_OPTIONS).map(([name, o]) => [
    name,
    {
      type: o.type,
      ...('value' in o ? { value: o.value } : {}),
      ...('choices' in o ? { choices: o.choices } : {}),
    },
  ]),
);

/** Pure: serve's flags, each with its env twin and default, from the one table in config.ts. */
export function renderServeFlags(): string {
  const rows = Object.entries(SERVE_OPTIONS).map(([name, o]) => ({
    flag: `--${name}${'value' in o ? ` ${o.value}` : ''}`,
    help: o.help,
    twin: `env ${o.env}${o.defaultText ? `, default ${o.defaultText}` : ''}`,
  }));
  const width = Math.max(...rows.map((r) => r.flag.length)) + 2;
  const pad = ' '.repeat(width + 2);
  return rows.map((r) => `  ${r.flag.padEnd(width)}${r.help}\n${pad}${r.twin}\n`).join('');
}

export const SERVE_USAGE = `usage: truss serve [flags]

Runs the plugin daemon in the foreground (scripts/run.sh and truss.service run it this way).
Every flag has a TRUSS_* environment twin: the flag wins, an empty variable counts as unset.
A bad flag or value exits 2 before anything starts.

flags:
${renderServeFlags()}
environment only:
  DOCKER_PLUGIN_DEBUG=true   debug logs (overrides --log-level)
`;

export const DOCTOR_USAGE = `usage: truss doctor [--json] [serve's flags]              is this host fit for truss serve?
       truss doctor SRC DST [PORT/PROTO] [--json] [--state-dir DIR]   why can't SRC reach DST?

SRC DST: walks the path a new flow from SRC to DST would take, as the running daemon sees it:
SRC and DST are container names or ids (looked up through Docker, DOCKER_HOST) or IPs; PORT/PROTO
is 80/tcp, 53/udp or icmp (the default: ping). It checks that both are on one truss network, that
their containers run, the cluster peer and its WireGuard handshake for another host, the
destination's port policy (the rule that admits the flow, or none, and where it comes from),
anti-spoofing, published ports and kernel drift on the path, then prints ALLOWED, BLOCKED or
UNKNOWN with the one thing that blocks. Exit 0 allowed, 1 blocked or unknown. --json: the
daemon's reply (docs/json/doctor-path.schema.json).

Without SRC DST:
Checks this host for truss serve, without a daemon: the programs each feature runs (and their
Debian packages), nf_tables, the iptables backend against dockerd's, writable /proc/sys/net,
the socket and state directories, conntrack, br_netfilter, IPv6, WireGuard, and with
--store etcd://... whether etcd answers. Give the flags truss serve gets (--socket, --state-dir,
--store, --iptables, --proc-sys, --etcd-ca/--etcd-cert/--etcd-key) to check what that serve would.
Exit 0 when every must-have is present (warnings allowed), 1 otherwise.
`;

export const STATUS_USAGE = `usage: truss status [--json] [--check] [--verbose] [--state-dir DIR]

Networks, endpoints, IPAM, anti-spoofing, kernel drift, objects in error and the cluster, as the
running daemon sees them, with Docker's container and network names when Docker answers.
--verbose (-v): every address of every pool. --json: the daemon's reply, versioned
(docs/json/status.schema.json). --check: exit 1 when anything is unhealthy (drift, an object in
error, etcd unreachable, a peer without a handshake), 0 when healthy, with the reasons.
${FIND_DAEMON}`;

export const TOPOLOGY_USAGE = `usage: truss topology [--format text|svg] [--output FILE] [--state-dir DIR]

A picture of what truss runs: the hosts (in cluster mode every host etcd knows), their networks
and containers (Docker's names when Docker answers), the port policy in force, the tunnels from
this host to its peers with their last handshake, and what is in error or drifted. --format text
(default): a tree. --format svg: an SVG document (open it in a browser). --output FILE writes it
there instead of stdout. The daemon serves the same picture on --metrics-address: /topology.
${FIND_DAEMON}`;

export const RECONCILE_USAGE = `usage: truss reconcile [--json] [--state-dir DIR]

Runs a full reconcile pass now (repairs drift) and shows what it did and whether the kernel
matches the intent. --json: {schemaVersion, pass, kernel} (docs/json/reconcile.schema.json).
${FIND_DAEMON}`;

export const KEYS_USAGE = `usage: truss keys rotate [--json] [--state-dir DIR]

Replaces this host's WireGuard key; peers pick up the new public key through etcd.
--json: {schemaVersion, node, nodeId, publicKey} (docs/json/keys-rotate.schema.json).
${FIND_DAEMON}`;

export const POLICY_USAGE = `usage:
  truss policy show  NETWORK [--json]
  truss policy set   NETWORK --ingress SPEC [--json]
  truss policy clear NETWORK [--json]

NETWORK is a Docker network name or id (DOCKER_HOST selects the Docker daemon; an id prefix
of 12+ hex digits that truss knows needs no Docker). SPEC is comma-separated rules:
tcp/80, tcp/8000-8100, udp/53, icmp, each optionally @CIDR (tcp/5432@198.18.7.0/24), or none.
set replaces the network's policy for every container without its own truss.ingress; clear
makes the network open again. Flags: --state-dir DIR (env TRUSS_STATE_DIR) finds the daemon.
`;

export const CLEANUP_USAGE = `usage: truss cleanup --foreign [--json] [--state-dir DIR]

Removes the truss bridges and veths on this host that another or an unknown state made
(truss status lists them under "truss objects of another state"), then prunes the shared
objects (nft tables, routes) that were kept for them. The containers on them lose their
network. To keep them, start truss with the --state-dir that made them instead.
`;

export const CLUSTER_USAGE = `usage:
  truss cluster forget NODE [--force] [--json]
  truss cluster rbac --node ID [--apply ...]   etcd role and user of host ID (truss cluster rbac --help)

NODE is the host's node id, as \`truss status\` shows it (NODE ID column; for a host that ran
truss before node ids, its old node name).
Frees what host NODE holds in every cluster network (its address claims and blocks, and its
membership), so other hosts can use that address space. Only for a host that is gone for good:
refused while NODE is registered (its truss runs, or stopped less than a lease time ago, 15 s)
unless --force, which also drops its host record (peers remove it at once). A forgotten host
must not come back with its old state: remove its containers and cluster networks first.
Flags: --state-dir DIR (env TRUSS_STATE_DIR) finds the daemon.
`;

export const RBAC_USAGE = `usage:
  truss cluster rbac --node ID                 print the etcdctl commands for host ID
  truss cluster rbac --node ID --apply --password-file FILE --store etcd://HOST:PORT
        [--etcd-user root --etcd-password-file ROOT_FILE | --etcd-ca F --etcd-cert F --etcd-key F] [--etcd-insecure]
                                               create role and user truss-ID in etcd (as an etcd admin)

ID is the host's node id (truss status: NODE ID; <state-dir>/node-id). Host ID gets user truss-ID:
read on /truss/, readwrite on its own records only (/truss/v2/nodes/ID, /truss/v2/KIND/ID/ for
networks, members, blocks, addrs, shared). --password-file holds that user's password (one line):
give the same file to truss serve on host ID as --etcd-password-file, with --etcd-user truss-ID.
`;

export const VERSION_USAGE = `usage: truss version [--json | --short]

Prints truss's version, the git commit it was built from ("unknown" when that is not known)
and the Node.js version it runs on. --short: the version alone. --json: {schemaVersion,
version, commit, node} (docs/json/version.schema.json). truss --version is truss version.
`;

export const COMPLETION_USAGE = `usage: truss completion bash|zsh

Prints the shell completion script. scripts/install.sh installs both, to
/usr/share/bash-completion/completions/truss and /usr/share/zsh/vendor-completions/_truss.
By hand: source <(truss completion bash), or in zsh put it in a file _truss on $fpath.
`;

export const HELP_USAGE = `usage: truss help [COMMAND [SUBCOMMAND]]

Shows the usage of COMMAND (as COMMAND --help does), or of truss.
`;

const POLICY_FLAGS = { ingress: { type: 'string', value: 'SPEC' }, ...STATE_DIR, ...JSON_FLAG } as const;
const FORGET_FLAGS = { force: { type: 'boolean' }, ...JSON_FLAG, ...STATE_DIR } as const;
const RBAC_FLAGS = {
  node: { type: 'string', value: 'ID' },
  apply: { type: 'boolean' },
  'password-file': { type: 'string', value: 'FILE' },
  store: { type: 'string', value: 'URL' },
  'etcd-user': { type: 'string', value: 'NAME' },
  'etcd-password-file': { type: 'string', value: 'FILE' },
  'etcd-ca': { type: 'string', value: 'FILE' },
  'etcd-cert': { type: 'string', value: 'FILE' },
  'etcd-key': { type: 'string', value: 'FILE' },
  'etcd-insecure': { type: 'boolean' },
} as const satisfies Flags;

/** Each command's flags, as its parser reads them. */
export const FLAGS = {
  admin: { ...JSON_FLAG, ...STATE_DIR },
  doctorPath: { ...JSON_FLAG, ...STATE_DIR },
  status: { ...JSON_FLAG, check: { type: 'boolean' }, verbose: { type: 'boolean', short: 'v' }, ...STATE_DIR },
  topology: {
    format: { type: 'string', value: 'FORMAT', choices: ['text', 'svg'] },
    output: { type: 'string', value: 'FILE' },
    ...STATE_DIR,
  },
  policy: POLICY_FLAGS,
  cleanup: { foreign: { type: 'boolean' }, ...JSON_FLAG, ...STATE_DIR },
  forget: FORGET_FLAGS,
  rbac: RBAC_FLAGS,
  version: { ...JSON_FLAG, short: { type: 'boolean' } },
  none: {},
} as const satisfies Record<string, Flags>;

const SHELLS = ['bash', 'zsh'] as const;
export const shells: readonly string[] = SHELLS;

const TOP: readonly Command[] = [
  {
    name: 'serve',
    synopsis: ['serve [flags]'],
    summary: 'run the plugin daemon',
    flags: SERVE_FLAGS,
    usage: SERVE_USAGE,
  },
  {
    name: 'doctor',
    synopsis: ["doctor [--json] [serve's flags]", 'doctor SRC DST [PORT/PROTO] [--json]'],
    summary: 'check this host for truss serve; why SRC cannot reach DST',
    flags: { ...SERVE_FLAGS, ...JSON_FLAG },
    usage: DOCTOR_USAGE,
  },
  {
    name: 'status',
    synopsis: ['status [--json] [--check] [--verbose]'],
    summary: 'networks, endpoints, IPAM, drift, errors, cluster (--check: exit 1 when unhealthy)',
    flags: FLAGS.status,
    usage: STATUS_USAGE,
  },
  {
    name: 'topology',
    synopsis: ['topology [--format text|svg] [--output FILE]'],
    summary: 'hosts, networks, containers, tunnels, policy: a tree or an SVG',
    flags: FLAGS.topology,
    usage: TOPOLOGY_USAGE,
  },
  {
    name: 'reconcile',
    synopsis: ['reconcile [--json]'],
    summary: 'a full reconcile pass now',
    flags: FLAGS.admin,
    usage: RECONCILE_USAGE,
  },
  {
    name: 'policy',
    synopsis: [
      'policy show  NETWORK [--json]',
      'policy set   NETWORK --ingress SPEC [--json]',
      'policy clear NETWORK [--json]',
    ],
    summary: "a network's port policy at run time",
    flags: POLICY_FLAGS,
    words: ['show', 'set', 'clear'],
    usage: POLICY_USAGE,
  },
  {
    name: 'keys',
    synopsis: ['keys rotate [--json]'],
    summary: 'new WireGuard key for this host',
    flags: {},
    words: ['rotate'],
    usage: KEYS_USAGE,
  },
  {
    name: 'cleanup',
    synopsis: ['cleanup --foreign [--json]'],
    summary: 'remove links of another or unknown state',
    flags: FLAGS.cleanup,
    usage: CLEANUP_USAGE,
  },
  {
    name: 'cluster',
    synopsis: ['cluster forget NODE [--force] [--json]', 'cluster rbac --node ID [--apply ...]'],
    summary: "free a gone host's claims; its etcd user",
    flags: {},
    words: ['forget', 'rbac'],
    usage: CLUSTER_USAGE,
  },
  {
    name: 'version',
    synopsis: ['version [--json|--short]'],
    summary: 'version, git commit, Node.js (also --version)',
    flags: FLAGS.version,
    usage: VERSION_USAGE,
  },
  {
    name: 'completion',
    synopsis: ['completion bash|zsh'],
    summary: 'the shell completion script',
    flags: {},
    words: SHELLS,
    usage: COMPLETION_USAGE,
  },
  { name: 'help', synopsis: ['help [COMMAND]'], summary: "this usage, or COMMAND's", flags: {}, usage: HELP_USAGE },
];

const SUB: readonly Command[] = [
  ...(['show', 'set', 'clear'] as const).map((v) => ({
    name: `policy ${v}`,
    synopsis: [],
    summary: '',
    flags: v === 'set' ? POLICY_FLAGS : { ...STATE_DIR, ...JSON_FLAG },
  })),
  { name: 'keys rotate', synopsis: [], summary: '', flags: FLAGS.admin },
  { name: 'cluster forget', synopsis: [], summary: '', flags: FORGET_FLAGS },
  { name: 'cluster rbac', synopsis: [], summary: '', flags: RBAC_FLAGS, usage: RBAC_USAGE },
];

/** Every command and subcommand, top-level first. */
export const COMMANDS: readonly Command[] = [
  ...TOP.map((c) => (c.name === 'help' ? { ...c, words: TOP.map((t) => t.name) } : c)),
  ...SUB,
];

/** A command's lines in the top-level usage: its forms, the summary beside the first. */
const topLines = (c: Command): string =>
  c.synopsis.map((form, i) => (i === 0 ? `  truss ${form.padEnd(44)} ${c.summary}` : `  truss ${form}`)).join('\n');

export const USAGE = `usage: truss <command> [flags]

commands:
${TOP.map(topLines).join('\n')}

truss COMMAND --help (or truss help COMMAND) shows a command's usage. Every command that talks to
the daemon takes --state-dir DIR (env TRUSS_STATE_DIR, default /var/lib/truss) to find it.
Exit status: 0 done, 1 failed or refused, 2 bad command line (the usage on stderr).
`;

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}

/**
 * The usage of the command named by the leading words of `words` (`policy set web` → policy's),
 * or undefined when the first word names no command.
 */
export function usageOf(words: readonly string[]): string | undefined {
  const [first, second] = words;
  const top = first === undefined ? undefined : findCommand(first);
  if (!top) return undefined;
  const sub = second === undefined ? undefined : findCommand(`${first} ${second}`);
  return sub?.usage ?? top.usage ?? USAGE;
}
