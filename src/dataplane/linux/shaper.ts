/**
 * Bandwidth limits with tc, on the host end (trv…) of an endpoint's veth (core/bandwidth.ts
 * says which direction is which):
 *   - container ingress: `tbf` as the root qdisc of the host end, handle 7472: ("tr");
 *   - container egress: an `ingress` qdisc on the host end whose one u32 filter (match all)
 *     redirects every frame to the endpoint's ifb device trf…, which has the same `tbf` as
 *     its root. An ifb queues what it is given, so the sender's TCP sees a queue and backs off
 *     smoothly; a policer would drop at the rate instead (TCP then saw-tooths well below it),
 *     and this kernel has no police action anyway (CONFIG_NET_ACT_POLICE unset). The CNI
 *     bandwidth plugin and Calico do the same.
 *
 * Ownership: the host end is truss's (veth.ts); its qdiscs with truss's handles are truss's.
 * The ifb carries the ifalias mark `truss:ifb:<endpoint id>` (naming.ifbMark), set in the
 * same `ip -batch` as the create; an ifb with a truss name and no alias is one we made and
 * could not mark yet. Any other link under that name is foreign: refused, never deleted.
 *
 * Every write is planned from what was read (planShaper, pure): a converged endpoint costs
 * reads only, and nothing is deleted that is not there (tc refuses to delete a missing qdisc).
 */
import type { ShaperObject, TbfParams } from '../../core/bandwidth.ts';
import type { SetCheck } from '../../core/contracts.ts';
import { errors } from '../../core/errors.ts';
import { hostVethOfIfb, ifbMark, isTrussIfbName, parseIfbMark, shortId } from '../../core/naming.ts';
import { type DataplaneLog, type Exec, isKernelError } from './exec.ts';
import { batch, checkIfName, deleteLink, type LinkState, parseIpAddrJson, readLink } from './links.ts';

/** The handle of truss's root tbf qdiscs ("tr" in ASCII): a root qdisc with another handle is not ours. */
export const TBF_HANDLE = '7472:';
/** The ingress qdisc's handle is always ffff: (the kernel's). */
export const INGRESS_HANDLE = 'ffff:';
const HOST_VETH = /^trv[0-9a-f]{12}$/;

/** One qdisc as `tc -j qdisc show` prints it (rate in bytes/s, burst in bytes, lat in µs). */
export interface QdiscJson {
  readonly kind?: string;
  readonly handle?: string;
  readonly dev?: string;
  readonly root?: boolean;
  readonly parent?: string;
  readonly options?: { readonly rate?: number; readonly burst?: number | string; readonly lat?: number };
}

/** What tc shows of one endpoint's shaping. */
export interface ShaperState {
  /** the host end's root qdisc (kernel default: noqueue) */
  readonly vethRoot?: QdiscJson;
  readonly vethIngress: boolean;
  /** the mirred targets of the filters on the host end's ingress qdisc, one per filter */
  readonly redirects: readonly string[];
  /** the link under the ifb's name, ours or not */
  readonly ifb?: LinkState;
  readonly ifbRoot?: QdiscJson;
}

export interface ShaperPlan {
  /** `ip -batch` lines before the tc lines (the ifb must exist before a filter sends to it) */
  readonly linksBefore: readonly string[];
  /** `tc -batch` lines */
  readonly tc: readonly string[];
  /** `ip -batch` lines after the tc lines (the ifb goes once nothing sends to it) */
  readonly linksAfter: readonly string[];
  /** why, for drift reports */
  readonly reasons: readonly string[];
}

/** An ifb under our name is ours when it carries our mark, or no alias at all (a create cut short). */
export const ownsIfb = (l: LinkState, endpointId?: string): boolean => {
  if (l.kind !== 'ifb') return false;
  const id = parseIfbMark(l.alias);
  if (id !== undefined) return endpointId === undefined || id === endpointId;
  return l.alias === undefined && isTrussIfbName(l.name);
};

/** tbf's own arguments for `p`: exact integers, so the kernel rounds nothing we compare loosely. */
export const tbfArgs = (p: TbfParams): string =>
  `tbf rate ${Math.round(p.rate)}bit burst ${Math.round(p.burst)} limit ${Math.round(p.limit)}`;

const near = (have: number, want: number, slack: number): boolean => Math.abs(have - want) <= slack;

/**
 * Whether `q` is truss's tbf with parameters `p`. The kernel keeps the bucket as a time at
 * the rate (psched ticks) and tc prints the queue as latency in µs, so burst and limit come
 * back rounded: compared within 1 % (plus a few bytes and µs).
 */
export function tbfMatches(q: QdiscJson | undefined, p: TbfParams): boolean {
  if (q?.kind !== 'tbf' || q.handle !== TBF_HANDLE) return false;
  const rate = q.options?.rate;
  const burst = Number.parseInt(String(q.options?.burst ?? ''), 10);
  const lat = q.options?.lat;
  if (typeof rate !== 'number' || typeof lat !== 'number' || !Number.isFinite(burst)) return false;
  const bytesPerSecond = p.rate / 8;
  const wantLat = ((p.limit - p.burst) / bytesPerSecond) * 1e6;
  return (
    near(rate, bytesPerSecond, 1) && near(burst, p.burst, p.burst * 0.01 + 64) && near(lat, wantLat, wantLat * 0.01 + 2)
  );
}

const isOurRoot = (q: QdiscJson | undefined): boolean => q?.kind === 'tbf' && q.handle === TBF_HANDLE;

/** Pure: the writes that take `cur` to `s` ([] everywhere when it matches). Throws on a foreign ifb. */
export function planShaper(cur: ShaperState, s: ShaperObject): ShaperPlan {
  const veth = checkIfName(s.name);
  const ifb = checkIfName(s.ifb);
  const linksBefore: string[] = [];
  const tc: string[] = [];
  const linksAfter: string[] = [];
  const reasons: string[] = [];
  if (cur.ifb && !ownsIfb(cur.ifb, s.endpointId)) {
    throw errors.kernelObjectForeign(
      `endpoint ${shortId(s.endpointId)}: interface ${ifb} already exists and is not truss's ifb for it` +
        `${cur.ifb.alias ? ` (alias ${JSON.stringify(cur.ifb.alias)})` : ` (a ${cur.ifb.kind || 'link'})`}; delete or rename it`,
    );
  }
  // container ingress: root tbf of the host end
  if (s.ingress) {
    if (!tbfMatches(cur.vethRoot, s.ingress)) {
      reasons.push(`${veth}: root tbf missing or different`);
      tc.push(`qdisc replace dev ${veth} root handle ${TBF_HANDLE} ${tbfArgs(s.ingress)}`);
    }
  } else if (isOurRoot(cur.vethRoot)) {
    reasons.push(`${veth}: root tbf present but no ingress limit`);
    tc.push(`qdisc del dev ${veth} root`);
  }
  // container egress: ifb + its tbf, then the redirect into it
  if (s.egress) {
    const mark = ifbMark(s.endpointId);
    if (!cur.ifb) {
      reasons.push(`${ifb} missing`);
      linksBefore.push(`link add ${ifb} type ifb`, `link set ${ifb} alias ${mark} up`);
    } else if (cur.ifb.alias !== mark || !cur.ifb.up) {
      reasons.push(`${ifb} unmarked or down`);
      linksBefore.push(`link set ${ifb} alias ${mark} up`);
    }
    if (!cur.ifb || !tbfMatches(cur.ifbRoot, s.egress)) {
      reasons.push(`${ifb}: root tbf missing or different`);
      tc.push(`qdisc replace dev ${ifb} root handle ${TBF_HANDLE} ${tbfArgs(s.egress)}`);
    }
    // a new ifb is a new ifindex: a redirect that pointed at the old one sends nowhere
    const redirectOk =
      cur.ifb !== undefined && cur.vethIngress && cur.redirects.length === 1 && cur.redirects[0] === ifb;
    if (!redirectOk) {
      reasons.push(`${veth}: redirect to ${ifb} missing or different`);
      // why: u32 filters have no stable replace; a fresh ingress qdisc drops every old filter at once
      if (cur.vethIngress) tc.push(`qdisc del dev ${veth} ingress`);
      tc.push(
        `qdisc add dev ${veth} handle ${INGRESS_HANDLE} ingress`,
        `filter add dev ${veth} parent ${INGRESS_HANDLE} protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev ${ifb}`,
      );
    }
  } else {
    if (cur.vethIngress) {
      reasons.push(`${veth}: ingress qdisc present but no egress limit`);
      tc.push(`qdisc del dev ${veth} ingress`);
    }
    if (cur.ifb) {
      reasons.push(`${ifb} present but no egress limit`);
      linksAfter.push(`link del dev ${ifb}`);
    }
  }
  return { linksBefore, tc, linksAfter, reasons };
}

/** Pure: `tc -j qdisc show` → its qdiscs. */
export function parseQdiscs(stdout: string): QdiscJson[] {
  const text = stdout.trim();
  const parsed: unknown = text === '' ? [] : JSON.parse(text);
  return Array.isArray(parsed) ? (parsed as QdiscJson[]) : [];
}

interface FilterJson {
  readonly options?: { readonly actions?: readonly { readonly kind?: string; readonly to_dev?: string }[] };
}

/**
 * Pure: `tc -j filter show dev X ingress` → the mirred targets, one per filter that has
 * actions (u32 also lists its hash tables as entries without actions; a filter without a
 * mirred action counts as "" so it is not taken for ours).
 */
export function parseRedirects(stdout: string): string[] {
  const text = stdout.trim();
  const parsed: unknown = text === '' ? [] : JSON.parse(text);
  if (!Array.isArray(parsed)) return [];
  return (parsed as FilterJson[])
    .filter((f) => f.options?.actions !== undefined)
    .map((f) => f.options?.actions?.find((a) => a.kind === 'mirred')?.to_dev ?? '');
}

const rootOf = (qdiscs: readonly QdiscJson[]): QdiscJson | undefined => qdiscs.find((q) => q.root === true);
const hasIngress = (qdiscs: readonly QdiscJson[]): boolean =>
  qdiscs.some((q) => q.kind === 'ingress' || q.handle === INGRESS_HANDLE);

/** `tc -j qdisc show dev X`; undefined when the device does not exist. */
async function readQdiscs(exec: Exec, dev: string): Promise<QdiscJson[] | undefined> {
  try {
    return parseQdiscs((await exec.run('tc', ['-j', 'qdisc', 'show', 'dev', dev])).stdout);
  } catch (e) {
    if (isKernelError(e, 'ENODEV')) return undefined;
    throw e;
  }
}

async function readState(exec: Exec, s: ShaperObject): Promise<ShaperState> {
  const veth = checkIfName(s.name);
  const [vq, ifb] = await Promise.all([readQdiscs(exec, veth), readLink(exec, checkIfName(s.ifb))]);
  if (vq === undefined) {
    throw errors.reconcileFailed(`endpoint ${shortId(s.endpointId)}: interface ${veth} is missing; cannot shape it`);
  }
  const vethIngress = hasIngress(vq);
  const [redirects, iq] = await Promise.all([
    vethIngress
      ? exec.run('tc', ['-j', 'filter', 'show', 'dev', veth, 'ingress']).then((r) => parseRedirects(r.stdout))
      : [],
    ifb ? readQdiscs(exec, ifb.name) : undefined,
  ]);
  const vethRoot = rootOf(vq);
  const ifbRoot = iq && rootOf(iq);
  return {
    vethIngress,
    redirects,
    ...(vethRoot ? { vethRoot } : {}),
    ...(ifb ? { ifb } : {}),
    ...(ifbRoot ? { ifbRoot } : {}),
  };
}

async function applyPlan(exec: Exec, plan: ShaperPlan, ifb: string, endpointId: string): Promise<void> {
  if (plan.linksBefore.length > 0) {
    try {
      await exec.run('ip', ['-batch', '-'], { stdin: batch(plan.linksBefore) });
    } catch (e) {
      // a made but unmarked ifb is adopted next time (ownsIfb), so only a failed add needs nothing
      if (!(isKernelError(e) && e.line === 1)) await deleteOwnIfb(exec, ifb, endpointId).catch(() => {});
      throw e;
    }
  }
  if (plan.tc.length > 0) await exec.run('tc', ['-batch', '-'], { stdin: batch(plan.tc) });
  if (plan.linksAfter.length > 0) await exec.run('ip', ['-batch', '-'], { stdin: batch(plan.linksAfter) });
}

/** Reads one endpoint's shaping and writes only what differs. */
export async function ensureShaper(exec: Exec, s: ShaperObject): Promise<string[]> {
  const plan = planShaper(await readState(exec, s), s);
  await applyPlan(exec, plan, s.ifb, s.endpointId);
  return [...plan.reasons];
}

async function deleteOwnIfb(exec: Exec, name: string, endpointId?: string, log?: DataplaneLog): Promise<void> {
  const cur = await readLink(exec, checkIfName(name));
  if (cur === undefined) return;
  if (!ownsIfb(cur, endpointId)) {
    log?.warn('not removing foreign link', { link: name, kind: cur.kind, alias: cur.alias });
    return;
  }
  await deleteLink(exec, name);
}

/** Removes truss's qdiscs from host end `name` (if it is still there) and the ifb; gone = success. */
export async function removeShaper(exec: Exec, name: string, ifb: string, log?: DataplaneLog): Promise<void> {
  const veth = checkIfName(name);
  const qdiscs = HOST_VETH.test(veth) ? await readQdiscs(exec, veth) : undefined;
  const lines: string[] = [];
  if (qdiscs && isOurRoot(rootOf(qdiscs))) lines.push(`qdisc del dev ${veth} root`);
  if (qdiscs && hasIngress(qdiscs)) lines.push(`qdisc del dev ${veth} ingress`);
  if (lines.length > 0) {
    try {
      await exec.run('tc', ['-batch', '-'], { stdin: batch(lines) });
    } catch (e) {
      // the veth went between the read and the write: its qdiscs went with it
      if (!isKernelError(e, 'ENODEV') && (await readQdiscs(exec, veth)) !== undefined) throw e;
    }
  }
  await deleteOwnIfb(exec, ifb, undefined, log);
}

/**
 * Pure: compare the listings with the desired shapers. `filters` maps a host end that has an
 * ingress qdisc to its redirect targets (absent: could not be read: counted as drift).
 */
export function compareShapers(
  desired: readonly ShaperObject[],
  qdiscs: readonly QdiscJson[],
  ifbs: readonly LinkState[],
  filters: ReadonlyMap<string, readonly string[]>,
): SetCheck {
  const byDev = new Map<string, QdiscJson[]>();
  for (const q of qdiscs) {
    if (typeof q.dev !== 'string') continue;
    const list = byDev.get(q.dev) ?? [];
    list.push(q);
    byDev.set(q.dev, list);
  }
  const ifbByName = new Map(ifbs.map((l) => [l.name, l]));
  const drifted: string[] = [];
  const problems: string[] = [];
  for (const s of desired) {
    const vq = byDev.get(s.name);
    if (vq === undefined) {
      drifted.push(s.name);
      problems.push(`bandwidth of ${s.name}: the interface is missing`);
      continue;
    }
    const ifb = ifbByName.get(s.ifb);
    const vethRoot = rootOf(vq);
    const ifbRoot = ifb ? rootOf(byDev.get(ifb.name) ?? []) : undefined;
    const vethIngress = hasIngress(vq);
    const redirects = vethIngress ? (filters.get(s.name) ?? ['?']) : [];
    const state: ShaperState = {
      vethIngress,
      redirects,
      ...(vethRoot ? { vethRoot } : {}),
      ...(ifb ? { ifb } : {}),
      ...(ifbRoot ? { ifbRoot } : {}),
    };
    try {
      const plan = planShaper(state, s);
      if (plan.reasons.length > 0) {
        drifted.push(s.name);
        problems.push(`bandwidth of ${s.name}: ${plan.reasons.join('; ')}`);
      }
    } catch (e) {
      drifted.push(s.name);
      problems.push(e instanceof Error ? e.message : String(e));
    }
  }
  const wanted = new Set(desired.map((s) => s.name));
  // named by host veth: an ifb's name is ifbOfHostVeth of its veth's
  const extra = new Set<string>();
  for (const l of ifbs) {
    const veth = hostVethOfIfb(l.name);
    if (ownsIfb(l) && isTrussIfbName(l.name) && !wanted.has(veth)) extra.add(veth);
  }
  for (const [dev, list] of byDev) {
    if (!HOST_VETH.test(dev) || wanted.has(dev)) continue;
    if (isOurRoot(rootOf(list)) || hasIngress(list)) extra.add(dev);
  }
  for (const name of extra) problems.push(`bandwidth of ${name}: truss shaping present but not wanted`);
  return { drifted, extra: [...extra], problems };
}

/** Pure: the output of `tc -j -batch -` (one JSON array per command, one per line). */
export function splitBatchJson(stdout: string): string[] {
  return stdout.split('\n').filter((l) => l.trim() !== '');
}

/** Every endpoint's shaping against `desired`: two listings, plus one batch for the redirect filters. */
export async function checkShapers(exec: Exec, desired: readonly ShaperObject[]): Promise<SetCheck> {
  const [q, l] = await Promise.all([
    exec.run('tc', ['-j', 'qdisc', 'show']),
    exec.run('ip', ['-j', '-d', 'addr', 'show', 'type', 'ifb']),
  ]);
  const qdiscs = parseQdiscs(q.stdout);
  const ifbs = parseIpAddrJson(l.stdout);
  const egressLimited = new Set(desired.filter((s) => s.egress).map((s) => s.name));
  const withIngress = [
    ...new Set(qdiscs.filter((x) => x.kind === 'ingress' && typeof x.dev === 'string').map((x) => x.dev as string)),
  ].filter((d) => egressLimited.has(d));
  const filters = new Map<string, readonly string[]>();
  if (withIngress.length > 0) {
    const lines = withIngress.map((d) => `filter show dev ${checkIfName(d)} ingress`);
    // a device gone since the listing fails the batch: then every one of them counts as drift
    const r = await exec.run('tc', ['-j', '-batch', '-'], { stdin: batch(lines) }).catch(() => undefined);
    const outs = r ? splitBatchJson(r.stdout) : [];
    if (outs.length === withIngress.length) {
      withIngress.forEach((d, i) => {
        filters.set(d, parseRedirects(outs[i] as string));
      });
    }
  }
  return compareShapers(desired, qdiscs, ifbs, filters);
}
