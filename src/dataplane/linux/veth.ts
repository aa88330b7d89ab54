/**
 * veth pairs: a virtual cable with two ends. The host end (trv…) is a port of the
 * network's bridge; the peer (trc…) is created in the host namespace with the endpoint's
 * MAC and MTU, and Docker moves it into the container (and renames it) after Join. From
 * then on only the host end is visible here; deleting it deletes the peer with it, and a
 * container exiting deletes both.
 *
 * Ownership: the host end's ifalias `truss:ep:<endpoint id>:<state id>` (naming.ownerMark), set in
 * the same `ip -batch` as the create. A host end with no alias at all but a truss name
 * (naming.isTrussLinkName) is a pair we made and could not mark (killed mid-batch): it is
 * converged and marked. Any other alias, or another link kind, is foreign: refused.
 */
import type { VethObject } from '../../core/desired.ts';
import { errors, type TrussError } from '../../core/errors.ts';
import { isTrussLinkName, ownerMark, shortId } from '../../core/naming.ts';
import { fault } from '../../obs/fault.ts';
import { type DataplaneLog, type Exec, isKernelError } from './exec.ts';
import {
  batch,
  canonicalCidr,
  checkIfName,
  checkMac,
  deleteLink,
  type LinkState,
  readLink,
  undoFailedCreate,
} from './links.ts';
import { hostRouteLines } from './routed-routes.ts';
import { ensureAcceptRaOff } from './sysctl.ts';

export const ENDPOINT_DISCONNECTED = 'TRUSS_ERR_ENDPOINT_DISCONNECTED';

export function endpointDisconnected(v: VethObject): TrussError {
  return errors.endpointDisconnected(
    `endpoint ${shortId(v.endpointId)} of network ${shortId(v.networkId)}: its interface ${v.name} is gone and ` +
      "the container's end went with it; disconnect and reconnect the container, or restart it",
  );
}

// why nodad: the gateway must answer at once (as on a bridge, bridge.ts); the address is ours
const gatewayLine = (verb: 'add' | 'replace', cidr: string, dev: string): string =>
  `addr ${verb} ${canonicalCidr(cidr)} dev ${dev}${cidr.includes(':') ? ' nodad' : ''}`;

const checkGroup = (g: number): number => {
  if (!Number.isInteger(g) || g < 1 || g > 0xffffffff) throw errors.badOption(`invalid interface group ${g}`);
  return g;
};

/**
 * Pure: a routed host end from nothing (core/routed.ts): no master; its network's interface group
 * (in the same `link set` as the mark) and the gateway addresses, so the container's ARP/NS for
 * its gateway is answered by the host end itself; then the container's host routes, so a routed
 * attach is this one process.
 */
function planRoutedCreate(v: VethObject, r: NonNullable<VethObject['routed']>, stateId?: string): string[] {
  const name = checkIfName(v.name);
  return [
    `link add ${name} mtu ${v.mtu} type veth peer name ${checkIfName(v.peer)} address ${checkMac(v.peerMac)} mtu ${v.mtu}`,
    `link set ${name} alias ${ownerMark('ep', v.endpointId, stateId)} group ${checkGroup(r.group)} up`,
    ...r.addresses.map((a) => gatewayLine('add', a, name)),
    ...hostRouteLines(r.routes, name),
  ];
}

/** Pure: the `ip -batch` lines that create the pair from nothing. Line 1 makes both ends. */
export function planVethCreate(v: VethObject, stateId?: string): string[] {
  if (v.routed) return planRoutedCreate(v, v.routed, stateId);
  const name = checkIfName(v.name);
  return [
    `link add ${name} mtu ${v.mtu} type veth peer name ${checkIfName(v.peer)} address ${checkMac(v.peerMac)} mtu ${v.mtu}`,
    // why: IFLA_IFALIAS is ignored on RTM_NEWLINK, so the mark needs its own `link set`
    `link set ${name} alias ${ownerMark('ep', v.endpointId, stateId)} master ${checkIfName(v.bridge)} up`,
  ];
}

/**
 * Pure: the `ip -batch` lines that converge an existing, owned host end. [] when it matches; a
 * routed one's host routes are always replaced (idempotent; the link's state does not show them,
 * and this runs only when the pair exists already: a repair, not an attach).
 */
export function planVeth(cur: LinkState, v: VethObject, stateId?: string): string[] {
  const name = checkIfName(v.name);
  const lines: string[] = [];
  const mark = ownerMark('ep', v.endpointId, stateId);
  if (cur.alias !== mark) lines.push(`link set ${name} alias ${mark}`);
  if (v.routed) {
    if (cur.master !== undefined) lines.push(`link set ${name} nomaster`);
    if (cur.group !== v.routed.group) lines.push(`link set ${name} group ${checkGroup(v.routed.group)}`);
    const have = new Set(cur.addresses.map(canonicalCidr));
    for (const a of v.routed.addresses) if (!have.has(canonicalCidr(a))) lines.push(gatewayLine('replace', a, name));
  } else if (cur.master !== v.bridge) lines.push(`link set ${name} master ${checkIfName(v.bridge)}`);
  if (cur.mtu !== v.mtu) lines.push(`link set ${name} mtu ${v.mtu}`);
  if (!cur.up) lines.push(`link set ${name} up`);
  if (v.routed) lines.push(...hostRouteLines(v.routed.routes, name));
  return lines;
}

const ownsHostEnd = (cur: LinkState, endpointId?: string): boolean =>
  cur.kind === 'veth' &&
  (cur.mark
    ? cur.mark.kind === 'ep' && (endpointId === undefined || cur.mark.id === endpointId)
    : cur.alias === undefined && isTrussLinkName(cur.name));

function assertOwnVeth(cur: LinkState, v: VethObject): void {
  if (ownsHostEnd(cur, v.endpointId)) return;
  const what = cur.mark
    ? `truss's ${cur.mark.kind === 'br' ? 'bridge' : 'endpoint'} for ${shortId(cur.mark.id)}`
    : `a ${cur.kind || 'link'} truss did not create${cur.alias ? ` (alias ${JSON.stringify(cur.alias)})` : ''}`;
  throw errors.kernelObjectForeign(
    `endpoint ${shortId(v.endpointId)}: interface ${v.name} already exists and is ${what}; delete or rename it`,
  );
}

async function createVeth(exec: Exec, v: VethObject, stateId?: string): Promise<void> {
  try {
    await exec.run('ip', ['-batch', '-'], { stdin: batch(planVethCreate(v, stateId)) });
  } catch (e) {
    // Line 1 made both ends; a failure after it (e.g. the bridge is missing) must not leave half a job.
    await undoFailedCreate(exec, e, { name: v.name, kind: 'veth', mark: ownerMark('ep', v.endpointId, stateId) });
    throw e;
  }
}

/**
 * Creates the pair (before Join) or converges the host end: mark, master, MTU, up, accept_ra=0.
 * Before Join the pair is almost always new (CreateEndpoint), so the create is tried first and
 * the link is read only when its `link add` says it exists (EEXIST on line 1: nothing was made).
 */
export async function ensureVeth(exec: Exec, v: VethObject, stateId?: string): Promise<void> {
  const name = checkIfName(v.name);
  if (!v.joined) {
    try {
      await createVeth(exec, v, stateId);
      fault('kernel:veth-after-create');
      await ensureAcceptRaOff(exec, name);
      return;
    } catch (e) {
      if (!isKernelError(e, 'EEXIST') || e.line !== 1) throw e;
    }
  }
  const cur = await readLink(exec, name);
  if (cur === undefined) {
    // After Join the peer lived in the container: a new pair would be a cable to nowhere.
    if (v.joined) throw endpointDisconnected(v);
    await createVeth(exec, v, stateId);
  } else {
    assertOwnVeth(cur, v);
    const lines = planVeth(cur, v, stateId);
    if (lines.length > 0) await exec.run('ip', ['-batch', '-'], { stdin: batch(lines) });
  }
  await ensureAcceptRaOff(exec, name);
}

/** Deletes the host end (the peer goes with it) when it is ours. Gone = success; foreign = left alone. */
export async function removeVeth(exec: Exec, name: string, log?: DataplaneLog): Promise<void> {
  const cur = await readLink(exec, checkIfName(name));
  if (cur === undefined) return;
  if (!ownsHostEnd(cur)) {
    log?.warn('not removing foreign link', { link: name, kind: cur.kind, alias: cur.alias });
    return;
  }
  await deleteLink(exec, name);
}

/**
 * Veth removals that finish after removeVeth has returned. why: the kernel takes 20-30 ms to
 * unregister a veth pair here (RCU grace periods under RTNL, whatever the tool), which was most
 * of a DeleteEndpoint. By the time the reconciler removes a veth its guard elements are gone and
 * Docker has taken the peer back out of the container, down: nothing can send through the pair.
 * The intent is already durable, so a crash before the deletion completes is repaired by the next
 * full pass (an owned veth nobody wants), and so is a deletion that fails (logged).
 *
 * Whatever next looks at or touches links waits for the removals still running (settled):
 * listing links, (re)creating a veth, removing a bridge. So a pass never sees a half-deleted
 * veth as drift, and no other kernel write about the same link overtakes its deletion.
 */
export class VethRemovals {
  readonly #running = new Map<string, Promise<void>>();
  readonly #log: DataplaneLog | undefined;
  constructor(log?: DataplaneLog) {
    this.#log = log;
  }

  /** Starts removeVeth(name) unless it is already running; resolves at once. */
  async start(exec: Exec, name: string): Promise<void> {
    checkIfName(name);
    if (this.#running.has(name)) return;
    const work = removeVeth(exec, name, this.#log)
      .catch((e: unknown) =>
        this.#log?.warn('removing a veth failed; the next full pass retries', { link: name, err: e }),
      )
      .finally(() => this.#running.delete(name));
    this.#running.set(name, work);
  }

  /** Resolves when the removals running now are done (only `names`' when given). */
  async settled(names?: readonly string[]): Promise<void> {
    const waits = names ? names.map((n) => this.#running.get(n)) : [...this.#running.values()];
    await Promise.all(waits);
  }

  get size(): number {
    return this.#running.size;
  }
}
