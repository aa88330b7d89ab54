/**
 * Kernel tests (root) for IPv6: the RA guard (`bridge truss`, ra-guard.ts) against a real
 * router advertisement, IPv6 forwarding with the uplink's accept_ra kept working
 * (ipv6-forwarding.ts), and the link-local address truss predicts for the port policy
 * (core/link-local.ts) against the one the kernel gives the container.
 *
 *   r1 (sends RAs), v1 ── trb(A) 198.18.41.0/24, fd00:41::/64 ── host ── up0 (default route)
 *
 * The RA is sent by perl through a raw ICMPv6 socket (the kernel fills in the checksum).
 * Run: node --test src/dataplane/linux/ipv6.netns.ts
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { computeDesired, type DesiredKernel } from '../../core/desired.ts';
import { eui64LinkLocal } from '../../core/link-local.ts';
import type { LinuxDataplane } from './linux-dataplane.ts';
import {
  type Ctr,
  createScratch,
  testEndpoint as endpoint,
  joinContainer,
  listTestNamespaces,
  testNetwork as network,
  pingOk,
  randomId,
  simulatedHost,
  type TestNs,
} from './netns-testutil.ts';
import { normaliseNft } from './nft-read.ts';
import { renderRaGuard } from './ra-guard.ts';

const ROGUE_PREFIX = 'fd00:bad::';

/** One RA to ff02::1 out of ifindex: hop limit 255, router lifetime 1800 s, PIO L+A for prefix/64. */
const SEND_RA = `use strict;
use Socket qw(AF_INET6 SOCK_RAW IPPROTO_IPV6 inet_pton pack_sockaddr_in6);
my ($ifindex, $prefix) = @ARGV;
socket(my $s, AF_INET6, SOCK_RAW, 58) or die "socket: $!";
setsockopt($s, IPPROTO_IPV6, 18, pack("i", 255)) or die "IPV6_MULTICAST_HOPS: $!";
my $ra = pack("CCnCCnNN", 134, 0, 0, 64, 0, 1800, 0, 0);
my $pio = pack("CCCCNNN", 3, 4, 64, 0xc0, 86400, 14400, 0) . inet_pton(AF_INET6, $prefix);
my $dst = pack_sockaddr_in6(0, inet_pton(AF_INET6, "ff02::1"), $ifindex);
send($s, $ra . $pio, 0, $dst) or die "send: $!";
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('IPv6 (kernel)', () => {
  const scratch = createScratch();
  let host: TestNs;
  let dp: LinuxDataplane;
  let desired: DesiredKernel;
  const A = randomId();
  const ctr: Record<string, Ctr> = {};
  let r1: TestNs;
  let v1: TestNs;
  const eps = { r1: endpoint(A), v1: endpoint(A) };

  const sendRa = async (from: TestNs): Promise<void> => {
    const [eth0] = await from.ipJson<{ ifindex: number }[]>(['link', 'show', 'dev', 'eth0']);
    await from.must(['perl', '-e', SEND_RA, String(eth0?.ifindex), ROGUE_PREFIX]);
  };
  const v6State = async (s: TestNs): Promise<string> =>
    `${await s.must(['ip', '-6', 'addr', 'show'])}\n${await s.must(['ip', '-6', 'route', 'show'])}`;
  const sysctl = async (s: TestNs, key: string): Promise<string> => (await s.must(['sysctl', '-n', key])).trim();

  /** IPv6 forwarding off, router advertisements accepted on new links: Linux's defaults, set explicitly. */
  const startFrom = async (s: TestNs): Promise<void> => {
    const keys = ['all.forwarding=0', 'default.forwarding=0', 'default.accept_ra=1'];
    await s.must(['sysctl', '-q', '-w', ...keys.map((k) => `net.ipv6.conf.${k}`)]);
  };

  before(async () => {
    const h = await simulatedHost(scratch, {
      networks: [network(A, 41, { v6: true })],
      endpoints: Object.values(eps),
      prepare: async (fresh) => {
        // why: what a fresh namespace starts with depends on the host (net.core.devconf_inherit_init_net
        // 1 or 3 copies the host's IPv6 settings): set what the tests below start from
        await startFrom(fresh);
        // an uplink carrying the default routes, with accept_ra=1 and forwarding=0
        await fresh.must(
          ['ip', '-batch', '-'],
          'link add up0 type veth peer name up0p\nlink set up0p up\nlink set up0 up\naddr add 198.19.41.1/24 dev up0\nroute add default via 198.19.41.2\n' +
            'addr add fd00:419::1/64 dev up0 nodad\nroute add default via fd00:419::2\n',
        );
      },
    });
    ({ ns: host, dp, desired } = h);
    r1 = await scratch.ns('r1');
    v1 = await scratch.ns('v1');
    await startFrom(v1); // before eth0 arrives: it takes the namespace's defaults
    ctr.r1 = await joinContainer(host, r1, eps.r1, '198.18.41.2/24', '198.18.41.1', ['fd00:41::2/64', 'fd00:41::1']);
    ctr.v1 = await joinContainer(host, v1, eps.v1, '198.18.41.3/24', '198.18.41.1', ['fd00:41::3/64', 'fd00:41::1']);
  });

  it('precondition: without the guard, v1 accepts a router advertisement from r1 (SLAAC address and default route)', async () => {
    assert.equal(await sysctl(v1, 'net.ipv6.conf.eth0.accept_ra'), '1');
    for (let i = 0; i < 20 && !/fd00:bad:/.test(await v6State(v1)); i++) {
      await sendRa(r1);
      await sleep(250);
    }
    const state = await v6State(v1);
    assert.match(state, /fd00:bad:/, `the RA is valid and accepted when nothing drops it:\n${state}`);
    assert.match(state, /default via fe80:/, state);
    // forget it again: the next test starts clean
    await v1.must(['ip', 'link', 'set', 'eth0', 'down']);
    await v1.must(['ip', '-batch', '-'], 'link set eth0 up\naddr add fd00:41::3/64 dev eth0 nodad\n');
    await v1.must(['ip', '-6', 'route', 'replace', 'default', 'via', 'fd00:41::1']);
    await v1.must(['ip', 'route', 'replace', 'default', 'via', '198.18.41.1']);
    assert.doesNotMatch(await v6State(v1), /fd00:bad:/);
  });

  it('ensureFirewall installs bridge truss as rendered; an RA from r1 is dropped, v1 and the host take nothing', async () => {
    await dp.ensureFirewall(desired.firewall);
    const listed = await host.must(['nft', 'list', 'table', 'bridge', 'truss']);
    assert.deepEqual(normaliseNft(listed), normaliseNft(renderRaGuard()));
    assert.deepEqual(await dp.checkFirewall(desired.firewall), []);
    for (let i = 0; i < 4; i++) {
      await sendRa(r1);
      await sleep(250);
    }
    await sleep(1000);
    const state = await v6State(v1);
    assert.doesNotMatch(state, /fd00:bad:/, `v1 took the rogue prefix:\n${state}`);
    assert.doesNotMatch(state, /default via fe80:/, `v1 took r1 as a router:\n${state}`);
    assert.doesNotMatch(await v6State(host), /fd00:bad:/, 'the host took the rogue prefix');
    const counters = await host.must(['nft', 'list', 'table', 'bridge', 'truss']);
    assert.match(counters, /iifname "trv\*" icmpv6 type \{ nd-router-advert, nd-redirect \} drop/);
    // v6 between the two still works (ND and echo are not RAs)
    await r1.must(['ip', '-6', 'neigh', 'flush', 'all']);
    assert.ok(await pingOk(r1, 'fd00:41::3'), 'ping -6 r1 -> v1 after a neighbour flush');
  });

  it('drift: a deleted or emptied bridge truss is reported and repaired; removeFirewall deletes it, twice', async () => {
    await host.must(['nft', 'delete', 'table', 'bridge', 'truss']);
    assert.deepEqual(await dp.checkFirewall(desired.firewall), ['nft table bridge truss is missing']);
    await dp.ensureFirewall(desired.firewall);
    assert.deepEqual(await dp.checkFirewall(desired.firewall), []);
    await host.must(['nft', 'flush', 'chain', 'bridge', 'truss', 'prerouting']);
    assert.match((await dp.checkFirewall(desired.firewall))[0] ?? '', /bridge truss differs/);
    await dp.ensureFirewall(desired.firewall);
    await dp.removeFirewall();
    await dp.removeFirewall();
    assert.notEqual((await host.run(['nft', 'list', 'table', 'bridge', 'truss'])).code, 0);
  });

  it('ensureSysctls raises IPv6 forwarding and moves the uplink to accept_ra=2; the bridge keeps 0', async () => {
    assert.equal(await sysctl(host, 'net.ipv6.conf.all.forwarding'), '0');
    assert.equal(await sysctl(host, 'net.ipv6.conf.up0.accept_ra'), '1');
    await dp.ensureSysctls(desired.firewall);
    assert.equal(await sysctl(host, 'net.ipv6.conf.all.forwarding'), '1');
    assert.equal(await sysctl(host, 'net.ipv6.conf.up0.forwarding'), '1');
    assert.equal(await sysctl(host, 'net.ipv6.conf.up0.accept_ra'), '2', 'the uplink keeps accepting RAs');
    const br = desired.bridges[0]?.name as string;
    assert.equal(await sysctl(host, `net.ipv6.conf.${br}.accept_ra`), '0', 'the bridge never accepts RAs');
    // routed v6 now works: container -> the host's uplink address
    assert.ok(await pingOk(v1, 'fd00:419::1'), 'ping -6 v1 -> the host uplink address');
  });

  it("the link-local address truss polices is the one the kernel gave the container's eth0", async () => {
    for (const [name, e] of Object.entries(eps)) {
      const s = name === 'r1' ? r1 : v1;
      const out = await s.must(['ip', '-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'link']);
      const ll = /inet6 (fe80::[0-9a-f:]+)\//.exec(out)?.[1];
      assert.equal(ll, eui64LinkLocal(e.mac), `${name}: ${out}`);
      const policyAddresses = computeDesired(
        [{ ...network(A, 41, { v6: true }), ingress: [] }],
        [{ ...e, sandboxKey: '/var/run/docker/netns/x' }],
      ).policies[0]?.addresses;
      assert.ok(policyAddresses?.includes(ll as string), `policy addresses ${policyAddresses}`);
    }
  });
});

describe('IPv6 (kernel) cleanup', () => {
  it('leaves no test namespace behind', async () => assert.deepEqual(await listTestNamespaces(), []));
});
