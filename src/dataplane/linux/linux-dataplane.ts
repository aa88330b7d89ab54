/**
 * The Linux dataplane: the Dataplane port (core/contracts.ts) over ip, nft, iptables-restore,
 * sysctl and conntrack, one kernel kind per file. This file only wires them together; it
 * holds no state but the probed iptables tools.
 */

import type { VxlanObject, WireguardObject } from '../../core/cluster/desired.ts';
import type { Dataplane, ObservedLink } from '../../core/contracts.ts';
import type { FirewallObject } from '../../core/desired.ts';
import { errors } from '../../core/errors.ts';
import { describeWireguard } from '../../core/wireguard-impl.ts';
import { fault } from '../../obs/fault.ts';
import * as bridge from './bridge.ts';
import { cutDeniedFlows } from './conntrack.ts';
import * as dnat from './dnat.ts';
import * as dns from './dns-redirect.ts';
import * as egress from './egress.ts';
import { createExec, type DataplaneLog, type Exec, type OnCommand } from './exec.ts';
import * as guard from './guard.ts';
import * as ha from './host-address.ts';
import * as ipt from './iptables.ts';
import { ensureIpv6Forwarding } from './ipv6-forwarding.ts';
import { type KernelWatch, watchKernel } from './kernel-watch.ts';
import { listOwnedLinks, listUplinks } from './links.ts';
import * as nft from './nft.ts';
import { selectVxlanPeers, selectWireguardPeers } from './peer-select.ts';
import * as policy from './policy.ts';
import { checkPolicies } from './policy-check.ts';
import * as selectors from './policy-selectors.ts';
import * as proxyNdp from './proxy-ndp.ts';
import * as raGuard from './ra-guard.ts';
import * as routed from './routed-routes.ts';
import * as rt from './routes.ts';
import * as shaper from './shaper.ts';
import { ensureBridgeNetfilter, ensureFirewallSysctls } from './sysctl.ts';
import * as veth from './veth.ts';
import * as vx from './vxlan.ts';
import * as wg from './wireguard.ts';
import * as wgKeys from './wireguard-keys.ts';

export interface LinuxDataplaneOptions {
  /** A network namespace path (/run/netns/NAME): every command runs in it via nsenter. Default: our own. */
  readonly netns?: string;
  /** Called after every kernel command (debug logging). Default: log.debug when `log` is given. */
  readonly onCommand?: OnCommand;
  readonly log?: DataplaneLog;
  /** The host's iptables (its backend decides which shim we write). Default: `iptables` on PATH. */
  readonly iptables?: string;
  /**
   * Links carrying the host's default route: truss networks may send to them even when they
   * are bridges (nft.ts rule 5). 'auto' (default) reads the main table's default routes at
   * every apply/check, so a moved default route shows up as drift and is repaired.
   */
  readonly uplinks?: readonly string[] | 'auto';
  /** directory of this host's WireGuard private key (wireguard.ts KEY_FILE in it) */
  readonly wireguardKeyDir?: string;
  /** a writable /proc/sys mounted elsewhere (managed plugin: /host/proc/sys); see exec.ts */
  readonly procSys?: string;
  /** the admin's wireguard-go (--wireguard-go); default: the newest found (wireguard-go.ts) */
  readonly wireguardGo?: string;
  /** `ip -batch -` from a spare process started ahead (exec.ts SpareProcesses); default: only without `netns` */
  readonly spareProcesses?: boolean;
  /**
   * Watch the kernel for changes (kernel-watch.ts: two monitor processes, started on the first
   * kernelGeneration()), so that checks may be answered from the last look. Default: off.
   */
  readonly watchKernel?: boolean;
  /** the state database's id, stamped into the marks of the bridges and veths made (naming.ownerMark) */
  readonly stateId?: string;
}

export interface LinuxDataplane extends Dataplane {
  /** local address and link MTU on the path towards `ip` (for --advertise-address and the tunnel MTU) */
  underlayTowards(
    ip: string,
  ): Promise<{ readonly address: string; readonly dev: string; readonly mtu: number } | undefined>;
  /** every link with its MTU and addresses (for chooseUnderlay) */
  readLinks(): Promise<{ readonly dev: string; readonly mtu: number; readonly addresses: readonly string[] }[]>;
  /** the main table's default routes (for chooseUnderlay: a co-located etcd) */
  readDefaultRoutes(): Promise<{ readonly dev: string; readonly prefsrc?: string; readonly family: 4 | 6 }[]>;
  /** The rendering ensureFirewall installs for `f` now (for `truss inspect` and tests). */
  renderFirewall(f: FirewallObject): Promise<string>;
  /** The probed iptables backend, or undefined without iptables. */
  iptablesBackend(): Promise<ipt.IptBackend | undefined>;
  /** Ends the spare processes (tests; the daemon's end at exit by EOF). */
  close(): void;
}

function commandLogger(log: DataplaneLog | undefined): OnCommand | undefined {
  if (!log) return undefined;
  return (argv, stdin, durationMs, exitCode) =>
    log.debug('kernel command', { argv, stdin, durationMs: Math.round(durationMs * 10) / 10, exitCode });
}

export function createLinuxDataplane(opts: LinuxDataplaneOptions = {}): LinuxDataplane {
  const onCommand = opts.onCommand ?? commandLogger(opts.log);
  const exec: Exec = createExec({
    ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
    ...(onCommand ? { onCommand } : {}),
    ...(opts.procSys !== undefined ? { procSys: opts.procSys } : {}),
    ...(opts.spareProcesses !== undefined ? { spareProcesses: opts.spareProcesses } : {}),
  });
  const uplinks = async (f: FirewallObject): Promise<readonly string[]> => {
    const found = opts.uplinks === undefined || opts.uplinks === 'auto' ? await listUplinks(exec) : opts.uplinks;
    const ours = new Set(f.networks.map((n) => n.bridge));
    return found.filter((u) => !ours.has(u));
  };
  const render = async (f: FirewallObject): Promise<string> => nft.renderNftRuleset(f, { uplinks: await uplinks(f) });
  let tools: Promise<ipt.IptTools | undefined> | undefined;
  /** truss turned forwarding on: only what FORWARD accepts is routed (iptables.ts ensureForwardDrop, M5). */
  const closeForwarding = async (family: 4 | 6, sysctl: string): Promise<void> => {
    const t = await iptTools();
    const dropped = t ? await ipt.ensureForwardDrop(exec, t, family) : false;
    if (dropped) {
      opts.log?.warn('raised forwarding and set the filter FORWARD policy to DROP, as dockerd does', { sysctl });
    } else if (!t) {
      opts.log?.warn('raised forwarding, but without iptables the FORWARD policy cannot be set to DROP', { sysctl });
    }
  };
  /** the probed iptables backend, once known (kernelGeneration needs it without waiting) */
  let backend: ipt.IptBackend | 'none' | undefined;
  const iptTools = (): Promise<ipt.IptTools | undefined> => {
    tools ??= ipt.detectIptables(exec, opts.iptables).then(
      (t) => {
        backend = t?.backend ?? 'none';
        return t;
      },
      (e: unknown) => {
        tools = undefined; // probe again next time
        throw e;
      },
    );
    return tools;
  };
  let watch: KernelWatch | undefined;

  const keyFile = (): string => {
    if (!opts.wireguardKeyDir) throw errors.unsupported('no WireGuard key directory configured');
    return `${opts.wireguardKeyDir}/${wgKeys.KEY_FILE}`;
  };
  const toDevice = (w: WireguardObject): wg.WireguardDevice => ({
    name: w.name,
    privateKeyFile: keyFile(),
    listenPort: w.listenPort,
    mtu: w.mtu,
    peers: w.peers.map((p) => ({
      publicKey: p.publicKey,
      ...(p.endpoint !== undefined ? { endpoint: p.endpoint } : {}),
      allowedIps: p.allowedIps,
      keepaliveSeconds: p.keepaliveSeconds,
      ...(p.live ? { live: true } : {}),
    })),
  });
  // a peer that would make the whole device invalid is left out alone, with a warning (peer-select.ts)
  const warned = new Set<string>();
  const warnDropped = (device: string, dropped: readonly string[]): void => {
    for (const d of dropped.filter((x) => !warned.has(x))) {
      warned.add(d);
      opts.log?.warn('cluster peer left out of the device', { device, problem: d });
    }
  };
  const toVxlan = (v: VxlanObject): vx.VxlanDevice => {
    const peers = v.peers.map((p) => ({
      address: p.address,
      mac: p.mac,
      ...(p.viaLinkLocal ? { viaLinkLocal: true } : {}),
    }));
    const s = selectVxlanPeers({ ...v, peers });
    warnDropped(v.name, s.dropped);
    return s.device;
  };
  const selectWg = async (w: WireguardObject): Promise<wg.WireguardDevice> => {
    const own = await wgKeys.readPrivateKeyFile(keyFile()).catch(() => undefined);
    const s = selectWireguardPeers(toDevice(w), own);
    warnDropped(w.name, s.dropped);
    return s.device;
  };
  const vethRemovals = new veth.VethRemovals(opts.log);
  return {
    ...(opts.watchKernel
      ? {
          kernelGeneration(): number | undefined {
            // iptables-legacy rules announce nothing: the firewall check must list them every time
            if (backend === undefined || backend === 'legacy') {
              void iptTools().catch(() => {});
              return undefined;
            }
            watch ??= watchKernel({
              ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
              ...(opts.log ? { log: opts.log } : {}),
            });
            return watch.generation();
          },
        }
      : {}),
    async listLinks(): Promise<readonly ObservedLink[]> {
      await vethRemovals.settled();
      const links = await listOwnedLinks(exec);
      // routed host ends carry their host routes (veth.ts): listed only when there is one
      if (!links.some((l) => l.group !== undefined)) return links;
      return routed.withHostRoutes(links, await routed.listRoutedRoutes(exec));
    },
    ensureBridge: (b) => bridge.ensureBridge(exec, b, opts.stateId),
    async removeBridge(name) {
      await vethRemovals.settled();
      await bridge.removeBridge(exec, name, opts.log);
    },
    async ensureVeth(v) {
      await vethRemovals.settled([v.name]);
      await veth.ensureVeth(exec, v, opts.stateId);
    },
    // the pair's deletion runs on in the background (veth.ts VethRemovals)
    removeVeth: (name) => vethRemovals.start(exec, name),
    async checkFirewall(f) {
      const problems = [...(await nft.checkNft(exec, await render(f))), ...(await raGuard.checkRaGuard(exec))];
      const t = await iptTools();
      return t ? [...problems, ...(await ipt.checkShim(exec, t, f))] : problems;
    },
    async ensureFirewall(f) {
      // one nft transaction for both tables (ra-guard.ts): they change together, one process
      await exec.run('nft', ['-f', '-'], {
        stdin: nft.renderNftTransaction(await render(f)) + raGuard.renderRaGuardTransaction(raGuard.renderRaGuard()),
      });
      fault('kernel:firewall-between-nft-and-iptables');
      const t = await iptTools();
      if (t) await ipt.applyShim(exec, t, f);
    },
    async removeFirewall() {
      const t = await iptTools();
      if (t) await ipt.removeShim(exec, t);
      await nft.removeNft(exec);
      await raGuard.removeRaGuard(exec);
    },
    async ensureSysctls(f) {
      const raised4 = await ensureFirewallSysctls(exec, f);
      if (raised4) await closeForwarding(4, 'net.ipv4.ip_forward');
      const v6 = await ensureIpv6Forwarding(exec, f, () => uplinks(f));
      if (v6.raised) {
        opts.log?.warn('raised net.ipv6.conf.all.forwarding to 1 (host-wide)', { acceptRa2: v6.acceptRa2 });
        await closeForwarding(6, 'net.ipv6.conf.all.forwarding');
      }
    },
    checkPolicies: (desired) => checkPolicies(exec, desired),
    async ensurePolicy(p) {
      // br_netfilter's switches are checked alongside; when they cannot be on, the call fails,
      // but only after the policy holds for what does not need them (routed and host traffic)
      const [sysctls, applied] = await Promise.allSettled([ensureBridgeNetfilter(exec), policy.applyPolicy(exec, p)]);
      if (applied.status === 'rejected') throw applied.reason;
      const cut = await cutDeniedFlows(exec, p.addresses, p.rules);
      if (cut.length > 0) opts.log?.debug('policy: cut denied flows', { chain: p.name, flows: cut.length });
      if (sysctls.status === 'rejected') throw sysctls.reason;
    },
    removePolicy: (name) => policy.removePolicy(exec, name),
    checkSelectors: (desired) => selectors.checkSelectors(exec, desired),
    ensureSelector: (s) => selectors.applySelector(exec, s),
    removeSelector: (name) => selectors.removeSelector(exec, name),
    removePolicyTable: () => policy.removePolicyTable(exec),
    readPolicyCounters: () => policy.readPolicyCounters(exec),
    checkPorts: (desired) => dnat.checkPorts(exec, desired),
    ensurePorts: (p) => dnat.applyPorts(exec, p),
    removePorts: (name) => dnat.removePorts(exec, name),
    removePortsTable: () => dnat.removePortsTable(exec),
    checkDnsRedirect: (want) => dns.checkDnsRedirect(exec, want),
    ensureDnsRedirect: (o) => dns.ensureDnsRedirect(exec, o),
    removeDnsRedirect: () => dns.removeDnsRedirect(exec),
    readDnsSeen: () => dns.readDnsSeen(exec),
    checkGuards: (desired) => guard.checkGuards(exec, desired),
    checkRoutedRoutes: (desired) => routed.checkRoutedRoutes(exec, desired),
    ensureRoutedRoutes: (o) => routed.ensureRoutedRoutes(exec, o),
    removeRoutedRoutes: (name) => routed.removeRoutedRoutes(exec, name),
    ensureGuard: (g, o) => guard.applyGuard(exec, g, o?.exact ?? false),
    removeGuard: (port, applied) => guard.removeGuard(exec, port, applied),
    removeGuardTable: () => guard.removeGuardTable(exec),
    readGuardCounters: () => guard.readGuardCounters(exec),
    async ensureWireguard(w) {
      const probe = opts.wireguardGo !== undefined ? { wireguardGo: opts.wireguardGo } : {};
      const r = await wg.ensureWireguard(exec, await selectWg(w), probe);
      if (r.changes.length > 0) opts.log?.debug('wireguard changed', { device: w.name, changes: r.changes });
      const impl = r.created ? wg.probedWireguard(exec) : undefined;
      if (impl)
        opts.log?.debug('wireguard device created', { device: w.name, implementation: describeWireguard(await impl) });
    },
    removeWireguard: (name) => wg.removeWireguard(exec, name, opts.log),
    async checkWireguard(w, name) {
      // the link read now, first (ensure and readWireguard answer from the link as read while
      // the same wireguard-go runs): a link gone or changed behind truss is found on this pass
      const want = w ? await selectWg(w) : undefined;
      const link = want ? await wg.checkWireguardLink(exec, want) : [];
      const cur = await wg.readWireguard(exec, name);
      if (!w || !want) return cur ? [`wireguard device ${name} exists but no cluster network needs it`] : [];
      if (!cur) return [`wireguard device ${w.name} is missing`];
      const own = await wgKeys.readPrivateKeyFile(keyFile());
      const plan = wg.planWireguard(cur, want, own, Date.now() / 1000);
      const changes = [...link, ...plan.changes];
      return changes.length > 0 ? [`wireguard device ${w.name} differs: ${changes.join('; ')}`] : [];
    },
    async ensureHostAddresses(addrs) {
      const lines = await ha.ensureHostAddresses(exec, addrs);
      if (lines.length > 0) opts.log?.debug('host addresses changed', { changes: lines });
    },
    checkHostAddresses: (addrs) => ha.checkHostAddresses(exec, addrs),
    async ensureRoutes(routes) {
      // one listing for both steps: truss is the only writer of its routes (proto TRUSS_ROUTE_PROTO)
      const cur = await rt.listRoutes(exec);
      await rt.ensureRoutes(exec, routes, cur);
      const want = new Set(routes.map((r) => r.dst));
      for (const r of cur) if (!want.has(r.dst)) await rt.removeRoute(exec, r.dst);
    },
    async checkRoutes(routes) {
      const cur = await rt.listRoutes(exec);
      const plan = rt.planRoutes(cur, routes);
      const extra = cur
        .filter((r) => !routes.some((w) => w.dst === r.dst))
        .map((r) => `truss route ${r.dst} is not wanted`);
      return [...(plan.length > 0 ? [`${plan.length} truss route(s) missing or different`] : []), ...extra];
    },
    async readWireguardPeers(name) {
      return (await wg.readWireguard(exec, name))?.peers ?? [];
    },
    async wireguardImplementation() {
      const impl = wg.probedWireguard(exec);
      return impl ? describeWireguard(await impl) : undefined;
    },
    async ensureVxlan(v) {
      const changes = await vx.ensureVxlan(exec, toVxlan(v));
      if (changes.length > 0) opts.log?.debug('vxlan changed', { device: v.name, changes });
    },
    removeVxlan: (name) => vx.removeVxlan(exec, name, opts.log),
    checkVxlan: (v, name) => vx.checkVxlan(exec, v ? toVxlan(v) : undefined, name),
    readVxlanPeers: (name) => vx.readVxlanPeers(exec, name),
    checkProxyNdp: (desired) => proxyNdp.checkProxyNdpSet(exec, desired),
    async ensureProxyNdp(o) {
      const r = await proxyNdp.ensureProxyNdp(exec, o);
      if (r.raisedAll) opts.log?.warn('raised net.ipv6.conf.all.proxy_ndp to 1 (host-wide)', { bridge: o.name });
      if (r.changes.length > 0) opts.log?.debug('proxy ndp changed', { bridge: o.name, changes: r.changes.length });
    },
    removeProxyNdp: (bridge, subnets) => proxyNdp.removeProxyNdp(exec, bridge, subnets),
    async ensureEgress(e) {
      const ran = await egress.ensureEgress(exec, e);
      if (ran.length > 0) opts.log?.debug('egress changed', { lines: ran });
    },
    checkEgress: (e) => egress.checkEgress(exec, e),
    checkShapers: (desired) => shaper.checkShapers(exec, desired),
    async ensureShaper(s) {
      const changes = await shaper.ensureShaper(exec, s);
      if (changes.length > 0) opts.log?.debug('bandwidth changed', { veth: s.name, changes });
    },
    removeShaper: (name, ifb) => shaper.removeShaper(exec, name, ifb, opts.log),
    underlayTowards: (ip) => rt.underlayTowards(exec, ip),
    readLinks: () => rt.readLinks(exec),
    readDefaultRoutes: () => rt.readDefaultRoutes(exec),
    renderFirewall: render,
    iptablesBackend: async () => (await iptTools())?.backend,
    close: () => {
      watch?.close();
      exec.close?.();
    },
  };
}
