/**
 * This host's own address on each cluster network (core/cluster/host-address.ts), as a /32 or
 * /128 on the cluster device of the network's mode: "198.18.64.2/32 dev trwg0". Truss's routes to
 * peer blocks name it as their source (routes.ts `src`), so they need it first (the kernel refuses
 * a preferred source that is not a local address, and deletes an IPv4 route whose source goes).
 * IPv6 addresses go on with `nodad` (the address is claimed in etcd: no one else has it, and a
 * tentative address would hold the routes back) and `noprefixroute` (a /128 needs no route).
 *
 * Ownership: the devices are truss's (their ifalias marks, wireguard-go.ts / naming.vxlanMark),
 * and so is every address on them but the link-local ones (the kernel's, and VXLAN's next hops
 * on an IPv6 underlay): anything else there is made exactly what is wanted. A device with our
 * name but without our mark is never touched. A missing device holds nothing to remove.
 */
import { WG_DEVICE } from '../../core/cluster/desired.ts';
import type { HostAddressObject } from '../../core/cluster/host-address.ts';
import { errors } from '../../core/errors.ts';
import { formatIp, parseIp } from '../../core/ip.ts';
import { VXLAN_DEVICE, vxlanMark } from '../../core/naming.ts';
import type { Exec } from './exec.ts';
import { batch, checkIfName, type LinkState, readLink } from './links.ts';
import { wireguardMark } from './wireguard-go.ts';

/** A device that may carry host addresses, with the mark that makes it truss's. */
export interface HostAddressDevice {
  readonly name: string;
  readonly mark: string;
}

/** trwg0 and trvx0 (a test gives its own names: wireguard-go's sockets are shared by namespaces). */
export const CLUSTER_DEVICES: readonly HostAddressDevice[] = [
  { name: WG_DEVICE, mark: wireguardMark(WG_DEVICE) },
  { name: VXLAN_DEVICE, mark: vxlanMark(VXLAN_DEVICE) },
];

/** "198.18.64.2" -> "198.18.64.2/32", "fd00::2" -> "fd00::2/128" (canonical); throws on anything else. */
export function hostCidr(address: string): string {
  const ip = parseIp(address);
  if (!ip) throw errors.badAddress(`invalid host address ${JSON.stringify(address)}: use a bare IP`);
  return `${formatIp(ip)}/${ip.family === 4 ? 32 : 128}`;
}

/** Pure: the addresses of `link` that are ours to manage (every global one), canonical CIDR. */
export function ownedAddresses(link: Pick<LinkState, 'addresses'>): string[] {
  return link.addresses.flatMap((a) => {
    const [ip, len] = a.split('/');
    const p = ip === undefined ? undefined : parseIp(ip);
    return p ? [`${formatIp(p)}/${len ?? (p.family === 4 ? 32 : 128)}`] : [];
  });
}

/**
 * Pure: the `ip -batch` lines that make `dev`'s addresses `want` (bare IPs): new ones first (a
 * changed address never leaves the routes without a source for longer than needed), then the rest.
 */
export function planHostAddresses(dev: string, current: readonly string[], want: readonly string[]): string[] {
  const name = checkIfName(dev);
  const wanted = want.map(hostCidr);
  const add = wanted
    .filter((c) => !current.includes(c))
    .map((c) => `address add ${c} dev ${name}${c.includes(':') ? ' nodad noprefixroute' : ''}`);
  const del = current.filter((c) => !wanted.includes(c)).map((c) => `address del ${c} dev ${name}`);
  return [...add, ...del];
}

/** The device if it is truss's; undefined when absent; throws on a foreign device with our name. */
async function ownDevice(exec: Exec, dev: HostAddressDevice): Promise<LinkState | undefined> {
  const link = await readLink(exec, dev.name);
  if (!link || link.alias === dev.mark) return link;
  throw errors.kernelObjectForeign(
    `link ${dev.name} exists but is not truss's (alias ${JSON.stringify(link.alias ?? '')}): ` +
      'no host address is put on it; remove it or rename it',
  );
}

function byDevice(addrs: readonly HostAddressObject[], devices: readonly HostAddressDevice[]): Map<string, string[]> {
  const out = new Map<string, string[]>(devices.map((d) => [d.name, []]));
  for (const a of addrs) {
    const list = out.get(a.dev);
    if (!list) throw errors.badOption(`host address ${a.address}: ${a.dev} is not a cluster device`);
    list.push(a.address);
  }
  return out;
}

/** Make the host addresses on trwg0 and trvx0 exactly `addrs`. Returns the batch lines it ran. */
export async function ensureHostAddresses(
  exec: Exec,
  addrs: readonly HostAddressObject[],
  devices: readonly HostAddressDevice[] = CLUSTER_DEVICES,
): Promise<string[]> {
  const want = byDevice(addrs, devices);
  const lines: string[] = [];
  for (const dev of devices) {
    const wanted = want.get(dev.name) ?? [];
    const link = await ownDevice(exec, dev).catch((e: unknown) => {
      if (wanted.length > 0) throw e;
      return undefined; // a foreign link with nothing wanted on it: left alone
    });
    if (!link) {
      if (wanted.length > 0) {
        throw errors.reconcileFailed(`${dev.name} is missing: host address ${wanted.join(', ')} cannot go on it`);
      }
      continue;
    }
    lines.push(...planHostAddresses(dev.name, ownedAddresses(link), wanted));
  }
  if (lines.length > 0) await exec.run('ip', ['-batch', '-'], { stdin: batch(lines) });
  return lines;
}

/** What differs between the devices and `addrs` ([] when they match). */
export async function checkHostAddresses(
  exec: Exec,
  addrs: readonly HostAddressObject[],
  devices: readonly HostAddressDevice[] = CLUSTER_DEVICES,
): Promise<string[]> {
  const want = byDevice(addrs, devices);
  const problems: string[] = [];
  for (const dev of devices) {
    const wanted = (want.get(dev.name) ?? []).map(hostCidr);
    const link = await ownDevice(exec, dev).catch(() => undefined);
    const have = link ? ownedAddresses(link) : [];
    for (const c of wanted) if (!have.includes(c)) problems.push(`host address ${c} is missing on ${dev.name}`);
    for (const c of have) if (!wanted.includes(c)) problems.push(`address ${c} on ${dev.name} is not wanted`);
  }
  return problems;
}
