/**
 * IPv6 end to end: one simulated host ("ip6", its own dockerd 20.10, truss), dual-stack truss
 * networks (`--ipv6 --subnet 198.18.x.0/24 --subnet fd00:x::/64`), real containers, real
 * traffic. IPv6-only networks (empty IPv4Data) need Docker 28; they are covered by the fixture
 * replay and unit tests (test/replay.test.ts, nft.test.ts).
 *
 * The host has an "outside" (outside.ts) with a v6 link too and no route back to the
 * container subnets, so a v6 reply from outside proves masquerade. The outside is created
 * before any truss network, so the test also sees truss raise IPv6 forwarding in the host and
 * move the uplink's accept_ra from 1 to 2 (ipv6-forwarding.ts).
 *
 * Router advertisements are sent from inside a container's network namespace with perl (raw
 * ICMPv6 socket; the kernel fills in the checksum) under nsenter: the image has no tool for it.
 * The positive control removes the RA guard table and shows the very same RA is accepted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { captureSyns } from './harness/capture.ts';
import { containerIp, containerPid, runContainer } from './harness/containers.ts';
import { run } from './harness/exec.ts';
import { type Host, startHost } from './harness/host.ts';
import { IMAGE } from './harness/image.ts';
import { assertNoTrussLeftovers, nftTableExists } from './harness/leftovers.ts';
import { MODES, modeOpts, modeTitle } from './harness/modes.ts';
import { enterNetns, type NetnsRef, nsPing, nsTcpConnect } from './harness/netns-tcp.ts';
import { createOutside, OUTSIDE_PORT, type Outside } from './harness/outside.ts';
import { serverSaw } from './harness/traffic.ts';
import { sleep, waitFor } from './harness/wait.ts';

const SRV_CMD = ['sh', '-c', 'nc -ll -p 80 -e /bin/tsink & nc -ll -p 8080 -e /bin/tsink & wait'];
const HOST_UPLINK6 = 'fd00:250::1';
const OUTSIDE6 = 'fd00:250::2';
/** The prefix the rogue router advertisement announces. */
const ROGUE_PREFIX = 'fd00:bad::';

/**
 * Sends one router advertisement out of `ifname` to ff02::1 (hop limit 255, router lifetime
 * 1800 s, a prefix option with L and A set: SLAAC for ROGUE_PREFIX/64). argv: ifindex prefix.
 */
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

let host: Host;
let outside: Outside;

const trussNet = async (name: string, args: readonly string[]): Promise<void> => {
  const r = await host.docker(['network', 'create', '-d', 'truss', '--ipam-driver', 'truss', ...args, name]);
  assert.equal(r.code, 0, `docker network create ${name}: ${r.stderr}`);
};

/** The container's global IPv6 address on a network ('' if none). */
async function ip6Of(ctr: string, net: string): Promise<string> {
  const fmt = `{{with index .NetworkSettings.Networks "${net}"}}{{.GlobalIPv6Address}}{{end}}`;
  const r = await host.docker(['inspect', '-f', fmt, ctr]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

const nsOf = async (ctr: string): Promise<{ readonly pid: number }> => ({ pid: await containerPid(host, ctr) });
const hostNs = (): NetnsRef => ({ path: host.netnsPath });
const inNs = (ns: NetnsRef, argv: readonly string[]) => run(enterNetns(ns, argv), { timeoutMs: 30_000 });

/** `ip -6 addr` and `ip -6 route` of eth0 inside a namespace, as text. */
async function v6State(ns: NetnsRef): Promise<string> {
  const a = await inNs(ns, ['ip', '-6', 'addr', 'show']);
  const r = await inNs(ns, ['ip', '-6', 'route', 'show']);
  return `${a.stdout}\n${r.stdout}`;
}

async function sysctl(ns: NetnsRef, key: string): Promise<string> {
  return (await inNs(ns, ['sysctl', '-n', key])).stdout.trim();
}

async function sendRa(from: NetnsRef): Promise<void> {
  const link = await inNs(from, ['ip', '-j', 'link', 'show', 'dev', 'eth0']);
  const ifindex = (JSON.parse(link.stdout) as { ifindex: number }[])[0]?.ifindex;
  assert.ok(ifindex, `no eth0: ${link.stderr}`);
  const r = await inNs(from, ['perl', '-e', SEND_RA, String(ifindex), ROGUE_PREFIX]);
  assert.equal(r.code, 0, `sending the RA failed: ${r.stderr}`);
}

describe('truss IPv6 against a real dockerd', { timeout: 10 * 60_000 }, () => {
  before(async () => {
    host = await startHost('ip6');
    await host.startTruss({
      debug: true,
      defaultPools: '198.18.160.0/20:24,fd00:6f::/48:64',
      extraArgs: ['--resync-seconds', '3600'],
    });
    outside = await createOutside(host);
    // a v6 uplink too; the outside has no route back to fd00:6x::/64
    await run(['nsenter', `--net=${host.netnsPath}`, 'ip', 'addr', 'add', `${HOST_UPLINK6}/64`, 'dev', 'e2eout0']);
    await run(['nsenter', `--net=${outside.netnsPath}`, 'ip', 'addr', 'add', `${OUTSIDE6}/64`, 'dev', 'e2eout1']);
    await run([
      'nsenter',
      `--net=${host.netnsPath}`,
      'ip',
      '-6',
      'route',
      'replace',
      'default',
      'via',
      OUTSIDE6,
      'dev',
      'e2eout0',
    ]);
    await trussNet('d1', ['--ipv6', '--subnet', '198.18.61.0/24', '--subnet', 'fd00:61::/64']);
    await trussNet('d2', ['--ipv6', '--subnet', '198.18.62.0/24', '--subnet', 'fd00:62::/64']);
    await trussNet('dp', [
      '--ipv6',
      '--subnet',
      '198.18.63.0/24',
      '--subnet',
      'fd00:63::/64',
      '-o',
      'truss.ingress=tcp/80',
    ]);
    await Promise.all([
      runContainer(host, { name: 'a1', network: 'd1', cmd: SRV_CMD }),
      runContainer(host, { name: 'a2', network: 'd1' }),
      runContainer(host, { name: 'b1', network: 'd2', cmd: SRV_CMD }),
      runContainer(host, { name: 'srv', network: 'dp', cmd: SRV_CMD }),
      runContainer(host, { name: 'cli', network: 'dp' }),
    ]);
  });

  after(async () => {
    await host?.stop();
  });

  it('1. dual stack: v4 and v6 addresses, v6 gateway on the bridge, ping -6 and TCP over v6 between containers', async () => {
    const [a1, a2] = [await ip6Of('a1', 'd1'), await ip6Of('a2', 'd1')];
    assert.match(a1, /^fd00:61::/, 'a1 has an address from the v6 pool');
    assert.match(a2, /^fd00:61::/);
    assert.match(await containerIp(host, 'a1', 'd1'), /^198\.18\.61\./, 'and one from the v4 pool');
    const routes = await inNs(await nsOf('a2'), ['ip', '-6', 'route', 'show', 'default']);
    assert.match(
      routes.stdout,
      /default via fd00:61::1 dev eth0/,
      `the v6 default route is the gateway: ${routes.stdout}`,
    );
    const a2ns = await nsOf('a2');
    assert.ok(await nsPing(a2ns, a1), 'ping -6 a2 -> a1');
    assert.ok(await nsPing(a2ns, 'fd00:61::1'), 'ping -6 a2 -> gateway (answered at once: nodad)');
    const tcp = await nsTcpConnect(a2ns, a1, 80);
    assert.ok(tcp.ok, `TCP over v6 a2 -> [a1]:80: ${tcp.output}`);
    assert.ok(await serverSaw(host, 'a1', tcp.token), 'a1 recorded the token');
    assert.ok((await nsTcpConnect(hostNs(), a1, 8080)).ok, 'host -> [a1]:8080 over v6 (open network)');
  });

  it('1b. --ipv6 without --subnet: both pools come from truss default pools, v6 traffic flows', async () => {
    await trussNet('d3', ['--ipv6']);
    try {
      await runContainer(host, { name: 'c1', network: 'd3', cmd: SRV_CMD });
      const c1 = await ip6Of('c1', 'd3');
      assert.match(c1, /^fd00:6f:/, `c1's v6 address comes from the default v6 pool fd00:6f::/48: ${c1}`);
      assert.match(await containerIp(host, 'c1', 'd3'), /^198\.18\.16[0-9]\./);
      assert.ok((await nsTcpConnect(hostNs(), c1, 80)).ok, 'host -> [c1]:80');
    } finally {
      await host.docker(['rm', '-f', 'c1']);
      await host.docker(['network', 'rm', 'd3']);
    }
  });

  it('2. neighbour discovery: first contact after flushing the neighbour table works', async () => {
    const a2ns = await nsOf('a2');
    const a1 = await ip6Of('a1', 'd1');
    await inNs(a2ns, ['ip', '-6', 'neigh', 'flush', 'all']);
    await inNs(hostNs(), ['ip', '-6', 'neigh', 'flush', 'all']);
    const tcp = await nsTcpConnect(a2ns, a1, 80);
    assert.ok(tcp.ok, `TCP after neigh flush: ${tcp.output}`);
    const neigh = await inNs(a2ns, ['ip', '-6', 'neigh', 'show', a1]);
    assert.match(neigh.stdout, /lladdr/, `a1 was resolved by ND: ${neigh.stdout}`);
  });

  it('3. IPv6 forwarding raised in the host, the uplink kept accepting RAs (accept_ra 1 -> 2), v6 masqueraded out', async () => {
    assert.equal(await sysctl(hostNs(), 'net.ipv6.conf.all.forwarding'), '1');
    assert.equal(await sysctl(hostNs(), 'net.ipv6.conf.e2eout0.accept_ra'), '2', 'uplink keeps accepting RAs');
    const cap = await outside.capture(`ip6 and tcp dst port ${OUTSIDE_PORT}`);
    let sources: string[];
    let ok = false;
    try {
      ok = (await nsTcpConnect(await nsOf('a2'), OUTSIDE6, OUTSIDE_PORT, 3)).ok;
    } finally {
      sources = await cap.stop();
    }
    assert.ok(ok, 'a2 -> outside over v6 gets an answer (no route back: only masquerade makes that work)');
    assert.ok(sources.length > 0 && sources.every((s) => s === HOST_UPLINK6), `sources seen outside: ${sources}`);
  });

  it('4. two v6 networks are isolated from each other (ping and TCP, both ways)', async () => {
    const [a1, b1] = [await ip6Of('a1', 'd1'), await ip6Of('b1', 'd2')];
    const [a2ns, b1ns] = [await nsOf('a2'), await nsOf('b1')];
    assert.equal(await nsPing(a2ns, b1, 2), false, 'ping -6 d1 -> d2 must fail');
    assert.equal(await nsPing(b1ns, a1, 2), false, 'ping -6 d2 -> d1 must fail');
    const cap = await captureSyns(b1ns.pid, [80], 6);
    let tcp: Awaited<ReturnType<typeof nsTcpConnect>>;
    try {
      tcp = await nsTcpConnect(a2ns, b1, 80, 2);
    } finally {
      const counts = await cap.stop();
      assert.equal(counts.byPort.get(80) ?? 0, 0, `a SYN from d1 reached b1: ${counts.lines.join('\n')}`);
    }
    assert.equal(tcp.ok, false, `TCP d1 -> [b1]:80 must fail: ${tcp.output}`);
    assert.equal((await nsTcpConnect(b1ns, a1, 80, 2)).ok, false, 'TCP d2 -> [a1]:80 must fail');
  });

  it('5. port policy tcp/80 over v6: 80 connects, 8080 does not, from a container and from the host; ND keeps working', async () => {
    const srv = await ip6Of('srv', 'dp');
    const cli = await nsOf('cli');
    const cap = await captureSyns((await nsOf('srv')).pid, [80, 8080], 6);
    let r80: Awaited<ReturnType<typeof nsTcpConnect>>;
    let r8080: Awaited<ReturnType<typeof nsTcpConnect>>;
    let h8080: Awaited<ReturnType<typeof nsTcpConnect>>;
    try {
      await inNs(cli, ['ip', '-6', 'neigh', 'flush', 'all']);
      r80 = await nsTcpConnect(cli, srv, 80);
      r8080 = await nsTcpConnect(cli, srv, 8080, 2);
      h8080 = await nsTcpConnect(hostNs(), srv, 8080, 2);
      await sleep(100);
    } finally {
      const counts = await cap.stop();
      assert.equal(counts.byPort.get(8080) ?? 0, 0, `a SYN to :8080 reached srv: ${counts.lines.join('\n')}`);
      assert.ok((counts.byPort.get(80) ?? 0) >= 1, 'the :80 SYN (control) reached srv');
    }
    assert.ok(r80.ok, `cli -> [srv]:80 after neigh flush (ND passes the policy): ${r80.output}`);
    assert.equal(r8080.ok, false, `cli -> [srv]:8080 must be refused: ${r8080.output}`);
    assert.equal(h8080.ok, false, `host -> [srv]:8080 must be refused: ${h8080.output}`);
    assert.equal(await nsPing(cli, srv, 2), false, 'echo is not in tcp/80');
  });

  it('6. the policy also holds on the link-local address (no way around it via fe80::…%eth0)', async () => {
    const cli = await nsOf('cli');
    const ll = await inNs(await nsOf('srv'), ['ip', '-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'link']);
    const srvLl = /inet6 (fe80::[0-9a-f:]+)\//.exec(ll.stdout)?.[1];
    assert.ok(srvLl, `srv has a link-local address: ${ll.stdout}${ll.stderr}`);
    const [r80, r8080] = [
      await nsTcpConnect(cli, `${srvLl}%eth0`, 80),
      await nsTcpConnect(cli, `${srvLl}%eth0`, 8080, 2),
    ];
    assert.ok(r80.ok, `cli -> [${srvLl}%eth0]:80 connects (control): ${r80.output}`);
    assert.equal(r8080.ok, false, `cli -> [${srvLl}%eth0]:8080 must be refused: ${r8080.output}`);
  });

  it('6b. on a v4-only network, a link-local address (if Docker leaves IPv6 on) is policed too', async (t) => {
    await trussNet('dp4', ['--subnet', '198.18.64.0/24', '-o', 'truss.ingress=tcp/80']);
    try {
      await runContainer(host, { name: 'srv4', network: 'dp4', cmd: SRV_CMD });
      await runContainer(host, { name: 'cli4', network: 'dp4' });
      const ll = await inNs(await nsOf('srv4'), ['ip', '-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'link']);
      const srvLl = /inet6 (fe80::[0-9a-f:]+)\//.exec(ll.stdout)?.[1];
      if (!srvLl) {
        // Docker 20.10 turns IPv6 off in a container without an IPv6 network: nothing to reach around
        t.diagnostic('no link-local address in a v4-only container (IPv6 off): nothing to police');
        return;
      }
      const cli = await nsOf('cli4');
      const r8080 = await nsTcpConnect(cli, `${srvLl}%eth0`, 8080, 2);
      assert.equal(r8080.ok, false, `cli4 -> [${srvLl}%eth0]:8080 must be refused: ${r8080.output}`);
    } finally {
      await host.docker(['rm', '-f', 'srv4', 'cli4']);
      await host.docker(['network', 'rm', 'dp4']);
    }
  });

  it('7. a container sending a router advertisement changes nothing in the other containers or the host', async () => {
    const [a1ns, a2ns] = [await nsOf('a1'), await nsOf('a2')];
    assert.equal(await sysctl(a2ns, 'net.ipv6.conf.eth0.accept_ra'), '1', 'a2 would accept RAs: the guard matters');
    assert.ok(await nftTableExists('truss', host.netnsPath, 'bridge'), 'the RA guard table is there');
    await sendRa(a1ns);
    await sendRa(a1ns);
    await sleep(2000);
    const guarded = await v6State(a2ns);
    assert.doesNotMatch(guarded, /fd00:bad:/, `a2 took the rogue prefix:\n${guarded}`);
    assert.doesNotMatch(guarded, /default via fe80:/, `a2 took a1 as its router:\n${guarded}`);
    assert.doesNotMatch(await v6State(hostNs()), /fd00:bad:/, 'the host took the rogue prefix');

    // positive control: the same RA without the guard is accepted by a2
    const del = await inNs(hostNs(), ['nft', 'delete', 'table', 'bridge', 'truss']);
    assert.equal(del.code, 0, del.stderr);
    try {
      await waitFor(
        async () => {
          await sendRa(a1ns);
          return /fd00:bad:/.test(await v6State(a2ns));
        },
        10_000,
        { what: 'a2 to accept the unguarded RA (control)', intervalMs: 1000 },
      );
      assert.doesNotMatch(await v6State(hostNs()), /fd00:bad:/, 'the host ignores RAs on the bridge (accept_ra=0)');
    } finally {
      await host.restartTruss(); // the start-up full pass repairs the missing table
    }
    await waitFor(() => nftTableExists('truss', host.netnsPath, 'bridge'), 10_000, { what: 'the RA guard restored' });
  });

  it('8. everything removed: nothing of truss is left', async () => {
    const rm = await host.docker(['rm', '-f', 'a1', 'a2', 'b1', 'srv', 'cli'], 120_000);
    assert.equal(rm.code, 0, rm.stderr);
    for (const n of ['d1', 'd2', 'dp']) {
      const r = await host.docker(['network', 'rm', n]);
      assert.equal(r.code, 0, r.stderr);
    }
    await waitFor(async () => !(await nftTableExists('truss', host.netnsPath, 'bridge')), 5000, {
      what: 'bridge truss removed with the last network',
    });
    await assertNoTrussLeftovers(host);
  });
});

/**
 * Routed mode over IPv6: the gateway /128 on each host end, the Join's static routes (the gateway
 * connected, the /65 halves via it), host routes, the v6 reverse-path check; isolation by
 * interface group; a published port over v6 (the host to its own v6 address).
 */
for (const mode of MODES.filter((m) => m === 'routed')) {
  describe(modeTitle('truss IPv6 against a real dockerd', mode), { timeout: 5 * 60_000 }, () => {
    const HOST6 = 'fd00:251::1';
    before(async () => {
      host = await startHost('ip6r');
      await host.startTruss({ debug: true, extraArgs: ['--resync-seconds', '3600'] });
      // a v6 address of the host's own for the published port (the simulated host has no v6 uplink here)
      const inHost = async (argv: readonly string[]) => {
        const r = await run(['nsenter', `--net=${host.netnsPath}`, ...argv]);
        assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
      };
      await inHost(['ip', 'addr', 'add', `${HOST6}/128`, 'dev', 'lo']);
      await trussNet('r1', [...modeOpts(mode), '--ipv6', '--subnet', '198.18.64.0/24', '--subnet', 'fd00:64::/64']);
      await trussNet('r2', [...modeOpts(mode), '--ipv6', '--subnet', '198.18.65.0/24', '--subnet', 'fd00:65::/64']);
      await Promise.all([
        runContainer(host, { name: 'ra1', network: 'r1', cmd: SRV_CMD }),
        runContainer(host, { name: 'ra2', network: 'r1' }),
        runContainer(host, { name: 'rb1', network: 'r2', cmd: SRV_CMD }),
      ]);
      const r = await host.docker([
        'run',
        '-d',
        '--name',
        'rp',
        '--network',
        'r1',
        '-p',
        '8080:8080',
        IMAGE,
        ...SRV_CMD,
      ]);
      assert.equal(r.code, 0, r.stderr);
    });
    after(async () => {
      await host?.stop();
    });

    it('R1. v6 between containers through the host end: default via the gateway, ping -6, TCP, host -> container', async () => {
      const [a1, a2ns] = [await ip6Of('ra1', 'r1'), await nsOf('ra2')];
      const routes = await inNs(a2ns, ['ip', '-6', 'route', 'show']);
      assert.match(routes.stdout, /default via fd00:64::1 dev eth0/, routes.stdout);
      assert.match(routes.stdout, /fd00:64::\/65 via fd00:64::1/, `the Join's half via the gateway: ${routes.stdout}`);
      // the containers were just started: their addresses may still be in DAD (a second at most)
      await waitFor(() => nsPing(a2ns, a1, 1), 5000, { what: 'ping -6 ra2 -> ra1' });
      assert.ok(await nsPing(a2ns, 'fd00:64::1'), 'ping -6 ra2 -> gateway');
      const tcp = await nsTcpConnect(a2ns, a1, 80);
      assert.ok(tcp.ok, `TCP over v6 ra2 -> [ra1]:80: ${tcp.output}`);
      assert.ok(await serverSaw(host, 'ra1', tcp.token), 'ra1 recorded the token');
      assert.ok((await nsTcpConnect(hostNs(), a1, 8080)).ok, 'host -> [ra1]:8080 over v6');
    });

    it('R2. two routed v6 networks are isolated (ping and TCP, both ways)', async () => {
      const [a1, b1] = [await ip6Of('ra1', 'r1'), await ip6Of('rb1', 'r2')];
      const [a2ns, b1ns] = [await nsOf('ra2'), await nsOf('rb1')];
      assert.equal(await nsPing(a2ns, b1, 2), false, 'ping -6 r1 -> r2 must fail');
      assert.equal(await nsPing(b1ns, a1, 2), false, 'ping -6 r2 -> r1 must fail');
      assert.equal((await nsTcpConnect(a2ns, b1, 80, 2)).ok, false, 'TCP r1 -> [rb1]:80 must fail');
      assert.equal((await nsTcpConnect(b1ns, a1, 80, 2)).ok, false, 'TCP r2 -> [ra1]:80 must fail');
    });

    it('R3. a published port over v6: the host to its own v6 address reaches the container', async () => {
      const tcp = await nsTcpConnect(hostNs(), HOST6, 8080);
      assert.ok(tcp.ok, `host -> [${HOST6}]:8080: ${tcp.output}`);
      assert.ok(await serverSaw(host, 'rp', tcp.token), 'rp recorded the token');
    });

    it('R4. everything removed: nothing of truss is left', async () => {
      const rm = await host.docker(['rm', '-f', 'ra1', 'ra2', 'rb1', 'rp'], 120_000);
      assert.equal(rm.code, 0, rm.stderr);
      for (const n of ['r1', 'r2']) assert.equal((await host.docker(['network', 'rm', n])).code, 0);
      await run(['nsenter', `--net=${host.netnsPath}`, 'ip', 'addr', 'del', `${HOST6}/128`, 'dev', 'lo']);
      await assertNoTrussLeftovers(host);
    });
  });
}
