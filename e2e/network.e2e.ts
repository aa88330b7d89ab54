/**
 * truss end to end: one simulated host (its own dockerd, truss started by the harness with
 * DOCKER_PLUGIN_DEBUG=true), real containers, real traffic. Tests run in order and share the
 * host; each creates what it needs through the memoised fixtures below, so one failure does
 * not hide the rest. The last two tests print figures and tear everything down.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cidrsOverlap, cidrWithin, inCidr } from './harness/cidr.ts';
import { allAddresses, containerIp, removeContainers, runContainer, timeStarts } from './harness/containers.ts';
import { median, printFigures, rpcFigureLines } from './harness/figures.ts';
import { type Host, startHost } from './harness/host.ts';
import { assertNoTrussLeftovers, trussKernelObjects } from './harness/leftovers.ts';
import { MODES, type Mode, modeOpts, modeTitle } from './harness/modes.ts';
import { memoOnce } from './harness/once.ts';
import { createOutside, HOST_UPLINK_IP, OUTSIDE_IP, OUTSIDE_PORT, type Outside } from './harness/outside.ts';
import { ping, pingProbe, SINK_CMD, serverSaw, tcpConnect } from './harness/traffic.ts';
import { trussQuiet } from './harness/truss.ts';
import { sleep, waitFor } from './harness/wait.ts';

const DEFAULT_POOLS = '198.18.128.0/17:24';
const MAX_GAP_MS = 1000;
/** no periodic full pass during the run: drift stays visible until a test asks for repair */
const TRUSS_OPTS = { debug: true, defaultPools: DEFAULT_POOLS, extraArgs: ['--resync-seconds', '3600'] } as const;

let host: Host;

const truss = (args: readonly string[]) =>
  host.docker(['network', 'create', '-d', 'truss', '--ipam-driver', 'truss', ...modeOpts(mode), ...args]);

let once = memoOnce();
let mode: Mode = 'bridge';

async function createNetwork(name: string, args: readonly string[], driver: 'truss' | 'bridge' = 'truss') {
  const r = driver === 'truss' ? await truss([...args, name]) : await host.docker(['network', 'create', ...args, name]);
  assert.equal(r.code, 0, `docker network create ${name}: ${r.stderr}`);
}

/** n1 (198.18.10.0/24) with three TCP sinks a1, a2, a3. */
const n1 = () =>
  once('n1', async () => {
    await createNetwork('n1', ['--subnet', '198.18.10.0/24']);
    await Promise.all(['a1', 'a2', 'a3'].map((name) => runContainer(host, { name, network: 'n1', cmd: SINK_CMD() })));
  });
/** n2 (truss, 198.18.11.0/24) with sink c2, and Docker bridge network b1 with sink cb. */
const n2b1 = () =>
  once('n2b1', async () => {
    await createNetwork('n2', ['--subnet', '198.18.11.0/24']);
    await createNetwork('b1', [], 'bridge');
    await runContainer(host, { name: 'c2', network: 'n2', cmd: SINK_CMD() });
    await runContainer(host, { name: 'cb', network: 'b1', cmd: SINK_CMD() });
  });

const ipOf = (ctr: string, net: string) => containerIp(host, ctr, net);
const subnetOf = async (net: string) =>
  (await host.docker(['network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Subnet}}{{end}}', net])).stdout.trim();

/** A TCP connect that must fail, and the sink must not have seen it. */
async function assertBlocked(from: string, toCtr: string, toIp: string) {
  const r = await tcpConnect(host, from, toIp, undefined, 2);
  assert.equal(r.ok, false, `${from} -> ${toCtr} (${toIp}) must be blocked, got: ${r.output}`);
  assert.equal(await serverSaw(host, toCtr, r.token), false, `${toCtr} must not receive data from ${from}`);
}

async function assertConnects(from: string, toCtr: string, toIp: string) {
  const r = await tcpConnect(host, from, toIp);
  assert.ok(r.ok, `${from} -> ${toCtr} (${toIp}) TCP failed: ${r.output}`);
  assert.ok(await serverSaw(host, toCtr, r.token), `${toCtr} did not record ${from}'s token`);
}

for (const m of MODES)
  describe(modeTitle('truss network and IPAM driver against a real dockerd', m), { timeout: 15 * 60_000 }, () => {
    before(async () => {
      mode = m;
      once = memoOnce();
      host = await startHost(m === 'bridge' ? 'net' : 'netr');
      await host.startTruss(TRUSS_OPTS);
    });

    after(async () => {
      await host?.stop();
    });

    it('1. connects containers on one network (TCP, ping, gateway, distinct IPs)', { timeout: 180_000 }, async () => {
      await n1();
      const ips = await Promise.all(['a1', 'a2', 'a3'].map((c) => ipOf(c, 'n1')));
      assert.equal(new Set(ips).size, 3, `distinct IPs expected: ${ips}`);
      for (const ip of ips) assert.ok(inCidr(ip, '198.18.10.0/24') && ip !== '198.18.10.1', `bad address ${ip}`);
      const fmt = '{{range .Containers}}{{.IPv4Address}} {{end}}';
      const listed = (await host.docker(['network', 'inspect', '-f', fmt, 'n1'])).stdout.trim().split(' ');
      assert.deepEqual(
        listed.map((a) => a.split('/')[0]).sort(),
        [...ips].sort(),
        'network inspect lists the same IPs',
      );
      const [ip1, ip2, ip3] = ips as [string, string, string];
      await assertConnects('a1', 'a2', ip2);
      await assertConnects('a2', 'a3', ip3);
      await assertConnects('a3', 'a1', ip1);
      assert.ok(await ping(host, 'a1', ip2), 'ping a1 -> a2');
      assert.ok(await ping(host, 'a3', ip1), 'ping a3 -> a1');
      assert.ok(await ping(host, 'a1', '198.18.10.1'), 'the gateway 198.18.10.1 answers ping');
    });

    it('2. isolates truss networks from each other and from Docker bridge networks', { timeout: 180_000 }, async () => {
      await n1();
      await n2b1();
      const a1 = await ipOf('a1', 'n1');
      const c2 = await ipOf('c2', 'n2');
      const cb = await ipOf('cb', 'b1');
      await Promise.all([
        assertBlocked('c2', 'a1', a1),
        assertBlocked('cb', 'a1', a1),
        assertBlocked('a1', 'c2', c2),
        assertBlocked('a1', 'cb', cb),
      ]);
      assert.equal(await ping(host, 'c2', a1, 2), false, 'ping n2 -> n1 must fail');
    });

    it('3. connect/disconnect a container to a second network; its first network stays up', async () => {
      await n1();
      await n2b1();
      const a2 = await ipOf('a2', 'n1');
      const c2 = await ipOf('c2', 'n2');
      const probe = pingProbe(host, 'a1', a2, 12);
      const conn = await host.docker(['network', 'connect', 'n2', 'a1']);
      assert.equal(conn.code, 0, conn.stderr);
      assert.ok(inCidr(await ipOf('a1', 'n2'), '198.18.11.0/24'), 'a1 got an n2 address');
      await assertConnects('a1', 'c2', c2);
      await assertConnects('a1', 'a2', a2);
      const disc = await host.docker(['network', 'disconnect', 'n2', 'a1']);
      assert.equal(disc.code, 0, disc.stderr);
      await assertBlocked('a1', 'c2', c2);
      await assertConnects('a1', 'a2', a2);
      const p = await probe;
      assert.ok(p.received > 0, `probe got no replies:\n${p.output}`);
      assert.ok(p.maxGapMs <= MAX_GAP_MS, `n1 traffic stopped for ${p.maxGapMs} ms during connect/disconnect`);
    });

    it('4. allocates a pool from --default-pools when no subnet is given', async () => {
      await createNetwork('n3', []);
      await createNetwork('n4', []);
      const [s3, s4] = [await subnetOf('n3'), await subnetOf('n4')];
      for (const s of [s3, s4])
        assert.ok(/\/24$/.test(s) && cidrWithin(s, '198.18.128.0/17'), `pool ${s} not from ${DEFAULT_POOLS}`);
      assert.ok(!cidrsOverlap(s3, s4), `n3 (${s3}) and n4 (${s4}) must get different pools`);
      await runContainer(host, { name: 'd3', network: 'n3' });
      assert.ok(inCidr(await ipOf('d3', 'n3'), s3), 'a container on n3 gets an address from its pool');
    });

    it('5. rejects an unknown truss option and leaves nothing behind', async () => {
      const linksBefore = await trussKernelObjects(host.netnsPath);
      const r = await truss(['-o', 'truss.bogus=1', '--subnet', '198.18.12.0/24', 'nbad']);
      assert.notEqual(r.code, 0, 'create with truss.bogus must fail');
      assert.match(r.stderr, /truss\.bogus/, `the error must name the option: ${r.stderr}`);
      assert.notEqual((await host.docker(['network', 'inspect', 'nbad'])).code, 0, 'nbad must not exist');
      await waitFor(
        async () => {
          const s = JSON.stringify(await host.trussStatus());
          return !s.includes('198.18.12.') && !s.includes('nbad');
        },
        10_000,
        { what: 'truss status without 198.18.12.0/24' },
      );
      assert.deepEqual(await trussKernelObjects(host.netnsPath), linksBefore, 'no new kernel objects');
    });

    it('6. gives 20 parallel containers 20 distinct, reachable addresses', { timeout: 300_000 }, async () => {
      await createNetwork('p1', ['--subnet', '198.18.13.0/24']);
      const names = Array.from({ length: 20 }, (_, i) => `p${i}`);
      await Promise.all(names.map((name) => runContainer(host, { name, network: 'p1' })));
      const ips = await Promise.all(names.map((n) => ipOf(n, 'p1')));
      assert.equal(new Set(ips).size, 20, `duplicate addresses: ${ips}`);
      for (const ip of ips) assert.ok(inCidr(ip, '198.18.13.0/24'), `address ${ip} outside the subnet`);
      const loop = 'for ip in "$@"; do ping -c 1 -W 2 "$ip" >/dev/null 2>&1 || echo "unreachable $ip"; done';
      const r = await host.docker(['exec', 'p0', 'sh', '-c', loop, 'sh', ...ips], 120_000);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), '', 'every container must answer ping');
    });

    it('7. survives kill -9 of the plugin without a traffic gap, then reconciles', { timeout: 180_000 }, async () => {
      await n1();
      const a2 = await ipOf('a2', 'n1');
      const probe = pingProbe(host, 'a1', a2, 10);
      await sleep(1500);
      await host.stopTruss('SIGKILL');
      assert.equal(host.truss.running(), false, 'the plugin must be dead');
      await sleep(3000);
      await host.startTruss(TRUSS_OPTS);
      const p = await probe;
      assert.ok(p.received > 0, `probe got no replies:\n${p.output}`);
      assert.ok(p.maxGapMs <= MAX_GAP_MS, `traffic gap of ${p.maxGapMs} ms across the plugin restart`);
      await waitFor(async () => (await host.trussStatus()).kernel.inSync, 30_000, {
        what: 'kernel.inSync after restart',
      });
      // nothing was lost while it was dead: the start-up pass must find the kernel right and write nothing
      const firstPass = (await host.trussStatus()).reconciler?.firstPass;
      assert.deepEqual(
        { full: firstPass?.full, changes: firstPass?.changes },
        { full: true, changes: 0 },
        `start-up pass: ${JSON.stringify(firstPass)}`,
      );
      await runContainer(host, { name: 'k1', network: 'n1', cmd: SINK_CMD() });
      await runContainer(host, { name: 'k2', network: 'n1', cmd: SINK_CMD() });
      await assertConnects('k1', 'k2', await ipOf('k2', 'n1'));
      await assertConnects('k2', 'a1', await ipOf('a1', 'n1'));
      const all = await allAddresses(host);
      const seen = new Map<string, string>();
      for (const a of all) {
        const prev = seen.get(a.ip);
        assert.equal(prev, undefined, `duplicate address ${a.ip}: ${prev} and ${a.container}/${a.network}`);
        seen.set(a.ip, `${a.container}/${a.network}`);
      }
    });

    it(`7b. repairs drift behind its back: a deleted nft table and ${m === 'bridge' ? 'bridge' : "container's host route"} come back on the next pass`, async () => {
      await n1();
      await n2b1();
      const [a1, a2] = [await ipOf('a1', 'n1'), await ipOf('a2', 'n1')];
      const nid = (await host.docker(['network', 'inspect', '-f', '{{.Id}}', 'n1'])).stdout.trim();
      const bridge = `trb${nid.slice(0, 12)}`;
      await trussQuiet(() => host.trussStatus()); // no pass may repair it before status reads it
      assert.equal((await host.exec(['nft', 'delete', 'table', 'inet', 'truss'])).code, 0);
      // routed: no bridge; a2's host route (proto 116) is what its reachability hangs on
      const gone =
        mode === 'bridge' ? ['ip', 'link', 'del', bridge] : ['ip', 'route', 'del', `${a2}/32`, 'proto', '116'];
      assert.equal((await host.exec(gone)).code, 0);
      const s = await host.trussStatus();
      assert.equal(s.kernel.inSync, false, 'status must report the drift');
      const r = await host.truss.cli(['reconcile', '--state-dir', host.stateDir]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok((await host.trussStatus()).kernel.inSync, 'in sync after one full pass');
      await assertConnects('a1', 'a2', a2);
      await assertBlocked('c2', 'a1', a1);
    });

    describe('8. outbound NAT', () => {
      let outside: Outside;
      before(async () => {
        outside = await createOutside(host);
      });

      /** Connects from a fresh container on `net` to the outside; returns the result and the sources seen there. */
      async function reachOutside(net: string, ctr: string) {
        await runContainer(host, { name: ctr, network: net });
        const cap = await outside.capture(`tcp dst port ${OUTSIDE_PORT}`);
        const tcp = await tcpConnect(host, ctr, OUTSIDE_IP, OUTSIDE_PORT, 3);
        const sources = await cap.stop();
        return { tcp, sources, ip: await ipOf(ctr, net) };
      }

      it('masquerades to the host address by default', async () => {
        await createNetwork('nat1', ['--subnet', '198.18.14.0/24']);
        const { tcp, sources, ip } = await reachOutside('nat1', 'o1');
        assert.ok(tcp.ok, `o1 must reach the outside: ${tcp.output}`);
        assert.ok(sources.includes(HOST_UPLINK_IP), `outside must see ${HOST_UPLINK_IP}, saw ${sources}`);
        assert.ok(!sources.includes(ip), `outside must not see the container address ${ip}`);
      });

      it('does not masquerade with -o truss.nat=false', async () => {
        await createNetwork('nat2', ['--subnet', '198.18.15.0/24', '-o', 'truss.nat=false']);
        const { tcp, sources, ip } = await reachOutside('nat2', 'o2');
        assert.ok(!sources.includes(HOST_UPLINK_IP), `outside must not see the host address, saw ${sources}`);
        assert.equal(tcp.ok, false, 'no route back to a non-masqueraded container: no reply expected');
        assert.ok(sources.length > 0 && sources.every((s) => s === ip), `only ${ip} may arrive, saw ${sources}`);
      });

      it('keeps an --internal network off the outside', async () => {
        await createNetwork('int1', ['--subnet', '198.18.16.0/24', '--internal']);
        const { tcp, sources } = await reachOutside('int1', 'i1');
        assert.equal(tcp.ok, false, `i1 must not reach the outside: ${tcp.output}`);
        assert.deepEqual(sources, [], 'nothing from the internal network may arrive outside');
      });
    });

    it('measures container start and CreateEndpoint+Join latency (printed, not asserted)', {
      timeout: 300_000,
    }, async () => {
      await createNetwork('fig', ['--subnet', '198.18.17.0/24']);
      await n2b1();
      const t = await timeStarts(host, 'fig', 10, 'ft');
      const b = await timeStarts(host, 'b1', 10, 'fb');
      const [mt, mb] = [median(t), median(b)];
      const figures = [
        `container start, docker run -d until running, median of 10: truss ${mt.toFixed(0)} ms, bridge ${mb.toFixed(0)} ms, ratio truss/bridge ${(mt / mb).toFixed(2)}`,
        ...rpcFigureLines(host.truss.log()),
      ];
      printFigures(figures);
    });

    it('9. removes every container and network and leaves nothing of truss', { timeout: 300_000 }, async () => {
      const ids = (await host.docker(['ps', '-aq'])).stdout.split(/\s+/).filter(Boolean);
      await removeContainers(host, ids);
      assert.equal((await host.docker(['ps', '-aq'])).stdout.trim(), '', 'all containers removed');
      const nets = (await host.docker(['network', 'ls', '--filter', 'type=custom', '--format', '{{.Name}}'])).stdout;
      for (const n of nets.split(/\s+/).filter(Boolean)) {
        const r = await host.docker(['network', 'rm', n]);
        assert.equal(r.code, 0, `docker network rm ${n}: ${r.stderr}`);
      }
      await waitFor(() => assertNoTrussLeftovers(host).then(() => true), 15_000, { what: 'no truss leftovers' });
      await assertNoTrussLeftovers(host);
    });
  });
