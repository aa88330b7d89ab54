/**
 * Proxy NDP on the bridges of dual-stack cluster networks: the bridge answers neighbour
 * solicitations for the addresses of containers on other hosts (core/cluster/proxy-ndp.ts says
 * which), as proxy_arp does for IPv4, and the host forwards what then arrives into the tunnel.
 * Per bridge:
 *   - `net.ipv6.conf.BR.proxy_ndp=1`: answer for the proxy entries of BR;
 *   - `net.ipv6.neigh.BR.proxy_delay=0`: a proxied answer to a multicast solicitation is
 *     otherwise delayed by up to 0.8 s (the first packet to another host would wait that long);
 *   - one proxy entry per address (`ip -6 neigh add proxy ADDR dev BR`; the kernel has no prefix form).
 * And host-wide `net.ipv6.conf.all.proxy_ndp=1`, raised once, never lowered (like forwarding):
 * why: a container checks a cached neighbour (NUD) with a UNICAST solicitation to the address
 * itself; only with the `all` switch does the kernel take such a packet in and answer it from a
 * proxy entry (ip6_forward: "XXX: idev->cnf.proxy_ndp?"). With the per-device switch alone it is
 * forwarded like any packet, answered by "beyond scope" (its source is link-local), and the
 * container's entry fails and is resolved again every reachable time. It changes nothing on a
 * device without proxy entries.
 *
 * Ownership: a proxy entry is truss's when it is on the bridge of a wanted object and inside that
 * network's IPv6 subnets; entries elsewhere (other devices, other prefixes) are never touched.
 * Deleting the bridge takes its entries along.
 */
import type { ProxyNdpObject } from '../../core/cluster/proxy-ndp.ts';
import { inSubnets } from '../../core/cluster/proxy-ndp.ts';
import type { SetCheck } from '../../core/contracts.ts';
import { errors } from '../../core/errors.ts';
import { formatIp, parseIp } from '../../core/ip.ts';
import { type Exec, isKernelError } from './exec.ts';
import { batch, checkIfName } from './links.ts';
import { readSysctl, writeSysctl } from './sysctl.ts';

export const PROXY_NDP_ALL_KEY = 'net/ipv6/conf/all/proxy_ndp';

/** One IPv6 proxy entry as the kernel lists it. */
export interface ProxyEntry {
  readonly ip: string;
  readonly dev: string;
}

/** The per-bridge switches and the values truss wants. */
export const bridgeSysctls = (bridge: string): [string, string][] => [
  [`net/ipv6/conf/${checkIfName(bridge)}/proxy_ndp`, '1'],
  [`net/ipv6/neigh/${checkIfName(bridge)}/proxy_delay`, '0'],
];

/** Validates an object; returns it with canonical addresses. Throws TrussError. */
export function checkProxyNdpObject(o: ProxyNdpObject): ProxyNdpObject {
  const addresses = o.addresses.map((a) => {
    const ip = parseIp(a);
    if (ip?.family !== 6 || !inSubnets(a, o.subnets))
      throw errors.badAddress(`proxy NDP on ${o.name}: ${JSON.stringify(a)} is not an IPv6 address of its network`);
    return formatIp(ip);
  });
  return { ...o, name: checkIfName(o.name), addresses };
}

// ---------- pure ----------

/** Pure: `ip -j -6 neigh show proxy` → its entries (canonical addresses). */
export function parseProxyEntries(stdout: string): ProxyEntry[] {
  const text = stdout.trim();
  const v: unknown = text === '' ? [] : JSON.parse(text);
  if (!Array.isArray(v)) return [];
  return v.flatMap((e: { dst?: unknown; dev?: unknown }) => {
    const ip = typeof e.dst === 'string' ? parseIp(e.dst) : undefined;
    return ip?.family === 6 && typeof e.dev === 'string' ? [{ ip: formatIp(ip), dev: e.dev }] : [];
  });
}

/** Pure: the truss entries on `o`'s bridge among `cur` (on that bridge, inside its subnets). */
export const ownedEntries = (cur: readonly ProxyEntry[], o: ProxyNdpObject): string[] =>
  cur.filter((e) => e.dev === o.name && inSubnets(e.ip, o.subnets)).map((e) => e.ip);

/** Pure: the `ip -batch` lines that make the truss entries of `o`'s bridge exactly `o.addresses`. */
export function planProxyNdp(cur: readonly ProxyEntry[], o: ProxyNdpObject): string[] {
  const have = new Set(ownedEntries(cur, o));
  const want = new Set(o.addresses);
  return [
    ...[...have].filter((a) => !want.has(a)).map((a) => `neigh del proxy ${a} dev ${o.name}`),
    ...o.addresses.filter((a) => !have.has(a)).map((a) => `neigh add proxy ${a} dev ${o.name}`),
  ];
}

// ---------- the kernel side ----------

export async function readProxyEntries(exec: Exec): Promise<ProxyEntry[]> {
  return parseProxyEntries((await exec.run('ip', ['-j', '-6', 'neigh', 'show', 'proxy'])).stdout);
}

/** Runs the lines; an entry already gone (deleted meanwhile) is not an error. */
async function runLines(exec: Exec, lines: readonly string[]): Promise<void> {
  let rest = [...lines];
  while (rest.length > 0) {
    try {
      await exec.run('ip', ['-6', '-batch', '-'], { stdin: batch(rest) });
      return;
    } catch (e) {
      // why: `ip -batch` stops at the first failing line; the ones after it still have to run
      if (!isKernelError(e, 'ENOENT') || e.line === undefined) throw e;
      if (!rest[e.line - 1]?.startsWith('neigh del ')) throw e;
      rest = rest.slice(e.line);
    }
  }
}

/** The bridge's switches as truss wants them; throws when the bridge (or IPv6) is missing. */
async function ensureSwitches(exec: Exec, bridge: string): Promise<string[]> {
  const changed: string[] = [];
  for (const [key, value] of bridgeSysctls(bridge)) {
    const cur = await readSysctl(exec, key);
    if (cur === undefined)
      throw errors.reconcileFailed(`proxy NDP on ${bridge}: ${key} does not exist (bridge missing, or IPv6 off)`);
    if (cur !== value) {
      await writeSysctl(exec, key, value);
      changed.push(`${key}=${value}`);
    }
  }
  return changed;
}

/**
 * Converges one bridge: its switches, the host-wide switch (raised, never lowered), then its
 * entries (only differences written). Returns what changed, and whether the host-wide switch was raised.
 */
export async function ensureProxyNdp(
  exec: Exec,
  want: ProxyNdpObject,
): Promise<{ readonly changes: string[]; readonly raisedAll: boolean }> {
  const o = checkProxyNdpObject(want);
  const changes = await ensureSwitches(exec, o.name);
  const all = await readSysctl(exec, PROXY_NDP_ALL_KEY);
  const raisedAll = all === '0';
  if (raisedAll) {
    await writeSysctl(exec, PROXY_NDP_ALL_KEY, '1');
    changes.push(`${PROXY_NDP_ALL_KEY}=1`);
  }
  const lines = planProxyNdp(await readProxyEntries(exec), o);
  if (lines.length > 0) await runLines(exec, lines);
  return { changes: [...changes, ...lines], raisedAll };
}

/** One listing (and the switches of each wanted bridge) against `desired`; other entries are not truss's to report. */
export async function checkProxyNdpSet(exec: Exec, desired: readonly ProxyNdpObject[]): Promise<SetCheck> {
  const cur = await readProxyEntries(exec);
  const all = await readSysctl(exec, PROXY_NDP_ALL_KEY);
  const drifted: string[] = [];
  const problems: string[] = [];
  for (const raw of desired) {
    const o = checkProxyNdpObject(raw);
    const why: string[] = [];
    for (const [key, value] of bridgeSysctls(o.name)) {
      const v = await readSysctl(exec, key);
      if (v !== value) why.push(`${key} is ${v ?? 'missing'}, not ${value}`);
    }
    if (all === '0') why.push(`${PROXY_NDP_ALL_KEY} is 0`);
    const lines = planProxyNdp(cur, o);
    const dels = lines.filter((l) => l.startsWith('neigh del')).length;
    if (lines.length > 0) why.push(`${lines.length - dels} proxy entr(ies) missing, ${dels} extra`);
    if (why.length === 0) continue;
    drifted.push(o.name);
    problems.push(`proxy NDP on ${o.name}: ${why.join('; ')}`);
  }
  return { drifted, extra: [], problems };
}

/** Deletes truss's entries on `bridge` (those inside `subnets`); a bridge already gone is success. */
export async function removeProxyNdp(exec: Exec, bridge: string, subnets: readonly string[]): Promise<void> {
  const o: ProxyNdpObject = { name: checkIfName(bridge), networkId: '', subnets, addresses: [] };
  const lines = planProxyNdp(await readProxyEntries(exec), o);
  try {
    if (lines.length > 0) await runLines(exec, lines);
  } catch (e) {
    if (!isKernelError(e, 'ENODEV')) throw e;
  }
}
