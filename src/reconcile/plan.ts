/**
 * planLinks: compare the desired links with what the kernel shows (pure). The result says
 * which objects to converge, which truss-owned links to remove, and why (for status).
 */

import type { ObservedLink } from '../core/contracts.ts';
import type { BridgeObject, DesiredKernel, VethObject } from '../core/desired.ts';
import { markOwner, peerVethName } from '../core/naming.ts';

/** The state this daemon runs with: its id and whether it adopts unstamped marks (an upgraded database). */
export interface StateOwner {
  readonly stateId: string;
  readonly adoptUnstamped: boolean;
}

/** A truss link another state made (or an unstamped one beside a new database): never pruned automatically. */
export interface ForeignLink {
  readonly name: string;
  readonly kind: string;
  /** the Docker network or endpoint id in its mark */
  readonly id: string;
  /** the state id in its mark; absent when unstamped */
  readonly state?: string;
}

export interface OrphanCandidate {
  readonly networkId: string;
  readonly endpointId: string;
  readonly reason: string;
}

export interface LinkPlan {
  readonly ensureBridges: readonly BridgeObject[];
  readonly ensureVeths: readonly VethObject[];
  readonly remove: readonly { readonly name: string; readonly kind: string }[];
  readonly problems: readonly string[];
  /**
   * Joined endpoints whose container is gone without Docker telling truss: the pair died
   * with the container's namespace, or Docker moved the container end back to the host
   * (after a Leave that never reached truss). The endpoint GC reclaims them after a grace.
   */
  readonly orphans: readonly OrphanCandidate[];
  /**
   * Marked links of another or an unknown state (see StateOwner), with the unmarked peers of
   * those veths: left alone, reported. While there are any, unmarked truss-named links are left
   * alone too (whose they are cannot be told).
   */
  readonly foreign: readonly ForeignLink[];
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && [...a].sort().join() === [...b].sort().join();

function bridgeProblems(d: BridgeObject, o: ObservedLink | undefined, stateId?: string): string[] {
  if (!o) return [`bridge ${d.name} is missing`];
  const p: string[] = [];
  if (o.kind !== 'bridge') p.push(`link ${d.name} is a ${o.kind || 'link'}, not a bridge`);
  if (o.mark?.id !== d.networkId) p.push(`bridge ${d.name} does not carry truss's mark for its network`);
  else if (stateId !== undefined && o.mark.state !== stateId) p.push(`bridge ${d.name} is not stamped with this state`);
  if (o.mtu !== d.mtu) p.push(`bridge ${d.name} has MTU ${o.mtu}, want ${d.mtu}`);
  if (o.mac.toLowerCase() !== d.mac) p.push(`bridge ${d.name} has MAC ${o.mac}, want ${d.mac}`);
  if (!o.up) p.push(`bridge ${d.name} is down`);
  if (!sameSet(o.addresses, d.addresses)) {
    p.push(`bridge ${d.name} has addresses [${o.addresses.join(', ')}], want [${d.addresses.join(', ')}]`);
  }
  return p;
}

/** A routed host end: no master, its network's group, its gateway addresses, its host routes. */
function routedVethProblems(d: VethObject, r: NonNullable<VethObject['routed']>, o: ObservedLink): string[] {
  const p: string[] = [];
  if (o.master !== undefined) p.push(`veth ${d.name} is attached to ${o.master}, want no master (routed)`);
  if (o.group !== r.group) p.push(`veth ${d.name} is in interface group ${o.group ?? 0}, want ${r.group}`);
  const missing = r.addresses.filter((a) => !o.addresses.includes(a));
  if (missing.length > 0) p.push(`veth ${d.name} lacks its gateway address(es) ${missing.join(', ')}`);
  const noRoute = r.routes.filter((a) => !(o.hostRoutes ?? []).includes(a));
  if (noRoute.length > 0) p.push(`veth ${d.name} lacks its host route(s) ${noRoute.join(', ')}`);
  return p;
}

function vethProblems(
  d: VethObject,
  o: ObservedLink | undefined,
  peer: ObservedLink | undefined,
  stateId?: string,
): string[] {
  if (!o) return [`veth ${d.name} of endpoint ${d.endpointId.slice(0, 12)} is missing`];
  const p: string[] = [];
  if (o.kind !== 'veth') p.push(`link ${d.name} is a ${o.kind || 'link'}, not a veth`);
  if (o.mark?.id !== d.endpointId) p.push(`veth ${d.name} does not carry truss's mark for its endpoint`);
  else if (stateId !== undefined && o.mark.state !== stateId) p.push(`veth ${d.name} is not stamped with this state`);
  if (d.routed) p.push(...routedVethProblems(d, d.routed, o));
  else if (o.master !== d.bridge) p.push(`veth ${d.name} is attached to ${o.master ?? 'nothing'}, want ${d.bridge}`);
  if (o.mtu !== d.mtu) p.push(`veth ${d.name} has MTU ${o.mtu}, want ${d.mtu}`);
  if (!o.up) p.push(`veth ${d.name} is down`);
  if (!d.joined && !peer) p.push(`veth peer ${d.peer} is missing`);
  return p;
}

/**
 * `owner` absent: every marked link is ours (as before state stamps). A desired link is always
 * ours to converge (and to restamp), whoever stamped it: the intent in this state asks for it.
 */
export function planLinks(desired: DesiredKernel, observed: readonly ObservedLink[], owner?: StateOwner): LinkPlan {
  const byName = new Map(observed.map((l) => [l.name, l]));
  const stateId = owner?.stateId;
  const problems: string[] = [];
  const ensureBridges: BridgeObject[] = [];
  const ensureVeths: VethObject[] = [];
  for (const b of desired.bridges) {
    const p = bridgeProblems(b, byName.get(b.name), stateId);
    if (p.length > 0) {
      problems.push(...p);
      ensureBridges.push(b);
    }
  }
  const orphans: OrphanCandidate[] = [];
  for (const v of desired.veths) {
    const reason = !v.joined
      ? undefined
      : !byName.has(v.name)
        ? `its interface ${v.name} is gone`
        : byName.has(v.peer)
          ? `its container end ${v.peer} is back in the host namespace`
          : undefined;
    if (reason) orphans.push({ networkId: v.networkId, endpointId: v.endpointId, reason });
    const p = vethProblems(v, byName.get(v.name), byName.get(v.peer), stateId);
    if (p.length > 0) {
      problems.push(...p);
      ensureVeths.push(v);
    }
  }
  const wanted = new Set<string>([
    ...desired.bridges.map((b) => b.name),
    ...desired.veths.flatMap((v) => [v.name, v.peer]),
  ]);
  const foreign = foreignLinks(observed, wanted, owner);
  const leave = new Set(foreign.map((f) => f.name));
  const remove = observed
    .filter((l) => !wanted.has(l.name) && !leave.has(l.name) && (foreign.length === 0 || l.mark !== undefined))
    .map((l) => ({ name: l.name, kind: l.kind }))
    // veths before bridges: a bridge goes last
    .sort((a, b) => Number(a.kind === 'bridge') - Number(b.kind === 'bridge'));
  for (const r of remove) problems.push(`${r.kind || 'link'} ${r.name} is truss's but no longer wanted`);
  return { ensureBridges, ensureVeths, remove, problems, orphans, foreign };
}

function foreignLinks(
  observed: readonly ObservedLink[],
  wanted: ReadonlySet<string>,
  owner: StateOwner | undefined,
): ForeignLink[] {
  const marked = observed.filter((l) => !wanted.has(l.name) && l.mark && markOwner(l.mark, owner) === 'foreign');
  const out: ForeignLink[] = marked.map((l) => ({
    name: l.name,
    kind: l.kind,
    id: l.mark?.id ?? '',
    ...(l.mark?.state !== undefined ? { state: l.mark.state } : {}),
  }));
  // the host namespace end of a foreign veth that is not joined (Docker moves it away on Join)
  const names = new Set(observed.map((l) => l.name));
  for (const f of [...out]) {
    if (f.kind !== 'veth') continue;
    const peer = peerVethName(f.id);
    if (names.has(peer) && !wanted.has(peer))
      out.push({ name: peer, kind: 'veth', id: f.id, ...(f.state ? { state: f.state } : {}) });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
