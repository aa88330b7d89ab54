/**
 * Linux bridges: one per Docker network, a software switch whose ports are the host ends
 * of the endpoints' veth pairs. The bridge itself is the network's gateway: it carries the
 * gateway addresses (v4 and v6), so the host routes the network's subnets to it.
 *
 * Ownership: the ifalias `truss:br:<network id>:<state id>` (naming.ownerMark), set in the same
 * `ip -batch` as the create. A link with the bridge's name but without a mark for its network is
 * foreign: ensure refuses it (TRUSS_ERR_KERNEL_OBJECT_FOREIGN), remove leaves it alone.
 * We never adopt: a user-named bridge (com.docker.network.bridge.name) may collide with
 * someone else's.
 */
import type { BridgeObject } from '../../core/desired.ts';
import { errors } from '../../core/errors.ts';
import { ownerMark, shortId } from '../../core/naming.ts';
import type { DataplaneLog, Exec } from './exec.ts';
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
import { ensureAcceptRaOff, ensureSysctl } from './sysctl.ts';

const isV6 = (cidr: string): boolean => cidr.includes(':');

// why: the gateway must answer at once; a tentative (DAD) v6 gateway drops the first packets
// of every new network, and the pool is ours, so no neighbour can legitimately hold it.
const addrLine = (verb: 'add' | 'replace', cidr: string, dev: string): string =>
  `addr ${verb} ${cidr} dev ${dev}${isV6(cidr) ? ' nodad' : ''}`;

/** Pure: the `ip -batch` lines that converge an existing, owned bridge to `b`. [] when it matches. */
export function planBridge(cur: LinkState, b: BridgeObject, stateId?: string): string[] {
  const name = checkIfName(b.name);
  const want = new Set(b.addresses.map(canonicalCidr));
  const have = new Set(cur.addresses.map(canonicalCidr));
  const dels = [...have].filter((a) => !want.has(a));
  // why: deleting a primary IPv4 address deletes the secondaries of its subnet too
  // (unless promote_secondaries), so after any v4 delete every wanted v4 address is re-put.
  const v4Deleted = dels.some((a) => !isV6(a));
  const puts = [...want].filter((a) => !have.has(a) || (v4Deleted && !isV6(a)));
  const lines: string[] = [];
  // a bridge of an earlier truss (unstamped) or of another state the reconciler chose to adopt
  if (cur.alias !== ownerMark('br', b.networkId, stateId))
    lines.push(`link set ${name} alias ${ownerMark('br', b.networkId, stateId)}`);
  if (cur.mtu !== b.mtu) lines.push(`link set ${name} mtu ${b.mtu}`);
  if (cur.mac.toLowerCase() !== b.mac) lines.push(`link set ${name} address ${checkMac(b.mac)}`);
  // Deletes first: the same address with another prefix length must go before the right one comes.
  for (const a of dels) lines.push(`addr del ${a} dev ${name}`);
  for (const a of puts) lines.push(addrLine('replace', a, name));
  if (!cur.up) lines.push(`link set ${name} up`);
  return lines;
}

/** Pure: the `ip -batch` lines that create `b` from nothing. */
export function planBridgeCreate(b: BridgeObject, stateId?: string): string[] {
  const name = checkIfName(b.name);
  return [
    `link add ${name} address ${checkMac(b.mac)} mtu ${b.mtu} type bridge`,
    // why: IFLA_IFALIAS is ignored on RTM_NEWLINK, so the mark needs its own `link set`
    `link set ${name} alias ${ownerMark('br', b.networkId, stateId)}`,
    ...b.addresses.map((a) => addrLine('add', canonicalCidr(a), name)),
    `link set ${name} up`,
  ];
}

function assertOwnBridge(cur: LinkState, b: BridgeObject): void {
  if (cur.kind === 'bridge' && cur.mark?.kind === 'br' && cur.mark.id === b.networkId) return;
  const what = cur.mark
    ? `truss's ${cur.mark.kind === 'br' ? 'bridge' : 'endpoint'} for ${shortId(cur.mark.id)}`
    : `a ${cur.kind || 'link'} truss did not create${cur.alias ? ` (alias ${JSON.stringify(cur.alias)})` : ''}`;
  throw errors.kernelObjectForeign(
    `network ${shortId(b.networkId)}: interface ${b.name} already exists and is ${what}; ` +
      'delete or rename it, or create the network with another com.docker.network.bridge.name',
  );
}

async function createBridge(exec: Exec, b: BridgeObject, stateId?: string): Promise<void> {
  try {
    await exec.run('ip', ['-batch', '-'], { stdin: batch(planBridgeCreate(b, stateId)) });
  } catch (e) {
    // A failure after the add (line 1) must not leave an unmarked bridge behind.
    await undoFailedCreate(exec, e, { name: b.name, kind: 'bridge', mark: ownerMark('br', b.networkId, stateId) });
    throw e;
  }
}

/**
 * why: when the bridge's MAC changes (a bridge made by an older truss gets its own, or one
 * changed by hand is set back), the kernel then announces it (gratuitous ARP, unsolicited NA)
 * and the containers' gateway entries follow at once instead of after a failed probe.
 */
async function ensureAnnounce(exec: Exec, name: string): Promise<void> {
  await ensureSysctl(exec, `net/ipv4/conf/${name}/arp_notify`, '1');
  await ensureSysctl(exec, `net/ipv6/conf/${name}/ndisc_notify`, '1');
}

/**
 * Creates or converges the bridge: mark (stamped with `stateId`), MAC, MTU, gateway addresses, up,
 * accept_ra=0. Idempotent.
 */
export async function ensureBridge(exec: Exec, b: BridgeObject, stateId?: string): Promise<void> {
  const name = checkIfName(b.name);
  const cur = await readLink(exec, name);
  if (cur === undefined) {
    await createBridge(exec, b, stateId);
    await ensureAnnounce(exec, name);
  } else {
    assertOwnBridge(cur, b);
    await ensureAnnounce(exec, name); // before a MAC change, so that it is announced
    const lines = planBridge(cur, b, stateId);
    if (lines.length > 0) await exec.run('ip', ['-batch', '-'], { stdin: batch(lines) });
  }
  await ensureAcceptRaOff(exec, name);
  // why: the bridge's link-local address (from its own fixed MAC) must be usable at once, like its
  // gateways (nodad): a host sends neighbour solicitations for a packet it forwards only from a
  // link-local source, so while DAD holds it tentative (~1 s, again each time the bridge regains
  // carrier: its first port after none) the first IPv6 packet forwarded into a container waits a second
  await ensureSysctl(exec, `net/ipv6/conf/${name}/accept_dad`, '0');
  // why: containers see the whole cluster subnet as on-link and ARP for addresses that live on
  // other hosts; with proxy_arp the host answers for those (they route out another link, the
  // tunnel) and forwards, while local containers still answer for themselves
  if (b.proxyArp) {
    await ensureSysctl(exec, `net/ipv4/conf/${name}/proxy_arp`, '1');
    // why: proxied ARP answers are delayed up to proxy_delay (0.8 s by default): the first
    // packet to a container on another host would wait that long
    await ensureSysctl(exec, `net/ipv4/neigh/${name}/proxy_delay`, '0');
  }
}

/** Deletes the bridge when it carries a truss bridge mark. Gone = success; a foreign link is left alone. */
export async function removeBridge(exec: Exec, name: string, log?: DataplaneLog): Promise<void> {
  const cur = await readLink(exec, checkIfName(name));
  if (cur === undefined) return;
  if (cur.mark?.kind !== 'br') {
    log?.warn('not removing foreign link', { link: name, kind: cur.kind, alias: cur.alias });
    return;
  }
  await deleteLink(exec, name);
}
