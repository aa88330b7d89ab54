/**
 * Kernel tests (root) for anti-spoofing with REAL TRAFFIC: a simulated Docker host (FORWARD
 * policy DROP, br_netfilter on, the truss firewall), three "containers" on one truss network,
 * every port guarded. A plays the attacker, T the victim; T counts in its own namespace
 * (table inet probe) what reaches it, and its neighbour table shows whether it was poisoned.
 * Every attack is also run once with A's guard removed (the control): the same packets then
 * do arrive, so "dropped" below is the guard's doing and not the test's blindness.
 *
 *   A 198.18.41.2 fd00:41::2 ─┐
 *   B 198.18.41.3 fd00:41::3 ─┼─ trb… 198.18.41.1 fd00:41::1 (host)
 *   T 198.18.41.4 fd00:41::4 ─┘
 *
 * Run: node --test src/dataplane/linux/guard.netns.ts (part of npm run test:kernel).
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { computeDesired, type GuardObject } from '../../core/desired.ts';
import type { EndpointSpec } from '../../core/model.ts';
import { guardElements } from './guard.ts';
import type { LinuxDataplane } from './linux-dataplane.ts';
import {
  BUSYBOX,
  type Ctr,
  createScratch,
  listTestNamespaces,
  pingOk,
  randomId,
  run,
  simulatedHost,
  type TestNs,
  testEndpoint,
  testNetwork,
} from './netns-testutil.ts';

type Name = 'a' | 'b' | 't';

const PROBE = (b4: string, b6: string, a4: string): string => `table inet probe {
	counter fromB4 {}
	counter fromA4 {}
	counter fromB6 {}
	counter ra {}
	chain input {
		type filter hook input priority 0; policy accept;
		ip saddr ${b4} icmp type echo-request counter name "fromB4"
		ip saddr ${a4} icmp type echo-request counter name "fromA4"
		ip6 saddr ${b6} icmpv6 type echo-request counter name "fromB6"
		icmpv6 type nd-router-advert counter name "ra"
	}
}
`;

/** Sends one ICMPv6 message from a raw socket (the kernel fills in the checksum), hop limit 255. */
const SEND_ICMP6 = `
import socket, struct, sys
kind, ifname, dst, target, mac = sys.argv[1:6]
idx = socket.if_nametoindex(ifname)
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
lla = bytes.fromhex(mac.replace(':', ''))
if kind == 'na':   # unsolicited, override: "target is at mac"
    msg = struct.pack('!BBHI', 136, 0, 0, 0x20000000) + socket.inet_pton(socket.AF_INET6, target) + bytes([2, 1]) + lla
else:              # router advertisement: "I am a default router", source link-layer option
    msg = struct.pack('!BBHBBHII', 134, 0, 0, 64, 0, 1800, 0, 0) + bytes([1, 1]) + lla
for _ in range(3):
    s.sendto(msg, (dst, 0, 0, idx))
`;

const hasPython = async (): Promise<boolean> => (await run(['python3', '-c', 'import socket'])).code === 0;

describe('anti-spoofing with real traffic (kernel)', () => {
  const scratch = createScratch();
  let host: TestNs;
  let dp: LinuxDataplane;
  const N = randomId();
  const net = testNetwork(N, 41, { v6: true });
  const eps = {} as Record<Name, EndpointSpec>;
  const ctr = {} as Record<Name, Ctr>;
  const guards = {} as Record<Name, GuardObject>;
  const mac = {} as Record<Name, string>;
  const counters = async (): Promise<Record<string, number>> => {
    const doc = JSON.parse(await ctr.t.ns.must(['nft', '-j', 'list', 'counters', 'table', 'inet', 'probe'])) as {
      nftables: { counter?: { name: string; packets: number } }[];
    };
    return Object.fromEntries(doc.nftables.flatMap((i) => (i.counter ? [[i.counter.name, i.counter.packets]] : [])));
  };
  /** T's neighbour entry for `ip`: its MAC, or '' */
  const tNeigh = async (ip: string): Promise<string> => {
    const n = await ctr.t.ns.ipJson<{ lladdr?: string }[]>(['neigh', 'show', ip, 'dev', 'eth0']);
    return n[0]?.lladdr ?? '';
  };
  /** runs `fn` with these ports unguarded (the control), then guards them again */
  const withoutGuards = async <T>(who: readonly Name[], fn: () => Promise<T>): Promise<T> => {
    for (const k of who) await dp.removeGuard(guards[k].name, guards[k]);
    try {
      return await fn();
    } finally {
      for (const k of who) await dp.ensureGuard(guards[k]);
    }
  };
  const withoutGuardOfA = <T>(fn: () => Promise<T>): Promise<T> => withoutGuards(['a'], fn);
  /** the guard table's named drop counters (packets) */
  // through the dataplane's own reader (what truss status shows), keyed as nft names them
  const drops = async (): Promise<Record<string, number>> =>
    Object.fromEntries(Object.entries(await dp.readGuardCounters()).map(([k, c]) => [`drop_${k}`, c.packets]));
  const firstRuleHandle = async (): Promise<string> => {
    const out = await host.must(['nft', '-a', 'list', 'chain', 'bridge', 'truss_guard', 'prerouting']);
    return /# handle (\d+)/.exec(out.split('\n').filter((l) => l.includes('@ports'))[0] ?? '')?.[1] ?? 'none';
  };
  const inA = (argv: readonly string[]) => ctr.a.ns.run(argv);

  before(async () => {
    for (const k of ['a', 'b', 't'] as const) eps[k] = testEndpoint(N);
    const h = await simulatedHost(scratch, { networks: [net], endpoints: Object.values(eps), dockerd: 'nf-on' });
    ({ ns: host, dp } = h);
    const addr = { a: 2, b: 3, t: 4 } as const;
    for (const k of ['a', 'b', 't'] as const) {
      const n = addr[k];
      ctr[k] = await h.join(k, eps[k], `198.18.41.${n}/24`, '198.18.41.1', [`fd00:41::${n}/64`, 'fd00:41::1']);
      mac[k] = eps[k].mac;
    }
    // the endpoints' addresses as Docker would have stored them: the guard is derived from those
    const withAddr = (k: Name): EndpointSpec => ({
      ...eps[k],
      ipv4: `198.18.41.${addr[k]}/24`,
      ipv6: `fd00:41::${addr[k]}/64`,
    });
    for (const g of computeDesired([net], [withAddr('a'), withAddr('b'), withAddr('t')]).guards) {
      const k = (['a', 'b', 't'] as const).find((x) => eps[x].hostVeth === g.name) as Name;
      guards[k] = g;
      await dp.ensureGuard(g);
    }
    await h.ensureFirewall();
    await ctr.t.ns.must(['nft', '-f', '-'], PROBE(ctr.b.ip, ctr.b.ip6 as string, ctr.a.ip));
  });

  it('legitimate traffic passes: IPv4 and IPv6 (so ARP and ND), link-local, the host both ways', async () => {
    const tLl = guards.t.ipv6.find((a) => a.startsWith('fe80:')) as string;
    const got = await Promise.all([
      pingOk(ctr.a, ctr.t.ip),
      pingOk(ctr.a, ctr.t.ip6 as string),
      pingOk(ctr.b, ctr.t.ip),
      pingOk(host, ctr.a.ip),
      pingOk(ctr.a, '198.18.41.1'),
    ]);
    assert.deepEqual(got, [true, true, true, true, true]);
    // link-local addresses are usable once their DAD is over (about a second after link up)
    for (const k of ['a', 't'] as const) {
      for (let i = 0; i < 50; i++) {
        const tentative = await ctr[k].ns.must([
          'ip',
          '-6',
          'addr',
          'show',
          'dev',
          'eth0',
          'scope',
          'link',
          'tentative',
        ]);
        if (tentative.trim() === '') break;
        await sleep(100);
      }
    }
    const ll = await inA([BUSYBOX, 'ping', '-6', '-c1', '-W1', `${tLl}%eth0`]);
    assert.equal(ll.code, 0, `A -> T's link-local ${tLl}: ${ll.stdout}${ll.stderr}`);
    const d = await drops();
    assert.deepEqual(
      [d.drop_mac, d.drop_ip4, d.drop_arp],
      [0, 0, 0],
      `nothing of it was dropped: ${JSON.stringify(d)}`,
    );
  });

  it('IPv4 source spoofing: A sending as B never reaches T (control: unguarded, it does)', async () => {
    await inA(['ip', 'addr', 'add', `${ctr.b.ip}/32`, 'dev', 'eth0']);
    // a static entry for T: the test is about the IP source, not about ARP
    await inA(['ip', 'neigh', 'replace', ctr.t.ip, 'lladdr', mac.t, 'dev', 'eth0', 'nud', 'permanent']);
    const spoof = () => inA([BUSYBOX, 'ping', '-c3', '-i', '0.2', '-W1', '-I', ctr.b.ip, ctr.t.ip]);
    try {
      const before = (await counters()).fromB4 ?? 0;
      const dropped = (await drops()).drop_ip4 ?? 0;
      await spoof();
      assert.equal((await counters()).fromB4, before, "no echo request with B's source reached T");
      assert.ok(((await drops()).drop_ip4 ?? 0) >= dropped + 3, 'the guard counted them in drop_ip4');
      await withoutGuardOfA(spoof);
      assert.ok(((await counters()).fromB4 ?? 0) >= before + 3, 'control: unguarded, the spoofed requests arrive');
    } finally {
      await inA(['ip', 'addr', 'del', `${ctr.b.ip}/32`, 'dev', 'eth0']);
      await inA(['ip', 'neigh', 'del', ctr.t.ip, 'dev', 'eth0']);
    }
    assert.equal(await pingOk(ctr.a, ctr.t.ip), true, 'A itself still gets through');
  });

  it('MAC spoofing: A with a MAC not its own reaches nobody (ARP and IP); back to its own, it does', async () => {
    try {
      await inA(['ip', 'link', 'set', 'eth0', 'address', '02:00:5e:00:00:99']);
      await inA(['ip', 'neigh', 'flush', 'dev', 'eth0']);
      const before = (await counters()).fromA4 ?? 0;
      const dropped = (await drops()).drop_mac ?? 0;
      assert.equal(await pingOk(ctr.a, ctr.t.ip), false, 'ARP from the foreign MAC is dropped');
      await inA(['ip', 'neigh', 'replace', ctr.t.ip, 'lladdr', mac.t, 'dev', 'eth0', 'nud', 'permanent']);
      assert.equal(await pingOk(ctr.a, ctr.t.ip), false, 'IP from the foreign MAC is dropped');
      assert.equal((await counters()).fromA4, before, 'T saw none of it');
      assert.ok(((await drops()).drop_mac ?? 0) > dropped, 'counted in drop_mac');
    } finally {
      await inA(['ip', 'link', 'set', 'eth0', 'address', mac.a]);
      await inA(['ip', 'neigh', 'flush', 'dev', 'eth0']);
      await ctr.t.ns.run(['ip', 'neigh', 'flush', 'dev', 'eth0']);
    }
    assert.equal(await pingOk(ctr.a, ctr.t.ip), true);
  });

  it("ARP: gratuitous requests and replies from A claiming B's IP leave T's entry for B alone (control: poisoned)", async () => {
    await inA(['ip', 'addr', 'add', `${ctr.b.ip}/32`, 'dev', 'eth0']);
    const attack = async () => {
      await sleep(1100); // past T's ARP locktime (1 s): an update would be accepted
      await inA([BUSYBOX, 'arping', '-U', '-c', '2', '-w', '2', '-I', 'eth0', ctr.b.ip]);
      await inA([BUSYBOX, 'arping', '-A', '-c', '2', '-w', '2', '-I', 'eth0', ctr.b.ip]);
    };
    try {
      assert.equal(await pingOk(ctr.t, ctr.b.ip), true);
      assert.equal(await tNeigh(ctr.b.ip), mac.b);
      const dropped = (await drops()).drop_arp ?? 0;
      await attack();
      assert.equal(await tNeigh(ctr.b.ip), mac.b, "T still sends B's traffic to B");
      assert.ok(((await drops()).drop_arp ?? 0) >= dropped + 4, 'counted in drop_arp');
      await withoutGuardOfA(attack);
      assert.equal(await tNeigh(ctr.b.ip), mac.a, 'control: unguarded, the same ARP poisons T');
    } finally {
      await inA(['ip', 'addr', 'del', `${ctr.b.ip}/32`, 'dev', 'eth0']);
      await ctr.t.ns.run(['ip', 'neigh', 'flush', 'dev', 'eth0']);
    }
  });

  it("IPv6: an override NA from A for B's address does not poison T (control)", async (t) => {
    if (!(await hasPython())) {
      t.skip('python3 (raw ICMPv6 socket) not installed');
      return;
    }
    // router advertisements are the RA guard's (bridge truss, ra-guard.ts; ipv6.netns.ts tests it)
    const b6 = ctr.b.ip6 as string;
    const na = () => inA(['python3', '-c', SEND_ICMP6, 'na', 'eth0', 'ff02::1', b6, mac.a]);
    try {
      assert.equal(await pingOk(ctr.t, b6), true);
      assert.equal(await tNeigh(b6), mac.b);
      const sent = await na();
      assert.equal(sent.code, 0, sent.stderr);
      await sleep(200);
      assert.equal(await tNeigh(b6), mac.b, "T still sends B's IPv6 traffic to B");
      const d = await drops();
      assert.ok((d.drop_nd ?? 0) >= 1, `counted: ${JSON.stringify(d)}`);
      await withoutGuardOfA(async () => {
        await na();
        await sleep(200);
      });
      assert.equal(await tNeigh(b6), mac.a, 'control: unguarded, the NA poisons T');
    } finally {
      await ctr.t.ns.run(['ip', '-6', 'neigh', 'flush', 'dev', 'eth0']);
    }
    assert.equal(await pingOk(ctr.t, b6), true);
  });

  it('VLAN-tagged frames from a container are dropped (they would carry any address past the checks)', async (t) => {
    const vlan = ['link', 'add', 'link', 'eth0', 'name', 'v5', 'type', 'vlan', 'id', '5'];
    if ((await ctr.a.ns.run(['ip', ...vlan])).code !== 0) {
      t.skip('no VLAN devices on this kernel (8021q)');
      return;
    }
    await ctr.a.ns.run(['ip', 'link', 'del', 'v5']);
    for (const [k, n] of [
      ['a', 2],
      ['t', 4],
    ] as const) {
      await ctr[k].ns.must(['ip', ...vlan]);
      await ctr[k].ns.must(['ip', 'addr', 'add', `198.18.42.${n}/24`, 'dev', 'v5']);
      await ctr[k].ns.must(['ip', 'link', 'set', 'v5', 'up']);
    }
    try {
      const dropped = (await drops()).drop_ethertype ?? 0;
      assert.equal(await pingOk(ctr.a, '198.18.42.4'), false, 'tagged frames do not get through');
      assert.ok(((await drops()).drop_ethertype ?? 0) > dropped, 'counted in drop_ethertype');
      // T's tagged replies would meet T's own guard: both unguarded
      assert.equal(await withoutGuards(['a', 't'], () => pingOk(ctr.a, '198.18.42.4')), true, 'control: they do');
    } finally {
      await ctr.a.ns.run(['ip', 'link', 'del', 'v5']);
      await ctr.t.ns.run(['ip', 'link', 'del', 'v5']);
    }
  });

  it('drift: a deleted element fails closed, shows in checkGuards and is restored exactly; extras are pruned', async () => {
    const all = Object.values(guards);
    const a = guards.a;
    assert.deepEqual(await dp.checkGuards(all), {
      drifted: [],
      exact: [],
      extra: [],
      problems: [],
      tablePresent: true,
    });
    await host.must(['nft', 'delete', 'element', 'bridge', 'truss_guard', 'addr4', `{ "${a.name}" . ${ctr.a.ip} }`]);
    assert.equal(await pingOk(ctr.a, ctr.t.ip), false, 'a guarded port with no IPv4 sends no IPv4');
    const c = await dp.checkGuards(all);
    assert.deepEqual([c.drifted, c.exact], [[a.name], []]);
    await host.must(['nft', 'add', 'element', 'bridge', 'truss_guard', 'addr4', `{ "${a.name}" . 198.18.41.99 }`]);
    assert.deepEqual((await dp.checkGuards(all)).exact, [a.name], 'an element not its own: repaired exactly');
    await dp.ensureGuard(a, { exact: true });
    // the chain changed by hand: one exact repair of the first guard rewrites it
    await host.must([
      'nft',
      'delete',
      'rule',
      'bridge',
      'truss_guard',
      'prerouting',
      'handle',
      await firstRuleHandle(),
    ]);
    const chain = await dp.checkGuards(all);
    assert.deepEqual(chain.exact, [all[0]?.name]);
    await dp.ensureGuard(all[0] as GuardObject, { exact: true });
    assert.deepEqual(await dp.checkGuards(all), {
      drifted: [],
      exact: [],
      extra: [],
      problems: [],
      tablePresent: true,
    });
    assert.ok(!(await host.must(['nft', 'list', 'set', 'bridge', 'truss_guard', 'addr4'])).includes('198.18.41.99'));
    assert.equal(await pingOk(ctr.a, ctr.t.ip), true);
    // B not desired any more: its elements are read from the table and removed; B is then unchecked
    assert.deepEqual((await dp.checkGuards([guards.a, guards.t])).extra, [guards.b.name]);
    await dp.removeGuard(guards.b.name);
    assert.deepEqual(await dp.checkGuards([guards.a, guards.t]), {
      drifted: [],
      exact: [],
      extra: [],
      problems: [],
      tablePresent: true,
    });
    await dp.removeGuard(guards.b.name); // gone = success
    await dp.ensureGuard(guards.b);
  });

  it('attach stays O(1): ensureGuard costs the same with 10 and with 1,000 ports guarded', async (t) => {
    const fake = (i: number): GuardObject => ({
      name: `trv${i.toString(16).padStart(12, '0')}`,
      endpointId: randomId(),
      networkId: N,
      mac: `02:5f:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
      ipv4: [`198.19.${(i >> 8) & 255}.${i & 255}`],
      ipv6: [
        `fd00:99::${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}`,
        `fe80::5f:ff:fe00:${(i & 0xffff).toString(16)}`,
      ],
    });
    const removals: Record<number, number[]> = {};
    const median = async (n: number): Promise<number> => {
      const ms: number[] = [];
      removals[n] = [];
      for (let i = 0; i < 15; i++) {
        const g = fake(100_000 + i);
        const t0 = performance.now();
        await dp.ensureGuard(g);
        ms.push(performance.now() - t0);
        const r0 = performance.now();
        await dp.removeGuard(g.name, g);
        removals[n]?.push(performance.now() - r0);
      }
      ms.sort((x, y) => x - y);
      t.diagnostic(`${n} ports: ensureGuard ${ms.map((x) => x.toFixed(1)).join(' ')}`);
      return ms[7] as number;
    };
    const mid = (xs: number[] | undefined): string =>
      ([...(xs ?? [])].sort((x, y) => x - y)[Math.floor((xs?.length ?? 0) / 2)] ?? Number.NaN).toFixed(1);
    for (let i = 0; i < 10; i++) await dp.ensureGuard(fake(i));
    const small = await median(10);
    // the other 990 in one transaction (990 attaches one by one would take most of a minute here)
    const bulk = new Map<string, string[]>();
    for (let i = 10; i < 1000; i++) {
      for (const [set, els] of Object.entries(guardElements(fake(i))))
        bulk.set(set, [...(bulk.get(set) ?? []), ...els]);
    }
    const t0 = performance.now();
    await host.must(
      ['nft', '-f', '-'],
      [...bulk].map(([set, els]) => `add element bridge truss_guard ${set} { ${els.join(', ')} }\n`).join(''),
    );
    const fill = performance.now() - t0;
    const large = await median(1000);
    const r0 = performance.now();
    await dp.removeGuard(fake(500).name);
    const readRemove = performance.now() - r0;
    t.diagnostic(
      `ensureGuard median ${small.toFixed(1)} ms with 10 ports, ${large.toFixed(1)} ms with 1,000 (filling took ` +
        `${fill.toFixed(0)} ms in one transaction); removeGuard median ${mid(removals[10])} ms at 10, ${mid(removals[1000])} ms at 1,000; ` +
        `removeGuard without the applied object (reads the table) at 1,000: ${readRemove.toFixed(1)} ms`,
    );
    assert.ok(large <= 2 * small + 2, `${large.toFixed(1)} ms > 2 x ${small.toFixed(1)} ms + 2`);
    await dp.removeGuardTable();
    for (const g of Object.values(guards)) await dp.ensureGuard(g);
  });

  it('the table goes with the last guard; removals are idempotent; the next attach makes it again', async () => {
    await dp.removeGuardTable();
    assert.notEqual((await host.run(['nft', 'list', 'table', 'bridge', 'truss_guard'])).code, 0);
    await dp.removeGuardTable();
    await dp.removeGuard(guards.a.name, guards.a);
    await dp.removeGuard(guards.a.name);
    assert.equal((await host.run(['nft', 'list', 'table', 'bridge', 'truss_guard'])).code, 1, 'removal made no table');
    assert.deepEqual(await dp.checkGuards([]), {
      drifted: [],
      exact: [],
      extra: [],
      problems: [],
      tablePresent: false,
    });
    await dp.ensureGuard(guards.a); // elements alone fail without the table: table, sets and chain come with them
    assert.deepEqual(await dp.checkGuards([guards.a]), {
      drifted: [],
      exact: [],
      extra: [],
      problems: [],
      tablePresent: true,
    });
    await dp.removeGuardTable();
  });
});

describe('anti-spoofing (kernel) cleanup', () => {
  it('leaves no test namespace behind', async () => assert.deepEqual(await listTestNamespaces(), []));
});
