/**
 * truss.egress.via end to end: one simulated host ("egv", its own dockerd and truss), two
 * candidate next hops A and B (namespaces on links of their own from the host, each routing on
 * to the outside over a link of its own), and the outside of outside.ts (the host's default
 * route). The outside can tell the three paths apart by the source it sees (truss masquerades
 * to the address of the link the packet leaves by), and tcpdump on A and B counts the SYNs
 * that pass through each.
 *
 *   c1, c2 ── truss network 198.18.60.0/24 ── host ─┬─ evA 198.19.251.1/30 ── A .2 ── .5/30 ─┐
 *                                                   ├─ evB 198.19.251.9/30 ── B .10 ─ .13/30 ┤── outside 198.19.250.2
 *                                                   └─ e2eout0 198.19.250.1/30 (default) ────┘
 *
 * Tests run in order and share the host; the last removes everything and checks that nothing
 * truss-owned (rules, tables, links, nft tables) is left.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { containerIp, containerPid, removeContainers, runContainer } from './harness/containers.ts';
import { inNetns, runOk } from './harness/exec.ts';
import { printFigures } from './harness/figures.ts';
import { type Host, startHost } from './harness/host.ts';
import { assertNoTrussLeftovers, TRUSS_ROUTE_PROTO, trussKernelObjects } from './harness/leftovers.ts';
import { MODES, modeOpts, modeTitle } from './harness/modes.ts';
import { createNetns, deleteNetns } from './harness/netns.ts';
import { createOutside, HOST_UPLINK_IP, OUTSIDE_IP, OUTSIDE_PORT } from './harness/outside.ts';
import { CHILD_PATH, NETNS_PREFIX } from './harness/paths.ts';
import { SINK_CMD, serverSaw, tcpConnect } from './harness/traffic.ts';
import { trussQuiet } from './harness/truss.ts';

const TRUSS_OPTS = {
  debug: true,
  defaultPools: '198.18.128.0/17:24',
  extraArgs: ['--resync-seconds', '3600'],
} as const;
const SUBNET = '198.18.60.0/24';
/** The two candidates: [host side of the link, next hop, its link to the outside (its side, the outside's side)]. */
const GW = {
  A: { hostIf: 'evA', hostIp: '198.19.251.1', via: '198.19.251.2', up: ['198.19.251.5', '198.19.251.6'] },
  B: { hostIf: 'evB', hostIp: '198.19.251.9', via: '198.19.251.10', up: ['198.19.251.13', '198.19.251.14'] },
} as const;
type Gw = keyof typeof GW;

let host: Host;
/** the suite's network mode: routed adds -o truss.mode=routed to every create (harness/modes.ts) */
let mode: (typeof MODES)[number] = 'bridge';
const gwPath: Partial<Record<Gw, string>> = {};
const figures: string[] = [];

interface Capture {
  stop(): Promise<string[]>;
}

/** tcpdump on every interface of a namespace; stop() returns the source address of each packet. */
function captureIn(netnsPath: string, filter: string): Promise<Capture> {
  const argv = inNetns(netnsPath, ['tcpdump', '-n', '-l', '-q', '-i', 'any', filter]);
  const child = spawn(argv[0] as string, argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: CHILD_PATH },
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const closed = new Promise<void>((r) => child.on('close', () => r()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${err}`)), 10_000);
    child.on('error', reject);
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (!err.includes('listening on')) return;
      clearTimeout(timer);
      resolve({
        async stop() {
          await new Promise((r) => setTimeout(r, 300)); // let the last packets be printed
          child.kill('SIGINT');
          await closed;
          // "IP 198.19.251.1.40312 > 198.19.250.2.8080: tcp 0" (with -i any, after "evA In  ")
          return [...out.matchAll(/IP (\d+\.\d+\.\d+\.\d+)\.\d+ > /g)].map((m) => m[1] as string);
        },
      });
    });
  });
}

/** A candidate next hop: a router namespace between a link from the host and a link to the outside. */
async function createGateway(name: Gw, outsidePath: string, outsideName: string): Promise<void> {
  const g = GW[name];
  const ns = `${NETNS_PREFIX}gw${name.toLowerCase()}`;
  const path = await createNetns(ns);
  host.onStop(() => deleteNetns(ns));
  gwPath[name] = path;
  const inHost = (a: string[]) => runOk(inNetns(host.netnsPath, a));
  const inGw = (a: string[]) => runOk(inNetns(path, a));
  const inOut = (a: string[]) => runOk(inNetns(outsidePath, a));
  await inHost(['ip', 'link', 'add', g.hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await inHost(['ip', 'addr', 'add', `${g.hostIp}/30`, 'dev', g.hostIf]);
  await inHost(['ip', 'link', 'set', g.hostIf, 'up']);
  await inGw(['ip', 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', `up${name}`, 'netns', outsideName]);
  await inGw(['ip', 'addr', 'add', `${g.via}/30`, 'dev', 'eth0']);
  await inGw(['ip', 'addr', 'add', `${g.up[0]}/30`, 'dev', 'up0']);
  await inGw(['ip', 'link', 'set', 'eth0', 'up']);
  await inGw(['ip', 'link', 'set', 'up0', 'up']);
  await inGw(['ip', 'route', 'add', 'default', 'via', g.up[1]]);
  await inGw(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  await inOut(['ip', 'addr', 'add', `${g.up[1]}/30`, 'dev', `up${name}`]);
  await inOut(['ip', 'link', 'set', `up${name}`, 'up']);
  // replies to the host's address on the candidate's link go back through the candidate
  await inOut(['ip', 'route', 'add', `${g.hostIp}/32`, 'via', g.up[0]]);
}

const trussNet = async (name: string, args: readonly string[]) => {
  const t0 = performance.now();
  const r = await host.docker([
    'network',
    'create',
    '-d',
    'truss',
    '--ipam-driver',
    'truss',
    ...modeOpts(mode),
    ...args,
    name,
  ]);
  return { ...r, ms: performance.now() - t0 };
};

const ownRules = async (): Promise<Record<string, unknown>[]> => {
  const r = await host.exec(['ip', '-j', '-4', 'rule', 'show']);
  return (JSON.parse(r.stdout || '[]') as Record<string, unknown>[]).filter(
    (x) => x.protocol === String(TRUSS_ROUTE_PROTO),
  );
};

/** Connects c1 to the outside while capturing on A, B and the outside; returns what each saw. */
async function throughWhich(tries = 3) {
  const outsidePath = `/run/netns/${NETNS_PREFIX}out`;
  const syn = `tcp dst port ${OUTSIDE_PORT} and tcp[tcpflags] & tcp-syn != 0`;
  const caps = await Promise.all([
    captureIn(gwPath.A as string, syn),
    captureIn(gwPath.B as string, syn),
    captureIn(outsidePath, syn),
  ]);
  const results = [];
  for (let i = 0; i < tries; i++) results.push(await tcpConnect(host, 'c1', OUTSIDE_IP, OUTSIDE_PORT, 3));
  const [a, b, out] = await Promise.all(caps.map((c) => c.stop()));
  return { ok: results.filter((r) => r.ok).length, results, a: a ?? [], b: b ?? [], out: out ?? [] };
}

for (const m of MODES)
  describe(modeTitle('truss.egress.via against a real dockerd', m), { timeout: 10 * 60_000 }, () => {
    before(async () => {
      mode = m;
      host = await startHost(m === 'bridge' ? 'egv' : 'egvr');
      await host.startTruss(TRUSS_OPTS);
      const outside = await createOutside(host);
      await createGateway('A', outside.netnsPath, outside.name);
      await createGateway('B', outside.netnsPath, outside.name);
    });

    after(async () => {
      if (figures.length > 0) printFigures(figures);
      await host?.stop();
    });

    it('1. refuses a bad next hop before anything is made', async () => {
      for (const [via, why] of [
        ['198.18.60.1', /gateway, this host itself/],
        ['fd00::1', /no IPv6 subnet/],
        ['198.19.0.1/24', /not an IP address/],
      ] as const) {
        const r = await trussNet('bad', ['--subnet', SUBNET, '-o', `truss.egress.via=${via}`]);
        assert.notEqual(r.code, 0, `via ${via} must be refused`);
        assert.match(r.stderr, why);
      }
      // on-link nowhere: only the kernel can tell; the create fails and is undone
      const r = await trussNet('bad', ['--subnet', SUBNET, '-o', 'truss.egress.via=198.19.9.9']);
      assert.notEqual(r.code, 0, 'an unreachable next hop must fail the create');
      assert.match(r.stderr, /not reachable on a link of this host/);
      assert.deepEqual(await trussKernelObjects(host.netnsPath), [], 'nothing left of the failed creates');
    });

    it('2. without the option the network leaves through the host default route', async () => {
      const plain = await trussNet('ev0', ['--subnet', SUBNET]);
      assert.equal(plain.code, 0, plain.stderr);
      figures.push(`docker network create (no egress.via): ${plain.ms.toFixed(0)} ms`);
      await runContainer(host, { name: 'c1', network: 'ev0' });
      const seen = await throughWhich(1);
      assert.equal(seen.ok, 1, `c1 -> outside: ${seen.results[0]?.output}`);
      assert.deepEqual([seen.a.length, seen.b.length], [0, 0], 'neither candidate sees anything');
      assert.ok(seen.out.length > 0 && seen.out.every((s) => s === HOST_UPLINK_IP), `outside saw ${seen.out}`);
      await removeContainers(host, ['c1']);
      assert.equal((await host.docker(['network', 'rm', 'ev0'])).code, 0);
    });

    it('3. via A: every connection passes through A, none through B; the outside sees A’s link', async () => {
      const r = await trussNet('eva', ['--subnet', SUBNET, '-o', `truss.egress.via=${GW.A.via}`]);
      assert.equal(r.code, 0, r.stderr);
      figures.push(`docker network create -o truss.egress.via: ${r.ms.toFixed(0)} ms`);
      const rules = await ownRules();
      assert.ok(
        rules.some((x) => x.src === '198.18.60.0' && x.srclen === 24),
        `ip rule from ${SUBNET}: ${JSON.stringify(rules)}`,
      );
      await runContainer(host, { name: 'c1', network: 'eva' });
      await runContainer(host, { name: 'c2', network: 'eva', cmd: SINK_CMD() });
      const seen = await throughWhich(5);
      assert.equal(seen.ok, 5, `all 5 connections succeed: ${seen.results.map((x) => x.output).join(' | ')}`);
      assert.ok(seen.a.length >= 5, `A saw ${seen.a.length} SYNs`);
      assert.equal(seen.b.length, 0, `B must see nothing, saw ${seen.b}`);
      assert.ok(
        seen.a.every((s) => s === GW.A.hostIp),
        `A sees the host's address on its link: ${seen.a}`,
      );
      assert.ok(seen.out.length >= 5 && seen.out.every((s) => s === GW.A.hostIp), `outside saw ${seen.out}`);
      figures.push(
        `via A: ${seen.a.length} SYNs at A, ${seen.b.length} at B, outside sources ${[...new Set(seen.out)]}`,
      );
    });

    it('4. traffic inside the network is untouched (c1 -> c2 direct, nothing at A or B)', async () => {
      const c2 = await containerIp(host, 'c2', 'eva');
      const caps = await Promise.all([captureIn(gwPath.A as string, 'tcp'), captureIn(gwPath.B as string, 'tcp')]);
      const r = await tcpConnect(host, 'c1', c2);
      const [a, b] = await Promise.all(caps.map((c) => c.stop()));
      assert.ok(r.ok, `c1 -> c2: ${r.output}`);
      assert.ok(await serverSaw(host, 'c2', r.token));
      assert.deepEqual([a?.length, b?.length], [0, 0], 'no packet of the flow inside the network at A or B');
    });

    it('5. switching: the network recreated with B flips every connection to B', async () => {
      await removeContainers(host, ['c1', 'c2']);
      assert.equal((await host.docker(['network', 'rm', 'eva'])).code, 0);
      assert.deepEqual(await ownRules(), [], 'removing the network removes its rules');
      assert.deepEqual(await trussKernelObjects(host.netnsPath), [], 'and its table and bridge');
      const r = await trussNet('evb', ['--subnet', SUBNET, '-o', `truss.egress.via=${GW.B.via}`]);
      assert.equal(r.code, 0, r.stderr);
      await runContainer(host, { name: 'c1', network: 'evb' });
      const seen = await throughWhich(5);
      assert.equal(seen.ok, 5, `all 5 connections succeed: ${seen.results.map((x) => x.output).join(' | ')}`);
      assert.equal(seen.a.length, 0, `A must see nothing now, saw ${seen.a}`);
      assert.ok(seen.b.length >= 5, `B saw ${seen.b.length} SYNs`);
      assert.ok(
        seen.out.every((s) => s === GW.B.hostIp),
        `outside saw ${seen.out}`,
      );
      figures.push(
        `via B: ${seen.a.length} SYNs at A, ${seen.b.length} at B, outside sources ${[...new Set(seen.out)]}`,
      );
    });

    it('6. drift: a deleted rule is reported and repaired by a full pass', async () => {
      const rule = (await ownRules())[0];
      assert.ok(rule, 'a truss rule exists');
      await trussQuiet(() => host.trussStatus()); // no pass may repair it before status reads it
      await host.exec(['ip', 'rule', 'del', 'priority', String(rule.priority), 'proto', String(TRUSS_ROUTE_PROTO)]);
      assert.equal((await host.trussStatus()).kernel.inSync, false, 'status reports the drift');
      const r = await host.truss.cli(['reconcile', '--state-dir', host.stateDir]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok((await host.trussStatus()).kernel.inSync, 'in sync after one full pass');
      const seen = await throughWhich(1);
      assert.ok(seen.ok === 1 && seen.b.length >= 1 && seen.a.length === 0, JSON.stringify(seen));
    });

    it('7. kill -9 and restart: the kernel keeps the routing, the restarted truss finds it in sync', async () => {
      const before = await ownRules();
      await host.stopTruss('SIGKILL');
      assert.deepEqual(await ownRules(), before, 'rules stay while truss is down');
      const down = await throughWhich(1);
      assert.ok(
        down.ok === 1 && down.b.length >= 1 && down.a.length === 0,
        'traffic keeps its path while truss is down',
      );
      await host.startTruss(TRUSS_OPTS);
      assert.ok((await host.trussStatus()).kernel.inSync, 'in sync after the restart');
      assert.deepEqual(await ownRules(), before);
    });

    it('8. a gateway container on the network: its NAT, then the host, carry the traffic out', async () => {
      const gwIp = '198.18.62.250';
      if (mode === 'routed') {
        // a next hop inside a routed network has no stable link on the host (its host end comes and goes)
        const r = await trussNet('evc', ['--subnet', '198.18.62.0/24', '-o', `truss.egress.via=${gwIp}`]);
        assert.notEqual(r.code, 0, 'a next hop inside a routed network is refused');
        assert.match(r.stderr, /in truss.mode=routed the next hop must be outside it/);
        return;
      }
      // a gateway container forwards other containers' traffic (replies carry outside sources), so
      // anti-spoofing cannot hold for it: the network opts out here (one container would opt out with
      // `--driver-opt truss.antispoof=false` on `docker network connect`)
      const r = await trussNet('evc', [
        '--subnet',
        '198.18.62.0/24',
        '-o',
        `truss.egress.via=${gwIp}`,
        '-o',
        'truss.antispoof=false',
      ]);
      assert.equal(r.code, 0, r.stderr);
      await runContainer(host, { name: 'gw', network: 'evc', ip: gwIp });
      await runContainer(host, { name: 'c3', network: 'evc' });
      const gwPid = await containerPid(host, 'gw');
      const inGw = (argv: string[], stdin?: string) =>
        runOk(['nsenter', `--target=${gwPid}`, '--net', '--', ...argv], stdin === undefined ? {} : { input: stdin });
      await inGw(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
      await inGw(
        ['nft', '-f', '-'],
        'table ip gwnat {\n\tchain post {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n' +
          '\t\toifname "eth0" ip saddr != 198.18.62.250 masquerade\n\t}\n}\n',
      );
      const c3 = await containerIp(host, 'c3', 'evc');
      const gwNet = `/proc/${gwPid}/ns/net`;
      const outsidePath = `/run/netns/${NETNS_PREFIX}out`;
      const syn = `tcp dst port ${OUTSIDE_PORT} and tcp[tcpflags] & tcp-syn != 0`;
      const caps = await Promise.all([captureIn(gwNet, syn), captureIn(outsidePath, syn)]);
      const results = [];
      for (let i = 0; i < 3; i++) results.push(await tcpConnect(host, 'c3', OUTSIDE_IP, OUTSIDE_PORT, 3));
      const [atGw, atOut] = await Promise.all(caps.map((c) => c.stop()));
      assert.equal(results.filter((x) => x.ok).length, 3, results.map((x) => x.output).join(' | '));
      // at the gateway: c3's SYN arriving, then the same SYN leaving with the gateway's own address
      assert.ok((atGw ?? []).filter((s) => s === c3).length >= 3, `gw saw c3's SYNs: ${atGw}`);
      assert.ok((atGw ?? []).filter((s) => s === gwIp).length >= 3, `gw sent them on NATed: ${atGw}`);
      assert.ok((atOut ?? []).length >= 3 && (atOut ?? []).every((s) => s === HOST_UPLINK_IP), `outside saw ${atOut}`);
      figures.push(
        `gateway container: ${atGw?.length} SYN lines at gw (in + out), outside sources ${[...new Set(atOut)]}`,
      );
    });

    it('9. measures docker network create + rm with and without the option (printed, not asserted)', async () => {
      const times: Record<string, number[]> = { plain: [], via: [] };
      for (let i = 0; i < 5; i++) {
        for (const kind of ['plain', 'via'] as const) {
          const opt = kind === 'via' ? ['-o', `truss.egress.via=${GW.A.via}`] : [];
          const r = await trussNet('evm', ['--subnet', '198.18.63.0/24', ...opt]);
          assert.equal(r.code, 0, r.stderr);
          const t0 = performance.now();
          assert.equal((await host.docker(['network', 'rm', 'evm'])).code, 0);
          times[kind]?.push(r.ms + (performance.now() - t0));
        }
      }
      const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
      figures.push(
        `docker network create + rm, median of 5: plain ${med(times.plain ?? []).toFixed(0)} ms, ` +
          `with truss.egress.via ${med(times.via ?? []).toFixed(0)} ms`,
      );
    });

    it('10. everything removed leaves nothing truss-owned', async () => {
      await removeContainers(host, ['c1', 'c3', 'gw']);
      for (const n of mode === 'routed' ? ['evb'] : ['evb', 'evc']) {
        assert.equal((await host.docker(['network', 'rm', n])).code, 0);
      }
      await assertNoTrussLeftovers(host);
    });
  });
