/**
 * Connection tracking: after an endpoint's policy changes, the flows into it that the new
 * rules no longer admit are cut by deleting their conntrack entries (`conntrack -L` to
 * list, `conntrack -D` with the exact original tuple to delete).
 *
 * why deleting is enough: the policy table accepts `ct state established,related` before
 * it looks at the destination, so an entry keeps an old flow alive; once it is gone, the
 * next packet of the flow is NEW again (nf_conntrack_tcp_loose picks it up mid-stream),
 * meets the endpoint's chain and is dropped. Flows the new rules still admit are kept.
 *
 * Ownership: conntrack entries belong to nobody; truss only deletes entries whose original
 * destination is an address of an endpoint with a policy, and only those the policy denies.
 * Protocols other than tcp, udp, icmp and icmpv6 are left alone (the chain drops their new
 * flows, but entries of theirs are not parsed).
 */

import type { IngressPolicy } from '../../core/policy/model.ts';
import { admits } from '../../core/policy/parse.ts';
import { type Exec, isKernelError } from './exec.ts';
import { checkAddress } from './policy-sets.ts';

export type TrackedProto = 'tcp' | 'udp' | 'icmp' | 'icmpv6';

/** One entry's original-direction tuple. */
export interface TrackedFlow {
  readonly family: 4 | 6;
  readonly proto: TrackedProto;
  readonly src: string;
  readonly dst: string;
  /** tcp/udp */
  readonly sport?: number;
  readonly dport?: number;
  /** icmp/icmpv6 */
  readonly type?: number;
  readonly code?: number;
  readonly id?: number;
}

const PROTOS: ReadonlySet<string> = new Set(['tcp', 'udp', 'icmp', 'icmpv6']);
const NUM = /^(0|[1-9][0-9]{0,4})$/;

function num(v: string | undefined, max: number): number | undefined {
  if (v === undefined || !NUM.test(v)) return undefined;
  const n = Number(v);
  return n <= max ? n : undefined;
}

/** The original tuple's key=value pairs: the first occurrence of each key (the reply tuple repeats them). */
function firstPairs(tokens: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const t of tokens) {
    const eq = t.indexOf('=');
    if (eq <= 0) continue;
    const k = t.slice(0, eq);
    if (!out.has(k)) out.set(k, t.slice(eq + 1));
  }
  return out;
}

function parseLine(line: string): TrackedFlow | undefined {
  let tokens = line.trim().split(/\s+/);
  if (tokens[0] === 'ipv4' || tokens[0] === 'ipv6') tokens = tokens.slice(2); // `-o extended`
  const proto = tokens[0];
  if (proto === undefined || !PROTOS.has(proto)) return undefined;
  const kv = firstPairs(tokens);
  let src: ReturnType<typeof checkAddress>;
  let dst: ReturnType<typeof checkAddress>;
  try {
    src = checkAddress('conntrack', kv.get('src') ?? '');
    dst = checkAddress('conntrack', kv.get('dst') ?? '');
  } catch {
    return undefined;
  }
  if (src.family !== dst.family) return undefined;
  const base = { family: src.family, proto: proto as TrackedProto, src: src.text, dst: dst.text };
  if (proto === 'tcp' || proto === 'udp') {
    const sport = num(kv.get('sport'), 65_535);
    const dport = num(kv.get('dport'), 65_535);
    return sport === undefined || dport === undefined ? undefined : { ...base, sport, dport };
  }
  const type = num(kv.get('type'), 255);
  const code = num(kv.get('code'), 255);
  const id = num(kv.get('id'), 65_535);
  return type === undefined || code === undefined || id === undefined ? undefined : { ...base, type, code, id };
}

/** Pure: `conntrack -L` text (plain or `-o extended`) -> the entries truss understands. */
export function parseConntrack(text: string): TrackedFlow[] {
  return text.split('\n').flatMap((l) => parseLine(l) ?? []);
}

const ECHO_REQUEST = { icmp: 8, icmpv6: 128 } as const;

const loosened = new WeakMap<IngressPolicy, IngressPolicy>();

/**
 * The rules with each name=/label= rule admitting any source. why: a conntrack entry names no
 * container and the selector's members are not this call's to know, so a flow such a rule may
 * admit (its protocol and port) is kept rather than cut from a member on every re-program.
 */
function loosen(rules: IngressPolicy): IngressPolicy {
  let out = loosened.get(rules);
  if (out === undefined) {
    out = rules.some((r) => r.peer !== undefined)
      ? rules.map((r) =>
          r.peer === undefined ? r : r.ports === undefined ? { proto: r.proto } : { proto: r.proto, ports: r.ports },
        )
      : rules;
    loosened.set(rules, out);
  }
  return out;
}

/**
 * Pure: whether `rules` admit the flow as a new one (icmp: echo requests only); a name=/label=
 * rule counts as admitting any source (loosen).
 */
export function flowAdmitted(policy: IngressPolicy, f: TrackedFlow): boolean {
  const rules = loosen(policy);
  if (f.proto === 'tcp' || f.proto === 'udp') {
    return f.dport !== undefined && admits(rules, { proto: f.proto, port: f.dport, source: f.src });
  }
  return f.type === ECHO_REQUEST[f.proto] && admits(rules, { proto: 'icmp', source: f.src });
}

/** Pure: the `conntrack -D` arguments that match exactly this entry. */
export function deleteArgs(f: TrackedFlow): string[] {
  const args = ['-D', '-f', f.family === 4 ? 'ipv4' : 'ipv6', '-p', f.proto, '-s', f.src, '-d', f.dst];
  if (f.proto === 'tcp' || f.proto === 'udp') return [...args, '--sport', `${f.sport}`, '--dport', `${f.dport}`];
  const p = f.proto === 'icmp' ? '--icmp' : '--icmpv6';
  return [...args, `${p}-type`, `${f.type}`, `${p}-code`, `${f.code}`, `${p}-id`, `${f.id}`];
}

/** Entries whose original destination is `address`. */
export async function listFlowsTo(exec: Exec, address: string): Promise<TrackedFlow[]> {
  const a = checkAddress('conntrack', address);
  const { stdout } = await exec.run('conntrack', ['-L', '-d', a.text, '-f', a.family === 4 ? 'ipv4' : 'ipv6']);
  return parseConntrack(stdout).filter((f) => f.dst === a.text);
}

/** Deletes one entry; an entry that is already gone is success. */
export async function deleteFlow(exec: Exec, f: TrackedFlow): Promise<void> {
  try {
    await exec.run('conntrack', deleteArgs(f));
  } catch (e) {
    if (!isKernelError(e, 'ENOENT')) throw e;
  }
}

/** Cuts the flows into `addresses` that `rules` do not admit; returns the entries it deleted. */
export async function cutDeniedFlows(
  exec: Exec,
  addresses: readonly string[],
  rules: IngressPolicy,
): Promise<TrackedFlow[]> {
  const flows = (await Promise.all(addresses.map((a) => listFlowsTo(exec, a)))).flat();
  const denied = flows.filter((f) => !flowAdmitted(rules, f));
  await Promise.all(denied.map((f) => deleteFlow(exec, f)));
  return denied;
}
