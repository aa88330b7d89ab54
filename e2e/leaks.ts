/**
 * Final global leak check, run by scripts/test.sh after every test tier (not a node:test file):
 * no `truss-e2e-*` network namespace, no process the e2e suite started (their command lines
 * name WORK_DIR), no wireguard-go serving a truss device (trwg*) in any namespace, no truss
 * WireGuard socket in the machine's /run/wireguard, and no truss kernel object in the ROOT
 * network namespace (links, truss's nft tables — inet truss, truss_policy, truss_ports, truss_dns,
 * bridge truss, truss_guard — iptables chains, routes with truss's protocol: see harness/leftovers.ts).
 * Exit status 0 = clean, 1 = leaks (listed on stderr).
 */
import { isTrussWireguardGo, trussKernelObjects, wireguardSockets } from './harness/leftovers.ts';
import { listNetns } from './harness/netns.ts';
import { NETNS_PREFIX, WORK_DIR } from './harness/paths.ts';
import { listProcs } from './harness/procs.ts';

const leaks: string[] = [];
for (const ns of listNetns(NETNS_PREFIX)) leaks.push(`network namespace ${ns}`);
for (const p of listProcs()) {
  if (p.pid !== process.pid && p.cmdline.includes(`${WORK_DIR}/`)) leaks.push(`process ${p.pid}: ${p.cmdline}`);
  else if (isTrussWireguardGo(p)) leaks.push(`process ${p.pid} (${p.netNs}): ${p.cmdline}`);
}
for (const o of await trussKernelObjects()) if (!o.startsWith('process ')) leaks.push(`root netns: ${o}`);
for (const s of wireguardSockets()) if (/\/tr[^/]*\.sock$/.test(s)) leaks.push(`WireGuard socket ${s}`);

if (leaks.length > 0) {
  process.stderr.write(`leak check: ${leaks.length} leftover(s)\n${leaks.map((l) => `  ${l}`).join('\n')}\n`);
  process.exitCode = 1;
} else {
  process.stdout.write(
    'leak check: nothing left (namespaces, processes incl. wireguard-go, root-netns links/nft tables/iptables/routes, WireGuard sockets)\n',
  );
}
