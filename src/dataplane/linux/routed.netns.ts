/**
 * Kernel tests (root) with real traffic for routed mode (core/routed.ts): no bridge, each
 * container's veth a point-to-point link in its network's interface group, carrying the gateway;
 * host routes and unreachable subnets (proto 116); the container's on-link neighbours reached
 * through the gateway by the Join static routes; isolation by iifgroup/oifgroup; reverse-path
 * anti-spoofing. dockerd's FORWARD DROP and br_netfilter on, as on a Docker host.
 *
 *   r1a,r1b ── R1 routed 198.18.41.0/24, fd00:41::/64
 *   r2a     ── R2 routed 198.18.42.0/24
 *   ba      ── B  bridge 198.18.43.0/24
 *
 * Run: TRUSS_TEST_NS_PREFIX=routed- node --test src/dataplane/linux/routed.netns.ts
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { EndpointSpec, NetworkSpec } from '../../core/model.ts';
import { routedGroup, routedStaticRoutes } from '../../core/routed.ts';
import { planLinks } from '../../reconcile/plan.ts';
import type { LinuxDataplane } from './linux-dataplane.ts';
import {
  type Ctr,
  createScratch,
  testEndpoint as endpoint,
  listTestNamespaces,
  testNetwork as network,
  pingOk as ping,
  randomId,
  type SimulatedHost,
  serveHi,
  simulatedHost,
  type TestNs,
  tcpHi as tcp,
} from './netns-testutil.ts';

const routed = (n: NetworkSpec): NetworkSpec => ({ ...n, mode: 'routed', options: { 'truss.mode': 'routed' } });

describe('routed mode (kernel)', () => {
  const scratch = createScratch();
  let h: SimulatedHost;
  let host: TestNs;
  let dp: LinuxDataplane;
  const [R1, R2, B] = [randomId(), randomId(), randomId()];
  const networks = [routed(network(R1, 41, { v6: true })), routed(network(R2, 42)), network(B, 43)];
  const eps: Record<string, EndpointSpec> = {};
  const ctr: Record<string, Ctr> = {};
  const c = (name: string): Ctr => ctr[name] as Ctr;

  /** Docker's Join: the peer in, addresses, default routes, and the Join's static routes. */
  async function join(role: string, net: NetworkSpec, ip: string, v6?: string): Promise<void> {
    const e = eps[role] as EndpointSpec;
    const gw4 = (net.ipv4[0]?.gateway ?? '').split('/')[0] as string;
    const gw6 = (net.ipv6[0]?.gateway ?? '').split('/')[0] as string;
    ctr[role] = await h.join(role, e, ip, gw4, v6 ? [v6, gw6] : undefined);
    const lines = routedStaticRoutes(net).map((r) =>
      r.nextHop === undefined ? `route add ${r.destination} dev eth0` : `route add ${r.destination} via ${r.nextHop}`,
    );
    if (lines.length > 0) await c(role).ns.must(['ip', '-batch', '-'], `${lines.join('\n')}\n`);
  }

  before(async () => {
    const [n1, n2, nb] = networks as [NetworkSpec, NetworkSpec, NetworkSpec];
    eps.r1a = { ...endpoint(R1), ipv4: '198.18.41.2/24', ipv6: 'fd00:41::2/64' };
    eps.r1b = { ...endpoint(R1), ipv4: '198.18.41.3/24', ipv6: 'fd00:41::3/64' };
    eps.r2a = { ...endpoint(R2), ipv4: '198.18.42.2/24' };
    eps.ba = { ...endpoint(B), ipv4: '198.18.43.2/24' };
    h = await simulatedHost(scratch, { networks, endpoints: Object.values(eps), dockerd: 'nf-on' });
    ({ ns: host, dp } = h);
    for (const o of h.desired.routes) await dp.ensureRoutedRoutes(o);
    await h.ensureFirewall();
    await join('r1a', n1, '198.18.41.2/24', 'fd00:41::2/64');
    await join('r1b', n1, '198.18.41.3/24', 'fd00:41::3/64');
    await join('r2a', n2, '198.18.42.2/24');
    await join('ba', nb, '198.18.43.2/24');
    for (const name of ['r1a', 'r1b', 'r2a', 'ba']) scratch.proc(serveHi(c(name).ns));
  });

  it('no bridge for a routed network; host ends in its group, carrying its gateway; links, routes, firewall check clean', async () => {
    assert.deepEqual(
      h.desired.bridges.map((b) => b.networkId),
      [B],
    );
    const links = await dp.listLinks();
    // the peers are in the "containers" now (the endpoints here are not marked joined)
    const problems = planLinks(h.desired, links).problems.filter((p) => !p.startsWith('veth peer '));
    assert.deepEqual(problems, []);
    const r1a = links.find((l) => l.name === eps.r1a?.hostVeth);
    assert.equal(r1a?.master, undefined);
    assert.equal(r1a?.group, routedGroup(R1));
    assert.deepEqual([...(r1a?.addresses ?? [])].sort(), ['198.18.41.1/32', 'fd00:41::1/128']);
    assert.deepEqual((await dp.checkRoutedRoutes(h.desired.routes)).problems, []);
    assert.deepEqual(await dp.checkFirewall(h.desired.firewall), []);
    const routes = await host.must(['ip', 'route', 'show', 'proto', '116']);
    assert.match(routes, /unreachable 198\.18\.41\.0\/24/);
    assert.match(routes, new RegExp(`198\\.18\\.41\\.2 dev ${eps.r1a?.hostVeth}`));
  });

  it('same network: ping and TCP (v4 and v6) through the host end; the gateway answers', async () => {
    const results = await Promise.all([
      ping(c('r1a'), c('r1b').ip),
      tcp(c('r1a'), c('r1b').ip),
      ping(c('r1b'), c('r1a').ip6 as string),
      tcp(c('r1b'), c('r1a').ip6 as string),
      ping(c('r1a'), '198.18.41.1'),
      ping(c('r1a'), 'fd00:41::1'),
      ping(host, c('r1a').ip),
      ping(host, c('r1a').ip6 as string),
    ]);
    assert.deepEqual(results, [true, true, true, true, true, true, true, true]);
  });

  it('across networks (routed-routed, routed-bridge): dropped both ways', async () => {
    const results = await Promise.all([
      tcp(c('r1a'), c('r2a').ip),
      tcp(c('r2a'), c('r1a').ip),
      tcp(c('r1a'), c('ba').ip),
      tcp(c('ba'), c('r1a').ip),
      ping(c('ba'), c('r2a').ip),
    ]);
    assert.deepEqual(results, [false, false, false, false, false]);
  });

  it('an address of the subnet without an endpoint is unreachable here, never routed out', async () => {
    for (const dst of ['198.18.41.99', 'fd00:41::99']) {
      const r = await host.run(['ip', 'route', 'get', dst]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /No route to host|unreachable/i);
    }
  });

  it('spoofed sources (another address, a neighbour’s address, v4 and v6) are dropped by the reverse-path check', async () => {
    const a = c('r1a').ns;
    await a.must(['ip', 'addr', 'add', '198.18.41.77/32', 'dev', 'eth0']);
    await a.must(['ip', 'addr', 'add', 'fd00:41::77/128', 'dev', 'eth0', 'nodad']);
    const spoof = (src: string, dst: string) =>
      a.run(['/usr/bin/busybox', 'ping', ...(dst.includes(':') ? ['-6'] : []), '-c1', '-W1', '-I', src, dst]);
    const results = await Promise.all([
      spoof('198.18.41.77', c('r1b').ip),
      spoof('198.18.42.2', '198.18.41.1'),
      spoof('fd00:41::77', c('r1b').ip6 as string),
      spoof('fd00:41::3', 'fd00:41::1'),
    ]);
    assert.deepEqual(
      results.map((r) => r.code === 0),
      [false, false, false, false],
    );
    assert.equal(await ping(c('r1a'), c('r1b').ip), true, 'its own address still works');
  });

  it('a host route is the veth’s: made in its batch, a lost one is drift of the link, repaired by its ensure', async () => {
    const e = eps.r1b as EndpointSpec;
    await host.must(['ip', 'route', 'del', '198.18.41.3/32', 'dev', e.hostVeth, 'proto', '116']);
    const problems = planLinks(h.desired, await dp.listLinks()).problems.filter((p) => !p.startsWith('veth peer '));
    assert.deepEqual(problems, [`veth ${e.hostVeth} lacks its host route(s) 198.18.41.3/32`]);
    assert.equal(await ping(c('r1a'), c('r1b').ip), false, 'no route, no reach');
    const v = h.desired.veths.find((x) => x.name === e.hostVeth);
    assert.ok(v);
    await dp.ensureVeth(v);
    assert.deepEqual(
      planLinks(h.desired, await dp.listLinks()).problems.filter((p) => !p.startsWith('veth peer ')),
      [],
    );
    assert.equal(await ping(c('r1a'), c('r1b').ip), true, 'repaired');
  });

  it('removal: routes and host ends go; the subnet route by name', async () => {
    const e = eps.r2a as EndpointSpec;
    await dp.removeVeth(e.hostVeth);
    await dp.removeRoutedRoutes('198.18.42.0/24');
    await dp.removeRoutedRoutes('198.18.42.0/24'); // gone = success
    const left = await host.must(['ip', 'route', 'show', 'proto', '116']);
    assert.doesNotMatch(left, /198\.18\.42\./);
  });
});

describe('routed (kernel) cleanup', () => {
  it('leaves no test namespace behind', async () => assert.deepEqual(await listTestNamespaces(), []));
});
