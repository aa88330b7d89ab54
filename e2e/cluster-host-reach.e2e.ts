/**
 * The host reaches containers on other hosts (issue 17, docs/cluster.md#the-host-address), the
 * user's way: two simulated hosts a and b, truss started through scripts/run.sh with only
 * `--store etcd://... --etcd-insecure`; an encrypted (WireGuard) and an unencrypted (VXLAN)
 * cluster network on both. Host a runs no container on them: a health check from a's own
 * namespace (not a container) reaches a container on b over each network, from a's host address
 * (b's conntrack shows it), under strict reverse-path filtering on both hosts; b's port policy
 * applies to it (refused port, allowed port); a's traffic to its own container keeps the bridge; a
 * restart of truss keeps a's host address; and `docker network rm` releases it in etcd.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inCidr } from './harness/cidr.ts';
import { clusterFixture } from './harness/cluster.ts';
import { nodeIdOf, waitSynced } from './harness/cluster-state.ts';
import { containerIp, createClusterNetwork, removeContainers, runContainer } from './harness/containers.ts';
import { etcdRecords } from './harness/etcd-keys.ts';
import { median, printFigures } from './harness/figures.ts';
import type { Host } from './harness/host.ts';
import { assertRemovedEverything, waitNoTrussLeftovers } from './harness/leftovers.ts';
import { msUntilConnects, type NetnsRef, nsTcpConnect } from './harness/netns-tcp.ts';
import { serverSaw } from './harness/traffic.ts';
import { UNDERLAY_ADDRESS } from './harness/underlay.ts';
import { waitFor } from './harness/wait.ts';

const BLUE = { name: 'blue', subnet: '198.18.64.0/20', dev: 'trwg0', opts: [] as string[] };
const GREEN = { name: 'green', subnet: '198.18.96.0/20', dev: 'trvx0', opts: ['-o', 'truss.encrypt=false'] };
const NETS = [BLUE, GREEN] as const;
type Net = (typeof NETS)[number];
const OPEN = 7000;
const CLOSED = 7001;
/** a sink (traffic.ts tsink) on both ports */
const SINKS = ['sh', '-c', `nc -ll -p ${OPEN} -e /bin/tsink & nc -ll -p ${CLOSED} -e /bin/tsink & wait`];

// each host its own hostname: truss's display name, which two live hosts may not share
const cluster = clusterFixture({ hosts: ['a', 'b'], host: (n) => ({ hostname: `reach-${n}` }), runScript: true });
const a = (): Host => cluster.host('a');
const b = (): Host => cluster.host('b');
const ns = (h: Host): NetnsRef => ({ path: h.netnsPath });
const sink = (n: Net): string => `s-${n.name}`;
const figures: string[] = [];
/** the sink containers' addresses on b, by network */
const ips = new Map<string, string>();

interface HostAddress {
  readonly cluster: string;
  readonly dev: string;
  readonly address: string;
}
const hostAddresses = async (h: Host): Promise<HostAddress[]> =>
  ((await h.trussStatus()) as { cluster?: { hostAddresses?: HostAddress[] } }).cluster?.hostAddresses ?? [];
const hostAddressOf = async (h: Host, n: Net): Promise<string> =>
  waitFor(async () => (await hostAddresses(h)).find((x) => x.cluster === n.name)?.address, 15_000, {
    what: `${h.name}'s host address on ${n.name} in truss status`,
  });

async function ok(r: Promise<{ code: number; stderr: string; stdout: string }>, what: string): Promise<string> {
  const x = await r;
  assert.equal(x.code, 0, `${what}: ${x.stderr}${x.stdout}`);
  return x.stdout.trim();
}

/** One TCP round trip from a's own namespace to b's sink on `port`. */
const fromHostA = (n: Net, port: number, timeoutS = 2) =>
  nsTcpConnect(ns(a()), ips.get(n.name) as string, port, timeoutS);

before(async () => {
  await cluster.start();
  const etcd = `etcd://${cluster.underlay.etcd.endpoint}`;
  await Promise.all(
    cluster.hosts.map(async (h) => {
      await ok(h.exec(['ip', 'route', 'replace', 'default', 'via', UNDERLAY_ADDRESS]), 'default route');
      // strict reverse-path filtering on every link: the host address's path is symmetric, both ways
      await ok(h.exec(['sysctl', '-q', '-w', 'net.ipv4.conf.all.rp_filter=1']), 'rp_filter');
      await h.startTruss({ runScript: true, extraArgs: ['--store', etcd, '--etcd-insecure'], readyTimeoutMs: 120_000 });
    }),
  );
  for (const h of cluster.hosts) assert.ok(await waitSynced(h, 'cluster'), `${h.name} synced`);
  for (const n of NETS) {
    await ok(createClusterNetwork(b(), n.name, n.subnet, n.opts), `${n.name} on b`);
    await runContainer(b(), { name: sink(n), network: n.name, cmd: SINKS });
    ips.set(n.name, await containerIp(b(), sink(n), n.name));
  }
});

after(async () => {
  await cluster.stop();
  printFigures(figures);
});

describe('the host reaches containers on other hosts', { timeout: 170_000 }, () => {
  it('1. a host with no container on the network reaches a container on another host, from its host address', async () => {
    for (const n of NETS) {
      await ok(createClusterNetwork(a(), n.name, n.subnet, n.opts), `${n.name} on a`);
      const created = performance.now();
      const ip = ips.get(n.name) as string;
      const ms = await msUntilConnects(ns(a()), ip, OPEN, created, 15_000, 200);
      assert.ok(ms !== undefined, `a -> b/${sink(n)} (${ip}:${OPEN}) over ${n.name} never connected`);
      figures.push(
        `${n.name} (${n.dev}): host a -> container on b, first TCP round trip ${ms} ms after network create on a`,
      );
      const addr = await hostAddressOf(a(), n);
      assert.ok(inCidr(addr, n.subnet), `${addr} in ${n.subnet}`);
      // on the device of the network's mode, and the source of the route to b's block
      const dev = await ok(a().exec(['ip', '-j', 'addr', 'show', 'dev', n.dev]), `ip addr ${n.dev}`);
      assert.ok(dev.includes(`"local":"${addr}","prefixlen":32`), `${addr}/32 on ${n.dev}: ${dev}`);
      const [route] = JSON.parse(await ok(a().exec(['ip', '-j', 'route', 'get', ip]), 'route get')) as {
        dev: string;
        prefsrc: string;
      }[];
      assert.deepEqual([route?.dev, route?.prefsrc], [n.dev, addr]);
      const r = await fromHostA(n, OPEN);
      assert.ok(r.ok, `a -> ${ip}:${OPEN}: ${r.output}`);
      assert.ok(await serverSaw(b(), sink(n), r.token), 'the sink recorded the token');
      // b saw a's host address as the source (not a's underlay address)
      const ct = await ok(b().exec(['conntrack', '-L', '-p', 'tcp', '--dport', String(OPEN), '-d', ip]), 'conntrack');
      assert.match(ct, new RegExp(`src=${addr.replaceAll('.', '\\.')} dst=${ip.replaceAll('.', '\\.')}`), ct);
      const times: number[] = [];
      for (let i = 0; i < 10; i++) {
        const t0 = performance.now();
        assert.ok((await fromHostA(n, OPEN)).ok);
        times.push(performance.now() - t0);
      }
      figures.push(
        `${n.name} (${n.dev}): host a -> container on b, TCP connect + round trip: median ${median(times).toFixed(1)} ms ` +
          `of 10 (incl. nsenter + busybox nc start, ~5 ms)`,
      );
    }
    for (const h of cluster.hosts) {
      const { kernel } = await h.trussStatus();
      // (lookedAt, when present, only says how old the listing behind the verdict is)
      assert.deepEqual(
        { inSync: kernel.inSync, problems: kernel.problems },
        { inSync: true, problems: [] },
        `${h.name}: the kernel as truss wants it`,
      );
    }
  });

  it("2. b's port policy applies to host a's traffic: a port it does not allow is refused, an allowed one passes", async () => {
    for (const n of NETS) {
      await ok(b().truss.cli(['policy', 'set', n.name, '--ingress', `tcp/${OPEN}`]), `policy set ${n.name} on b`);
      try {
        const refused = await fromHostA(n, CLOSED);
        assert.equal(refused.ok, false, `a -> ${sink(n)}:${CLOSED} must be refused: ${refused.output}`);
        assert.equal(await serverSaw(b(), sink(n), refused.token), false, 'the sink saw nothing of it');
        const allowed = await fromHostA(n, OPEN);
        assert.ok(allowed.ok, `a -> ${sink(n)}:${OPEN} allowed: ${allowed.output}`);
      } finally {
        await ok(b().truss.cli(['policy', 'clear', n.name]), `policy clear ${n.name} on b`);
      }
      await waitFor(async () => (await fromHostA(n, CLOSED)).ok, 5000, { what: `a -> :${CLOSED} after policy clear` });
    }
  });

  it("3. host a's traffic to its own container is unchanged: the bridge, from the gateway", async () => {
    await runContainer(a(), { name: 'local', network: BLUE.name, cmd: SINKS });
    try {
      const ip = await containerIp(a(), 'local', BLUE.name);
      const [route] = JSON.parse(await ok(a().exec(['ip', '-j', 'route', 'get', ip]), 'route get')) as {
        dev: string;
        prefsrc: string;
      }[];
      assert.ok(route?.dev.startsWith('trb'), `a's own container via its bridge: ${JSON.stringify(route)}`);
      assert.equal(route?.prefsrc, '198.18.64.1', 'from the gateway, as before');
      const r = await nsTcpConnect(ns(a()), ip, OPEN, 2);
      assert.ok(r.ok, `a -> its own container: ${r.output}`);
    } finally {
      await removeContainers(a(), ['local']);
    }
  });

  it('4. a restart of truss keeps the host addresses', async () => {
    const before = await hostAddresses(a());
    assert.equal(before.length, 2);
    await a().restartTruss();
    assert.ok(await waitSynced(a(), 'after restart'));
    await waitFor(async () => JSON.stringify(await hostAddresses(a())) === JSON.stringify(before), 15_000, {
      what: 'the same host addresses after the restart',
    });
    for (const n of NETS) assert.ok((await fromHostA(n, OPEN)).ok, `a -> b over ${n.name} after the restart`);
  });

  it('5. docker network rm releases the host address claim in etcd', async () => {
    const claims = async () =>
      [
        ...(
          await etcdRecords<{ owner?: string }>(
            cluster.underlay,
            cluster.underlay.etcd.url,
            `/truss/v2/addrs/${nodeIdOf(a())}/`,
          )
        ).values(),
      ].filter((c) => c.owner === 'truss:host').length;
    assert.equal(await claims(), 2, "a's two host address claims");
    await ok(a().docker(['network', 'rm', BLUE.name]), 'network rm blue on a');
    assert.equal(await claims(), 1, "blue's released with the leave");
    await assertRemovedEverything(cluster.hosts);
    assert.equal(await claims(), 0);
    await waitNoTrussLeftovers(cluster.hosts);
  });
});
