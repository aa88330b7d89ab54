/**
 * Kernel tests (root) for DNS redirection with REAL TRAFFIC: a simulated Docker host (FORWARD
 * policy DROP, br_netfilter on, the truss firewall), one dns-enabled truss network and a
 * "container" on it, a responder on the gateway (one port per upstream), and an outside
 * namespace with a real DNS-port server on the upstream NOT redirected.
 *
 *   ctr 198.18.90.2 fd00:90::2 ── trb… 198.18.90.1 fd00:90::1 (host; responder :35301 v4, :35302 v6)
 *   host: 198.18.91.53, fd00:91::53 unreachable (the redirected upstream: nothing answers there)
 *   host up0 198.18.91.1 fd00:91::1 ── outside 198.18.91.54 fd00:91::54 :53 (an upstream not in the map)
 *
 * Queries to the upstream not in the map are learnt (readDnsSeen), and stay learnt across ensures.
 *
 * The servers and the client are tiny node:dgram/node:net programs run with `nsenter --net`.
 * Run: TRUSS_TEST_NS_PREFIX=dnsr- node --test src/dataplane/linux/dns-redirect.netns.ts
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DnsRedirectObject } from '../../core/desired.ts';
import type { LinuxDataplane } from './linux-dataplane.ts';
import {
  type Ctr,
  createScratch,
  listTestNamespaces,
  randomId,
  simulatedHost,
  type TestNs,
  testEndpoint,
  testNetwork,
} from './netns-testutil.ts';

/** Answers every UDP datagram and TCP connection on each "address port" with `<tag>:<port>:<data>`. */
const SERVER = `
const dgram = require('node:dgram'); const net = require('node:net');
const [tag, ...binds] = process.argv.slice(1);
let pending = binds.length * 2;
const up = () => { if (--pending === 0) console.log('ready'); };
for (const b of binds) {
  const [host, port] = b.split(' ');
  const v6 = host.includes(':');
  const u = dgram.createSocket(v6 ? { type: 'udp6', ipv6Only: true } : { type: 'udp4' });
  u.on('message', (m, r) => u.send(tag + ':' + port + ':' + m, r.port, r.address));
  u.bind(Number(port), host, up);
  net.createServer((c) => c.once('data', (d) => c.end(tag + ':' + port + ':' + d))).listen({ host, port: Number(port), ipv6Only: v6 }, up);
}`;

/** One query over udp or tcp to ip:port; prints the reply, or "none: <why>" after 1.5 s. */
const CLIENT = `
const dgram = require('node:dgram'); const net = require('node:net');
const [proto, ip, port] = process.argv.slice(1);
const done = (s) => { console.log(s); process.exit(0); };
setTimeout(() => done('none: timeout'), 1500);
if (proto === 'udp') {
  // connected: the kernel takes replies only from ip:port itself (proves conntrack's un-DNAT)
  const s = dgram.createSocket(ip.includes(':') ? 'udp6' : 'udp4');
  s.on('error', (e) => done('none: ' + e.code));
  s.connect(Number(port), ip, () => s.send('q'));
  s.on('message', (m) => done(String(m)));
} else {
  const c = net.connect({ host: ip, port: Number(port) }, () => c.write('q'));
  c.on('error', (e) => done('none: ' + e.code));
  c.on('data', (d) => done(String(d)));
}`;

function node(ns: TestNs, script: string, args: readonly string[]): ChildProcess {
  return spawn('nsenter', [`--net=${ns.path}`, '--', process.execPath, '-e', script, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

/** A SERVER in `ns`, resolved once every socket listens. */
async function serve(ns: TestNs, tag: string, binds: readonly string[]): Promise<ChildProcess> {
  const p = node(ns, SERVER, [tag, ...binds]);
  await new Promise<void>((resolve, reject) => {
    p.stdout?.on('data', (b: Buffer) => {
      if (b.toString().includes('ready')) resolve();
    });
    p.once('exit', (c) => reject(new Error(`${tag} server exited ${c}`)));
  });
  return p;
}

/** One query from `from`: the reply text, or "none: …". */
async function ask(from: Ctr, proto: 'udp' | 'tcp', ip: string, port = 53): Promise<string> {
  const r = await from.ns.run([process.execPath, '-e', CLIENT, proto, ip, `${port}`]);
  return r.stdout.trim();
}

describe('DNS redirection with real traffic (kernel)', () => {
  const scratch = createScratch();
  let host: TestNs;
  let outside: TestNs;
  let dp: LinuxDataplane;
  let ctr: Ctr;
  const N = randomId();
  const net = testNetwork(N, 90, { v6: true });
  const ep = testEndpoint(N);
  const OBJ: DnsRedirectObject = {
    bridges: [{ bridge: net.bridge, gateway4: '198.18.90.1', gateway6: 'fd00:90::1' }],
    upstreams: [
      { address: '198.18.91.53', port: 35301 },
      { address: 'fd00:91::53', port: 35302 },
    ],
  };
  /** udp and tcp to v4 and v6 of one upstream host part (".53" or ".54") */
  const askAll = (last: '53' | '54'): Promise<string[]> =>
    Promise.all([
      ask(ctr, 'udp', `198.18.91.${last}`),
      ask(ctr, 'tcp', `198.18.91.${last}`),
      ask(ctr, 'udp', `fd00:91::${last}`),
      ask(ctr, 'tcp', `fd00:91::${last}`),
    ]);
  const REDIRECTED = ['responder:35301:q', 'responder:35301:q', 'responder:35302:q', 'responder:35302:q'];
  const UPSTREAM = ['upstream:53:q', 'upstream:53:q', 'upstream:53:q', 'upstream:53:q'];
  const none = (xs: readonly string[]): boolean => xs.every((x) => x.startsWith('none: '));

  before(async () => {
    const h = await simulatedHost(scratch, { networks: [net], endpoints: [ep], dockerd: 'nf-on' });
    ({ ns: host, dp } = h);
    ctr = await h.join('ctr', ep, '198.18.90.2/24', '198.18.90.1', ['fd00:90::2/64', 'fd00:90::1']);
    outside = await scratch.ns('out');
    await host.must(['ip', 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside.name]);
    await host.must(
      ['ip', '-batch', '-'],
      [
        'addr add 198.18.91.1/24 dev up0',
        'addr add fd00:91::1/64 dev up0 nodad',
        'link set up0 up',
        // the redirected upstream answers nowhere: a reply can only come from the responder
        'route add unreachable 198.18.91.53/32',
        'route add unreachable fd00:91::53/128',
      ].join('\n'),
    );
    await outside.must(
      ['ip', '-batch', '-'],
      [
        'addr add 198.18.91.54/24 dev eth0',
        'addr add fd00:91::54/64 dev eth0 nodad',
        'link set eth0 up',
        'route add default via 198.18.91.1',
        'route add default via fd00:91::1',
      ].join('\n'),
    );
    await host.must(['sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
    await h.ensureFirewall();
    // IPv6 neighbour discovery needs the link-local addresses, which are tentative until DAD ends
    for (const ns of [host, outside, ctr.ns]) {
      for (let i = 0; i < 50 && (await ns.must(['ip', '-6', 'addr', 'show', 'tentative'])).trim() !== ''; i++) {
        await sleep(100);
      }
    }
    scratch.proc(await serve(host, 'responder', ['198.18.90.1 35301', 'fd00:90::1 35302']));
    scratch.proc(await serve(outside, 'upstream', ['0.0.0.0 53', ':: 53']));
  });

  it('without the table, queries pass through: the unreachable upstream gives no answer, the other answers', async () => {
    assert.ok(none(await askAll('53')), 'nothing answers for 198.18.91.53');
    assert.deepEqual(await askAll('54'), UPSTREAM);
    assert.deepEqual(await dp.checkDnsRedirect(undefined), []);
    assert.deepEqual(await dp.checkDnsRedirect(OBJ), ['nft table inet truss_dns is missing']);
  });

  it('ensure: udp and tcp, v4 and v6, to the upstream reach the responder on its port; replies come back', async () => {
    await dp.ensureDnsRedirect(OBJ);
    assert.deepEqual(await askAll('53'), REDIRECTED);
    // conntrack: the original tuple goes to the upstream, the reply tuple comes from the responder
    const ct = await host.must(['conntrack', '-L', '-p', 'udp', '--orig-dst', '198.18.91.53']);
    assert.match(
      ct,
      /src=198\.18\.90\.2 dst=198\.18\.91\.53 sport=\d+ dport=53 .*src=198\.18\.90\.1 dst=198\.18\.90\.2 sport=35301 /,
      ct,
    );
  });

  it('an upstream not in the map is not redirected, and is learnt; a redirected one is not', async () => {
    assert.deepEqual(await dp.readDnsSeen(), [], 'the redirected queries above left nothing');
    assert.deepEqual(await askAll('54'), UPSTREAM);
    assert.deepEqual([...(await dp.readDnsSeen())].sort(), ['198.18.91.54', 'fd00:91::54']);
    const sets = await host.must(['nft', 'list', 'set', 'inet', 'truss_dns', 'seen4']);
    assert.match(sets, /198\.18\.91\.54 expires /, 'learnt with a timeout');
    // DNS that enters from another interface (the outside, to the container): not learnt
    await ask({ ...ctr, ns: outside }, 'udp', '198.18.90.2');
    assert.deepEqual([...(await dp.readDnsSeen())].sort(), ['198.18.91.54', 'fd00:91::54']);
  });

  it('is idempotent; check is clean, reports an element deleted by hand, and ensure repairs it', async () => {
    // the seen elements' remaining time changes between listings
    const listing = async () =>
      (await host.must(['nft', 'list', 'table', 'inet', 'truss_dns'])).replace(/# handle \d+| expires \S+/g, '');
    const first = await listing();
    await dp.ensureDnsRedirect(OBJ);
    assert.equal(await listing(), first);
    assert.deepEqual(await dp.checkDnsRedirect(OBJ), []);
    await host.must(['nft', 'delete', 'element', 'inet', 'truss_dns', 'dns4', `{ "${net.bridge}" . 198.18.91.53 }`]);
    assert.deepEqual(await dp.checkDnsRedirect(OBJ), [
      `nft table inet truss_dns: 1 element(s) missing: dns4 "${net.bridge}" . 198.18.91.53 : 198.18.90.1 . 35301`,
    ]);
    assert.ok((await ask(ctr, 'udp', '198.18.91.53')).startsWith('none: '));
    await dp.ensureDnsRedirect(OBJ);
    assert.deepEqual(await dp.checkDnsRedirect(OBJ), []);
    assert.equal(await ask(ctr, 'udp', '198.18.91.53'), 'responder:35301:q');
  });

  it('a changed object rewrites the table: an upstream dropped is no longer redirected; what was learnt stays', async () => {
    const v6only: DnsRedirectObject = { ...OBJ, upstreams: OBJ.upstreams.slice(1) };
    assert.equal((await dp.checkDnsRedirect(v6only)).length, 1, 'the v4 element is not desired');
    await dp.ensureDnsRedirect(v6only);
    assert.deepEqual(await dp.checkDnsRedirect(v6only), []);
    assert.deepEqual(await Promise.all([ask(ctr, 'tcp', '198.18.91.53'), ask(ctr, 'tcp', 'fd00:91::53')]), [
      'none: EHOSTUNREACH',
      'responder:35302:q',
    ]);
    // the rewrite kept what was learnt; the upstream no longer in the map is learnt now
    assert.deepEqual([...(await dp.readDnsSeen())].sort(), ['198.18.91.53', '198.18.91.54', 'fd00:91::54']);
    await dp.ensureDnsRedirect(OBJ);
    assert.deepEqual([...(await dp.readDnsSeen())].sort(), ['198.18.91.53', '198.18.91.54', 'fd00:91::54']);
  });

  it('a table the rewrite cannot take (a seen set of another shape) is replaced whole', async () => {
    await host.must(
      ['nft', '-f', '-'],
      'table inet truss_dns {}\ndelete table inet truss_dns\ntable inet truss_dns { set seen4 { type ipv6_addr; }; }\n',
    );
    assert.equal((await dp.checkDnsRedirect(OBJ)).length, 2, 'the chain and the elements differ');
    await dp.ensureDnsRedirect(OBJ);
    assert.deepEqual(await dp.checkDnsRedirect(OBJ), []);
    assert.deepEqual(await dp.readDnsSeen(), []);
    assert.equal(await ask(ctr, 'udp', '198.18.91.53'), 'responder:35301:q');
  });

  it('remove restores pass-through; removing twice is fine; an unwanted table is a problem until removed', async () => {
    assert.deepEqual(await dp.checkDnsRedirect(undefined), [
      'nft table inet truss_dns exists but no network wants DNS redirection',
    ]);
    await dp.removeDnsRedirect();
    await dp.removeDnsRedirect();
    assert.deepEqual(await dp.checkDnsRedirect(undefined), []);
    assert.deepEqual(await dp.readDnsSeen(), [], 'no table: nothing learnt');
    assert.doesNotMatch(await host.must(['nft', 'list', 'tables']), /truss_dns/);
    // new flows: conntrack entries of the redirected ones would still be un-DNATed
    await host.must(['conntrack', '-F']);
    assert.ok(none(await askAll('53')), 'nothing answers for 198.18.91.53 again');
    assert.deepEqual(await askAll('54'), UPSTREAM);
  });
});

describe('DNS redirection (kernel) cleanup', () => {
  it('leaves no test namespace behind', async () => assert.deepEqual(await listTestNamespaces(), []));
});
