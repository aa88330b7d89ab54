/**
 * The iptables FORWARD shim. dockerd sets `iptables -P FORWARD DROP`, and with
 * br_netfilter even bridged traffic crosses that chain. Base chains of all tables vote
 * independently and a drop anywhere is final, so the `inet truss` nft table cannot
 * override it: our bridges' traffic would die. The shim undoes the DROP policy for our
 * interfaces only; the nft `forward` chain (priority filter - 10, before this one) makes
 * the real decisions.
 *
 * Constant size (issue 18): two rules whatever the number of networks (plus a pair per bridge a
 * user named outside the prefix), one accept per direction on truss's interface-name prefix (`-i tr+`, `-o tr+`, as Calico's Felix matches `cali+`), so
 * every other forwarded packet on the host passes two rules, not two per truss network. The
 * prefix covers every truss link: bridges (trb), host veths (trv), the tunnel devices (trwg0,
 * trvx0) and whatever later family keeps the prefix (naming.TRUSS_IFNAME_PREFIX says why a
 * host's own `tr*` links are assumed not to exist). Accepting here decides nothing: the `inet
 * truss` forward chain (nft.ts, earlier priority) has dropped what truss forbids already. An
 * older truss's per-network rules are drift: the next full pass replaces the chain in place.
 *
 * Ownership: our own chain TRUSS-FORWARD (naming.IPT_CHAIN) in the filter table, replaced
 * wholesale with `iptables-restore --noflush` (declaring `:CHAIN` flushes it), plus exactly
 * one `-A FORWARD -j TRUSS-FORWARD`, kept on top: first, or right after Docker's
 * `-j DOCKER-USER` when that is first. Position matters per packet: dockerd inserts its own jumps
 * (DOCKER-ISOLATION-STAGE-1, ...) and 4 rules per bridge network at the top of FORWARD whenever
 * it starts or creates a bridge network, which pushed our jump down, so every truss packet was
 * tested against all of them before reaching its accept (measured: 2 + 4 per Docker network more
 * rule evaluations than a Docker bridge packet). A jump found lower is drift: the next full pass
 * moves it back. DOCKER-USER is the exception because it is the admin's hook, which Docker puts
 * back on top on every network create of any driver (truss's too): going above it would bypass
 * the admin's rules and fight dockerd after each `docker network create`. Only the backend
 * the host's `iptables` uses (nf_tables or legacy) is touched: mixing them splits the
 * ruleset and Docker would not see ours. ip6tables likewise, when its filter table exists.
 */
import { dirname, join } from 'node:path';
import type { FirewallObject } from '../../core/desired.ts';
import { IPT_CHAIN, isDockerId, shortId, TRUSS_IFNAME_PREFIX } from '../../core/naming.ts';
import type { Exec } from './exec.ts';
import { checkIfName } from './links.ts';

export type IptBackend = 'nf_tables' | 'legacy';

export interface IptFamily {
  readonly family: 4 | 6;
  /** absolute path of the listing tool (iptables / ip6tables of the host's backend) */
  readonly list: string;
  /** absolute path of its restore tool */
  readonly restore: string;
}

export interface IptTools {
  readonly backend: IptBackend;
  readonly families: readonly IptFamily[];
}

const JUMP = `-A FORWARD -j ${IPT_CHAIN}`;
const DOCKER_USER_JUMP = '-A FORWARD -j DOCKER-USER';

/** Pure: the backend from `iptables -V` ("iptables v1.8.9 (nf_tables)" / "(legacy)"); old versions print neither. */
export function parseBackend(versionText: string): IptBackend {
  return /nf_tables/.test(versionText) ? 'nf_tables' : 'legacy';
}

function sibling(exec: Exec, base: string, names: readonly string[]): string | undefined {
  for (const n of names) {
    const p = exec.which(join(dirname(base), n));
    if (p) return p;
  }
  return undefined;
}

/**
 * Finds the host's iptables and its backend, and the matching restore / ip6tables tools
 * (preferring the explicitly named variants, e.g. iptables-nft-restore). undefined when
 * iptables is not installed: then nothing can have set a DROP policy either.
 */
export async function detectIptables(exec: Exec, iptables = 'iptables'): Promise<IptTools | undefined> {
  const v4 = exec.which(iptables);
  if (!v4) return undefined;
  const { stdout } = await exec.run(v4, ['-V']);
  const backend = parseBackend(stdout);
  const tag = backend === 'nf_tables' ? 'nft' : 'legacy';
  const families: IptFamily[] = [];
  for (const [family, p] of [
    [4, 'iptables'],
    [6, 'ip6tables'],
  ] as const) {
    const list = sibling(exec, v4, [`${p}-${tag}`, p]);
    const restore = sibling(exec, v4, [`${p}-${tag}-restore`, `${p}-restore`]);
    if (list && restore) families.push({ family, list, restore });
  }
  return { backend, families };
}

// ---------- render / parse (pure) ----------

/**
 * Pure: the TRUSS-FORWARD rules, exactly as `iptables -S` prints them back: two for every truss
 * link (a relay's trwg0-to-trwg0 traffic included), and a pair per network only for a bridge a
 * user named outside the prefix (com.docker.network.bridge.name).
 */
export function renderShimRules(f: FirewallObject): string[] {
  const any = `${TRUSS_IFNAME_PREFIX}+`;
  const comment = '-m comment --comment "truss interfaces"';
  // a routed network's host ends are trv* veths (its `bridge` only names the network): the prefix covers them
  const named = f.networks.filter((n) => n.routed === undefined && !n.bridge.startsWith(TRUSS_IFNAME_PREFIX));
  return [
    `-A ${IPT_CHAIN} -i ${any} ${comment} -j ACCEPT`,
    `-A ${IPT_CHAIN} -o ${any} ${comment} -j ACCEPT`,
    ...named.flatMap((n) => {
      const br = checkIfName(n.bridge);
      const tag = `-m comment --comment "truss net ${isDockerId(n.networkId) ? shortId(n.networkId) : 'unknown'}"`;
      return [`-A ${IPT_CHAIN} -i ${br} ${tag} -j ACCEPT`, `-A ${IPT_CHAIN} -o ${br} ${tag} -j ACCEPT`];
    }),
  ];
}

export interface ShimState {
  readonly chainExists: boolean;
  /** how many `-A FORWARD -j TRUSS-FORWARD` rules there are */
  readonly jumps: number;
  /** whether that jump is on top: first, or right after a first `-j DOCKER-USER` */
  readonly jumpOnTop: boolean;
  /** where the jump goes back (with every copy removed first): 2 after a first DOCKER-USER jump, else 1 */
  readonly insertAt: 1 | 2;
  readonly rules: readonly string[];
}

/** Pure: our part of `iptables -S` (filter table). */
export function parseShimState(listing: string): ShimState {
  const lines = listing.split('\n').map((l) => l.trim());
  const forward = lines.filter((l) => l.startsWith('-A FORWARD '));
  const userFirst = forward.find((l) => l !== JUMP) === DOCKER_USER_JUMP;
  return {
    chainExists: lines.includes(`-N ${IPT_CHAIN}`),
    jumps: lines.filter((l) => l === JUMP).length,
    jumpOnTop: forward[0] === JUMP || (forward[0] === DOCKER_USER_JUMP && forward[1] === JUMP),
    insertAt: userFirst ? 2 : 1,
    rules: lines.filter((l) => l.startsWith(`-A ${IPT_CHAIN} `)),
  };
}

/** Pure: the iptables-restore --noflush input that makes the shim match `f`, given what exists. */
export function renderShimRestore(f: FirewallObject, state: ShimState): string {
  const lines = ['*filter', `:${IPT_CHAIN} - [0:0]`, ...renderShimRules(f)];
  if (state.jumps !== 1 || !state.jumpOnTop) {
    // absent, duplicated or pushed down by dockerd: one jump on top, in the same transaction
    // (all copies go: -D removes the first match, which may be the one already on top)
    for (let i = 0; i < state.jumps; i++) lines.push(`-D FORWARD -j ${IPT_CHAIN}`);
    lines.push(`-I FORWARD ${state.insertAt} -j ${IPT_CHAIN}`);
  }
  return `${[...lines, 'COMMIT'].join('\n')}\n`;
}

/** Pure: the iptables-restore --noflush input that removes the shim; undefined when nothing exists. */
export function renderShimRemoval(state: ShimState): string | undefined {
  if (!state.chainExists && state.jumps === 0) return undefined;
  const lines = ['*filter'];
  for (let i = 0; i < state.jumps; i++) lines.push(`-D FORWARD -j ${IPT_CHAIN}`);
  if (state.chainExists) lines.push(`-F ${IPT_CHAIN}`, `-X ${IPT_CHAIN}`);
  return `${[...lines, 'COMMIT'].join('\n')}\n`;
}

const unquote = (s: string): string => s.replaceAll('"', '');

/** Pure: human-readable problems of one family's shim (an older truss's per-network rules among them). */
export function diffShim(f: FirewallObject, state: ShimState, family: 4 | 6): string[] {
  const tool = family === 4 ? 'iptables' : 'ip6tables';
  if (!state.chainExists) return [`${tool} chain ${IPT_CHAIN} is missing`];
  const problems: string[] = [];
  if (state.jumps !== 1) problems.push(`${tool} jump '${JUMP}' is present ${state.jumps} times, expected once`);
  else if (!state.jumpOnTop) {
    problems.push(`${tool} jump '${JUMP}' is not on top of FORWARD (first, or right after -j DOCKER-USER)`);
  }
  const want = renderShimRules(f).map(unquote);
  const have = state.rules.map(unquote);
  if (want.join('\n') !== have.join('\n')) {
    problems.push(`${tool} chain ${IPT_CHAIN} differs: expected ${want.length} rules, found ${have.length}`);
  }
  return problems;
}

// ---------- kernel ----------

/** The family's filter table, or undefined when it cannot be listed (e.g. no ip6tables filter table). */
async function readShim(exec: Exec, fam: IptFamily): Promise<ShimState | undefined> {
  try {
    const { stdout } = await exec.run(fam.list, ['-w', '-t', 'filter', '-S']);
    return parseShimState(stdout);
  } catch (e) {
    if (fam.family === 6) return undefined;
    throw e;
  }
}

// One family after the other: iptables-nft processes racing on the ruleset generation
// would only retry, and measured in parallel on this machine they were no faster.

export async function applyShim(exec: Exec, tools: IptTools, f: FirewallObject): Promise<void> {
  for (const fam of tools.families) {
    const state = await readShim(exec, fam);
    if (state) await exec.run(fam.restore, ['-w', '--noflush'], { stdin: renderShimRestore(f, state) });
  }
}

export async function removeShim(exec: Exec, tools: IptTools): Promise<void> {
  for (const fam of tools.families) {
    const state = await readShim(exec, fam);
    const text = state && renderShimRemoval(state);
    if (text) await exec.run(fam.restore, ['-w', '--noflush'], { stdin: text });
  }
}

export async function checkShim(exec: Exec, tools: IptTools, f: FirewallObject): Promise<string[]> {
  const problems: string[] = [];
  for (const fam of tools.families) {
    const state = await readShim(exec, fam);
    if (state) problems.push(...diffShim(f, state, fam.family));
  }
  return problems;
}

/**
 * After truss raised a family's forwarding from 0 (sysctl.ts): set that family's `filter
 * FORWARD` policy to DROP, as dockerd does when it raises ip_forward itself, so that the
 * host does not start routing between interfaces that are not truss's (security review M5).
 * TRUSS-FORWARD accepts truss's interfaces' traffic; what other software accepts in FORWARD
 * (Docker's rules) keeps working. Returns whether the policy was changed (false: already
 * DROP, or no filter table / tool for the family).
 */
export async function ensureForwardDrop(exec: Exec, tools: IptTools, family: 4 | 6): Promise<boolean> {
  const fam = tools.families.find((x) => x.family === family);
  if (!fam) return false;
  let listing: string;
  try {
    listing = (await exec.run(fam.list, ['-w', '-t', 'filter', '-S', 'FORWARD'])).stdout;
  } catch (e) {
    if (family === 6) return false;
    throw e;
  }
  if (parseForwardPolicy(listing) === 'DROP') return false;
  await exec.run(fam.list, ['-w', '-t', 'filter', '-P', 'FORWARD', 'DROP']);
  return true;
}

/** Pure: the policy from `iptables -S FORWARD` ("-P FORWARD ACCEPT"). */
export function parseForwardPolicy(listing: string): string | undefined {
  return /^-P FORWARD (\S+)/m.exec(listing)?.[1];
}
