/**
 * The hosts-behind-NAT topology of docs/cluster.md#hosts-behind-nat, shared by
 * e2e/cluster-nat.e2e.ts (what must hold) and bench/nat-paths.ts (what it costs). Four simulated
 * hosts started the README way (`scripts/run.sh --store etcd://… --etcd-insecure`, own hostnames,
 * no --node-name, no --advertise-address): pa and pb on the underlay ("the internet"), both with
 * --relay; nc behind a home router natc and nd behind natd (nat.ts: Linux masquerade,
 * conntrack-only inbound, endpoint-independent at start), both on 198.18.241.2: two home LANs
 * with the same private address. Each host has the cluster network `blue` and one server
 * container (a TCP sink on SINK_PORT, iperf3 -s on IPERF_PORT).
 *
 * Besides the fixture, the steps both ask of it: a peer's path as `truss status --json` shows it
 * and waiting for one, natd turned port-dependent (the pair nc ↔ nd relayed), a relay cut off
 * the underlay (fail-over), and one path's RTT and throughput.
 *
 *   const net = natClusterFixture();
 *   before(() => net.start());
 *   after(() => net.stop());
 *   await waitPunched(net);                  // nc ↔ nd through the two NATs
 *   const { relay } = await waitRelayed(net); // natd now maps per destination
 */
import { clusterFixture } from './cluster.ts';
import { type ClusterPeer, clusterStatus, nodeIdOf, WG_DEV, waitSynced } from './cluster-state.ts';
import { containerIp, createClusterNetwork, runContainer } from './containers.ts';
import { median } from './figures.ts';
import { type Host, inHostMounts, startHost } from './host.ts';
import { attachBehind, type Nat, type NatMapping, renderNatRuleset, startNat } from './nat.ts';
import { iperfGbps, type ProbeResult, SINK_PORT, startPingProbe, tcpConnect } from './traffic.ts';
import { HOST_UNDERLAY_IF, type Underlay } from './underlay.ts';
import { sleep, waitFor } from './wait.ts';

export const NAT_NETWORK = 'blue';
export const NAT_NETWORK_SUBNET = '198.18.64.0/20';
export const IPERF_PORT = 5201;
/** natc and natd: their outside addresses 198.18.255.<index>; both LANs are 198.18.241.0/24 */
const NAT_WAN_INDEX = { c: 201, d: 202 };
const SERVER_CMD = ['sh', '-c', `nc -ll -p ${SINK_PORT} -e /bin/tsink & iperf3 -s -p ${IPERF_PORT} & wait`];

export interface NatCluster {
  /** the underlay and its etcd; throws before start() */
  readonly underlay: Underlay;
  /** the public hosts (both relays) and the hosts behind natc and natd; each throws before start() */
  readonly pa: Host;
  readonly pb: Host;
  readonly nc: Host;
  readonly nd: Host;
  readonly natc: Nat;
  readonly natd: Nat;
  /** the host's server container */
  ctr(h: Host): string;
  /** its address on the cluster network */
  ip(h: Host): string;
  start(): Promise<void>;
  /** Stops whatever started (the hosts behind the NATs, the NATs, then the public hosts); throws what failed. */
  stop(): Promise<void>;
}

export function natClusterFixture(): NatCluster {
  const cluster = clusterFixture({
    hosts: ['pa', 'pb'],
    host: (_, i) => ({ hostname: `public${i + 1}` }),
    runScript: true,
  });
  const nats: Nat[] = [];
  const behind: Host[] = [];
  const ips = new Map<string, string>();
  const started = <T>(x: T | undefined): T => {
    if (x === undefined) throw new Error('the NAT cluster has not started');
    return x;
  };
  const net: NatCluster = {
    get underlay() {
      return cluster.underlay;
    },
    get pa() {
      return cluster.host('pa');
    },
    get pb() {
      return cluster.host('pb');
    },
    get nc() {
      return started(behind[0]);
    },
    get nd() {
      return started(behind[1]);
    },
    get natc() {
      return started(nats[0]);
    },
    get natd() {
      return started(nats[1]);
    },
    ctr: (h) => `s-${h.name.slice(-2)}`,
    ip: (h) => started(ips.get(h.name)),
    async start() {
      await cluster.start();
      for (const [name, wanIndex] of Object.entries(NAT_WAN_INDEX)) {
        nats.push(await startNat(cluster.underlay, { name, mapping: 'endpoint-independent', wanIndex, lan: 241 }));
      }
      behind.push(await startHost('nc', { hostname: 'laptop' }));
      behind.push(await startHost('nd', { hostname: 'cloudvm' }));
      await attachBehind(net.natc, net.nc.name, 2);
      await attachBehind(net.natd, net.nd.name, 2);
      const user = ['--store', `etcd://${cluster.underlay.etcd.endpoint}`, '--etcd-insecure'];
      const start = (h: Host, extra: readonly string[]) =>
        h.startTruss({ runScript: true, extraArgs: [...user, ...extra], readyTimeoutMs: 120_000 });
      await Promise.all([start(net.pa, ['--relay']), start(net.pb, ['--relay']), start(net.nc, []), start(net.nd, [])]);
      const all = [net.pa, net.pb, net.nc, net.nd];
      for (const h of all) await waitSynced(h, `${h.name} synced`);
      for (const h of all) {
        const r = await createClusterNetwork(h, NAT_NETWORK, NAT_NETWORK_SUBNET);
        if (r.code !== 0) throw new Error(`${NAT_NETWORK} on ${h.name}: ${r.stderr}${r.stdout}`);
      }
      await Promise.all(all.map((h) => runContainer(h, { name: net.ctr(h), network: NAT_NETWORK, cmd: SERVER_CMD })));
      for (const h of all) ips.set(h.name, await containerIp(h, net.ctr(h), NAT_NETWORK));
    },
    async stop() {
      const problems: string[] = [];
      // the hosts behind the NATs bind /var/lib/truss too: they go before the fixture removes it
      for (const x of [...behind.splice(0), ...nats.splice(0)]) {
        await x.stop().catch((err: Error) => problems.push(err.message));
      }
      await cluster.stop().catch((err: Error) => problems.push(err.message));
      if (problems.length > 0) throw new Error(`NAT cluster teardown: ${problems.join('; ')}`);
    },
  };
  return net;
}

/** The peer entry for `other` in h's `truss status --json` (undefined: not a peer, yet). */
export async function peerOn(h: Host, other: Host): Promise<ClusterPeer | undefined> {
  const id = nodeIdOf(other);
  return (await clusterStatus(h)).peers.find((p) => p.node === id);
}

/**
 * What the four hosts think (reachability, peers and their paths, the device) and the NATs'
 * WireGuard mappings, as text for a failure report: appended to the error it explains, so CI's
 * failure excerpt carries it (stdout is not in that excerpt).
 */
export async function diagnose(net: NatCluster): Promise<string> {
  const out: string[] = [];
  for (const x of [net.pa, net.pb, net.nc, net.nd]) {
    const c = await clusterStatus(x).catch((err: Error) => err.message);
    const brief =
      typeof c === 'string'
        ? c
        : { reach: c.reach, peers: c.peers.map((p) => [p.name, p.path, p.via, p.endpoint, p.allowedIps]) };
    out.push(`${x.name} cluster: ${JSON.stringify(brief)}`);
    const wg = (await inHostMounts(x, ['wg', 'show', WG_DEV, 'dump'])).stdout.replace(/^\S+\t/, 'PRIV\t');
    out.push(`${x.name} wg (at ${Math.round(Date.now() / 1000)}):\n${wg.trimEnd()}`);
  }
  for (const nat of [net.natc, net.natd]) {
    const flows = await nat.conntrack().catch((err: Error) => [err.message]);
    out.push(`${nat.name} conntrack (udp 51820):\n${flows.filter((l) => l.includes('port=51820')).join('\n')}`);
  }
  return out.join('\n');
}

/** Rethrows `e` with what every host thinks appended (diagnose). */
export async function withDiagnosis(net: NatCluster, e: unknown): Promise<never> {
  const text = await diagnose(net).catch((err: Error) => `(no diagnosis: ${err.message})`);
  if (e instanceof Error) {
    e.message = `${e.message}\n${text}`;
    throw e;
  }
  throw new Error(`${String(e)}\n${text}`);
}

/** Waits until h shows `path` to other; on time-out the error carries what every host thinks (diagnose). */
export async function waitPath(net: NatCluster, h: Host, other: Host, path: string, ms: number): Promise<void> {
  try {
    await waitFor(async () => (await peerOn(h, other))?.path === path, ms, {
      what: `${other.name}'s path on ${h.name} to be ${path}`,
      intervalMs: 250,
    });
  } catch (e) {
    await withDiagnosis(net, e);
  }
}

/** Whether a TCP connect from `from`'s server container to `to`'s is answered. */
export const reaches = async (net: NatCluster, from: Host, to: Host): Promise<boolean> =>
  (await tcpConnect(from, net.ctr(from), net.ip(to))).ok;

/** ms until TCP from `from` to `to` works (probing every 250 ms); throws after `ms`. */
export async function msUntilReach(net: NatCluster, from: Host, to: Host, ms: number): Promise<number> {
  const t0 = Date.now();
  await waitFor(() => reaches(net, from, to), ms, { what: `${from.name} -> ${to.name}`, intervalMs: 250 });
  return Date.now() - t0;
}

/** Waits until nc and nd both show the pair punched (a hole through both NATs); resolves with the ms it took. */
export async function waitPunched(net: NatCluster, ms = 60_000): Promise<number> {
  const t0 = Date.now();
  await waitPath(net, net.nc, net.nd, 'punched', ms);
  await waitPath(net, net.nd, net.nc, 'punched', 10_000);
  return Date.now() - t0;
}

/** Replaces the NAT's mapping (its nft table) and forgets every mapping it made, so the next packets map anew. */
export async function remapNat(nat: Nat, mapping: NatMapping): Promise<void> {
  const r = await nat.exec(['nft', '-f', '-'], { input: renderNatRuleset(mapping) });
  if (r.code !== 0) throw new Error(`${nat.name} ${mapping}: ${r.stderr}`);
  await nat.flushConntrack();
}

/** The relay host of a `via` node id. */
export function relayOf(net: NatCluster, via: string | undefined): Host {
  const relay = [net.pa, net.pb].find((h) => nodeIdOf(h) === via);
  if (!relay) throw new Error(`relay ${via}: neither pa (${nodeIdOf(net.pa)}) nor pb (${nodeIdOf(net.pb)})`);
  return relay;
}

/** The relay both ends of nc ↔ nd name now, once they agree (within `ms`). */
export async function agreedRelay(net: NatCluster, ms = 10_000): Promise<Host> {
  const via = await waitFor(
    async () => {
      const [c, d] = [await peerOn(net.nc, net.nd), await peerOn(net.nd, net.nc)];
      return c?.path === 'relayed' && c.via !== undefined && c.via === d?.via && c.via;
    },
    ms,
    { what: 'nc and nd naming the same relay', intervalMs: 250 },
  );
  return relayOf(net, via);
}

/**
 * natd turns port-dependent (a new mapping per destination): waits until nd learns it and both
 * ends show nc ↔ nd relayed through the same relay; resolves with that relay and the ms since
 * the NAT changed.
 */
export async function waitRelayed(net: NatCluster, ms = 60_000): Promise<{ relay: Host; ms: number }> {
  await remapNat(net.natd, 'port-dependent');
  const t0 = Date.now();
  await waitFor(async () => (await clusterStatus(net.nd)).reach?.nat === 'dependent', ms, {
    what: 'nd learning its NAT maps per destination',
  });
  await waitPath(net, net.nc, net.nd, 'relayed', ms);
  await waitPath(net, net.nd, net.nc, 'relayed', 10_000);
  const relay = await agreedRelay(net, 1_000);
  return { relay, ms: Date.now() - t0 };
}

/** Takes a host's underlay link down or up (`ip link set eth-ul`): off the internet, etcd included. */
export async function setUnderlayLink(h: Host, state: 'up' | 'down'): Promise<void> {
  const r = await h.exec(['ip', 'link', 'set', HOST_UNDERLAY_IF, state]);
  if (r.code !== 0) throw new Error(`${h.name}: ip link set ${HOST_UNDERLAY_IF} ${state}: ${r.stderr}`);
}

export interface FailOver {
  /** the relay the pair moved to */
  readonly other: Host;
  /** ms from the cut until nc's status named the other relay */
  readonly chosenMs: number;
  /** a ping nc → nd every intervalMs from 2 s before the cut until both directions connect again */
  readonly probe: ProbeResult;
}

/**
 * With nc ↔ nd relayed through `relay`: cuts the relay off the underlay and measures the
 * fail-over to the other relay. The link stays down: the caller restores it
 * (setUnderlayLink(relay, 'up')), also when this throws.
 */
export async function failOver(net: NatCluster, relay: Host, intervalMs = 100): Promise<FailOver> {
  const other = relay === net.pa ? net.pb : net.pa;
  const probe = startPingProbe(net.nc, net.ctr(net.nc), net.ip(net.nd), intervalMs);
  try {
    await sleep(2_000);
    const t0 = Date.now();
    await setUnderlayLink(relay, 'down');
    await waitFor(async () => (await peerOn(net.nc, net.nd))?.via === nodeIdOf(other), 60_000, {
      what: `nc choosing the other relay (${other.name})`,
      intervalMs: 250,
    });
    const chosenMs = Date.now() - t0;
    await msUntilReach(net, net.nc, net.nd, 30_000);
    await msUntilReach(net, net.nd, net.nc, 30_000);
    await sleep(1_000); // a few replies on the new path, so that the probe's last gap is closed
    return { other, chosenMs, probe: await probe.stop() };
  } finally {
    await probe.stop().catch(() => {}); // a no-op once stopped
  }
}

export interface PathFigures {
  /** median RTT of the pings, ms */
  readonly rttMs: number;
  readonly pingsLost: number;
  /** iperf3 TCP throughput from `from` to `to`, Gbit/s */
  readonly gbps: number;
}

/**
 * RTT (median of `pings` pings every 50 ms) and TCP throughput (iperf3 for `seconds`, from
 * `from`'s container to `to`'s) of one path; one failed iperf3 run is retried.
 */
export async function measurePath(
  net: NatCluster,
  from: Host,
  to: Host,
  opts: { readonly pings?: number; readonly seconds?: number } = {},
): Promise<PathFigures> {
  const [pings, seconds] = [opts.pings ?? 20, opts.seconds ?? 2];
  const target = net.ip(to);
  const ping = ['exec', net.ctr(from), 'ping', '-c', String(pings), '-i', '0.05', '-W', '1', target];
  const p = await from.docker(ping, (pings * 0.05 + 30) * 1000);
  const times = [...p.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (times.length === 0) throw new Error(`ping ${from.name} -> ${to.name}: no reply: ${p.stdout}${p.stderr}`);
  const iperf = ['exec', net.ctr(from), 'iperf3', '-c', target, '-p', String(IPERF_PORT), '-t', String(seconds)];
  iperf.push('--connect-timeout', '5000', '-J');
  let r = await from.docker(iperf, (seconds + 60) * 1000);
  if (r.code !== 0) r = await from.docker(iperf, (seconds + 60) * 1000);
  if (r.code !== 0) throw new Error(`iperf3 ${from.name} -> ${to.name}: ${r.stdout.slice(-300)}${r.stderr}`);
  return { rttMs: median(times), pingsLost: pings - times.length, gbps: iperfGbps(r.stdout) };
}
