/**
 * The topology page (docs/operations.md#a-picture-of-the-cluster-truss-topology) in a real
 * browser. Three hosts on one underlay and etcd (harness/cluster.ts); truss started on each as
 * docs/cluster.md tells users (--store etcd://HOST:2379 --etcd-insecure, the host's name and
 * underlay address), host 1 also with --metrics-address 127.0.0.1:PORT. One cluster network on
 * all three, a container on each.
 *
 * The tunnel between hosts 1 and 3 is broken on purpose, before truss starts: host 3 drops
 * WireGuard's UDP from host 1 (an nft table of the test's own in host 3's namespace), so those two
 * never complete a handshake, while host 2 does with both.
 *
 * Debian's Chromium, headless, in host 1's network namespace, loads /topology: the DOM it built
 * shows the three hosts, the tunnel to host 3 in the `error` class and the one to host 2 `ok`; the
 * SVG in it and /topology.svg are well-formed XML (core/topology/xml-testutil.ts); the screenshot
 * is a PNG of the page (written to $TRUSS_TOPOLOGY_SCREENSHOT too when set: docs/topology.png
 * comes from this test). `truss topology` on host 1 says the same as text, with Docker's names.
 */
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findAll, hasClass, parseXml, textOf, type XmlElement } from '../src/core/topology/xml-testutil.ts';
import { clusterFixture, clusterServeArgs, DEFAULT_POOLS, nodeName } from './harness/cluster.ts';
import { containerIp, createClusterNetwork, runContainer } from './harness/containers.ts';
import { run } from './harness/exec.ts';
import type { Host } from './harness/host.ts';
import { CHILD_PATH } from './harness/paths.ts';
import { killAllMatching } from './harness/procs.ts';
import { ping } from './harness/traffic.ts';
import { waitFor } from './harness/wait.ts';

const ADDRESS = '127.0.0.1:9735';
const WG_PORT = 51820;
const BLUE = 'blue';
const BLUE_SUBNET = '198.18.64.0/20';
const CHROMIUM = 'chromium';

const cluster = clusterFixture({ hosts: ['tp1', 'tp2', 'tp3'] });
const h1 = (): Host => cluster.host('tp1');
const h3 = (): Host => cluster.host('tp3');

interface Peer {
  readonly node: string;
  readonly name?: string;
  readonly latestHandshake: number;
}
const peersOf = async (h: Host): Promise<readonly Peer[]> =>
  ((await h.trussStatus()) as { cluster?: { peers: Peer[] } }).cluster?.peers ?? [];

/** GET over HTTP from inside host 1: the body (status 200 asserted). */
async function get(path: string): Promise<string> {
  const r = await h1().exec(['curl', '-sS', '--max-time', '15', '-w', '\n%{http_code}', `http://${ADDRESS}${path}`]);
  assert.equal(r.code, 0, `curl ${path}: ${r.stderr}`);
  const cut = r.stdout.lastIndexOf('\n');
  assert.equal(r.stdout.slice(cut + 1), '200', `${path}: ${r.stdout.slice(0, 400)}`);
  return r.stdout.slice(0, cut);
}

const profile = (): string => join(h1().dir, 'chromium');

/**
 * Headless Chromium in host 1's network namespace, its profile in the host's dir; whatever of it
 * outlives the browser (its crash handler) is ended with it.
 */
const chromium = async (args: readonly string[]) => {
  const r = await chromiumRun(args);
  await killAllMatching((p) => p.cmdline.includes(profile()));
  return r;
};
const chromiumRun = (args: readonly string[]) =>
  h1().exec(
    [
      CHROMIUM,
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--no-first-run',
      '--hide-scrollbars',
      `--user-data-dir=${profile()}`,
      '--window-size=1160,420',
      ...args,
      `http://${ADDRESS}/topology`,
    ],
    { timeoutMs: 90_000, env: { ...process.env, PATH: CHILD_PATH, HOME: h1().dir } },
  );

/** The hosts, and the tunnels by the peer's display name, as the picture shows them. */
function picture(svg: XmlElement) {
  const hosts = findAll(svg, hasClass('host')).map((h) => h.attrs['data-host']);
  const names = new Map(findAll(svg, hasClass('host')).map((h) => [h.attrs['data-node-id'], h.attrs['data-host']]));
  const tunnels = new Map(findAll(svg, hasClass('tunnel')).map((t) => [names.get(t.attrs['data-to']), t]));
  return { hosts, tunnels };
}

function assertBrokenTunnel(svg: XmlElement, where: string): void {
  const { hosts, tunnels } = picture(svg);
  assert.deepEqual(hosts, ['tp1', 'tp2', 'tp3'], `${where}: the three hosts, this one first`);
  const to2 = tunnels.get('tp2');
  const to3 = tunnels.get('tp3');
  assert.ok(to2 && to3, `${where}: a tunnel to tp2 and to tp3`);
  assert.ok(hasClass('ok')(to2) && !hasClass('error')(to2), `${where}: tp2's tunnel is ok: ${to2.attrs.class}`);
  assert.ok(hasClass('error')(to3), `${where}: tp3's tunnel has the error class: ${to3.attrs.class}`);
  assert.equal(to3.attrs['data-state'], 'never');
  assert.match(textOf(to3), /tp3: no handshake/);
  assert.match(textOf(to2), /tp2: handshake \d+ s ago/);
}

describe('the topology page in headless Chromium, a 3-host cluster with one tunnel broken', {
  timeout: 6 * 60_000,
}, () => {
  before(async () => {
    const version = await run([CHROMIUM, '--version'], { timeoutMs: 30_000 });
    assert.equal(version.code, 0, `Debian's chromium is installed (scripts/setup.sh): ${version.stderr}`);
    await cluster.start();
    // the break: host 3 drops WireGuard from host 1, before any handshake
    const block = `table inet topology_test_break {
  chain input { type filter hook input priority -300; policy accept;
    ip saddr ${h1().underlayAddress} udp dport ${WG_PORT} drop; }
}`;
    const nft = await h3().exec(['nft', '-f', '-'], { input: block });
    assert.equal(nft.code, 0, nft.stderr);
    const u = cluster.underlay;
    await Promise.all(
      cluster.hosts.map((h) =>
        h.startTruss({
          defaultPools: DEFAULT_POOLS,
          extraArgs: [
            ...clusterServeArgs(u, nodeName(h), h.underlayAddress as string, WG_PORT),
            ...(h === h1() ? ['--metrics-address', ADDRESS] : []),
          ],
        }),
      ),
    );
    for (const [i, h] of cluster.hosts.entries()) {
      const r = await createClusterNetwork(h, BLUE, BLUE_SUBNET);
      assert.equal(r.code, 0, `${h.name}: ${r.stderr}`);
      await runContainer(h, { name: ['web', 'api', 'db'][i] as string, network: BLUE });
    }
  });

  after(() => cluster.stop());

  it('1. host 2 handshakes with host 1, host 3 never does: traffic says the same', { timeout: 90_000 }, async () => {
    const api = await containerIp(cluster.host('tp2'), 'api', BLUE);
    const db = await containerIp(h3(), 'db', BLUE);
    await waitFor(() => ping(h1(), 'web', api, 2), 30_000, { what: 'web (tp1) -> api (tp2) over the tunnel' });
    assert.equal(await ping(h1(), 'web', db, 2), false, 'web (tp1) -> db (tp3): the tunnel is broken');
    await waitFor(
      async () => {
        const peers = await peersOf(h1());
        return peers.length === 2 && peers.some((p) => p.name === 'tp2' && p.latestHandshake > 0);
      },
      30_000,
      { what: "tp1's status: tp2 handshaked" },
    );
    const tp3 = (await peersOf(h1())).find((p) => p.name === 'tp3');
    assert.equal(tp3?.latestHandshake, 0, 'tp1 never handshaked with tp3');
  });

  it('2. /topology.svg is well-formed XML: three hosts, the tunnel to tp3 in error', async () => {
    const svg = parseXml(await get('/topology.svg'));
    assert.equal(svg.name, 'svg');
    assertBrokenTunnel(svg, '/topology.svg');
    // the daemon has no Docker names: its own networks and containers by short id
    const own = findAll(svg, hasClass('host'))[0] as XmlElement;
    assert.equal(findAll(own, hasClass('network')).length, 1);
    assert.equal(findAll(own, hasClass('container')).length, 1);
  });

  it('3. Chromium renders /topology: the DOM shows three hosts and the broken tunnel; a screenshot', {
    timeout: 200_000,
  }, async () => {
    const dom = await chromium(['--dump-dom']);
    assert.equal(dom.code, 0, `chromium --dump-dom: ${dom.stderr.slice(-2000)}`);
    assert.match(dom.stdout, /<meta http-equiv="refresh" content="10">/);
    const inline = /<svg[\s\S]*<\/svg>/.exec(dom.stdout)?.[0];
    assert.ok(inline, `the DOM holds the SVG: ${dom.stdout.slice(0, 600)}`);
    assertBrokenTunnel(parseXml(inline), 'the DOM');

    const png = join(h1().dir, 'topology.png');
    const shot = await chromium([`--screenshot=${png}`]);
    assert.equal(shot.code, 0, `chromium --screenshot: ${shot.stderr.slice(-2000)}`);
    const bytes = readFileSync(png);
    assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
    assert.deepEqual([bytes.readUInt32BE(16), bytes.readUInt32BE(20)], [1160, 420], 'of the window size');
    const out = process.env.TRUSS_TOPOLOGY_SCREENSHOT;
    if (out) copyFileSync(png, out);
  });

  it('4. truss topology on tp1 says the same, with Docker names', async () => {
    const r = await h1().truss.cli(['topology', '--state-dir', h1().truss.stateDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^truss topology .*: 3 host\(s\), 2 tunnel\(s\), 1 in error\n/);
    assert.match(r.stdout, /host tp1 {2}\(this host, node id [^)]*\)\n {2}network blue {2}cluster \(wireguard\)/);
    assert.match(r.stdout, /container web {2}198\.18\.\d+\.\d+/);
    assert.match(
      r.stdout,
      /host tp3 .*\n {2}tunnel from this host: wireguard to [\d.]+:51820, no handshake {2}\[ERROR\]/,
    );
    const svg = await h1().truss.cli(['topology', '--format', 'svg', '--state-dir', h1().truss.stateDir]);
    assert.equal(svg.code, 0, svg.stderr);
    assertBrokenTunnel(parseXml(svg.stdout), 'truss topology --format svg');
  });
});
