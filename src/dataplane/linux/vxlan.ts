/**
 * The VXLAN device of unencrypted cluster networks: one per host ("trvx0"), `nolearning`, a
 * fixed VNI and UDP port, `local` = this host's underlay address. A VXLAN device is an
 * Ethernet link whose frames travel in UDP; which host a frame goes to is decided by the
 * device's forwarding database (FDB: destination MAC -> remote underlay IP). Like Calico's
 * vxlan.calico (felix vxlanfdb) and Flannel's flannel.1, truss programs everything statically
 * and learns nothing from the wire, per peer host:
 *   - an FDB entry   `<peer VTEP MAC> dst <peer underlay IP> self permanent`,
 *   - a neighbour    `<peer underlay IP> lladdr <peer VTEP MAC> nud permanent` on the device,
 *   - routes         `<peer block> via <peer underlay IP> dev trvx0 onlink` (routes.ts).
 * The peer's underlay address is the on-link next hop, so no VTEP addresses are allocated;
 * each host's VTEP MAC is derived from its node name (naming.vtepMac) and set on its device.
 * A peer also gets a neighbour entry for its VTEP link-local address (core vtepLinkLocal), the
 * next hop of its IPv6 blocks, and of its IPv4 blocks on an IPv6 underlay: on an IPv6 underlay
 * always, on an IPv4 one when it has IPv6 blocks (viaLinkLocal).
 * Who may send to the device is decided in `inet truss` (nft.ts: the VXLAN guard).
 *
 * Ownership: the ifalias `truss:vx:<name>` (naming.vxlanMark). A link with our name but
 * without that mark is foreign: ensure refuses it, remove leaves it. Every FDB and neighbour
 * entry on our device is ours (Felix's rule for its own device): entries we do not want are
 * deleted. Deleting the device takes its entries and the routes through it along.
 */
import { type VxlanObject, vtepLinkLocal } from '../../core/cluster/desired.ts';
import { errors } from '../../core/errors.ts';
import { formatIp, parseIp } from '../../core/ip.ts';
import { vxlanMark } from '../../core/naming.ts';
import type { DataplaneLog, Exec } from './exec.ts';
import { isKernelError } from './exec.ts';
import {
  batch,
  checkIfName,
  checkMac,
  deleteLink,
  type LinkState,
  parseIpAddrJson,
  undoFailedCreate,
} from './links.ts';

export type VxlanDevice = Omit<VxlanObject, 'peers'> & {
  readonly peers: readonly { readonly address: string; readonly mac: string; readonly viaLinkLocal?: boolean }[];
};

/** The device as the kernel reports it (`ip -j -d link show`): the link and its VXLAN attributes. */
export interface VxlanLinkState {
  readonly link: LinkState;
  readonly vni?: number;
  readonly port?: number;
  readonly local?: string;
  readonly dev?: string;
  readonly learning?: boolean;
}

export interface VxlanEntries {
  /** FDB entries with a remote (MAC -> underlay IP) */
  readonly fdb: readonly { readonly mac: string; readonly dst: string }[];
  /** neighbour entries on the device, any family and state */
  readonly neigh: readonly { readonly ip: string; readonly mac?: string; readonly permanent: boolean }[];
}

// ---------- validation (pure) ----------

const canonicalIp = (s: string, what: string): { ip: string; family: 4 | 6 } => {
  const ip = parseIp(s);
  if (!ip) throw errors.badAddress(`VXLAN: invalid ${what} ${JSON.stringify(s)}: use a bare IP address`);
  return { ip: formatIp(ip), family: ip.family };
};

/** Validates a device spec and returns it canonical. Throws TrussError. */
export function checkVxlanDevice(v: VxlanDevice): VxlanDevice {
  const name = checkIfName(v.name);
  const bad = (what: string): never => {
    throw errors.badOption(`VXLAN device ${name}: ${what}`);
  };
  if (!Number.isInteger(v.vni) || v.vni < 1 || v.vni > 0xffffff) bad(`VNI ${v.vni}: use 1-16777215`);
  if (!Number.isInteger(v.port) || v.port < 1 || v.port > 65535) bad(`port ${v.port}: use 1-65535`);
  if (!Number.isInteger(v.mtu) || v.mtu < 576 || v.mtu > 65535) bad(`MTU ${v.mtu}: use 576-65535`);
  const local = canonicalIp(v.local, 'local address');
  const seen = new Set<string>();
  const peers = v.peers.map((p) => {
    const a = canonicalIp(p.address, 'peer address');
    if (a.family !== local.family) bad(`peer ${a.ip} is not of the local address's family`);
    if (a.ip === local.ip) bad(`peer ${a.ip} is this host's own address`);
    const mac = checkMac(p.mac);
    if (seen.has(a.ip) || seen.has(mac)) bad(`peer ${a.ip} (${mac}): address or MAC given twice`);
    seen.add(a.ip);
    seen.add(mac);
    return { address: a.ip, mac, ...(p.viaLinkLocal ? { viaLinkLocal: true } : {}) };
  });
  return {
    name,
    vni: v.vni,
    port: v.port,
    local: local.ip,
    ...(v.dev !== undefined ? { dev: checkIfName(v.dev) } : {}),
    mac: checkMac(v.mac),
    mtu: v.mtu,
    peers,
  };
}

// ---------- reading back (pure parsers) ----------

interface InfoData {
  readonly id?: number;
  readonly port?: number;
  readonly local?: string;
  readonly local6?: string;
  readonly link?: string;
  readonly learning?: boolean;
}

/** Pure: `ip -j -d link show dev NAME` → the link and its VXLAN attributes. */
export function parseVxlanLink(stdout: string): VxlanLinkState | undefined {
  const link = parseIpAddrJson(stdout)[0];
  if (!link) return undefined;
  const raw = (JSON.parse(stdout) as { linkinfo?: { info_data?: InfoData } }[])[0]?.linkinfo?.info_data ?? {};
  const local = raw.local ?? raw.local6;
  return {
    link,
    ...(typeof raw.id === 'number' ? { vni: raw.id } : {}),
    ...(typeof raw.port === 'number' ? { port: raw.port } : {}),
    ...(typeof local === 'string' ? { local: canonicalIp(local, 'local address').ip } : {}),
    ...(typeof raw.link === 'string' ? { dev: raw.link } : {}),
    ...(typeof raw.learning === 'boolean' ? { learning: raw.learning } : {}),
  };
}

const jsonList = <T>(stdout: string): T[] => {
  const text = stdout.trim();
  const v: unknown = text === '' ? [] : JSON.parse(text);
  return Array.isArray(v) ? (v as T[]) : [];
};

/** Pure: `bridge -j fdb show dev NAME` and `ip -j neigh show dev NAME` → the device's entries. */
export function parseVxlanEntries(fdbJson: string, neighJson: string): VxlanEntries {
  const fdb = jsonList<{ mac?: string; dst?: string }>(fdbJson).flatMap((e) =>
    typeof e.mac === 'string' && typeof e.dst === 'string' && parseIp(e.dst)
      ? [{ mac: e.mac.toLowerCase(), dst: canonicalIp(e.dst, 'FDB destination').ip }]
      : [],
  );
  const neigh = jsonList<{ dst?: string; lladdr?: string; state?: string[] }>(neighJson).flatMap((e) =>
    typeof e.dst === 'string' && parseIp(e.dst)
      ? [
          {
            ip: canonicalIp(e.dst, 'neighbour').ip,
            ...(typeof e.lladdr === 'string' ? { mac: e.lladdr.toLowerCase() } : {}),
            permanent: (e.state ?? []).includes('PERMANENT'),
          },
        ]
      : [],
  );
  return { fdb, neigh };
}

// ---------- the plan (pure) ----------

/** Why an existing device cannot be converged in place (attributes fixed at creation), or undefined. */
export function vxlanRecreateReason(cur: VxlanLinkState, v: VxlanDevice): string | undefined {
  const diffs: string[] = [];
  if (cur.vni !== v.vni) diffs.push(`VNI ${cur.vni} → ${v.vni}`);
  if (cur.port !== v.port) diffs.push(`port ${cur.port} → ${v.port}`);
  if (cur.local !== v.local) diffs.push(`local ${cur.local ?? 'none'} → ${v.local}`);
  if (v.dev !== undefined && cur.dev !== v.dev) diffs.push(`dev ${cur.dev ?? 'none'} → ${v.dev}`);
  if (cur.learning !== false) diffs.push('learning on');
  if (cur.link.mac.toLowerCase() !== v.mac) diffs.push(`MAC ${cur.link.mac} → ${v.mac}`);
  return diffs.length > 0 ? diffs.join(', ') : undefined;
}

/** Pure: the `ip -batch` lines that create `v` from nothing (entries come after). */
export function planVxlanCreate(v: VxlanDevice): string[] {
  const dev = v.dev !== undefined ? ` dev ${v.dev}` : '';
  return [
    `link add ${v.name} address ${v.mac} mtu ${v.mtu} type vxlan id ${v.vni} local ${v.local}${dev} dstport ${v.port} nolearning`,
    // why: IFLA_IFALIAS is ignored on RTM_NEWLINK, so the mark needs its own `link set`
    `link set ${v.name} alias ${vxlanMark(v.name)}`,
    // why: no link-local address, so no router solicitations or DAD that nobody could receive
    `link set ${v.name} addrgenmode none`,
    `link set ${v.name} up`,
  ];
}

/**
 * Pure: what converges the entries of an owned device to `v`: `bridge -batch` lines for the
 * FDB and `ip -batch` lines for the neighbours. Only differences; entries not wanted go.
 */
export function planVxlanEntries(cur: VxlanEntries, v: VxlanDevice): { fdb: string[]; neigh: string[] } {
  const fdb: string[] = [];
  const neigh: string[] = [];
  const wantFdb = new Map(v.peers.map((p) => [p.mac, p.address]));
  // why only when used: a host with IPv6 off on the device refuses any IPv6 neighbour entry
  const v6 = v.local.includes(':');
  const wantNeigh = new Map(
    v.peers.flatMap((p) => [
      [p.address, p.mac] as const,
      ...(v6 || p.viaLinkLocal ? [[vtepLinkLocal(p.mac), p.mac] as const] : []),
    ]),
  );
  const haveFdb = new Map<string, string[]>();
  for (const e of cur.fdb) haveFdb.set(e.mac, [...(haveFdb.get(e.mac) ?? []), e.dst]);
  for (const [mac, dsts] of haveFdb) {
    const want = wantFdb.get(mac);
    if (want === undefined || dsts.length > 1 || dsts[0] !== want) fdb.push(`fdb del ${mac} dev ${v.name} self`);
  }
  for (const p of v.peers) {
    const dsts = haveFdb.get(p.mac);
    if (dsts?.length !== 1 || dsts[0] !== p.address)
      fdb.push(`fdb replace ${p.mac} dev ${v.name} dst ${p.address} self permanent`);
  }
  for (const n of cur.neigh) {
    if (!wantNeigh.has(n.ip)) neigh.push(`neigh del ${n.ip} dev ${v.name}`);
  }
  const have = new Map(cur.neigh.map((n) => [n.ip, n]));
  for (const [ip, mac] of wantNeigh) {
    const n = have.get(ip);
    if (!n?.permanent || n.mac !== mac) neigh.push(`neigh replace ${ip} lladdr ${mac} dev ${v.name} nud permanent`);
  }
  return { fdb, neigh };
}

/** Pure: the `ip -batch` lines that bring an owned device's MTU and state in line. */
export function planVxlanLink(cur: LinkState, v: VxlanDevice): string[] {
  const lines: string[] = [];
  if (cur.mtu !== v.mtu) lines.push(`link set ${v.name} mtu ${v.mtu}`);
  if (!cur.up) lines.push(`link set ${v.name} up`);
  return lines;
}

// ---------- the kernel side ----------

/** The device as the kernel has it, or undefined when no link of that name exists. */
export async function readVxlanLink(exec: Exec, name: string): Promise<VxlanLinkState | undefined> {
  try {
    return parseVxlanLink((await exec.run('ip', ['-j', '-d', 'link', 'show', 'dev', checkIfName(name)])).stdout);
  } catch (e) {
    if (isKernelError(e, 'ENODEV')) return undefined;
    throw e;
  }
}

export async function readVxlanEntries(exec: Exec, name: string): Promise<VxlanEntries> {
  const dev = checkIfName(name);
  const [fdb, neigh] = await Promise.all([
    exec.run('bridge', ['-j', 'fdb', 'show', 'dev', dev]),
    exec.run('ip', ['-j', 'neigh', 'show', 'dev', dev]),
  ]);
  return parseVxlanEntries(fdb.stdout, neigh.stdout);
}

const isOwn = (cur: VxlanLinkState, name: string): boolean =>
  cur.link.kind === 'vxlan' && cur.link.alias === vxlanMark(name);

function assertOwnDevice(cur: VxlanLinkState, name: string): void {
  if (isOwn(cur, name)) return;
  const what = cur.link.alias ? ` (alias ${JSON.stringify(cur.link.alias)})` : ' with no truss mark';
  throw errors.kernelObjectForeign(
    `VXLAN device ${name}: interface ${name} already exists: a ${cur.link.kind || 'link'}${what} truss did not ` +
      `create; delete or rename it (if truss was killed while creating it: ip link del ${name})`,
  );
}

async function createDevice(exec: Exec, v: VxlanDevice): Promise<void> {
  try {
    await exec.run('ip', ['-batch', '-'], { stdin: batch(planVxlanCreate(v)) });
  } catch (e) {
    await undoFailedCreate(exec, e, { name: v.name, kind: 'vxlan', mark: vxlanMark(v.name) });
    throw e;
  }
}

/**
 * Creates or converges the device (recreating it when an attribute fixed at creation differs)
 * and its FDB and neighbour entries. Reads first and writes only differences: a second call
 * with the same spec runs three reads and no write. Returns what changed, for logs.
 */
export async function ensureVxlan(exec: Exec, want: VxlanDevice): Promise<string[]> {
  const v = checkVxlanDevice(want);
  const changes: string[] = [];
  let cur = await readVxlanLink(exec, v.name);
  if (cur !== undefined) {
    assertOwnDevice(cur, v.name);
    const why = vxlanRecreateReason(cur, v);
    if (why !== undefined) {
      await deleteLink(exec, v.name);
      changes.push(`recreated (${why})`);
      cur = undefined;
    }
  }
  if (cur === undefined) {
    await createDevice(exec, v);
    if (changes.length === 0) changes.push('created');
    cur = await readVxlanLink(exec, v.name);
    if (cur === undefined) throw errors.internal(`VXLAN device ${v.name} vanished right after it was created`);
  }
  const link = planVxlanLink(cur.link, v);
  if (link.length > 0) await exec.run('ip', ['-batch', '-'], { stdin: batch(link) });
  const plan = planVxlanEntries(await readVxlanEntries(exec, v.name), v);
  if (plan.fdb.length > 0) await exec.run('bridge', ['-batch', '-'], { stdin: batch(plan.fdb) });
  if (plan.neigh.length > 0) await exec.run('ip', ['-batch', '-'], { stdin: batch(plan.neigh) });
  return [...changes, ...link, ...plan.fdb, ...plan.neigh];
}

/** Problems between the kernel and `want` ([] when it matches); `undefined` = no device wanted. */
export async function checkVxlan(exec: Exec, want: VxlanDevice | undefined, name: string): Promise<string[]> {
  const cur = await readVxlanLink(exec, name);
  if (!want) return cur && isOwn(cur, name) ? [`VXLAN device ${name} exists but no cluster network needs it`] : [];
  const v = checkVxlanDevice(want);
  if (!cur) return [`VXLAN device ${v.name} is missing`];
  if (!isOwn(cur, v.name)) return [`VXLAN device ${v.name}: interface ${v.name} is not truss's`];
  const why = vxlanRecreateReason(cur, v);
  if (why !== undefined) return [`VXLAN device ${v.name} differs: ${why}`];
  const link = planVxlanLink(cur.link, v);
  const plan = planVxlanEntries(await readVxlanEntries(exec, v.name), v);
  const n = plan.fdb.length + plan.neigh.length;
  return [
    ...(link.length > 0 ? [`VXLAN device ${v.name} differs: ${link.join('; ')}`] : []),
    ...(n > 0 ? [`VXLAN device ${v.name}: ${n} FDB/neighbour entr${n === 1 ? 'y' : 'ies'} missing or extra`] : []),
  ];
}

/** The underlay addresses the device's FDB sends to ([] without our device). */
export async function readVxlanPeers(exec: Exec, name: string): Promise<string[]> {
  const cur = await readVxlanLink(exec, name);
  if (!cur || !isOwn(cur, name)) return [];
  return [...new Set((await readVxlanEntries(exec, name)).fdb.map((e) => e.dst))].sort();
}

/** Deletes the device (its entries and routes go with it); gone = success; a foreign link is left alone. */
export async function removeVxlan(exec: Exec, name: string, log?: DataplaneLog): Promise<void> {
  const cur = await readVxlanLink(exec, name);
  if (cur === undefined) return;
  if (!isOwn(cur, name)) {
    log?.warn('not removing foreign link', { link: name, kind: cur.link.kind, alias: cur.link.alias });
    return;
  }
  await deleteLink(exec, name);
}
