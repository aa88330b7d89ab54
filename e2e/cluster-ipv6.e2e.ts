/**
 * IPv6 across hosts (issue 17, docs/cluster.md#ipv6-across-hosts), the user's way: truss started
 * through scripts/run.sh with only `--store etcd://… --etcd-insecure` (no --node-name, no
 * --advertise-address), dual-stack cluster networks made with `docker network create --ipv6`.
 *
 * 1. Two hosts x1, x2 on an IPv4 underlay, a dual-stack encrypted network (blue6, WireGuard) and
 *    a dual-stack unencrypted one (green6, VXLAN): ping6 and TCP over IPv6 both ways, IPv4
 *    alongside; the first container of x2 (in x2's block, known to x1 through etcd) and a second
 *    one in that block answer x1 within seconds (times printed); the container MTU holds for
 *    IPv6 (a full-size packet whole, a 1400-byte payload through) and the underlay carries no
 *    fragment.
 * 2. Two hosts y1, y2 on an IPv6-only underlay (etcd at [fd00:255::fe]:2379): truss advertises
 *    each host's IPv6 address by itself; WireGuard and VXLAN networks carry IPv4 and IPv6
 *    container traffic both ways, and the underlay sees no IPv4 at all.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Ip, type Prefix, parseIp, parsePrefix, prefixContains, prefixWithin } from '../src/core/ip.ts';
import { type Cluster, clusterFixture } from './harness/cluster.ts';
import { clusterStatus, WG_DEV, waitSynced } from './harness/cluster-state.ts';
import { containerIp, createTrussNetwork, runContainer } from './harness/containers.ts';
import { printFigures } from './harness/figures.ts';
import type { Host } from './harness/host.ts';
import { assertRemovedEverything, waitNoTrussLeftovers } from './harness/leftovers.ts';
import { assertTcp, SINK_CMD, tcpConnect } from './harness/traffic.ts';
import { UNDERLAY_ADDRESS6 } from './harness/underlay.ts';
import { waitFor } from './harness/wait.ts';

const VX_DEV = 'trvx0';
const figures: string[] = [];

interface Net {
  readonly name: string;
  readonly subnets: readonly [string, string];
  readonly encrypt: boolean;
}
const BLUE6: Net = { name: 'blue6', subnets: ['198.18.64.0/20', 'fd00:64::/64'], encrypt: true };
const GREEN6: Net = { name: 'green6', subnets: ['198.18.96.0/20', 'fd00:96::/64'], encrypt: false };

async function ok(p: Promise<{ code: number; stdout: string; stderr: string }>, what: string): Promise<string> {
  const r = await p;
  assert.equal(r.code, 0, `${what}: ${r.stderr}${r.stdout}`);
  return r.stdout.trim();
}

/** truss as a user starts it on every host (scripts/run.sh, only the cluster store), then synced. */
async function startTruss(c: Cluster, endpoint: string): Promise<void> {
  await Promise.all(
    c.hosts.map((h) =>
      h.startTruss({
        runScript: true,
        extraArgs: ['--store', `etcd://${endpoint}`, '--etcd-insecure'],
        readyTimeoutMs: 120_000,
      }),
    ),
  );
  for (const h of c.hosts) assert.ok(await waitSynced(h, `${h.name}: cluster synced`));
}

/** The suite's end: everything removed and nothing of truss left on any host, then the hosts stopped. */
async function removeAllThenStop(cluster: Cluster): Promise<void> {
  try {
    await assertRemovedEverything(cluster.hosts);
    await waitNoTrussLeftovers(cluster.hosts);
  } finally {
    await cluster.stop();
  }
}

/** docker network create --ipv6 with both subnets of `n`, the same on every host. */
async function createNet(hosts: readonly Host[], n: Net): Promise<void> {
  const args = ['-o', `truss.cluster=${n.name}`, ...(n.encrypt ? [] : ['-o', 'truss.encrypt=false'])];
  for (const h of hosts) {
    await ok(
      createTrussNetwork(h, [...args, '--ipv6', '--subnet', n.subnets[0], '--subnet', n.subnets[1], n.name]),
      `docker network create ${n.name} on ${h.name}`,
    );
  }
}

/** The container's global IPv6 address on a network. */
async function ip6Of(h: Host, ctr: string, net: string): Promise<string> {
  const fmt = `{{with index .NetworkSettings.Networks "${net}"}}{{.GlobalIPv6Address}}{{end}}`;
  const ip = await ok(h.docker(['inspect', '-f', fmt, ctr]), `inspect ${ctr}`);
  assert.ok(ip.includes(':'), `${h.name}/${ctr} has no IPv6 address on ${net}`);
  return ip;
}

/** busybox ping -6 from a container; `size` bytes of payload. */
const ping6 = (h: Host, ctr: string, ip: string, opts: { count?: number; size?: number } = {}) =>
  h.docker(
    ['exec', ctr, 'ping', '-6', '-c', String(opts.count ?? 3), '-i', '0.2', '-W', '2', ...sizeArg(opts.size), ip],
    30_000,
  );
const sizeArg = (size: number | undefined): string[] => (size === undefined ? [] : ['-s', String(size)]);

/** 20 pings 50 ms apart: the average RTT in ms. */
async function rttMs(h: Host, ctr: string, ip: string): Promise<number> {
  const out = await ok(h.docker(['exec', ctr, 'ping', '-c', '20', '-i', '0.05', '-W', '2', ip], 30_000), `ping ${ip}`);
  return Number(/min\/avg\/max = [\d.]+\/([\d.]+)\//.exec(out)?.[1]);
}

/**
 * When the first reply came, in ms after `t0`, of a ping every 50 ms from h/ctr to ip (10 s at
 * most), as a range: from the ping's own count (its start taken as the moment docker exec was
 * called: a little early) to the moment docker exec returned (a little late).
 */
async function firstReplyMs(h: Host, ctr: string, ip: string, t0: number): Promise<{ from: number; to: number }> {
  // the reader stops at the first reply; ping dies of SIGPIPE at its next line
  const script =
    'ping -i 0.05 -w 10 -W 1 "$1" | { while read -r l; do case "$l" in *seq=*) echo "$l"; exit 0;; esac; done; exit 1; }';
  const started = performance.now();
  const r = await h.docker(['exec', ctr, 'sh', '-c', script, 'sh', ip], 30_000);
  const to = performance.now() - t0;
  assert.equal(r.code, 0, `no reply from ${ip} within 10 s: ${r.stdout}${r.stderr}`);
  const seq = Number(/seq=(\d+)/.exec(r.stdout)?.[1]);
  const rtt = Number(/time=([\d.]+) ms/.exec(r.stdout)?.[1]);
  return { from: started - t0 + seq * 50 + rtt, to };
}
const span = (r: { from: number; to: number }): string => `${r.from.toFixed(0)}-${r.to.toFixed(0)} ms`;

/** Whether CIDR `inner` lies in `outer`. */
const within = (inner: string, outer: string): boolean => {
  const [a, b] = [parsePrefix(inner), parsePrefix(outer)];
  return a !== undefined && b !== undefined && prefixWithin(a, b);
};

/** The host's truss IPv6 routes (destinations). */
const v6Routes = async (h: Host): Promise<string[]> =>
  (await ok(h.exec(['ip', '-6', 'route', 'show', 'proto', '116']), 'ip -6 route'))
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '');

const mtuOf = (h: Host, ctr: string) => ok(h.docker(['exec', ctr, 'cat', '/sys/class/net/eth0/mtu']), `mtu of ${ctr}`);

/** The container's Ip6FragCreates: datagrams it had to fragment itself. */
async function fragCreates6(h: Host, ctr: string): Promise<number> {
  const snmp = await ok(h.docker(['exec', ctr, 'cat', '/proc/net/snmp6']), `snmp6 of ${ctr}`);
  return Number(/^Ip6FragCreates\s+(\d+)/m.exec(snmp)?.[1]);
}

/** Packets of a pcap (read in the underlay) that match a tcpdump filter. */
async function countIn(c: Cluster, file: string, filter: string): Promise<string[]> {
  const r = await c.underlay.exec(['tcpdump', '-r', file, '-n', filter]);
  assert.equal(r.code, 0, `tcpdump -r ${file} ${filter}: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l.trim() !== '');
}

/** ping6 and TCP over IPv6 between a and b (sinks), both ways; IPv4 TCP alongside. */
async function bothWays(a: Host, ctrA: string, b: Host, ctrB: string, net: string): Promise<void> {
  const [a6, b6] = [await ip6Of(a, ctrA, net), await ip6Of(b, ctrB, net)];
  await ok(ping6(a, ctrA, b6), `ping6 ${ctrA} -> ${ctrB}`);
  await ok(ping6(b, ctrB, a6), `ping6 ${ctrB} -> ${ctrA}`);
  await assertTcp(a, ctrA, b, ctrB, b6);
  await assertTcp(b, ctrB, a, ctrA, a6);
  await assertTcp(a, ctrA, b, ctrB, await containerIp(b, ctrB, net));
  await assertTcp(b, ctrB, a, ctrA, await containerIp(a, ctrA, net));
}

// ------------------------------------------------------------- 1. an IPv4 underlay

describe('IPv6 across hosts on dual-stack cluster networks (IPv4 underlay)', { timeout: 4 * 60_000 }, () => {
  // each its own hostname: truss's display name is the hostname, and two live hosts may not share one
  const cluster = clusterFixture({ hosts: ['x1', 'x2'], host: (name) => ({ hostname: name }), runScript: true });
  const x = (n: 1 | 2): Host => cluster.host(`x${n}`);

  before(async () => {
    await cluster.start();
    await startTruss(cluster, cluster.underlay.etcd.endpoint);
    await createNet(cluster.hosts, BLUE6);
    await createNet(cluster.hosts, GREEN6);
    await runContainer(x(1), { name: 'b1', network: BLUE6.name, cmd: SINK_CMD() });
    await runContainer(x(1), { name: 'g1', network: GREEN6.name, cmd: SINK_CMD() });
  });

  after(() => removeAllThenStop(cluster));

  it("the first container of x2 (in x2's block, known to x1 through etcd) answers ping6 from x1 within seconds, in both modes", async () => {
    for (const [net, ctr, from] of [
      [BLUE6, 'b2', 'b1'],
      [GREEN6, 'g2', 'g1'],
    ] as const) {
      const t0 = performance.now();
      await runContainer(x(2), { name: ctr, network: net.name, cmd: SINK_CMD() });
      const ran = performance.now();
      const ip = await ip6Of(x(2), ctr, net.name);
      assert.ok(prefixContains(parsePrefix(net.subnets[1]) as Prefix, parseIp(ip) as Ip), `${ip} in ${net.subnets[1]}`);
      // x2 claimed that block when the network was created (its host address): x1 routes it already
      const covering = (await v6Routes(x(1))).find(
        (r) => within(r, net.subnets[1]) && prefixContains(parsePrefix(r) as Prefix, parseIp(ip) as Ip),
      );
      assert.ok(covering, `x1 routes x2's block holding ${ip} before its first container runs`);
      const ms = await firstReplyMs(x(1), from, ip, ran);
      figures.push(
        `${net.name} (${net.encrypt ? 'WireGuard' : 'VXLAN'}): docker run of x2's first container ${(ran - t0).toFixed(0)} ms; ` +
          `its block (${covering}) routed by x1 since the network was created; first ping6 reply from x1 ${span(ms)} after the run returned`,
      );
    }
  });

  it('blue6 (WireGuard): ping6 and TCP over IPv6 both ways, IPv4 alongside; routes via trwg0', async () => {
    await bothWays(x(1), 'b1', x(2), 'b2', BLUE6.name);
    const b2 = await ip6Of(x(2), 'b2', BLUE6.name);
    const r = await ok(x(1).exec(['ip', '-6', 'route', 'show', 'proto', '116']), 'ip -6 route');
    assert.match(r, new RegExp(`^fd00:64::[0-9a-f:]*/122 dev ${WG_DEV}`, 'm'), r);
    const avg = await rttMs(x(1), 'b1', b2);
    figures.push(`blue6 (WireGuard, wireguard-go) ping6 x1 -> x2: avg ${avg.toFixed(3)} ms`);
  });

  it('green6 (VXLAN): ping6 and TCP over IPv6 both ways; IPv6 blocks via the VTEP link-local', async () => {
    await bothWays(x(1), 'g1', x(2), 'g2', GREEN6.name);
    const g2 = await ip6Of(x(2), 'g2', GREEN6.name);
    const route = await ok(x(1).exec(['ip', '-6', 'route', 'show', 'proto', '116', 'dev', VX_DEV]), 'ip -6 route');
    assert.match(route, /^fd00:96::[0-9a-f:]*\/122 via fe80::\S+ .*onlink/m, route);
    // the bridge answers for the whole block of x2 (64 proxy entries per peer block), for nothing of x1's own
    const proxies = (await ok(x(1).exec(['ip', '-6', 'neigh', 'show', 'proxy']), 'proxy entries')).split('\n');
    assert.ok(
      proxies.some((l) => l.startsWith(`${g2} dev trb`)),
      `x1 answers for ${g2}: ${proxies.slice(0, 3)}`,
    );
    const g1 = await ip6Of(x(1), 'g1', GREEN6.name);
    assert.ok(!proxies.some((l) => l.startsWith(`${g1} `)), `not for ${g1}, its own`);
    assert.equal(proxies.filter((l) => l.startsWith('fd00:96:')).length % 64, 0, 'whole blocks');
    const avg = await rttMs(x(1), 'g1', g2);
    figures.push(`green6 (VXLAN) ping6 x1 -> x2: avg ${avg.toFixed(3)} ms`);
  });

  it('the container MTU holds for IPv6: a full-size packet whole, 1400 bytes through, no fragment on the underlay', async () => {
    const cap = await cluster.underlay.pcap();
    try {
      for (const [net, from, to, want] of [
        [BLUE6, 'b1', 'b2', 1440],
        [GREEN6, 'g1', 'g2', 1450],
      ] as const) {
        assert.equal(await mtuOf(x(1), from), String(want), `${from}: container MTU on ${net.name}`);
        const ip = await ip6Of(x(2), to, net.name);
        const f0 = await fragCreates6(x(1), from);
        await ok(ping6(x(1), from, ip, { size: want - 48 }), `ping6 -s ${want - 48} on ${net.name}`);
        assert.equal(await fragCreates6(x(1), from), f0, `${net.name}: ${want}-byte packets leave ${from} whole`);
        await ok(ping6(x(1), from, ip, { size: 1400 }), `ping6 -s 1400 on ${net.name}`);
      }
    } finally {
      await cap.stop();
    }
    const file = await cap.stop();
    assert.deepEqual(await countIn(cluster, file, 'ip[6:2] & 0x3fff != 0 or ip6[6] == 44'), [], 'no fragment');
    const wg = await countIn(cluster, file, 'udp port 51820 and greater 1400');
    const vx = await countIn(cluster, file, 'udp port 4789 and greater 1400');
    assert.ok(wg.length >= 6 && vx.length >= 6, `full-size packets crossed in both modes (${wg.length}, ${vx.length})`);
    const inner = await countIn(cluster, file, 'udp port 4789');
    assert.ok(
      inner.some((l) => /IP6 fd00:96::/.test(l)),
      'VXLAN carries the IPv6 packets',
    );
  });

  it('a second container in the same block of x2 answers at once; the first TCP over IPv6 needs no retry', async () => {
    const t0 = performance.now();
    await runContainer(x(2), { name: 'b3', network: BLUE6.name, cmd: SINK_CMD() });
    const ran = performance.now();
    const ip = await ip6Of(x(2), 'b3', BLUE6.name);
    const ms = await firstReplyMs(x(1), 'b1', ip, ran);
    figures.push(
      `blue6: docker run of a second container on x2 ${(ran - t0).toFixed(0)} ms; first ping6 reply from x1 ${span(ms)} after`,
    );
    assert.ok((await tcpConnect(x(2), 'b3', await ip6Of(x(1), 'b1', BLUE6.name))).ok, 'TCP over IPv6 b3 -> b1');
  });
});

// ------------------------------------------------------------- 2. an IPv6-only underlay

describe('an IPv6-only underlay between two hosts: WireGuard and VXLAN, IPv4 and IPv6 inside', {
  timeout: 4 * 60_000,
}, () => {
  const cluster = clusterFixture({
    hosts: ['y1', 'y2'],
    host: (name) => ({ hostname: name }),
    underlay: { family: 6 },
    runScript: true,
  });
  const y = (n: 1 | 2): Host => cluster.host(`y${n}`);
  const BLUE: Net = { name: 'blue', subnets: ['198.18.64.0/20', 'fd00:64::/64'], encrypt: true };
  const GREEN: Net = { name: 'green', subnets: ['198.18.96.0/20', 'fd00:96::/64'], encrypt: false };

  before(async () => {
    await cluster.start();
    assert.equal(cluster.underlay.etcd.endpoint, `[${UNDERLAY_ADDRESS6}]:2379`);
    await startTruss(cluster, cluster.underlay.etcd.endpoint);
    await createNet(cluster.hosts, BLUE);
    await createNet(cluster.hosts, GREEN);
    await Promise.all(
      cluster.hosts.flatMap((h, i) => [
        runContainer(h, { name: `b${i + 1}`, network: BLUE.name, cmd: SINK_CMD() }),
        runContainer(h, { name: `g${i + 1}`, network: GREEN.name, cmd: SINK_CMD() }),
      ]),
    );
  });

  after(() => removeAllThenStop(cluster));

  it('truss advertises each host its IPv6 underlay address by itself; tunnel MTUs for an IPv6 underlay', async () => {
    for (const [h, peer] of [
      [y(1), y(2)],
      [y(2), y(1)],
    ] as const) {
      const want = peer.underlayAddress as string;
      assert.ok(want.includes(':'));
      const s = await waitFor(
        async () => {
          const c = await clusterStatus(h);
          const wg = c.peers.map((p) => p.endpoint);
          const vx = ((c as unknown as { vxlanPeers: { address: string }[] }).vxlanPeers ?? []).map((p) => p.address);
          return wg.includes(`[${want}]:51820`) && vx.includes(want) ? c : undefined;
        },
        20_000,
        { what: `${h.name}: ${peer.name} as WireGuard and VXLAN peer at ${want}` },
      );
      // WireGuard: 1500 - 40 - 8 - 32 = 1420, rounded down to 16 (its padding): 1408; VXLAN 1500 - 70
      assert.deepEqual([s.mtu, s.vxlanMtu], [1408, 1430], `${h.name}: MTUs on an IPv6 underlay`);
      assert.equal(await mtuOf(h, h === y(1) ? 'b1' : 'b2'), '1408');
      assert.equal(await mtuOf(h, h === y(1) ? 'g1' : 'g2'), '1430');
    }
    const r4 = await y(1).exec(['ip', '-4', 'addr', 'show', 'dev', 'eth-ul']);
    assert.doesNotMatch(r4.stdout, /inet /, 'y1 has no IPv4 address on the underlay');
  });

  it('WireGuard and VXLAN carry IPv4 and IPv6 both ways; the underlay carries IPv6 only', async () => {
    const cap = await cluster.underlay.pcap();
    try {
      for (const [net, c1, c2] of [
        [BLUE, 'b1', 'b2'],
        [GREEN, 'g1', 'g2'],
      ] as const) {
        await waitFor(async () => (await tcpConnect(y(1), c1, await ip6Of(y(2), c2, net.name))).ok, 20_000, {
          what: `${net.name}: y1 -> y2 over IPv6`,
        });
        await bothWays(y(1), c1, y(2), c2, net.name);
        await ok(
          ping6(y(1), c1, await ip6Of(y(2), c2, net.name), { size: (net.encrypt ? 1408 : 1430) - 48 }),
          'full size',
        );
      }
      const b2 = await ip6Of(y(2), 'b2', BLUE.name);
      figures.push(
        `IPv6 underlay, blue (WireGuard) ping6 y1 -> y2: avg ${(await rttMs(y(1), 'b1', b2)).toFixed(3)} ms`,
      );
      const g2 = await containerIp(y(2), 'g2', GREEN.name);
      figures.push(`IPv6 underlay, green (VXLAN) ping y1 -> y2: avg ${(await rttMs(y(1), 'g1', g2)).toFixed(3)} ms`);
    } finally {
      await cap.stop();
    }
    const file = await cap.stop();
    assert.deepEqual(await countIn(cluster, file, 'ip or arp'), [], 'no IPv4 on the underlay');
    const hosts = cluster.hosts.map((h) => h.underlayAddress as string);
    const wg = await countIn(cluster, file, `ip6 and udp port 51820 and src host ${hosts[0]} and dst host ${hosts[1]}`);
    const vx = await countIn(cluster, file, `ip6 and udp port 4789 and src host ${hosts[0]} and dst host ${hosts[1]}`);
    assert.ok(wg.length > 0 && vx.length > 0, `WireGuard (${wg.length}) and VXLAN (${vx.length}) over IPv6`);
    assert.deepEqual(await countIn(cluster, file, 'ip6[6] == 44'), [], 'no fragment');
    const routes = await ok(y(1).exec(['ip', 'route', 'show', 'proto', '116', 'dev', VX_DEV]), 'ip route');
    assert.match(routes, /^198\.18\.96\.\d+\/26 via inet6 fe80::\S+ .*onlink/m, 'IPv4 blocks via the VTEP link-local');
    const routes6 = await ok(y(1).exec(['ip', '-6', 'route', 'show', 'proto', '116', 'dev', VX_DEV]), 'ip -6 route');
    assert.match(routes6, /^fd00:96::[0-9a-f:]*\/122 via fe80::\S+ .*onlink/m, 'IPv6 blocks too');
  });
});

after(() => {
  if (figures.length > 0) printFigures(figures);
});
