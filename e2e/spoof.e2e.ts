/**
 * Anti-spoofing end to end: one simulated host ("spf", its own dockerd and truss), a
 * dual-stack truss network with three containers: the attacker A (run with --cap-add
 * NET_ADMIN, so busybox `ip` inside it can change its own addresses and MAC), B whose
 * identity A tries to take, and the target T. What reaches T is counted in T's own network
 * namespace (an nft table `inet probe` put there by the test: counters by source address);
 * T's neighbour table shows whether it was poisoned. Each attack first runs as a control
 * against an unguarded network (truss.antispoof=false, same layout): there the same packets
 * do arrive, so "never delivered" is the guard's doing.
 *
 * The IPv6 neighbour advertisement is sent from A's network namespace by the machine's
 * python3 (raw ICMPv6 socket): the test image has no tool that crafts one. Skipped without
 * python3; the kernel test (src/dataplane/linux/guard.netns.ts) covers it too.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { containerIp, containerPid, createTrussNetwork, removeContainers, runContainer } from './harness/containers.ts';
import { run } from './harness/exec.ts';
import { median, printFigures } from './harness/figures.ts';
import { type Host, startHost } from './harness/host.ts';
import { IMAGE } from './harness/image.ts';
import { assertNoTrussLeftovers, nftTableExists } from './harness/leftovers.ts';
import { MODES, modeOpts, modeTitle } from './harness/modes.ts';
import { enterNetns } from './harness/netns-tcp.ts';
import { memoOnce } from './harness/once.ts';
import { trussQuiet } from './harness/truss.ts';
import { sleep, waitFor } from './harness/wait.ts';

const TRUSS_OPTS = { debug: true, extraArgs: ['--resync-seconds', '3600'] } as const;
const GUARD_TABLE = 'truss_guard';
const IPERF_PORT = 5201;
const SRV_CMD = ['sh', '-c', `iperf3 -s -p ${IPERF_PORT} >/dev/null 2>&1 & sleep 3600`];

let host: Host;
const figures: string[] = [];
const once = memoOnce();

interface Net {
  readonly name: string;
  /** third octet: 198.18.<n>.0/24, fd00:<n>::/64 */
  readonly n: number;
  readonly guarded: boolean;
}
/** the guarded network and its unguarded twin (the controls) */
const NETS: readonly Net[] = [
  { name: 'sg', n: 30, guarded: true },
  { name: 'su', n: 31, guarded: false },
];
const ctr = (net: Net, who: 'a' | 'b' | 't'): string => `${net.name}-${who}`;

interface Ids {
  readonly ip: string;
  readonly ip6: string;
  readonly mac: string;
  readonly pid: number;
}

async function ids(c: string, net: Net): Promise<Ids> {
  const fmt = `{{with index .NetworkSettings.Networks "${net.name}"}}{{.GlobalIPv6Address}} {{.MacAddress}}{{end}}`;
  const r = await host.docker(['inspect', '-f', fmt, c]);
  const [ip6, mac] = r.stdout.trim().split(' ');
  return { ip: await containerIp(host, c, net.name), ip6: ip6 ?? '', mac: mac ?? '', pid: await containerPid(host, c) };
}

/** a network and its three containers; the target counts arrivals in `inet probe` */
const setUp = (net: Net) =>
  once(net.name, async () => {
    const args = ['network', 'create', '-d', 'truss', '--ipam-driver', 'truss', '--ipv6'];
    args.push('--subnet', `198.18.${net.n}.0/24`, '--subnet', `fd00:${net.n}::/64`);
    if (!net.guarded) args.push('-o', 'truss.antispoof=false');
    const r = await host.docker([...args, net.name]);
    assert.equal(r.code, 0, `docker network create ${net.name}: ${r.stderr}`);
    for (const who of ['t', 'b', 'a'] as const) {
      const extra = who === 'a' ? ['--cap-add', 'NET_ADMIN'] : [];
      const cmd = who === 't' ? SRV_CMD : ['sleep', '3600'];
      const run = await host.docker([
        'run',
        '-d',
        '--name',
        ctr(net, who),
        '--network',
        net.name,
        ...extra,
        IMAGE,
        ...cmd,
      ]);
      assert.equal(run.code, 0, `docker run ${ctr(net, who)}: ${run.stderr}`);
    }
    const b = await ids(ctr(net, 'b'), net);
    const t = await ids(ctr(net, 't'), net);
    const probe = `table inet probe {
	counter fromB4 {}
	counter fromB6 {}
	chain input {
		type filter hook input priority 0; policy accept;
		ip saddr ${b.ip} counter name "fromB4"
		ip6 saddr ${b.ip6} counter name "fromB6"
	}
}
`;
    const p = await run(enterNetns({ pid: t.pid }, ['nft', '-f', '-']), { input: probe });
    assert.equal(p.code, 0, `probe table in ${ctr(net, 't')}: ${p.stderr}`);
  });

/** docker exec in a container; returns the result (asserting exit 0 unless `mayFail`) */
async function exec(c: string, argv: readonly string[], mayFail = false) {
  const r = await host.docker(['exec', c, ...argv], 30_000);
  if (!mayFail) assert.equal(r.code, 0, `docker exec ${c} ${argv.join(' ')}: ${r.stdout}${r.stderr}`);
  return r;
}

async function counters(net: Net): Promise<{ fromB4: number; fromB6: number }> {
  const t = await ids(ctr(net, 't'), net);
  const r = await run(enterNetns({ pid: t.pid }, ['nft', '-j', 'list', 'counters', 'table', 'inet', 'probe']));
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { nftables: { counter?: { name: string; packets: number } }[] };
  const by = Object.fromEntries(doc.nftables.flatMap((i) => (i.counter ? [[i.counter.name, i.counter.packets]] : [])));
  return { fromB4: by.fromB4 ?? 0, fromB6: by.fromB6 ?? 0 };
}

/** T's neighbour entry for ip (its MAC, or '') */
async function tNeigh(net: Net, ip: string): Promise<string> {
  const t = await ids(ctr(net, 't'), net);
  const r = await run(enterNetns({ pid: t.pid }, ['ip', '-j', 'neigh', 'show', ip, 'dev', 'eth0']));
  return (JSON.parse(r.stdout || '[]') as { lladdr?: string }[])[0]?.lladdr ?? '';
}

/** argv in a container's network namespace with the machine's iproute2 (test set-up and clean-up, not the attack) */
async function inNs(c: string, net: Net, argv: readonly string[]) {
  const r = await run(enterNetns({ pid: (await ids(c, net)).pid }, argv));
  assert.equal(r.code, 0, `${c}: ${argv.join(' ')}: ${r.stderr}`);
  return r;
}

/** A as Docker made it: its own MAC, only its own IPv4, the default route; neighbour caches of A and T emptied */
async function restoreA(net: Net): Promise<void> {
  const a = ctr(net, 'a');
  const mine = await ids(a, net);
  await inNs(a, net, ['ip', 'link', 'set', 'eth0', 'address', mine.mac]);
  await inNs(a, net, ['ip', '-4', 'addr', 'flush', 'dev', 'eth0']);
  await inNs(a, net, ['ip', 'addr', 'add', `${mine.ip}/24`, 'brd', '+', 'dev', 'eth0']);
  await inNs(a, net, ['ip', 'route', 'replace', 'default', 'via', `198.18.${net.n}.1`]);
  await inNs(a, net, ['ip', 'neigh', 'flush', 'dev', 'eth0']);
  await inNs(ctr(net, 't'), net, ['ip', 'neigh', 'flush', 'dev', 'eth0']);
}

/** A reaches T again; on failure, what A, T and the guard look like */
async function assertAReachesT(net: Net): Promise<void> {
  const t = await ids(ctr(net, 't'), net);
  if (await pingOk(ctr(net, 'a'), t.ip)) return;
  const show = async (c: string) =>
    (
      await Promise.all(
        [
          ['ip', 'addr'],
          ['ip', 'route'],
          ['ip', 'neigh'],
        ].map((x) => inNs(c, net, x)),
      )
    ).map((r) => r.stdout);
  const guard = await host.exec(['nft', 'list', 'table', 'bridge', GUARD_TABLE]);
  assert.fail(
    `A does not reach T ${t.ip} again.\nA: ${(await show(ctr(net, 'a'))).join('\n')}\nT: ${(await show(ctr(net, 't'))).join('\n')}\n${guard.stdout}`,
  );
}

const pingOk = async (c: string, ip: string, extra: readonly string[] = []): Promise<boolean> =>
  (await exec(c, ['ping', ...(ip.includes(':') ? ['-6'] : []), '-c', '2', '-W', '1', ...extra, ip], true)).code === 0;

/** Runs an attack on both networks: the unguarded control must see it land, the guarded one never. */
async function onBoth(attack: (net: Net) => Promise<boolean>, what: string): Promise<void> {
  for (const net of NETS) {
    await setUp(net);
    const landed = await attack(net);
    assert.equal(landed, !net.guarded, `${what}: ${net.guarded ? 'got through the guard' : 'control did not land'}`);
  }
}

/** RFC 4291 appendix A, written out again here (the suite is black-box): fe80:: + MAC with U/L flipped and ff:fe inside */
function eui64LinkLocal(mac: string): string {
  const b = mac.split(':').map((x) => Number.parseInt(x, 16));
  const bytes = [(b[0] as number) ^ 2, b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]] as number[];
  const groups = [0, 2, 4, 6].map((i) => (((bytes[i] as number) << 8) | (bytes[i + 1] as number)).toString(16));
  return `fe80::${groups.join(':')}`;
}

const hasPython = async (): Promise<boolean> => (await run(['python3', '-c', 'import socket'])).code === 0;

/** one unsolicited override NA "target is at mac", from the namespace of pid to ff02::1 */
const SEND_NA = `
import socket, struct, sys
target, mac = sys.argv[1:3]
idx = socket.if_nametoindex('eth0')
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
msg = struct.pack('!BBHI', 136, 0, 0, 0x20000000) + socket.inet_pton(socket.AF_INET6, target)
msg += bytes([2, 1]) + bytes.fromhex(mac.replace(':', ''))
for _ in range(3):
    s.sendto(msg, ('ff02::1', 0, 0, idx))
`;

describe('truss anti-spoofing against a real dockerd', { timeout: 10 * 60_000 }, () => {
  before(async () => {
    host = await startHost('spf');
    await host.startTruss(TRUSS_OPTS);
  });

  after(async () => {
    if (figures.length > 0) printFigures(figures);
    await host?.stop();
  });

  it('1. legitimate traffic is untouched: ping over IPv4 and IPv6 between containers and to the gateway', async () => {
    for (const net of NETS) await setUp(net);
    const net = NETS[0] as Net;
    const t = await ids(ctr(net, 't'), net);
    assert.ok(await nftTableExists(GUARD_TABLE, host.netnsPath, 'bridge'), 'bridge truss_guard exists');
    for (const c of [ctr(net, 'a'), ctr(net, 'b')]) {
      assert.ok(await pingOk(c, t.ip), `${c} -> T ${t.ip}`);
      assert.ok(await pingOk(c, t.ip6), `${c} -> T ${t.ip6}`);
      assert.ok(await pingOk(c, `198.18.${net.n}.1`), `${c} -> gateway`);
    }
    // Docker's containers use the EUI-64 link-local of the MAC truss gave them: the one the guard allows
    const a = await ids(ctr(net, 'a'), net);
    const ll = await exec(ctr(net, 'a'), ['ip', '-6', 'addr', 'show', 'dev', 'eth0', 'scope', 'link']);
    assert.ok(
      ll.stdout.includes(`${eui64LinkLocal(a.mac)}/64`),
      `A's link-local is ${eui64LinkLocal(a.mac)}: ${ll.stdout}`,
    );
  });

  it("2. A sending with B's IPv4 as a second address never reaches T", async () => {
    await onBoth(async (net) => {
      const a = ctr(net, 'a');
      const b = await ids(ctr(net, 'b'), net);
      const t = await ids(ctr(net, 't'), net);
      // a static entry for T (busybox ip has no `neigh replace`): this is about the IP source, not ARP
      await inNs(a, net, ['ip', 'neigh', 'replace', t.ip, 'lladdr', t.mac, 'dev', 'eth0', 'nud', 'permanent']);
      try {
        await exec(a, ['ip', 'addr', 'add', `${b.ip}/32`, 'dev', 'eth0']);
        const before = (await counters(net)).fromB4;
        await exec(a, ['ping', '-c', '3', '-i', '0.2', '-W', '1', '-I', b.ip, t.ip], true);
        return (await counters(net)).fromB4 > before;
      } finally {
        await restoreA(net);
      }
    }, "A's packets with B's source");
    await assertAReachesT(NETS[0] as Net);
  });

  it("3. A changing its IPv4 to B's: T never sees them; A works again with its own address", async () => {
    await onBoth(async (net) => {
      const a = ctr(net, 'a');
      const mine = await ids(a, net);
      const b = await ids(ctr(net, 'b'), net);
      const t = await ids(ctr(net, 't'), net);
      try {
        await exec(a, ['ip', 'addr', 'del', `${mine.ip}/24`, 'dev', 'eth0']);
        await exec(a, ['ip', 'addr', 'add', `${b.ip}/24`, 'dev', 'eth0']);
        const before = (await counters(net)).fromB4;
        await exec(a, ['ping', '-c', '3', '-i', '0.2', '-W', '1', t.ip], true);
        return (await counters(net)).fromB4 > before;
      } finally {
        await restoreA(net);
      }
    }, "A's packets as B (changed address)");
    await assertAReachesT(NETS[0] as Net);
  });

  it("4. A taking B's MAC (and address) reaches nobody; with its own MAC back it does", async () => {
    await onBoth(async (net) => {
      const a = ctr(net, 'a');
      const b = await ids(ctr(net, 'b'), net);
      const t = await ids(ctr(net, 't'), net);
      try {
        await exec(a, ['ip', 'link', 'set', 'eth0', 'address', b.mac]);
        await exec(a, ['ip', 'addr', 'add', `${b.ip}/32`, 'dev', 'eth0']);
        await inNs(a, net, ['ip', 'neigh', 'replace', t.ip, 'lladdr', t.mac, 'dev', 'eth0', 'nud', 'permanent']);
        const before = (await counters(net)).fromB4;
        await exec(a, ['ping', '-c', '3', '-i', '0.2', '-W', '1', '-I', b.ip, t.ip], true);
        return (await counters(net)).fromB4 > before;
      } finally {
        await restoreA(net);
      }
    }, "A's frames with B's MAC");
    await assertAReachesT(NETS[0] as Net);
  });

  it("5. gratuitous and unsolicited ARP from A claiming B's IP does not poison T's neighbour table", async () => {
    await onBoth(async (net) => {
      const a = ctr(net, 'a');
      const mine = await ids(a, net);
      const b = await ids(ctr(net, 'b'), net);
      assert.ok(await pingOk(ctr(net, 't'), b.ip), 'T knows B');
      assert.equal(await tNeigh(net, b.ip), b.mac);
      try {
        await exec(a, ['ip', 'addr', 'add', `${b.ip}/32`, 'dev', 'eth0']);
        await sleep(1100); // past T's ARP locktime: an update would be taken
        await exec(a, ['busybox', 'arping', '-U', '-c', '2', '-w', '2', '-I', 'eth0', b.ip], true);
        await exec(a, ['busybox', 'arping', '-A', '-c', '2', '-w', '2', '-I', 'eth0', b.ip], true);
        return (await tNeigh(net, b.ip)) === mine.mac;
      } finally {
        await restoreA(net);
      }
    }, "A's ARP for B's IP");
  });

  it("6. an IPv6 neighbour advertisement from A for B's address does not poison T", async (t) => {
    if (!(await hasPython())) {
      t.skip('python3 not installed: see src/dataplane/linux/guard.netns.ts');
      return;
    }
    await onBoth(async (net) => {
      const a = await ids(ctr(net, 'a'), net);
      const b = await ids(ctr(net, 'b'), net);
      const tt = await ids(ctr(net, 't'), net);
      assert.ok(await pingOk(ctr(net, 't'), b.ip6), 'T knows B over IPv6');
      assert.equal(await tNeigh(net, b.ip6), b.mac);
      try {
        const r = await run(enterNetns({ pid: a.pid }, ['python3', '-c', SEND_NA, b.ip6, a.mac]));
        assert.equal(r.code, 0, r.stderr);
        await sleep(200);
        return (await tNeigh(net, b.ip6)) === a.mac;
      } finally {
        await run(enterNetns({ pid: tt.pid }, ['ip', '-6', 'neigh', 'flush', 'dev', 'eth0']));
      }
    }, "A's NA for B's IPv6");
  });

  it('7. an element deleted by hand shows in truss status and `truss reconcile` restores it', async () => {
    const net = NETS[0] as Net;
    const a = await ids(ctr(net, 'a'), net);
    const t = await ids(ctr(net, 't'), net);
    const list = await host.exec(['nft', 'list', 'set', 'bridge', GUARD_TABLE, 'addr4']);
    const el = new RegExp(`"(trv[0-9a-f]{12})" \\. ${a.ip.replaceAll('.', '\\.')}\\b`).exec(list.stdout);
    assert.ok(el?.[1], `A's element in addr4: ${list.stdout}`);
    await trussQuiet(() => host.trussStatus()); // no pass may repair it before status reads it
    const del = await host.exec([
      'nft',
      'delete',
      'element',
      'bridge',
      GUARD_TABLE,
      'addr4',
      `{ "${el[1]}" . ${a.ip} }`,
    ]);
    assert.equal(del.code, 0, del.stderr);
    assert.equal(await pingOk(ctr(net, 'a'), t.ip), false, 'fails closed: a guarded port with no IPv4 sends none');
    assert.equal((await host.trussStatus()).kernel.inSync, false, 'status reports the drift');
    const r = await host.truss.cli(['reconcile', '--state-dir', host.stateDir]);
    assert.equal(r.code, 0, `truss reconcile: ${r.stderr}`);
    assert.ok((await host.trussStatus()).kernel.inSync, 'in sync after one full pass');
    assert.ok(await pingOk(ctr(net, 'a'), t.ip), 'A reaches T again');
  });

  it('7b. truss status counts what the attacks above lost, by reason', async () => {
    const drops = (await host.trussStatus()).guardCounters ?? {};
    for (const reason of ['ip4', 'mac', 'arp', 'nd']) {
      assert.ok((drops[reason]?.packets ?? 0) > 0, `no ${reason} drops counted: ${JSON.stringify(drops)}`);
    }
    const text = await host.truss.cli(['status', '--state-dir', host.stateDir]);
    assert.match(text.stdout, /ANTI-SPOOFING: \d+ frame\(s\) dropped \(mac \d+, ethertype \d+, arp \d+, ip4 \d+/);
  });

  it('8. throughput: iperf3 A -> T on the guarded network vs the unguarded one (alternated)', async () => {
    const gbits = async (net: Net): Promise<number> => {
      const t = await ids(ctr(net, 't'), net);
      const r = await exec(ctr(net, 'a'), ['iperf3', '-c', t.ip, '-p', String(IPERF_PORT), '-t', '3', '-J'], true);
      if (r.code !== 0) return Number.NaN;
      const doc = JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second?: number } } };
      return (doc.end?.sum_received?.bits_per_second ?? Number.NaN) / 1e9;
    };
    const probe = await host.docker(['exec', ctr(NETS[0] as Net, 'a'), 'iperf3', '-v']);
    if (probe.code !== 0) {
      figures.push('iperf3 not in the test image: no throughput figure');
      return;
    }
    const g: number[] = [];
    const u: number[] = [];
    for (let i = 0; i < 4; i++) {
      g.push(await gbits(NETS[0] as Net));
      u.push(await gbits(NETS[1] as Net));
    }
    figures.push(
      `iperf3 A -> T, 3 s x 4 alternated: guarded ${g.map((x) => x.toFixed(2)).join(' ')} Gbit/s (median ` +
        `${median(g).toFixed(2)}), unguarded ${u.map((x) => x.toFixed(2)).join(' ')} (median ${median(u).toFixed(2)}); ` +
        `guarded / unguarded ${(median(g) / median(u)).toFixed(3)}`,
    );
    assert.ok(
      g.every((x) => x > 0),
      'the guarded network carries traffic',
    );
  });

  it('9. docker rm and network rm leave nothing: no bridge truss_guard, no truss objects', async () => {
    const ids = (await host.docker(['ps', '-aq'])).stdout.split(/\s+/).filter(Boolean);
    await removeContainers(host, ids);
    await waitFor(async () => !(await nftTableExists(GUARD_TABLE, host.netnsPath, 'bridge')), 5000, {
      what: 'bridge truss_guard gone with the last endpoint',
    });
    for (const net of NETS) {
      const r = await host.docker(['network', 'rm', net.name]);
      assert.equal(r.code, 0, `docker network rm ${net.name}: ${r.stderr}`);
    }
    await waitFor(() => assertNoTrussLeftovers(host).then(() => true), 15_000, { what: 'no truss leftovers' });
    await assertNoTrussLeftovers(host);
  });
});

/**
 * Routed mode: no bridge, so no `bridge truss_guard` and no ARP/ND poisoning to fear (the links are
 * point-to-point and the routes are the host's); what matters is the source address, checked by
 * one constant reverse-path rule. A sends with its neighbour B's addresses (routed, but to B's
 * link): T's kernel must receive none of it (its ICMP echo counters do not move).
 */
for (const mode of MODES.filter((m) => m === 'routed')) {
  describe(modeTitle('truss anti-spoofing against a real dockerd', mode), { timeout: 5 * 60_000 }, () => {
    let rh: Host;
    const NET = 'sr';
    before(async () => {
      rh = await startHost('spfr');
      await rh.startTruss(TRUSS_OPTS);
      const subnets = ['--ipv6', '--subnet', '198.18.36.0/24', '--subnet', 'fd00:36::/64', NET];
      const r = await createTrussNetwork(rh, [...modeOpts(mode), ...subnets]);
      assert.equal(r.code, 0, r.stderr);
      for (const c of ['ra', 'rb', 'rt']) await runContainer(rh, { name: c, network: NET });
    });
    after(async () => {
      await rh?.stop();
    });

    const addrs = async (c: string): Promise<[string, string]> => {
      const fmt = `{{with index .NetworkSettings.Networks "${NET}"}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}`;
      const [v4, v6] = (await rh.docker(['inspect', '-f', fmt, c])).stdout.trim().split(' ');
      return [v4 as string, v6 as string];
    };
    /** ICMP echo requests T's kernel received: [v4, v6] */
    const echoes = async (): Promise<[number, number]> => {
      const r = await rh.docker(['exec', 'rt', 'cat', '/proc/net/snmp', '/proc/net/snmp6']);
      const icmp = r.stdout.split('\n').filter((l) => l.startsWith('Icmp: '));
      const col = (icmp[0] ?? '').split(/\s+/).indexOf('InEchos');
      const v4 = Number((icmp[1] ?? '').split(/\s+/)[col]);
      const v6 = Number(/^Icmp6InEchos\s+(\d+)/m.exec(r.stdout)?.[1]);
      return [v4, v6];
    };

    it("R1. A sending with B's IPv4 and IPv6 never reaches T; A's own addresses do; no bridge truss_guard", async () => {
      assert.equal(await nftTableExists(GUARD_TABLE, rh.netnsPath, 'bridge'), false, 'no bridge guard in routed mode');
      const [b4, b6] = await addrs('rb');
      const [t4, t6] = await addrs('rt');
      const pid = await containerPid(rh, 'ra');
      const inA = (argv: readonly string[]) => rh.exec(['nsenter', '-t', String(pid), '-n', ...argv]);
      await inA(['ip', 'addr', 'add', `${b4}/32`, 'dev', 'eth0']);
      await inA(['ip', 'addr', 'add', `${b6}/128`, 'dev', 'eth0', 'nodad']);
      const pingFrom = (src: string, dst: string) =>
        rh.docker(['exec', 'ra', 'ping', '-c', '3', '-i', '0.2', '-W', '1', '-I', src, dst], 20_000);
      const before = await echoes();
      await pingFrom(b4, t4);
      await pingFrom(b6, t6);
      assert.deepEqual(await echoes(), before, "T received nothing with B's sources");
      await inA(['ip', 'addr', 'del', `${b4}/32`, 'dev', 'eth0']);
      await inA(['ip', 'addr', 'del', `${b6}/128`, 'dev', 'eth0']);
      const [a4, a6] = await addrs('ra');
      assert.equal((await pingFrom(a4, t4)).code, 0, 'v4 from its own address');
      assert.equal((await pingFrom(a6, t6)).code, 0, 'v6 from its own address');
      const after = await echoes();
      assert.ok(
        after[0] >= before[0] + 3 && after[1] >= before[1] + 3,
        `T's echo counters moved: ${before} -> ${after}`,
      );
    });

    it('R2. docker rm and network rm leave nothing', async () => {
      await removeContainers(rh, ['ra', 'rb', 'rt']);
      assert.equal((await rh.docker(['network', 'rm', NET])).code, 0);
      await assertNoTrussLeftovers(rh);
    });
  });
}
