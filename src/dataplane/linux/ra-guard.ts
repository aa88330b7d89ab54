/**
 * RA guard: containers must not act as IPv6 routers. A container's eth0 accepts router
 * advertisements by default (accept_ra=1, no forwarding in its namespace), so one container
 * sending an RA to ff02::1 would hand every other container of its network a default route
 * and SLAAC addresses through itself (a man in the middle), and an ICMPv6 redirect could
 * re-point single destinations the same way. truss's bridges already ignore RAs (accept_ra=0,
 * bridge.ts; host veths are bridge ports and process no IP); this guards the other containers.
 *
 * Shape: one table `bridge truss`, present while truss has networks (applied and removed with
 * `inet truss`, nft.ts, in the same transaction), whose `prerouting` chain drops ICMPv6 router
 * advertisements (134) and redirects (137) entering the bridge through a truss host veth
 * (`iifname "trv*"`: in the bridge family the input interface is the port). The bridge family
 * sees every frame a port receives, bridged or for the host, whether or not br_netfilter is
 * loaded; frames the host itself sends (the gateway) are not in prerouting. The table does not
 * depend on networks or endpoints: attaching a container never touches it.
 *
 * why the port name and not `meta ibrname @bridges`: the bridge-name match needs the kernel's
 * nft_meta_bridge (CONFIG_NFT_BRIDGE_META), which some kernels (this project's machines') lack; the
 * veth prefix is truss's own (naming.hostVethName) and also covers the VXLAN device trvx0, whose
 * frames come from other hosts' containers.
 *
 * Ownership: the table name (family bridge, name naming.NFT_TABLE); no other bridge-family
 * table is read or touched, and Docker's own veths (veth*) are not matched.
 */
import { hostVethName, NFT_TABLE } from '../../core/naming.ts';
import type { Exec } from './exec.ts';
import { listTable, normaliseNft } from './nft-read.ts';

export const RA_GUARD_FAMILY = 'bridge';
const TABLE = `${RA_GUARD_FAMILY} ${NFT_TABLE}`;
/** every truss host veth: "trv" + 12 hex */
const PORTS = `${hostVethName('')}*`;

/** Pure: the `bridge truss` table, in the layout `nft list table` prints (modulo normaliseNft). */
export function renderRaGuard(): string {
  const lines = [
    `table ${TABLE} {`,
    '\tcomment "truss: containers may not send IPv6 router advertisements or redirects; replaced whole by truss"',
    '\tchain prerouting {',
    '\t\ttype filter hook prerouting priority filter; policy accept;',
    `\t\tiifname "${PORTS}" icmpv6 type { nd-router-advert, nd-redirect } drop comment "truss: RA guard"`,
    '\t}',
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * The transaction that swaps the table: create-if-absent, delete, create — atomic, no window.
 * linux-dataplane.ts sends it in the same `nft -f -` as the `inet truss` one.
 */
export const renderRaGuardTransaction = (ruleset: string): string =>
  `table ${TABLE} {}\ndelete table ${TABLE}\n${ruleset}`;

/** Pure: the first difference between the rendering and `nft list table bridge truss`, [] when equal. */
export function diffRaGuard(expected: string, observed: string | undefined): string[] {
  if (observed === undefined) return [`nft table ${TABLE} is missing`];
  const want = normaliseNft(expected);
  const have = normaliseNft(observed);
  for (let i = 0; i < Math.max(want.length, have.length); i++) {
    if (want[i] !== have[i]) {
      return [
        `nft table ${TABLE} differs from the desired rendering at line ${i + 1}: ` +
          `expected ${JSON.stringify(want[i] ?? '<end>')}, found ${JSON.stringify(have[i] ?? '<end>')}`,
      ];
    }
  }
  return [];
}

// ---------- kernel ----------

/** The table as nft prints it, or undefined when it does not exist. */
export const readRaGuard = (exec: Exec): Promise<string | undefined> => listTable(exec, RA_GUARD_FAMILY, NFT_TABLE);

export async function checkRaGuard(exec: Exec): Promise<string[]> {
  return diffRaGuard(renderRaGuard(), await readRaGuard(exec));
}

/** Deletes the table; absent = success. */
export async function removeRaGuard(exec: Exec): Promise<void> {
  await exec.run('nft', ['-f', '-'], { stdin: `table ${TABLE} {}\ndelete table ${TABLE}\n` });
}
