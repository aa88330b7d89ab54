/**
 * Published ports end to end: one simulated host ("prt", its own dockerd 20.10, truss with
 * DOCKER_PLUGIN_DEBUG=true and no periodic resync), an "outside" namespace behind the host's
 * uplink (outside.ts) playing a client on another machine, real containers, real traffic.
 * `docker run -p` on a truss network is truss's job (truss returns the gateway, so dockerd
 * adds no docker_gwbridge): these tests prove the DNAT from the host's address works from
 * outside, from other containers via the host (hairpin), for UDP, that a second publisher of
 * a port is refused, and that stop closes the port and removes the nft elements. The last
 * test removes everything and checks that nothing of truss is left (inet truss_ports included).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { containerIp, endpointId, removeContainers, runContainer } from './harness/containers.ts';
import { inNetns, run } from './harness/exec.ts';
import { median, printFigures } from './harness/figures.ts';
import { type Host, startHost } from './harness/host.ts';
import { IMAGE } from './harness/image.ts';
import { assertNoTrussLeftovers, nftTableExists } from './harness/leftovers.ts';
import { MODES, type Mode, modeOpts, modeTitle } from './harness/modes.ts';
import { msUntilConnects, type NetnsRef, nsTcpConnect } from './harness/netns-tcp.ts';
import { createOutside, HOST_UPLINK_IP, type Outside } from './harness/outside.ts';
import { serverSaw, tcpConnect } from './harness/traffic.ts';
import { trussQuiet } from './harness/truss.ts';
import { waitFor } from './harness/wait.ts';

const DEFAULT_POOLS = '198.18.128.0/17:24';
const TRUSS_OPTS = { debug: true, defaultPools: DEFAULT_POOLS, extraArgs: ['--resync-seconds', '3600'] } as const;
/** tsink on tcp 80 and a sockperf UDP server on 53 (the image carries the machine's sockperf). */
const WEB_CMD = ['sh', '-c', 'nc -ll -p 80 -e /bin/tsink & /usr/bin/sockperf server -i 0.0.0.0 -p 53 & wait'];
const SOCKPERF = process.env.TRUSS_E2E_SOCKPERF ?? '/usr/bin/sockperf';
const PORTS_TABLE = 'truss_ports';

let host: Host;
let outside: Outside;
const figures: string[] = [];
const reachMs: number[] = [];

const outsideNs = (): NetnsRef => ({ path: outside.netnsPath });

let mode: Mode = 'bridge';

async function createNetwork(name: string, subnet: string): Promise<void> {
  const r = await host.docker([
    'network',
    'create',
    '-d',
    'truss',
    '--ipam-driver',
    'truss',
    ...modeOpts(mode),
    '--subnet',
    subnet,
    name,
  ]);
  assert.equal(r.code, 0, `docker network create ${name}: ${r.stderr}`);
}

/** docker run -d with -p flags; returns the result (a refusal is a test outcome here). */
function runPublished(name: string, network: string, publish: readonly string[], cmd = WEB_CMD) {
  const args = ['run', '-d', '--name', name, '--network', network, ...publish.flatMap((p) => ['-p', p]), IMAGE, ...cmd];
  return host.docker(args, 120_000);
}

/** The elements of one published-ports map, as `nft list map` prints them (one line). */
async function mapText(map: string): Promise<string> {
  const r = await host.exec(['nft', 'list', 'map', 'inet', PORTS_TABLE, map]);
  return r.code === 0 ? r.stdout.replace(/\s+/g, ' ') : '';
}

/** A UDP round trip (sockperf ping-pong for 1 s) from the outside to ip:port. */
async function udpFromOutside(ip: string, port: number): Promise<boolean> {
  const r = await run(
    inNetns(outside.netnsPath, [SOCKPERF, 'ping-pong', '-i', ip, '-p', `${port}`, '-t', '1', '--mps', '50']),
    {
      timeoutMs: 20_000,
    },
  );
  return r.code === 0 && /observation/.test(r.stdout) && !/No messages were received/.test(r.stdout);
}

/** docker run -p ... then the ms until the outside first completes a round trip through hostIp:port. */
async function runAndReach(name: string, network: string, publish: readonly string[], port: number): Promise<number> {
  const t0 = performance.now();
  const r = await runPublished(name, network, publish);
  assert.equal(r.code, 0, `docker run -p ${publish.join(' -p ')} ${name}: ${r.stderr}`);
  const ms = await msUntilConnects(outsideNs(), HOST_UPLINK_IP, port, t0, 10_000);
  assert.ok(ms !== undefined, `the outside never reached ${HOST_UPLINK_IP}:${port} (${name})`);
  reachMs.push(ms);
  return ms;
}

for (const m of MODES)
  describe(modeTitle('truss published ports against a real dockerd', m), { timeout: 10 * 60_000 }, () => {
    before(async () => {
      mode = m;
      figures.length = 0;
      reachMs.length = 0;
      host = await startHost(m === 'bridge' ? 'prt' : 'prtr');
      await host.startTruss(TRUSS_OPTS);
      outside = await createOutside(host);
      await createNetwork('pn', '198.18.30.0/24');
      await createNetwork('pn2', '198.18.31.0/24');
    });

    after(async () => {
      if (reachMs.length > 0) {
        figures.push(
          `docker run -d -p until the outside completes a TCP round trip via the host port (n=${reachMs.length}): median ${median(reachMs).toFixed(0)} ms, max ${Math.max(...reachMs).toFixed(0)} ms`,
        );
      }
      if (figures.length > 0) printFigures(figures);
      await host?.stop();
    });

    it('1. no table before anything is published; -p 8080:80 -p 5353:53/udp: the outside reaches the container via the host address', async () => {
      await runContainer(host, { name: 'plain', network: 'pn', cmd: WEB_CMD });
      assert.equal(await nftTableExists(PORTS_TABLE, host.netnsPath), false, 'nothing published: no inet truss_ports');
      const ms = await runAndReach('web', 'pn', ['8080:80', '5353:53/udp'], 8080);
      figures.push(`docker run -d -p 8080:80 until reachable from outside: ${ms} ms`);
      const r = await nsTcpConnect(outsideNs(), HOST_UPLINK_IP, 8080, 3);
      assert.ok(r.ok, `outside -> ${HOST_UPLINK_IP}:8080: ${r.output}`);
      assert.ok(await serverSaw(host, 'web', r.token), 'the web container received the outside connection');
      assert.equal(await udpFromOutside(HOST_UPLINK_IP, 5353), true, `udp ${HOST_UPLINK_IP}:5353 -> web:53`);
      const web = await containerIp(host, 'web', 'pn');
      assert.equal((await nsTcpConnect(outsideNs(), web, 80, 2)).ok, false, 'the container itself stays closed');
      assert.equal((await nsTcpConnect(outsideNs(), HOST_UPLINK_IP, 8081, 2)).ok, false, 'unpublished port: closed');
    });

    it("2. hairpin: the container itself, a neighbour, a container of another truss network and one of Docker's bridge reach it via the host", async () => {
      await runContainer(host, { name: 'cli', network: 'pn' });
      await runContainer(host, { name: 'cli2', network: 'pn2' });
      await runContainer(host, { name: 'clib' }); // Docker's default bridge
      for (const from of ['web', 'cli', 'cli2', 'clib']) {
        const r = await tcpConnect(host, from, HOST_UPLINK_IP, 8080, 3);
        assert.ok(r.ok, `${from} -> ${HOST_UPLINK_IP}:8080 (hairpin): ${r.output}`);
      }
      const gw = '198.18.30.1';
      assert.ok((await tcpConnect(host, 'cli', gw, 8080, 3)).ok, 'via the gateway address (a host address) too');
      const web = await containerIp(host, 'web', 'pn');
      const direct = await tcpConnect(host, 'cli2', web, 80, 2);
      assert.equal(direct.ok, false, `isolation: cli2 (pn2) -> web (pn) directly must stay blocked: ${direct.output}`);
    });

    it('3. the same host port published twice is refused with a clear error; another port is fine', async () => {
      const r = await runPublished('web2', 'pn', ['8080:80']);
      assert.notEqual(r.code, 0, 'docker run must fail');
      assert.match(r.stderr, /0\.0\.0\.0:8080\/tcp is already published/, r.stderr);
      await removeContainers(host, ['web2']);
      await runAndReach('web3', 'pn', ['8082:80'], 8082);
      assert.ok((await nsTcpConnect(outsideNs(), HOST_UPLINK_IP, 8080, 3)).ok, 'the first publisher is untouched');
    });

    it('4. -p 80 (ephemeral): truss picks a port from 32768-60999 and it answers', async () => {
      const r = await runPublished('eph', 'pn', ['80']);
      assert.equal(r.code, 0, r.stderr);
      const ip = await containerIp(host, 'eph', 'pn');
      let port = 0;
      await waitFor(
        async () => {
          const m = new RegExp(`tcp \\. (\\d+) comment "ep_[0-9a-f]{12}" : ${ip.replaceAll('.', '\\.')} \\. 80`).exec(
            await mapText('dnat4_any'),
          );
          port = Number(m?.[1] ?? 0);
          return port > 0;
        },
        5000,
        { what: `the ephemeral binding of eph (${ip})` },
      );
      assert.ok(port >= 32768 && port <= 60999, `ephemeral port ${port}`);
      assert.ok((await nsTcpConnect(outsideNs(), HOST_UPLINK_IP, port, 3)).ok, `outside -> :${port}`);
      figures.push(`-p 80 got host port ${port}`);
    });

    it('5. repair: the ports table deleted behind truss is back after one full pass', async () => {
      await trussQuiet(() => host.trussStatus()); // no pass may repair it before status reads it
      assert.equal((await host.exec(['nft', 'delete', 'table', 'inet', PORTS_TABLE])).code, 0);
      assert.equal((await nsTcpConnect(outsideNs(), HOST_UPLINK_IP, 8080, 2)).ok, false, 'gone: closed');
      const s = await host.trussStatus();
      assert.equal(s.kernel.inSync, false, 'status reports the drift');
      const r = await host.truss.cli(['reconcile', '--state-dir', host.stateDir]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok((await host.trussStatus()).kernel.inSync, 'in sync after one full pass');
      assert.ok((await nsTcpConnect(outsideNs(), HOST_UPLINK_IP, 8080, 3)).ok, 'published again');
    });

    it('6. docker stop closes the port and removes its nft elements; start publishes it again', async () => {
      const ip = await containerIp(host, 'web', 'pn');
      const eid = await endpointId(host, 'web', 'pn');
      const owner = `ep_${eid.slice(0, 12)}`;
      assert.match(await mapText('dnat4_any'), new RegExp(owner));
      const t0 = performance.now();
      const r = await host.docker(['stop', '-t', '0', 'web'], 60_000);
      const stopMs = performance.now() - t0;
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(await mapText('dnat4_any'), new RegExp(`${owner}|${ip.replaceAll('.', '\\.')} \\. 80`));
      assert.equal((await nsTcpConnect(outsideNs(), HOST_UPLINK_IP, 8080, 2)).ok, false, 'stopped: port closed');
      assert.equal(await udpFromOutside(HOST_UPLINK_IP, 5353), false, 'stopped: udp port closed');
      figures.push(`docker stop -t 0 of a publishing container: ${stopMs.toFixed(0)} ms, port closed when it returns`);
      const ms = await (async () => {
        const t1 = performance.now();
        const s = await host.docker(['start', 'web'], 60_000);
        assert.equal(s.code, 0, s.stderr);
        return msUntilConnects(outsideNs(), HOST_UPLINK_IP, 8080, t1, 10_000);
      })();
      assert.ok(ms !== undefined, 'docker start publishes again');
      reachMs.push(ms);
    });

    it('7. removes every container and network and leaves nothing of truss', { timeout: 300_000 }, async () => {
      const ids = (await host.docker(['ps', '-aq'])).stdout.split(/\s+/).filter(Boolean);
      await removeContainers(host, ids);
      assert.equal(await nftTableExists(PORTS_TABLE, host.netnsPath), false, 'no publisher left: no inet truss_ports');
      for (const n of ['pn', 'pn2']) {
        const r = await host.docker(['network', 'rm', n]);
        assert.equal(r.code, 0, `docker network rm ${n}: ${r.stderr}`);
      }
      await waitFor(() => assertNoTrussLeftovers(host).then(() => true), 15_000, { what: 'no truss leftovers' });
      await assertNoTrussLeftovers(host);
    });
  });
