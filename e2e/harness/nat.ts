/**
 * A home router on the underlay, for NAT traversal tests: namespace <NETNS_PREFIX>nat-<name>
 * with its WAN (`eth-ul`, 198.18.255.<wanIndex>/24, a port of the underlay bridge like any
 * host's) and its LAN (bridge `lanbr0`, 198.18.<lan>.1/24, lan in 240..254); attachBehind()
 * puts a host's namespace on that LAN (`eth-lan`, 198.18.<lan>.<index>/24, default route via
 * the router). One nft table of ours, `ip e2e_nat`, does all of it:
 *  - mapping: `masquerade` out of the WAN. Linux keeps the inside source port when that tuple
 *    is free, so one inside ip:port shows as the same outside ip:port to every destination
 *    ('endpoint-independent'); with `fully-random` every new flow (destination) gets a random
 *    outside port ('port-dependent': address-and-port-dependent mapping, a symmetric NAT).
 *  - filtering, as a home router does: WAN→LAN only for conntrack replies (forward policy
 *    drop), and nothing new on the WAN for the router itself. The latter also keeps an early
 *    packet of a simultaneous open from leaving a conntrack entry that would steal the port the
 *    inside's own packet is about to be mapped to: a dropped packet's entry is never confirmed.
 * No hairpinning: an inside host sending to its router's WAN address does not come back in.
 * stop() deletes the namespace (the veths go with it) and is idempotent; a suite calls it in
 * its after(), in any order with the hosts and the underlay. For example:
 *
 *   const nat = await startNat(cluster.underlay,
 *     { name: 'home', mapping: 'endpoint-independent', wanIndex: 201, lan: 241 });
 *   const c = await startHost('c'); // no underlay link of its own
 *   const { address } = await attachBehind(nat, c.name, 2); // 198.18.241.2, default via 198.18.241.1
 *   await c.startTruss({ extraArgs: clusterServeArgs(cluster.underlay, 'c', address) });
 *   after(() => nat.stop());
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { inNetns, type RunOptions, type RunResult, run, runOk } from './exec.ts';
import { createNetns, deleteNetns, netnsPath as pathOf } from './netns.ts';
import { CHILD_PATH, NETNS_PREFIX, WORK_DIR } from './paths.ts';
import { killAllMatching } from './procs.ts';
import { HOST_UNDERLAY_IF, type Pcap, startPcap, UNDERLAY_PREFIX_LEN, type Underlay } from './underlay.ts';

export type NatMapping = 'endpoint-independent' | 'port-dependent';

export interface NatOptions {
  /** 1..8 of [a-z0-9]: namespace <NETNS_PREFIX>nat-<name>, bridge port ul-nat-<name> */
  readonly name: string;
  readonly mapping: NatMapping;
  /** the WAN address is 198.18.255.<wanIndex> (1..253; not a host's index) */
  readonly wanIndex: number;
  /** the LAN is 198.18.<lan>.0/24 (240..254, one per router), the router .1 */
  readonly lan: number;
}

/** The router's WAN interface (underlay.attach names it): the masquerade's way out. */
export const NAT_WAN_IF = HOST_UNDERLAY_IF;
/** The router's LAN bridge, which every attached host's veth joins. */
export const NAT_LAN_BRIDGE = 'lanbr0';
/** The host side of its LAN veth. */
export const NAT_HOST_IF = 'eth-lan';
/** our nft table (family ip) in the router */
export const NAT_NFT_TABLE = 'e2e_nat';
const LAN_MTU = 1500;

export interface NatAttachment {
  /** the host's LAN address (bare IP) */
  readonly address: string;
  readonly ifname: string;
  /** the router's LAN address: the host's default gateway */
  readonly gateway: string;
}

export interface Nat {
  readonly name: string;
  readonly netnsPath: string;
  readonly mapping: NatMapping;
  /** 198.18.<lan>.0/24 */
  readonly lanSubnet: string;
  /** 198.18.<lan>.1 */
  readonly lanAddress: string;
  readonly dir: string;
  /** The current outside address (bare IP); changeExternalAddress() changes it. */
  wanAddress(): string;
  /** Runs argv in the router's namespace (nft, conntrack, ip...). */
  exec(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Forgets every mapping (conntrack -F): the next packet of each flow is mapped anew. */
  flushConntrack(): Promise<void>;
  /** The conntrack table as `conntrack -L` prints it (one flow a line), for failure messages. */
  conntrack(): Promise<string[]>;
  /**
   * The ISP hands out another address: the WAN's becomes 198.18.255.<newIndex>, conntrack is
   * flushed, so every flow continues from the new address (a new mapping, mid-run).
   */
  changeExternalAddress(newIndex: number): Promise<void>;
  /** Records packets on the router's WAN (as the underlay sees them) or LAN (before mapping) to a file under dir. */
  pcap(side: 'wan' | 'lan', filter?: string): Promise<Pcap>;
  stop(): Promise<void>;
}

const checkIndex = (what: string, n: number, lo: number, hi: number): void => {
  if (!Number.isInteger(n) || n < lo || n > hi) throw new Error(`${what} ${n}: use ${lo}..${hi}`);
};

/** The router's nft table, replaced whole in one transaction. */
export function renderNatRuleset(mapping: NatMapping): string {
  const wan = `"${NAT_WAN_IF}"`;
  const lan = `"${NAT_LAN_BRIDGE}"`;
  const flags = mapping === 'port-dependent' ? ' fully-random' : '';
  return `table ip ${NAT_NFT_TABLE}
delete table ip ${NAT_NFT_TABLE}
table ip ${NAT_NFT_TABLE} {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname ${wan} ct state established,related accept
    iifname ${wan} drop
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname ${lan} oifname ${wan} accept
    iifname ${lan} oifname ${lan} accept
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname ${wan} masquerade${flags}
  }
}
`;
}

export async function startNat(underlay: Underlay, opts: NatOptions): Promise<Nat> {
  if (!/^[a-z0-9]{1,8}$/.test(opts.name)) throw new Error(`NAT name ${opts.name}: 1..8 of [a-z0-9]`);
  checkIndex('NAT wanIndex', opts.wanIndex, 1, 253);
  checkIndex('NAT lan', opts.lan, 240, 254);
  const name = `${NETNS_PREFIX}nat-${opts.name}`;
  const dir = join(WORK_DIR, 'nat', opts.name);
  await killAllMatching((p) => p.cmdline.includes(`${dir}/`));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const netnsPath = await createNetns(name); // deletes a stale one of the same name first
  const env = { ...process.env, PATH: CHILD_PATH };
  const exec = (argv: readonly string[], o?: RunOptions): Promise<RunResult> =>
    run(inNetns(netnsPath, argv), { env, ...o });
  const ok = (argv: readonly string[], o?: RunOptions): Promise<RunResult> =>
    runOk(inNetns(netnsPath, argv), { env, ...o });
  let wanIndex = opts.wanIndex;
  const lanAddress = `198.18.${opts.lan}.1`;
  let stopped: Promise<void> | undefined;
  const nat: Nat = {
    name,
    netnsPath,
    mapping: opts.mapping,
    lanSubnet: `198.18.${opts.lan}.0/24`,
    lanAddress,
    dir,
    wanAddress: () => `198.18.255.${wanIndex}`,
    exec,
    async flushConntrack() {
      await ok(['conntrack', '-F']);
    },
    async conntrack() {
      const r = await ok(['conntrack', '-L']);
      return r.stdout.split('\n').filter((l) => l.trim() !== '');
    },
    async changeExternalAddress(newIndex) {
      checkIndex('NAT wanIndex', newIndex, 1, 253);
      // del before add: deleting a primary address takes its secondaries (promote_secondaries=0)
      await ok(['ip', 'addr', 'del', `${nat.wanAddress()}/${UNDERLAY_PREFIX_LEN}`, 'dev', NAT_WAN_IF]);
      wanIndex = newIndex;
      await ok(['ip', 'addr', 'add', `${nat.wanAddress()}/${UNDERLAY_PREFIX_LEN}`, 'dev', NAT_WAN_IF]);
      // the kernel already drops masqueraded flows of a deleted address; flush the rest too
      await nat.flushConntrack();
    },
    pcap: (side, filter = '') =>
      startPcap(
        netnsPath,
        side === 'wan' ? NAT_WAN_IF : NAT_LAN_BRIDGE,
        join(dir, `${side}-${Date.now()}.pcap`),
        filter,
      ),
    stop() {
      stopped ??= stopNat(name, dir);
      return stopped;
    },
  };
  try {
    // IPv4 only, as the underlay: no router solicitations or MLD reports in the captures
    await ok(['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    await ok(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    await underlay.attach(name, opts.wanIndex, `nat-${opts.name}`);
    await ok(['ip', 'link', 'add', NAT_LAN_BRIDGE, 'mtu', String(LAN_MTU), 'type', 'bridge']);
    await ok(['ip', 'addr', 'add', `${lanAddress}/24`, 'dev', NAT_LAN_BRIDGE]);
    await ok(['ip', 'link', 'set', NAT_LAN_BRIDGE, 'up']);
    await ok(['nft', '-f', '-'], { input: renderNatRuleset(opts.mapping) });
  } catch (err) {
    await nat.stop().catch(() => {});
    throw err;
  }
  return nat;
}

async function stopNat(name: string, dir: string): Promise<void> {
  const problems: string[] = [];
  // kills what runs in it (captures, udp peers), takes the WAN veth (and its bridge port) and the LAN veths
  await deleteNetns(name).catch((err: Error) => problems.push(err.message));
  const left = await killAllMatching((p) => p.cmdline.includes(`${dir}/`));
  if (left.length > 0) problems.push(`processes survived SIGKILL: ${left.map((p) => p.pid).join(' ')}`);
  try {
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch (err) {
    problems.push(`rm -rf ${dir}: ${(err as Error).message}`);
  }
  if (problems.length > 0) throw new Error(`NAT ${name} teardown: ${problems.join('; ')}`);
}

/**
 * Puts the named namespace (a host's) behind the router: a veth `lan-<index>` on the router's
 * LAN bridge, `eth-lan` in the host with 198.18.<lan>.<index>/24, up, MTU 1500, and the host's
 * default route via the router. Everything it sends off its own links is then masqueraded, and
 * nothing on the underlay can open a connection to it. Deleting either namespace removes the pair.
 */
export async function attachBehind(nat: Nat, hostNetnsName: string, index: number): Promise<NatAttachment> {
  checkIndex('LAN index', index, 2, 254);
  const env = { ...process.env, PATH: CHILD_PATH };
  const inRouter = (argv: readonly string[]) => runOk(inNetns(nat.netnsPath, argv), { env });
  const inHost = (argv: readonly string[]) => runOk(inNetns(pathOf(hostNetnsName), argv), { env });
  const port = `lan-${index}`;
  const address = nat.lanSubnet.replace(/\.0\/24$/, `.${index}`);
  // a port left by a host that was stopped and started again under the same index
  await run(inNetns(nat.netnsPath, ['ip', 'link', 'del', port]), { env });
  const mtu = ['mtu', String(LAN_MTU)];
  await inRouter([
    'ip',
    'link',
    'add',
    port,
    ...mtu,
    'type',
    'veth',
    'peer',
    'name',
    NAT_HOST_IF,
    'netns',
    hostNetnsName,
  ]);
  await inRouter(['ip', 'link', 'set', port, 'master', NAT_LAN_BRIDGE, 'up']);
  await inHost(['ip', 'link', 'set', NAT_HOST_IF, ...mtu]);
  await inHost(['sysctl', '-qw', `net.ipv6.conf.${NAT_HOST_IF}.disable_ipv6=1`]); // an IPv4 home LAN
  await inHost(['ip', 'addr', 'add', `${address}/24`, 'dev', NAT_HOST_IF]);
  await inHost(['ip', 'link', 'set', NAT_HOST_IF, 'up']);
  await inHost(['ip', 'route', 'replace', 'default', 'via', nat.lanAddress, 'dev', NAT_HOST_IF]);
  return { address, ifname: NAT_HOST_IF, gateway: nat.lanAddress };
}
