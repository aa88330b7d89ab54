/**
 * RA guard: containers must not act as IPv6 routers. A container's eth0 accepts router
 * advertisements by default (accept_ra=1, no forwarding in its namespace), so one container
 * sending an RA to ff02::1 would hand every other container of its network a default route
 * and SLAAC addresses through itself (a man in the middle), and an ICMPv6 redirect could
 * re-point single destinations the same way. truss's bridges already ignore RAs (accept_ra=0,
 * bridge.ts; host veths are bridge ports and process no IP); this guards the other containers.
 *
 * Shape: one table `bridge truss`, replaced whole like `inet truss` (nft.ts) and from the
 * same FirewallObject, whose `prerouting` chain drops ICMPv6 router advertisements (134)
 * and redirects (137) entering any port of a truss bridge (`meta ibrname`: the bridge of
 * the input port). The bridge family sees every frame a port receives, bridged or for the
 * host, whether or not br_netfilter is loaded; frames the host itself sends (the gateway)
 * are not in prerouting. One set lookup per frame whatever the number of networks or
 * endpoints, and nothing per endpoint: attaching a container does not touch this table.
 *
 * Ownership: the table name (family bridge, name naming.NFT_TABLE); no other bridge-family
 * table is read or touched.
 */
import type { FirewallObject } from '../../core/desired.ts';
import { NFT_TABLE } from '../../core/naming.ts';
import type { Exec } from './exec.ts';
import { isKernelError } from './exec.ts';
import { checkIfName } from './links.ts';
import { normaliseNft } from './nft.ts';

export const RA_GUARD_FAMILY = 'bridge';
const TABLE = `${RA_GUARD_FAMILY} ${NFT_TABLE}`;

/** Pure: the `bridge truss` table for `f`, in the layout `nft list table` prints (modulo normaliseNft). */
export function renderRaGuard(f: FirewallObject): string {
  const bridges = [...new Set(f.networks.map((n) => checkIfName(n.bridge)))].sort().map((b) => `"${b}"`);
  const elements = bridges.length > 0 ? [`\t\telements = { ${bridges.join(', ')} }`] : [];
  const lines = [
    `table ${TABLE} {`,
    '\tcomment "truss: containers may not send IPv6 router advertisements or redirects; replaced whole by truss"',
    '\tset bridges {',
    '\t\ttype ifname',
    ...elements,
    '\t}',
    '',
    '\tchain prerouting {',
    '\t\ttype filter hook prerouting priority filter; policy accept;',
    '\t\tmeta ibrname @bridges icmpv6 type { nd-router-advert, nd-redirect } drop comment "truss: RA guard"',
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
export async function readRaGuard(exec: Exec): Promise<string | undefined> {
  try {
    return (await exec.run('nft', ['list', 'table', RA_GUARD_FAMILY, NFT_TABLE])).stdout;
  } catch (e) {
    if (isKernelError(e, 'ENOENT')) return undefined;
    throw e;
  }
}

export async function checkRaGuard(exec: Exec, f: FirewallObject): Promise<string[]> {
  return diffRaGuard(renderRaGuard(f), await readRaGuard(exec));
}

/** Deletes the table; absent = success. */
export async function removeRaGuard(exec: Exec): Promise<void> {
  await exec.run('nft', ['-f', '-'], { stdin: `table ${TABLE} {}\ndelete table ${TABLE}\n` });
}
