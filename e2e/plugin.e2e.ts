/**
 * truss as a Docker managed plugin, end to end: the package (`npm run package`, cached by its
 * inputs), `docker plugin create` from the unpacked tarball on simulated host p1, a private
 * registry (Debian's docker-registry, in the underlay namespace), `docker plugin push` from p1
 * and `docker plugin install` on p2, a cluster network across both (etcd in the underlay,
 * WireGuard run inside the plugins), then an upgrade of p2 to a second version pushed to the
 * registry (`disable -f`, `upgrade`, `enable`) while traffic runs: containers on p2 keep
 * talking, VXLAN (a kernel device) keeps carrying cross-host traffic, and the WireGuard
 * cross-host gap (the userspace wireguard-go dies with the disabled plugin) is measured. The last test removes everything, disables and removes the plugins, and checks
 * that no host keeps anything of truss. Tests run in order and share memoised fixtures.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OWN_WIREGUARD_GO_DIR } from '../packaging/plugin/build.ts';
import { compareVersions, parseWireguardGoVersion } from '../src/core/wireguard-impl.ts';
import { containerIp, runContainer } from './harness/containers.ts';
import { run, runOk } from './harness/exec.ts';
import { printFigures } from './harness/figures.ts';
import { type FlowSample, startFlow, watchFlows } from './harness/flows.ts';
import { type Host, startHost } from './harness/host.ts';
import { trussKernelObjects } from './harness/leftovers.ts';
import { memoOnce } from './harness/once.ts';
import { NETNS_PREFIX, REPO_ROOT, WORK_DIR } from './harness/paths.ts';
import {
  dockerPlugin,
  ensurePluginBuilds,
  listeningLines,
  type PluginBuild,
  pluginId,
  pluginList,
  pluginLog,
  pluginStateDir,
} from './harness/plugin.ts';
import { listProcs, nsIdOfFile } from './harness/procs.ts';
import { REGISTRY_ADDRESS, type Registry, registryTags, startRegistry } from './harness/registry.ts';
import { pingProbe, SINK_CMD, SINK_PORT, serverSaw, tcpConnect } from './harness/traffic.ts';
import { startUnderlay, type Underlay } from './harness/underlay.ts';
import { sleep, waitFor } from './harness/wait.ts';

/** `BIN --version`'s version ("0.0.20250522"), undefined when it does not run. */
const wireguardGoVersion = async (bin: string): Promise<string | undefined> =>
  parseWireguardGoVersion((await run([bin, '--version'])).stdout);

const V1 = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** the upgrade: the same code under a new version */
const V2 = `${V1}-e2e.1`;
const P1_NAME = `truss:${V1}`;
/** p2 installs with --alias truss: name and driver `truss:latest` across upgrades (-d needs the tag) */
const P2_NAME = 'truss:latest';
const REPO = `${REGISTRY_ADDRESS}/truss`;
const CLUSTER_SUBNET = '198.18.80.0/20';
/** the unencrypted (VXLAN, kernel-owned device) cluster network */
const VXLAN_SUBNET = '198.18.96.0/20';
const LOCAL_GAP_MS = 1000;
/** listening within this long after the process started (the issue's bound; dockerd allows ~12 s) */
const LISTEN_MS = 2000;
/** Servers on two ports for the port policy test (the image's tsink). */
const SRV_CMD = ['sh', '-c', 'nc -ll -p 80 -e /bin/tsink & nc -ll -p 8080 -e /bin/tsink & wait'];

let underlay: Underlay | undefined;
let registry: Registry | undefined;
let p1: Host;
let p2: Host;
let builds: PluginBuild[] = [];
const figures: string[] = [];
/** what `docker plugin enable` says on a host without the state dir (printed with the figures) */
const FRESH_HOST_ERROR: string[] = [];
const once = memoOnce();

/** Plugin settings for a host: its state dir, the cluster store, its node name and address. */
function settings(h: Host, debug: boolean): string[] {
  assert.ok(underlay && h.underlayAddress, 'underlay');
  return [
    `state.source=${pluginStateDir(h)}`,
    `TRUSS_STORE=etcd://${underlay.etcd.endpoint}`,
    'TRUSS_ETCD_INSECURE=1',
    `TRUSS_NODE_NAME=${h.name.slice(NETNS_PREFIX.length)}`,
    `TRUSS_ADVERTISE_ADDRESS=${h.underlayAddress}`,
    'TRUSS_DEFAULT_POOLS=198.18.128.0/17:24',
    ...(debug ? ['DOCKER_PLUGIN_DEBUG=true'] : []),
  ];
}

const build = (v: string): PluginBuild => {
  const b = builds.find((x) => x.version === v);
  assert.ok(b, `no build of ${v}`);
  return b;
};

/** `truss status --json` of a host's plugin, through the admin socket in its state dir. */
async function pluginStatus(h: Host): Promise<{ kernel: { inSync: boolean; problems: unknown[] } }> {
  const r = await h.truss.cli(['status', '--state-dir', pluginStateDir(h), '--json']);
  assert.equal(r.code, 0, `truss status in ${h.name}: ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as { kernel: { inSync: boolean; problems: unknown[] } };
}

/** Creates plugin `name` on p1 from a build dir and pushes it to the registry; removes the local copy. */
async function push(dir: string, version: string): Promise<void> {
  const ref = `${REPO}:${version}`;
  await dockerPlugin(p1, ['create', ref, dir]);
  const t0 = performance.now();
  await dockerPlugin(p1, ['push', ref]);
  figures.push(`docker plugin push ${version}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  await dockerPlugin(p1, ['rm', ref]);
  assert.ok((await registryTags(underlay as Underlay, 'truss')).includes(version), `registry lists ${version}`);
}

/** TCP from a container on h to a sink container on `at` (default: the same host). */
async function assertConnects(h: Host, from: string, toCtr: string, ip: string, port = SINK_PORT, at = h) {
  const r = await tcpConnect(h, from, ip, port);
  assert.ok(r.ok, `${h.name}: ${from} -> ${toCtr} ${ip}:${port} TCP failed: ${r.output}`);
  assert.ok(await serverSaw(at, toCtr, r.token), `${toCtr} did not record ${from}'s token`);
}

/**
 * p1: V1 pushed to the registry first (create under the registry's name, push, rm), then
 * truss:V1 created from the unpacked tarball and enabled (debug logs on). why this order:
 * dockerd 20.10 refuses to create a second plugin whose content (a reproducible build: same
 * digests) it already holds ("content sha256:...: already exists"); rm frees it (async GC).
 */
const p1Plugin = () =>
  once('p1Plugin', async () => {
    await push(build(V1).pluginDir, V1);
    const unpacked = join(WORK_DIR, 'plugin-unpacked');
    rmSync(unpacked, { recursive: true, force: true });
    await runOk(['mkdir', '-p', unpacked]);
    await runOk(['tar', '-xzf', build(V1).tarball, '-C', unpacked]);
    const dir = join(unpacked, `truss-plugin-${V1}`);
    let t0 = performance.now();
    await waitFor(
      async () => {
        const r = await p1.docker(['plugin', 'create', P1_NAME, dir], 180_000);
        if (r.code !== 0 && !/already exists/.test(r.stderr)) throw new Error(r.stderr.trim());
        return r.code === 0;
      },
      30_000,
      { what: `docker plugin create ${P1_NAME} once the pushed copy's content is collected`, intervalMs: 500 },
    );
    figures.push(`docker plugin create (from the tarball): ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    await dockerPlugin(p1, ['set', P1_NAME, ...settings(p1, true)]);
    t0 = performance.now();
    await dockerPlugin(p1, ['enable', P1_NAME]);
    figures.push(`docker plugin enable: ${Math.round(performance.now() - t0)} ms (includes dockerd's 500 ms wait)`);
  });

/** p2: installed from the registry as `truss` (settings given at install), enabled. */
const p2Plugin = () =>
  once('p2Plugin', async () => {
    await p1Plugin();
    const t0 = performance.now();
    const args = ['install', '--grant-all-permissions', '--alias', P2_NAME, `${REPO}:${V1}`, ...settings(p2, false)];
    await dockerPlugin(p2, args);
    figures.push(
      `docker plugin install from the registry (pull + enable): ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  });

/** The cluster network pblue on both hosts, sink x1 on p1 and x2 on p2, reaching each other. */
const cluster = () =>
  once('cluster', async () => {
    await p2Plugin();
    const opts = ['-o', 'truss.cluster=pblue', '--subnet', CLUSTER_SUBNET, 'pblue'];
    for (const [h, d] of [
      [p1, P1_NAME],
      [p2, P2_NAME],
    ] as const) {
      const r = await h.docker(['network', 'create', '-d', d, '--ipam-driver', d, ...opts]);
      assert.equal(r.code, 0, `network create pblue in ${h.name}: ${r.stderr}`);
    }
    const green = ['-o', 'truss.cluster=pgreen', '-o', 'truss.encrypt=false', '--subnet', VXLAN_SUBNET, 'pgreen'];
    for (const [h, d] of [
      [p1, P1_NAME],
      [p2, P2_NAME],
    ] as const) {
      const r = await h.docker(['network', 'create', '-d', d, '--ipam-driver', d, ...green]);
      assert.equal(r.code, 0, `network create pgreen in ${h.name}: ${r.stderr}`);
    }
    await runContainer(p1, { name: 'x1', network: 'pblue', cmd: SINK_CMD() });
    await runContainer(p2, { name: 'x2', network: 'pblue', cmd: SINK_CMD() });
    await runContainer(p1, { name: 'g1', network: 'pgreen', cmd: SINK_CMD() });
    await runContainer(p2, { name: 'g2', network: 'pgreen', cmd: SINK_CMD() });
    const [x1, g1] = [await containerIp(p1, 'x1', 'pblue'), await containerIp(p1, 'g1', 'pgreen')];
    // why: the first handshake may hit a peer not configured yet; wireguard-go retries after ~5 s
    await waitFor(async () => (await tcpConnect(p2, 'x2', x1, SINK_PORT, 2)).ok, 30_000, {
      what: 'x2 (p2) -> x1 (p1)',
    });
    await waitFor(async () => (await tcpConnect(p2, 'g2', g1, SINK_PORT, 2)).ok, 30_000, {
      what: 'g2 (p2) -> g1 (p1)',
    });
  });

/** Longest time in ms between two samples at which flow 0 grew (within the samples' span). */
function longestStall(samples: readonly FlowSample[]): number {
  let last = samples[0]?.t ?? 0;
  let worst = 0;
  for (let k = 1; k < samples.length; k++) {
    const s = samples[k] as FlowSample;
    if ((s.bytes[0] ?? 0) > (samples[k - 1]?.bytes[0] ?? 0)) {
      worst = Math.max(worst, s.t - last);
      last = s.t;
    }
  }
  return Math.round(Math.max(worst, (samples.at(-1)?.t ?? last) - last));
}

describe('truss as a Docker managed plugin (package, registry, install, upgrade)', { timeout: 10 * 60_000 }, () => {
  before(async () => {
    underlay = await startUnderlay();
    registry = await startRegistry(underlay);
    const dockerdArgs = [`--insecure-registry=${REGISTRY_ADDRESS}`];
    [p1, p2] = await Promise.all([
      startHost('p1', { underlay: { of: underlay, index: 1 }, dockerdArgs }),
      startHost('p2', { underlay: { of: underlay, index: 2 }, dockerdArgs }),
    ]);
  });

  after(async () => {
    printFigures([...figures, ...FRESH_HOST_ERROR.map((e) => `enable without the state dir: ${e}`)]);
    const problems: string[] = [];
    for (const h of [p1, p2]) await h?.stop().catch((e: Error) => problems.push(e.message));
    await registry?.stop().catch((e: Error) => problems.push(e.message));
    await underlay?.stop().catch((e: Error) => problems.push(e.message));
    assert.deepEqual(problems, [], 'teardown');
  });

  it('1. packages config.json + rootfs and a tarball (cached by the inputs hash)', { timeout: 300_000 }, async () => {
    builds = await ensurePluginBuilds([V1, V2]);
    const b = build(V1);
    const config = JSON.parse(readFileSync(join(b.pluginDir, 'config.json'), 'utf8')) as {
      description: string;
      interface: { types: string[]; socket: string };
      network: { type: string };
      linux: { capabilities: string[]; devices: { path: string }[] };
      mounts: { name: string; source: string; destination: string; options: string[] }[];
    };
    assert.deepEqual(config.interface.types, ['docker.networkdriver/1.0', 'docker.ipamdriver/1.0']);
    assert.equal(config.interface.socket, 'truss.sock');
    assert.equal(config.network.type, 'host');
    assert.deepEqual(config.linux.capabilities, ['CAP_NET_ADMIN']);
    assert.deepEqual(
      config.linux.devices.map((d) => d.path),
      ['/dev/net/tun'],
    );
    assert.ok(config.description.includes(V1), `description names ${V1}`);
    // M6: the host's iptables lock can be shared; the default is a placeholder that makes truss refuse legacy
    const lock = config.mounts.find((m) => m.name === 'xtables-lock');
    assert.deepEqual(lock && [lock.source, lock.destination], ['/dev/null', '/run/xtables.lock']);
    // issue 16: the Docker socket is opt-in (docker-socket.source); the placeholder leaves names off
    const sock = config.mounts.find((m) => m.name === 'docker-socket');
    assert.deepEqual(sock && [sock.source, sock.destination], ['/dev/null', '/var/run/docker.sock']);
    for (const f of ['usr/local/bin/node', 'app/lib/truss.mjs', 'app/proto/rpc.proto', 'usr/sbin/ip', 'usr/sbin/nft']) {
      assert.ok(existsSync(join(b.pluginDir, 'rootfs', f)), `rootfs has ${f}`);
    }
    for (const f of [
      'usr/sbin/iptables',
      'usr/sbin/conntrack',
      'usr/bin/wg',
      'usr/bin/wireguard-go',
      'usr/bin/setsid',
    ]) {
      assert.ok(existsSync(join(b.pluginDir, 'rootfs', f)), `rootfs has ${f}`);
    }
    // issue 18: the rootfs carries the newest wireguard-go Debian offers (unstable's, which
    // scripts/setup.sh and build-plugin.sh unpack into truss's own dir), not this release's
    const shipped = await wireguardGoVersion(join(b.pluginDir, 'rootfs/usr/bin/wireguard-go'));
    const newest = await wireguardGoVersion(join(OWN_WIREGUARD_GO_DIR, 'usr/bin/wireguard-go'));
    assert.ok(newest, `no wireguard-go in ${OWN_WIREGUARD_GO_DIR}: run scripts/setup.sh`);
    assert.equal(shipped, newest, 'the rootfs has the newest wireguard-go');
    const release = existsSync('/usr/bin/wireguard-go') ? await wireguardGoVersion('/usr/bin/wireguard-go') : undefined;
    if (release) assert.ok(compareVersions(shipped ?? '0', release) >= 0, `${shipped} is not older than ${release}`);
    const manifest = readFileSync(join(b.pluginDir, 'rootfs/app/MANIFEST'), 'utf8');
    assert.match(manifest, /^\/usr\/bin\/wireguard-go {2}wireguard-go \S+ \(Debian unstable/m);
    figures.push(`wireguard-go in the rootfs: ${shipped} (this release's: ${release ?? 'none'})`);
    const listing = (await runOk(['tar', '-tzf', b.tarball])).stdout.split('\n');
    assert.ok(listing.includes(`truss-plugin-${V1}/config.json`), 'the tarball holds truss-plugin-V/config.json');
    assert.ok(listing.includes(`truss-plugin-${V1}/rootfs/app/lib/truss.mjs`), 'and the rootfs');
    const mb = (n: number) => (n / 1e6).toFixed(1);
    for (const x of builds) {
      figures.push(
        `package ${x.version}: rootfs ${mb(x.rootfsBytes)} MB in ${x.rootfsFiles} files, tarball ${mb(x.tarballBytes)} MB, ` +
          `${x.built ? `built in ${(x.ms / 1000).toFixed(1)} s` : 'reused from the cache'}`,
      );
    }
  });

  it('2. p1: create from the unpacked tarball, enable: listed enabled, listening fast, no Plugin.Activate', {
    timeout: 180_000,
  }, async () => {
    await p1Plugin();
    assert.equal((await pluginList(p1)).get(P1_NAME), true, `docker plugin ls shows ${P1_NAME} enabled`);
    const id = await pluginId(p1, P1_NAME);
    const lines = await waitFor(() => listeningLines(p1, id).at(-1), 10_000, { what: 'the listening log line' });
    assert.equal(lines.version, V1);
    const startupMs = Number(lines.startupMs);
    figures.push(`time to listen (process start -> socket bound, plugin log): ${startupMs} ms`);
    assert.ok(startupMs < LISTEN_MS, `listening after ${startupMs} ms, expected < ${LISTEN_MS}`);
  });

  it('2b. p1: state.source missing on the host: enable fails naming it, Docker does not create it', {
    timeout: 120_000,
  }, async () => {
    await p1Plugin();
    const missing = join(p1.dir, 'state-not-made');
    rmSync(missing, { recursive: true, force: true });
    await dockerPlugin(p1, ['disable', P1_NAME]);
    await dockerPlugin(p1, ['set', P1_NAME, `state.source=${missing}`]);
    const r = await p1.docker(['plugin', 'enable', P1_NAME]);
    FRESH_HOST_ERROR.push(r.stderr.trim());
    assert.notEqual(r.code, 0, 'enable must fail');
    // docs/install.md quotes it (with the default source): the first install step is mkdir
    const says = `error mounting "${missing}" to rootfs at "/var/lib/truss": stat ${missing}: no such file or directory`;
    assert.ok(r.stderr.includes(says), r.stderr);
    assert.equal(existsSync(missing), false, 'Docker does not create a bind mount source');
    assert.equal((await pluginList(p1)).get(P1_NAME), false, 'the plugin stays disabled');
    await dockerPlugin(p1, ['set', P1_NAME, `state.source=${pluginStateDir(p1)}`]);
    await dockerPlugin(p1, ['enable', P1_NAME]);
  });

  it("2c. p1: inside the plugin, iptables-legacy without the host's xtables lock is refused, naming the setting (M6)", {
    timeout: 120_000,
  }, async () => {
    await p1Plugin();
    // the running plugin's pid: a truss.mjs serve process in p1's network namespace (network type host)
    const nsIno = statSync(`/run/netns/${p1.name}`).ino;
    const pid = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .find((d) => {
        try {
          const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
          return cmd.includes('/app/lib/truss.mjs\0serve') && readlinkSync(`/proc/${d}/ns/net`) === `net:[${nsIno}]`;
        } catch {
          return false;
        }
      });
    assert.ok(pid, 'the plugin process of p1');
    const inPlugin = (args: readonly string[]) =>
      run(['nsenter', '-t', pid, '-m', '-n', '--', '/usr/local/bin/node', '/app/lib/truss.mjs', ...args]);
    // truss doctor runs serve's start-up checks: what `TRUSS_IPTABLES=iptables-legacy` would meet
    const r = await inPlugin(['doctor', '--iptables', 'iptables-legacy', '--proc-sys', '/host/proc/sys']);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(
      r.stdout,
      /iptables-legacy must share dockerd's lock \/run\/xtables\.lock, but the plugin's is a placeholder \(\/dev\/null\)/,
    );
    assert.ok(r.stdout.includes('docker plugin set truss xtables-lock.source=/run/xtables.lock'), r.stdout);
    // with nft (this host's dockerd) the placeholder does not matter
    const nft = await inPlugin(['doctor', '--iptables', 'iptables', '--proc-sys', '/host/proc/sys']);
    assert.doesNotMatch(nft.stdout, /xtables\.lock/);
  });

  it('3. p1: containers on a truss:VERSION network talk; port policy holds real traffic', async () => {
    await p1Plugin();
    const create = ['network', 'create', '-d', P1_NAME, '--ipam-driver', P1_NAME, '--subnet', '198.18.20.0/24'];
    const r = await p1.docker([...create, '-o', 'truss.ingress=tcp/80', 'pnet']);
    assert.equal(r.code, 0, r.stderr);
    await runContainer(p1, { name: 'srv', network: 'pnet', cmd: SRV_CMD });
    await runContainer(p1, { name: 'cli', network: 'pnet' });
    const srv = await containerIp(p1, 'srv', 'pnet');
    await assertConnects(p1, 'cli', 'srv', srv, 80);
    const denied = await tcpConnect(p1, 'cli', srv, 8080, 2);
    assert.equal(denied.ok, false, `tcp/8080 is not in the policy: ${denied.output}`);
    assert.equal(await serverSaw(p1, 'srv', denied.token), false, 'srv must not see the denied connection');
    // the sysctls went through the mounted /proc/sys/net (the plugin's own /proc/sys is read-only)
    const nid = (await p1.docker(['network', 'inspect', '-f', '{{.Id}}', 'pnet'])).stdout.trim();
    const ra = await p1.exec(['cat', `/proc/sys/net/ipv6/conf/trb${nid.slice(0, 12)}/accept_ra`]);
    assert.equal(ra.stdout.trim(), '0', 'accept_ra off on the bridge');
    assert.ok((await pluginStatus(p1)).kernel.inSync, 'truss status (admin socket in the state dir): in sync');
    const rpcs = new Set(pluginLog(p1, await pluginId(p1, P1_NAME)).map((l) => l.rpc));
    assert.ok(rpcs.has('NetworkDriver.GetCapabilities') && rpcs.has('NetworkDriver.Join'), 'requests were logged');
    assert.ok(!rpcs.has('Plugin.Activate'), 'a managed plugin is never sent Plugin.Activate');
  });

  it('4. push to the registry, install on p2 (--alias truss), a cluster network across p1 and p2', {
    timeout: 300_000,
  }, async () => {
    await cluster();
    assert.equal((await pluginList(p2)).get(P2_NAME), true, 'p2 lists truss:latest enabled');
    const ref = (await dockerPlugin(p2, ['inspect', '-f', '{{.PluginReference}}', P2_NAME])).stdout.trim();
    assert.equal(ref, `${REPO}:${V1}`);
    const x2 = await containerIp(p2, 'x2', 'pblue');
    await assertConnects(p1, 'x1', 'x2', x2, SINK_PORT, p2);
    // the plugin says which WireGuard it runs: no kernel module here, so the rootfs's wireguard-go
    const wg = pluginLog(p2, await pluginId(p2, P2_NAME)).find((l) => l.msg === 'preflight: WireGuard');
    const shipped = await wireguardGoVersion(join(build(V1).pluginDir, 'rootfs/usr/bin/wireguard-go'));
    assert.match(String(wg?.implementation), new RegExp(`^(kernel|wireguard-go ${shipped} \\(/usr/bin/wireguard-go)`));
  });

  it('5. p2: disable -f, upgrade to a new version from the registry, enable: traffic and state survive', {
    timeout: 300_000,
  }, async () => {
    await cluster();
    await push(build(V2).pluginDir, V2);
    const r = await p2.docker([
      'network',
      'create',
      '-d',
      P2_NAME,
      '--ipam-driver',
      P2_NAME,
      '--subnet',
      '198.18.21.0/24',
      'lnet',
    ]);
    assert.equal(r.code, 0, r.stderr);
    await runContainer(p2, { name: 'y1', network: 'lnet', cmd: SINK_CMD() });
    await runContainer(p2, { name: 'y2', network: 'lnet' });
    const [y1, x1] = [await containerIp(p2, 'y1', 'lnet'), await containerIp(p1, 'x1', 'pblue')];
    const g1 = await containerIp(p1, 'g1', 'pgreen');
    const flow = await startFlow(p2, { from: 'y2', to: 'y1', ip: y1, port: SINK_PORT });
    const watch = watchFlows([flow]);
    const local = pingProbe(p2, 'y2', y1, 30);
    const cross = pingProbe(p2, 'x2', x1, 30);
    const crossVxlan = pingProbe(p2, 'g2', g1, 30);
    await sleep(2000);
    const t0 = performance.now();
    await dockerPlugin(p2, ['disable', '-f', P2_NAME]);
    const t1 = performance.now();
    // --skip-remote-check: the local name (alias truss) differs from the remote one; without it the
    // CLI asks "Plugin images do not match, are you sure?" and, with no answer, does nothing (exit 0)
    const upgrade = ['upgrade', '--grant-all-permissions', '--skip-remote-check', P2_NAME, `${REPO}:${V2}`];
    await dockerPlugin(p2, upgrade);
    // why: moby keeps env settings across an upgrade but not mount sources (Set writes them into
    // the plugin's Config, which upgrade replaces): state.source must be given again
    await dockerPlugin(p2, ['set', P2_NAME, `state.source=${pluginStateDir(p2)}`]);
    const t2 = performance.now();
    await dockerPlugin(p2, ['enable', P2_NAME]);
    const t3 = performance.now();
    const [l, c, v] = [await local, await cross, await crossVxlan];
    const samples = await watch.stop();
    await flow.stop();
    const s = (a: number, b: number) => `${((b - a) / 1000).toFixed(1)} s`;
    figures.push(`upgrade on p2: disable -f ${s(t0, t1)}, upgrade ${s(t1, t2)}, enable ${s(t2, t3)}`);
    figures.push(`  same-host ping gap across it: ${l.maxGapMs} ms (${l.received}/${l.sent} replies)`);
    figures.push(`  same-host TCP flow, longest stall: ${longestStall(samples)} ms`);
    figures.push(`  cross-host ping gap (p2 -> p1 over wireguard-go): ${c.maxGapMs} ms (${c.received}/${c.sent})`);
    figures.push(
      `  cross-host ping gap (p2 -> p1 over VXLAN, a kernel device): ${v.maxGapMs} ms (${v.received}/${v.sent})`,
    );
    assert.ok(l.received > 0 && l.maxGapMs <= LOCAL_GAP_MS, `same-host gap ${l.maxGapMs} ms:\n${l.output}`);
    assert.ok(longestStall(samples) <= LOCAL_GAP_MS, `the established flow stalled ${longestStall(samples)} ms`);
    assert.ok(c.received > 0, `cross-host traffic must come back after the upgrade:\n${c.output}`);
    assert.ok(
      v.received > 0 && v.maxGapMs <= LOCAL_GAP_MS,
      `VXLAN (kernel) cross-host gap ${v.maxGapMs} ms:\n${v.output}`,
    );
    const id = await pluginId(p2, P2_NAME);
    const starts = listeningLines(p2, id);
    assert.deepEqual(
      starts.map((x) => x.version),
      [V1, V2],
      'the same plugin id started as V1, then as V2',
    );
    const ref = (await dockerPlugin(p2, ['inspect', '-f', '{{.PluginReference}}', P2_NAME])).stdout.trim();
    assert.equal(ref, `${REPO}:${V2}`);
    await waitFor(async () => (await pluginStatus(p2)).kernel.inSync, 30_000, { what: 'p2 in sync after upgrade' });
    await runContainer(p2, { name: 'y3', network: 'lnet' });
    await assertConnects(p2, 'y3', 'y1', y1);
    await runContainer(p2, { name: 'x3', network: 'pblue' });
    await waitFor(async () => (await tcpConnect(p2, 'x3', x1, SINK_PORT, 2)).ok, 30_000, { what: 'x3 (p2) -> x1' });
  });

  it('6. removing everything, then disable and rm, leaves nothing of truss', { timeout: 300_000 }, async () => {
    for (const h of [p1, p2]) {
      const ids = (await h.docker(['ps', '-aq'])).stdout.split(/\s+/).filter(Boolean);
      if (ids.length > 0) assert.equal((await h.docker(['rm', '-f', ...ids], 120_000)).code, 0);
      const nets = (await h.docker(['network', 'ls', '--filter', 'type=custom', '-q'])).stdout;
      for (const n of nets.split(/\s+/).filter(Boolean)) {
        const r = await h.docker(['network', 'rm', n]);
        assert.equal(r.code, 0, `network rm in ${h.name}: ${r.stderr}`);
      }
      for (const name of (await pluginList(h)).keys()) {
        await dockerPlugin(h, ['disable', name]);
        await dockerPlugin(h, ['rm', name]);
      }
      assert.equal((await pluginList(h)).size, 0, `${h.name}: no plugin left`);
      assert.deepEqual(await trussKernelObjects(h.netnsPath), [], `${h.name}: no truss kernel objects`);
      const netNs = nsIdOfFile(h.netnsPath, 'net');
      const procs = listProcs().filter((p) => p.netNs === netNs && /truss\.mjs|wireguard-go/.test(p.cmdline));
      assert.deepEqual(procs, [], `${h.name}: no plugin processes left`);
    }
  });
});
