/**
 * What truss may leave in a network namespace, read back from the kernel: links named
 * tr[bvcf]* (trf: an endpoint's ifb for bandwidth limits) or trwg* (the WireGuard device), links whose ifalias is a truss mark, the `inet
 * truss`, `inet truss_policy`, `inet truss_ports` and `inet truss_dns` nft tables, the `bridge truss` (RA guard) and `bridge truss_guard` (anti-spoofing)
 * tables, the TRUSS-FORWARD chain (and FORWARD jumps to it)
 * in iptables/ip6tables, routes and `ip rule`s with truss's protocol number, and wireguard-go processes in
 * that namespace. For a host, also its WireGuard UAPI sockets (its private /run/wireguard).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { removeEverything } from './containers.ts';
import { inNetns, run } from './exec.ts';
import type { Host } from './host.ts';
import { listProcs, nsIdOfFile, nsIdOfPid, type ProcInfo } from './procs.ts';
import { waitFor } from './wait.ts';

/** truss's nft tables (family inet): the network firewall, the port policy, the published ports, DNS redirection. */
export const TRUSS_NFT_TABLES = ['truss', 'truss_policy', 'truss_ports', 'truss_dns'] as const;
/** truss's nft tables of family bridge: the RA guard (ra-guard.ts) and anti-spoofing (guard.ts). */
export const TRUSS_NFT_BRIDGE_TABLES = ['truss', 'truss_guard'] as const;

/** truss's route protocol (rtm_protocol) number: TRUSS_ROUTE_PROTO in src/dataplane/linux/routes.ts. */
export const TRUSS_ROUTE_PROTO = 116;

/** A wireguard-go serving a truss device (`wireguard-go [-f] trwg0`). */
export const isTrussWireguardGo = (p: ProcInfo): boolean => /(^|\/)wireguard-go\s+(?:-f\s+)?tr/.test(p.cmdline);

/** Whether `nft list table inet <table>` finds the table in the namespace at netnsPath. */
export async function nftTableExists(table: string, netnsPath?: string, family = 'inet'): Promise<boolean> {
  const argv = ['nft', 'list', 'table', family, table];
  return (await run(netnsPath ? inNetns(netnsPath, argv) : argv)).code === 0;
}

/** Kernel objects owned by truss in the namespace at netnsPath (undefined = the root namespace). */
export async function trussKernelObjects(netnsPath?: string): Promise<string[]> {
  const wrap = (argv: string[]): string[] => (netnsPath ? inNetns(netnsPath, argv) : argv);
  const found: string[] = [];
  const links = await run(wrap(['ip', '-j', '-d', 'link', 'show']));
  if (links.code !== 0) found.push(`ip link failed: ${links.stderr.trim()}`);
  else {
    for (const l of JSON.parse(links.stdout || '[]') as { ifname: string; ifalias?: string }[]) {
      if (/^tr(?:[bvcf]|wg)/.test(l.ifname) || l.ifalias?.startsWith('truss:')) {
        found.push(`link ${l.ifname}${l.ifalias ? ` (ifalias ${l.ifalias})` : ''}`);
      }
    }
  }
  for (const table of TRUSS_NFT_TABLES) {
    if (await nftTableExists(table, netnsPath)) found.push(`nft table inet ${table}`);
  }
  for (const table of TRUSS_NFT_BRIDGE_TABLES) {
    if (await nftTableExists(table, netnsPath, 'bridge')) found.push(`nft table bridge ${table}`);
  }
  for (const bin of ['iptables', 'ip6tables']) {
    const tool = existsSync(`/usr/sbin/${bin}-nft`) ? `${bin}-nft` : bin;
    const rules = await run(wrap([tool, '-w', '-t', 'filter', '-S']));
    for (const line of rules.stdout.split('\n')) {
      if (line.includes('TRUSS-FORWARD')) found.push(`${tool}: ${line.trim()}`);
    }
  }
  for (const family of ['-4', '-6']) {
    const routes = await run(wrap(['ip', family, 'route', 'show', 'table', 'all', 'proto', String(TRUSS_ROUTE_PROTO)]));
    for (const line of routes.stdout.split('\n')) if (line.trim()) found.push(`route ${line.trim()}`);
    // policy-routing rules of truss.egress.via carry the same protocol number
    const rules = await run(wrap(['ip', '-j', family, 'rule', 'show']));
    for (const r of JSON.parse(rules.stdout || '[]') as { protocol?: string }[]) {
      if (r.protocol === String(TRUSS_ROUTE_PROTO)) found.push(`rule ${JSON.stringify(r)}`);
    }
  }
  const netNs = netnsPath ? nsIdOfFile(netnsPath, 'net') : nsIdOfPid(1, 'net');
  for (const p of listProcs()) {
    if (p.netNs === netNs && isTrussWireguardGo(p)) found.push(`process ${p.pid}: ${p.cmdline}`);
  }
  return found;
}

/** WireGuard UAPI sockets in /run/wireguard as the mount namespace of `pid` sees it (a host's dockerd). */
export function wireguardSockets(pid?: number): string[] {
  const dir = pid === undefined ? '/run/wireguard' : `/proc/${pid}/root/run/wireguard`;
  try {
    return readdirSync(dir).map((f) => `${dir}/${f}`);
  } catch {
    return [];
  }
}

/** Status lists that must be empty once every truss network is gone. */
const STATUS_LISTS = ['networks', 'endpoints', 'pools', 'addresses'] as const;

/** Fails unless the host netns holds nothing of truss and (if running) the daemon's status is empty. */
export async function assertNoTrussLeftovers(host: Host): Promise<void> {
  const objects = await trussKernelObjects(host.netnsPath);
  assert.deepEqual(objects, [], `truss kernel objects left in ${host.name}`);
  assert.deepEqual(wireguardSockets(host.dockerdPid()), [], `WireGuard sockets left in ${host.name}'s /run/wireguard`);
  if (!host.truss.running()) return;
  const status = await host.trussStatus();
  for (const key of STATUS_LISTS) {
    assert.deepEqual(status[key] ?? [], [], `truss status still lists ${key}: ${JSON.stringify(status[key])}`);
  }
}

/**
 * Removes every container and user-defined network on each host; a network Docker will not
 * remove fails the test with what dockerd and truss said.
 */
export async function assertRemovedEverything(hosts: readonly Host[]): Promise<void> {
  for (const h of hosts) {
    const failed = await removeEverything(h);
    assert.equal((await h.docker(['ps', '-aq'])).stdout.trim(), '', `${h.name}: all containers removed`);
    for (const { network, stderr } of failed) {
      // seen once under load: "network has active endpoints" (which ones, and what truss said)
      const inspect = await h.docker(['network', 'inspect', network]);
      assert.fail(
        `${h.name}: docker network rm ${network}: ${stderr}\n${inspect.stdout}${inspect.stderr}` +
          `--- truss log tail (${h.name}) ---\n${h.truss.logTail(60)}`,
      );
    }
  }
}

/** Waits (15 s a host) until no host keeps anything of truss (assertNoTrussLeftovers). */
export async function waitNoTrussLeftovers(hosts: readonly Host[]): Promise<void> {
  for (const h of hosts) {
    await waitFor(() => assertNoTrussLeftovers(h).then(() => true), 15_000, { what: `${h.name}: no truss leftovers` });
  }
}
