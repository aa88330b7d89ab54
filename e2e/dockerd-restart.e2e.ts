/**
 * dockerd restarts under truss (reliability test plan F4, F5), one simulated host, truss started
 * as the README says (`truss serve` on /run/docker/plugins/truss.sock; debug logging so the RPCs
 * Docker sends around a restart can be printed). Tests run in order on shared state:
 *   1. dockerd restart time without truss networks (the baseline);
 *   2. F4.a live-restore: a ping probe every 20 ms between two containers, dockerd restarted →
 *      0 lost, truss keeps every endpoint (status in sync), new `docker run` works;
 *   3. F4.b kill -9 dockerd without live-restore → `--restart always` containers come back with
 *      their network (same --ip), endpoints of the others are removed (Docker's Leave and
 *      DeleteEndpoint at boot), status lists only live endpoints;
 *   3c. F4.c graceful stop/start (SIGTERM) without live-restore → the `--restart always` containers
 *      come back with their network (same --ip), the endpoint of one that does not is released,
 *      status in sync, and the restart takes < 5 s longer than the same restart with the same
 *      containers on Docker's bridge network (the control, run first);
 *   4. F5 truss stopped, dockerd restarted, truss started 10 s later → the container comes back;
 *   5. `docker network rm` of everything leaves nothing of truss.
 * After each restart dockerd has put its FORWARD jumps above truss's: the drift status reports is
 * printed, and truss must repair it by itself within 25 s of dockerd's start (its passes after
 * Plugin.Activate), without `truss reconcile`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { containerIp, containerPid, endpointId, runContainer } from './harness/containers.ts';
import { printFigures } from './harness/figures.ts';
import { type Host, startHost } from './harness/host.ts';
import { IMAGE } from './harness/image.ts';
import { assertNoTrussLeftovers } from './harness/leftovers.ts';
import { CHILD_PATH } from './harness/paths.ts';
import { type ProbeResult, parsePing, ping } from './harness/traffic.ts';
import { sleep, waitFor } from './harness/wait.ts';

const NET_A = { name: 'ra', subnet: '198.18.40.0/24' } as const;
const NET_B = { name: 'rb', subnet: '198.18.41.0/24' } as const;
/** the --ip of a `--restart always` container (F4.b) */
const FIXED_IP = '198.18.40.50';
const PROBE_INTERVAL_MS = 20;
/** F4.c: how much longer a graceful restart may take with the containers on truss networks than on Docker's bridge */
const F4C_MAX_EXTRA_MS = 5000;
/** F4.c: containers that exit on SIGTERM, so a graceful stop does not wait out Docker's 10 s stop timeout */
const TERM_EXITS = ['sh', '-c', "trap 'exit 0' TERM; sleep 3600 & wait"];
/** F5: truss starts this long after dockerd was started */
const F5_DELAY_MS = 10_000;

let host: Host;
const figures: string[] = [];
/** test 1's stop + start, ms */
let baselineMs: number | undefined;
const ms = (v: number): string => `${Math.round(v)} ms`;

async function setLiveRestore(on: boolean): Promise<void> {
  writeFileSync(join(host.dir, 'daemon.json'), `${JSON.stringify({ 'live-restore': on })}\n`);
  process.kill(host.dockerdPid(), 'SIGHUP');
  await waitFor(
    async () => (await host.docker(['info', '--format', '{{.LiveRestoreEnabled}}'])).stdout.trim() === String(on),
    10_000,
    { what: `dockerd live-restore=${on} after SIGHUP`, intervalMs: 100 },
  );
}

/** graceful (SIGTERM) or crash (SIGKILL) restart; the figures of both halves */
async function restartDockerd(signal: NodeJS.Signals): Promise<{ stopMs: number; startMs: number; startedAt: number }> {
  const stopMs = await host.stopDockerd(signal);
  const startedAt = performance.now();
  const startMs = await host.startDockerd();
  return { stopMs, startMs, startedAt };
}

async function run(args: readonly string[]): Promise<string> {
  const r = await host.docker(args, 120_000);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/**
 * A ping every PROBE_INTERVAL_MS from a container to ip, run in the container's namespaces with
 * its own busybox (not through `docker exec`, which would die with dockerd); stop() ends it with
 * SIGINT and parses busybox's summary.
 */
async function startProbe(fromCtr: string, ip: string): Promise<{ stop(): Promise<ProbeResult> }> {
  const pid = await containerPid(host, fromCtr);
  const argv = ['--target', String(pid), '--mount', '--net', '--', '/bin/ping', '-i', '0.02', '-W', '1', ip];
  const child = spawn('nsenter', argv, {
    env: { ...process.env, PATH: CHILD_PATH },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return {
    async stop() {
      await sleep(500); // replies in flight
      child.kill('SIGINT');
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
      return parsePing(out, PROBE_INTERVAL_MS);
    },
  };
}

interface StatusEndpoint {
  readonly id?: string;
  readonly endpointId?: string;
}
const endpointIds = async (): Promise<string[]> =>
  (await host.trussStatus()).endpoints
    .map((e) => {
      const x = e as StatusEndpoint;
      return x.endpointId ?? x.id ?? JSON.stringify(e);
    })
    .sort();

/** Endpoint ids Docker has for running containers on truss networks. */
async function liveEndpointIds(): Promise<string[]> {
  const ids = (await host.docker(['ps', '-q'])).stdout.split(/\s+/).filter(Boolean);
  const out: string[] = [];
  for (const id of ids) {
    for (const net of [NET_A.name, NET_B.name]) {
      const eid = await endpointId(host, id, net);
      if (eid) out.push(eid);
    }
  }
  return out.sort();
}

/** RPC names (NetworkDriver.Leave...) truss logged since byte offset `from` of its log. */
function rpcsSince(from: number): string[] {
  const out: string[] = [];
  for (const line of host.truss.log().slice(from).split('\n')) {
    if (!line.includes('"rpc response"')) continue;
    try {
      const o = JSON.parse(line) as { rpc?: string };
      if (typeof o.rpc === 'string') out.push(o.rpc.replace(/^(NetworkDriver|IpamDriver)\./, ''));
    } catch {
      // not a JSON line
    }
  }
  return out;
}
const countOf = (xs: readonly string[]): string => {
  const m = new Map<string, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return [...m].map(([k, v]) => `${k}×${v}`).join(', ') || 'none';
};

/** Waits until truss status lists exactly the endpoints Docker has for running containers. */
async function untilOnlyLiveEndpoints(): Promise<{ live: string[]; cleanMs: number }> {
  const t0 = performance.now();
  let live: string[] = [];
  await waitFor(
    async () => {
      live = await liveEndpointIds();
      return JSON.stringify(await endpointIds()) === JSON.stringify(live);
    },
    60_000,
    { what: 'truss status lists exactly the live endpoints', intervalMs: 250 },
  );
  return { live, cleanMs: performance.now() - t0 };
}

/**
 * What truss status says about the kernel right after a restart, and how long until it is in sync
 * again without anyone's help: dockerd's boot puts its FORWARD jumps above truss's, and truss runs
 * full passes when dockerd activates it (now, +3 s, +10 s), well before the periodic one (30 s).
 * Fails unless the kernel is in sync within ACTIVATE_SYNC_MS of dockerd's start.
 */
const ACTIVATE_SYNC_MS = 25_000;
async function inSyncFigure(dockerdStartedAt: number): Promise<string> {
  const first = await host.trussStatus();
  if (first.kernel.inSync) return 'kernel in sync';
  const drift = JSON.stringify(first.kernel.problems);
  const left = Math.max(1000, ACTIVATE_SYNC_MS - (performance.now() - dockerdStartedAt));
  await waitFor(async () => (await host.trussStatus()).kernel.inSync, left, {
    what: `kernel.inSync without truss reconcile (problems after the restart: ${drift})`,
    intervalMs: 250,
  });
  const took = performance.now() - dockerdStartedAt;
  return `${drift}, in sync ${(took / 1000).toFixed(1)} s after dockerd started (truss's passes after Plugin.Activate)`;
}

const waitRunning = (name: string, timeoutMs: number) =>
  waitFor(
    async () => (await host.docker(['inspect', '-f', '{{.State.Running}}', name])).stdout.trim() === 'true',
    timeoutMs,
    {
      what: `${name} running`,
      intervalMs: 100,
    },
  );

describe('dockerd restarts with truss networks (F4, F5)', { timeout: 10 * 60_000 }, () => {
  before(async () => {
    host = await startHost('dr', { daemonJson: { 'live-restore': true } });
    await host.startTruss({ debug: true });
  });

  after(async () => {
    if (figures.length > 0) printFigures(figures);
    await host?.stop();
  });

  it('1. baseline: dockerd restart without truss networks', { timeout: 120_000 }, async () => {
    const t = await restartDockerd('SIGTERM');
    baselineMs = t.stopMs + t.startMs;
    figures.push(`dockerd restart, no truss networks (live-restore): stop ${ms(t.stopMs)}, start ${ms(t.startMs)}`);
  });

  it('2. F4.a live-restore: 0 probe loss, truss keeps all endpoints, new containers work', {
    timeout: 180_000,
  }, async () => {
    for (const n of [NET_A, NET_B]) {
      await run(['network', 'create', '-d', 'truss', '--ipam-driver', 'truss', '--subnet', n.subnet, n.name]);
    }
    await Promise.all([
      runContainer(host, { name: 'a1', network: NET_A.name }),
      runContainer(host, { name: 'a2', network: NET_A.name }),
      runContainer(host, { name: 'b1', network: NET_B.name }),
      runContainer(host, { name: 'b2', network: NET_B.name }),
    ]);
    const before = await endpointIds();
    assert.equal(before.length, 4, `4 endpoints before: ${before}`);
    const a2 = await containerIp(host, 'a2', NET_A.name);
    const probe = await startProbe('a1', a2);
    await sleep(1000);
    const logAt = host.truss.log().length;
    const t = await restartDockerd('SIGTERM');
    await sleep(1000);
    const p = await probe.stop();
    const rpcs = rpcsSince(logAt);
    figures.push(
      `F4.a dockerd restart, 2 truss networks, 4 containers (live-restore): stop ${ms(t.stopMs)}, start ${ms(t.startMs)}`,
      `F4.a probe a1 -> a2 every ${PROBE_INTERVAL_MS} ms: ${p.sent} sent, ${p.sent - p.received} lost, longest gap ${p.maxGapMs} ms`,
      `F4.a RPCs truss saw during the restart: ${countOf(rpcs)}`,
    );
    assert.ok(p.sent > 50, `probe ran: ${p.output.slice(-300)}`);
    assert.equal(p.sent - p.received, 0, `probe lost packets: ${p.output.slice(-300)}`);
    assert.deepEqual(await endpointIds(), before, 'truss keeps every endpoint');
    figures.push(`F4.a truss status right after: ${await inSyncFigure(t.startedAt)}`);
    assert.deepEqual(await liveEndpointIds(), before, 'Docker has the same endpoints');
    assert.ok(await ping(host, 'a1', a2), 'a1 -> a2 after the restart');
    assert.ok(await ping(host, 'b1', await containerIp(host, 'b2', NET_B.name)), 'b1 -> b2 after the restart');
    await runContainer(host, { name: 'a3', network: NET_A.name });
    assert.ok(await ping(host, 'a3', a2), 'a new container a3 reaches a2');
  });

  it('3. F4.b kill -9 without live-restore: --restart always containers come back, the rest is cleaned up', {
    timeout: 180_000,
  }, async () => {
    await run([
      'run',
      '-d',
      '--name',
      'ka',
      '--restart',
      'always',
      '--network',
      NET_A.name,
      '--ip',
      FIXED_IP,
      IMAGE,
      'sleep',
      '3600',
    ]);
    await run(['run', '-d', '--name', 'kb', '--restart', 'always', '--network', NET_A.name, IMAGE, 'sleep', '3600']);
    await run(['run', '-d', '--name', 'kc', '--restart', 'always', '--network', NET_B.name, IMAGE, 'sleep', '3600']);
    await setLiveRestore(false);
    const before = await endpointIds();
    const logAt = host.truss.log().length;
    const t = await restartDockerd('SIGKILL');
    for (const c of ['ka', 'kb', 'kc']) await waitRunning(c, 60_000);
    const backMs = performance.now() - t.startedAt;
    assert.equal(await containerIp(host, 'ka', NET_A.name), FIXED_IP, 'ka keeps its --ip');
    assert.ok(await ping(host, 'kb', FIXED_IP), 'kb -> ka after the restart');
    assert.ok(await ping(host, 'ka', await containerIp(host, 'kb', NET_A.name)), 'ka -> kb after the restart');
    assert.ok(await ping(host, 'kc', '198.18.41.1'), 'kc -> its gateway after the restart');
    const stopped = (await host.docker(['ps', '-a', '--filter', 'status=exited', '--format', '{{.Names}}'])).stdout;
    assert.deepEqual(
      stopped.split(/\s+/).filter(Boolean).sort(),
      ['a1', 'a2', 'a3', 'b1', 'b2'],
      'the others stay down',
    );
    // Docker releases the dead sandboxes' endpoints at boot (Leave, DeleteEndpoint) and creates new ones
    const { live, cleanMs } = await untilOnlyLiveEndpoints();
    assert.equal(live.length, 3, `3 live endpoints: ${live}`);
    const sync = await inSyncFigure(t.startedAt);
    const rpcs = rpcsSince(logAt);
    figures.push(
      `F4.b kill -9 dockerd (no live-restore), 8 endpoints of which 3 --restart always: start ${ms(t.startMs)}, the 3 running again ${ms(backMs)} after the start`,
      `F4.b truss endpoints: ${before.length} before, ${live.length} after (only live ones, ${ms(cleanMs)} after they ran); ${sync}`,
      `F4.b RPCs truss saw from the kill to clean: ${countOf(rpcs)}`,
    );
  });

  it('3c. F4.c graceful restart without live-restore: --restart always containers come back, the rest is released', {
    timeout: 180_000,
  }, async () => {
    // test 3's containers run `sleep`, which ignores SIGTERM: made again with a command that exits on it
    await run(['rm', '-f', 'ka', 'kb', 'kc']);
    const always = ['run', '-d', '--restart', 'always', '--network'];
    // the control ("no plugin"): the same restart with the same containers on Docker's bridge network
    for (const c of ['na', 'nb', 'nc']) await run([...always, 'bridge', '--name', c, IMAGE, ...TERM_EXITS]);
    await run(['run', '-d', '--network', 'bridge', '--name', 'nd', IMAGE, ...TERM_EXITS]);
    const c = await restartDockerd('SIGTERM');
    for (const n of ['na', 'nb', 'nc']) await waitRunning(n, 60_000);
    const controlBackMs = performance.now() - c.startedAt;
    const controlMs = c.stopMs + c.startMs;
    await run(['rm', '-f', 'na', 'nb', 'nc', 'nd']);
    await run([...always, NET_A.name, '--name', 'ka', '--ip', FIXED_IP, IMAGE, ...TERM_EXITS]);
    await run([...always, NET_A.name, '--name', 'kb', IMAGE, ...TERM_EXITS]);
    await run([...always, NET_B.name, '--name', 'kc', IMAGE, ...TERM_EXITS]);
    await run(['run', '-d', '--network', NET_B.name, '--name', 'kd', IMAGE, ...TERM_EXITS]);
    const before = await endpointIds();
    assert.deepEqual(before, await liveEndpointIds(), 'truss lists the 4 live endpoints before');
    const kd = await endpointId(host, 'kd', NET_B.name);
    const logAt = host.truss.log().length;
    const t = await restartDockerd('SIGTERM');
    for (const c of ['ka', 'kb', 'kc']) await waitRunning(c, 60_000);
    const backMs = performance.now() - t.startedAt;
    assert.equal(await containerIp(host, 'ka', NET_A.name), FIXED_IP, 'ka keeps its --ip');
    assert.ok(await ping(host, 'kb', FIXED_IP), 'kb -> ka after the restart');
    assert.ok(await ping(host, 'ka', await containerIp(host, 'kb', NET_A.name)), 'ka -> kb after the restart');
    assert.ok(await ping(host, 'kc', '198.18.41.1'), 'kc -> its gateway after the restart');
    const kdState = (await host.docker(['inspect', '-f', '{{.State.Status}}', 'kd'])).stdout.trim();
    assert.equal(kdState, 'exited', 'kd (no restart policy) stays down');
    const { live, cleanMs } = await untilOnlyLiveEndpoints();
    assert.equal(live.length, 3, `3 live endpoints: ${live}`);
    assert.ok(!live.includes(kd), "kd's endpoint is gone");
    const sync = await inSyncFigure(t.startedAt);
    const restartMs = t.stopMs + t.startMs;
    figures.push(
      `F4.c graceful restart (SIGTERM, no live-restore), 4 endpoints of which 3 --restart always: stop ${ms(t.stopMs)}, start ${ms(t.startMs)}, the 3 running again ${ms(backMs)} after the start`,
      `F4.c control, the same 4 containers on Docker's bridge: stop ${ms(c.stopMs)}, start ${ms(c.startMs)}, the 3 running again ${ms(controlBackMs)} after the start`,
      `F4.c stop + start ${ms(restartMs)} vs ${ms(controlMs)} on Docker's bridge (${ms(restartMs - controlMs)} more)` +
        (baselineMs === undefined ? '' : ` and ${ms(baselineMs)} with no containers (test 1)`),
      `F4.c truss endpoints: ${before.length} before, ${live.length} after (${ms(cleanMs)} after they ran); ${sync}`,
      `F4.c RPCs truss saw from the stop to clean: ${countOf(rpcsSince(logAt))}`,
    );
    assert.ok(
      restartMs - controlMs < F4C_MAX_EXTRA_MS,
      `the restart took ${ms(restartMs)}, ${ms(restartMs - controlMs)} more than with the containers on Docker's bridge`,
    );
  });

  it('4. F5: truss absent at dockerd boot, started 10 s later: the --restart always container comes back', {
    timeout: 180_000,
  }, async () => {
    await run(['rm', '-f', 'kb', 'kc', 'kd', 'a1', 'a2', 'a3', 'b1', 'b2']);
    await host.stopTruss('SIGTERM');
    const stopMs = await host.stopDockerd('SIGTERM', 60_000);
    const t0 = performance.now();
    const starting = host.startDockerd(120_000);
    starting.catch(() => {}); // awaited below
    await sleep(F5_DELAY_MS);
    await host.startTruss({ debug: true });
    const trussAt = performance.now() - t0;
    const startMs = await starting;
    await waitRunning('ka', 60_000);
    const backMs = performance.now() - t0;
    assert.equal(await containerIp(host, 'ka', NET_A.name), FIXED_IP, 'ka keeps its --ip');
    assert.ok(await ping(host, 'ka', '198.18.40.1'), 'ka -> its gateway');
    assert.deepEqual(await endpointIds(), await liveEndpointIds(), 'truss status lists exactly the live endpoint');
    const sync = await inSyncFigure(t0);
    figures.push(
      `F5 truss stopped, dockerd stop ${ms(stopMs)} (1 --restart always container on a truss network)`,
      `F5 dockerd answering ${ms(startMs)} after its start, truss started at ${ms(trussAt)}, the container running at ${ms(backMs)}; ${sync}`,
    );
  });

  it('5. docker network rm leaves nothing of truss', { timeout: 120_000 }, async () => {
    await run(['rm', '-f', 'ka']);
    await run(['network', 'rm', NET_A.name, NET_B.name]);
    await assertNoTrussLeftovers(host);
  });
});
