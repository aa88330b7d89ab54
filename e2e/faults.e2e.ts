/**
 * The fault campaign against a real dockerd (docs/reliability.md; the socket-level parts, at
 * every injection point, are test/campaign.netns.ts and `npm run bench:soak`):
 *   F1: `docker run --ip X` while truss SIGKILLs itself at an injection point (TRUSS_FAULT) and is
 *       restarted 2 s later, inside dockerd's retry window: the run succeeds or fails cleanly, the
 *       kernel is in sync after a reconcile, no address is held twice, `docker run --ip X` works.
 *   F9: parallel `docker run -d` / `docker rm -f` on one network, also mixed (half stop while as
 *       many start): no failure, unique IPs, nothing left; CreateEndpoint+Join p95/p99 printed.
 *       E2E_F9_ROUNDS (1) and E2E_F9_PARALLEL (10) raise the counts (the plan: 20 × 50).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { containerIp, removeContainers } from './harness/containers.ts';
import { createPlusJoinMs, parseRpcSamples, percentile, printFigures } from './harness/figures.ts';
import { type Host, startHost } from './harness/host.ts';
import { IMAGE } from './harness/image.ts';
import { sleep, waitFor } from './harness/wait.ts';

const SUBNET = '198.18.233.0/24';
const NET = 'fnet';
const OPTS = { debug: true, defaultPools: '198.18.234.0/23:24', extraArgs: ['--resync-seconds', '3600'] } as const;
const ROUNDS = Number(process.env.E2E_F9_ROUNDS ?? 1);
const PARALLEL = Number(process.env.E2E_F9_PARALLEL ?? 10);

let host: Host;

interface Endpoint {
  readonly id: string;
  readonly ipv4?: string;
  readonly sandboxKey?: string;
}

async function settle(): Promise<{ inSync: boolean; problems: unknown[]; endpoints: Endpoint[] }> {
  const r = await host.truss.cli(['reconcile', '--state-dir', host.stateDir]);
  assert.equal(r.code, 0, `truss reconcile: ${r.stderr}`);
  const s = await host.trussStatus();
  return { ...s.kernel, endpoints: s.endpoints as Endpoint[] };
}

const dupes = (eps: readonly Endpoint[]): string[] => {
  const ips = eps.filter((e) => e.sandboxKey !== undefined).map((e) => e.ipv4 ?? '');
  return ips.filter((ip, i) => ips.indexOf(ip) !== i);
};

const run = (name: string, ip?: string) =>
  host.docker(
    ['run', '-d', '--name', name, '--network', NET, ...(ip ? ['--ip', ip] : []), IMAGE, 'sleep', '3600'],
    120_000,
  );

describe('fault campaign against a real dockerd', { timeout: 20 * 60_000 }, () => {
  before(async () => {
    host = await startHost('flt');
    await host.startTruss(OPTS);
    const r = await host.docker([
      'network',
      'create',
      '-d',
      'truss',
      '--ipam-driver',
      'truss',
      '--subnet',
      SUBNET,
      NET,
    ]);
    assert.equal(r.code, 0, r.stderr);
  });

  after(async () => {
    await host?.stop();
  });

  for (const point of ['create-endpoint:after-intent', 'join:after-intent']) {
    it(`F1: docker run --ip while truss is killed at ${point} and restarted 2 s later`, async (t) => {
      const ip = point.startsWith('join') ? '198.18.233.21' : '198.18.233.20';
      await removeContainers(host, ['k1', 'k2']);
      await host.truss.stop();
      await host.startTruss({ ...OPTS, env: { TRUSS_FAULT: `${point}:crash` } });
      const started = run('k1', ip);
      await waitFor(async () => !host.truss.running(), 60_000, { what: `truss dies at ${point}` });
      await sleep(2000);
      await host.startTruss(OPTS);
      const first = await started;
      t.diagnostic(`docker run during the crash: exit ${first.code} ${first.stderr.trim().split('\n')[0] ?? ''}`);
      assert.doesNotMatch(first.stderr, /panic|goroutine/, 'dockerd reports a clean error');
      if (first.code === 0) assert.equal(await containerIp(host, 'k1', NET), ip);
      await removeContainers(host, ['k1']);
      const again = await run('k2', ip);
      assert.equal(again.code, 0, `the same --ip again: ${again.stderr}`);
      assert.equal(await containerIp(host, 'k2', NET), ip);
      const s = await settle();
      assert.deepEqual(s.problems, [], 'kernel in sync with the store');
      assert.deepEqual(dupes(s.endpoints), [], 'no address on two joined endpoints');
      const unjoined = s.endpoints.filter((e) => e.sandboxKey === undefined).length;
      // M1: an endpoint whose CreateEndpoint dockerd saw fail stays until the endpoint GC collects it
      t.diagnostic(`endpoints: ${s.endpoints.length} (${unjoined} unjoined, left by the crash)`);
      await removeContainers(host, ['k1', 'k2']);
    });
  }

  it(`F9: ${ROUNDS} × ${PARALLEL} parallel docker run / rm -f on one network, also mixed`, async (t) => {
    const failures: string[] = [];
    let n = 0;
    const start = async (): Promise<string | undefined> => {
      const name = `p${n++}`;
      const r = await run(name);
      if (r.code === 0) return name;
      failures.push(`${name}: ${r.stderr.trim()}`);
      await removeContainers(host, [name]);
      return undefined;
    };
    const stop = (names: readonly string[]) => Promise.all(names.map((c) => removeContainers(host, [c])));
    const t0 = host.truss.log().length;
    for (let r = 0; r < ROUNDS; r++) {
      const up = (await Promise.all(Array.from({ length: PARALLEL }, start))).filter((x) => x !== undefined);
      const ips = await Promise.all(up.map((c) => containerIp(host, c, NET)));
      assert.equal(new Set(ips).size, ips.length, `unique IPs: ${ips.join(' ')}`);
      const half = Math.floor(up.length / 2);
      const [, more] = await Promise.all([stop(up.slice(0, half)), Promise.all(Array.from({ length: half }, start))]);
      const live = [...up.slice(half), ...more.filter((x) => x !== undefined)];
      const ips2 = await Promise.all(live.map((c) => containerIp(host, c, NET)));
      assert.equal(new Set(ips2).size, ips2.length, `unique IPs while mixed: ${ips2.join(' ')}`);
      await stop(live);
    }
    const attach = createPlusJoinMs(parseRpcSamples(host.truss.log().slice(t0)));
    printFigures([
      `F9 (${ROUNDS} rounds × ${PARALLEL} parallel + mixed): CreateEndpoint+Join n=${attach.length} ` +
        `p50 ${percentile(attach, 50).toFixed(0)} ms, p95 ${percentile(attach, 95).toFixed(0)} ms, ` +
        `p99 ${percentile(attach, 99).toFixed(0)} ms, max ${Math.max(...attach).toFixed(0)} ms`,
    ]);
    t.diagnostic(`failures: ${failures.length}`);
    assert.deepEqual(failures, []);
    const s = await settle();
    assert.deepEqual(s.problems, []);
    assert.equal(s.endpoints.filter((e) => e.sandboxKey !== undefined).length, 0, 'no joined endpoint left');
  });
});
