/**
 * Bandwidth limits end to end: one simulated host ("bw", its own dockerd and truss), real
 * containers, rates measured with iperf3 (TCP goodput, received side, 5 s after 1 s omitted).
 *
 *   network bwn (dual stack): -o truss.bandwidth=50mbit -o truss.bandwidth.ingress=30mbit
 *     cli  on bwn: the network's limits (sends ≤ 50, receives ≤ 30)
 *     ovr  connected with --driver-opt truss.bandwidth=20mbit (sends ≤ 20, receives ≤ 30)
 *     srv  iperf3 server, connected with 5gbit both ways (never the bottleneck)
 *
 * The limits are layer-2 rates (tc counts Ethernet headers); TCP goodput over MTU 1500 is ~4 %
 * below, inside the ±10 % the issue asks for. Tests run in order and share the fixtures; the
 * last removes everything and checks that nothing of truss is left.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { containerIp, endpointId, runContainer } from './harness/containers.ts';
import { printFigures } from './harness/figures.ts';
import { type Host, startHost } from './harness/host.ts';
import { assertNoTrussLeftovers, trussKernelObjects } from './harness/leftovers.ts';
import { MODES, type Mode, modeOpts, modeTitle } from './harness/modes.ts';
import { memoOnce } from './harness/once.ts';
import { trussQuiet } from './harness/truss.ts';
import { waitFor } from './harness/wait.ts';

const TRUSS_OPTS = { defaultPools: '198.18.128.0/17:24', extraArgs: ['--resync-seconds', '3600'] } as const;
const SECONDS = 5;
const TOLERANCE = 0.1;
const NET = 'bwn';

let host: Host;
const figures: string[] = [];
let once = memoOnce();
let mode: Mode = 'bridge';
let srvIp = '';
let srvIp6 = '';

async function docker(args: readonly string[], timeoutMs?: number): Promise<string> {
  const r = await host.docker(args, timeoutMs);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/** A container started on Docker's default bridge, then connected to bwn with driver options. */
async function connected(name: string, cmd: readonly string[] | undefined, opts: readonly string[]): Promise<void> {
  await runContainer(host, { name, ...(cmd ? { cmd } : {}) });
  await docker(['network', 'connect', ...opts.flatMap((o) => ['--driver-opt', o]), NET, name]);
}

const setup = () =>
  once('setup', async () => {
    await docker([
      'network',
      'create',
      '-d',
      'truss',
      '--ipam-driver',
      'truss',
      ...modeOpts(mode),
      '--ipv6',
      '--subnet',
      '198.18.70.0/24',
      '--subnet',
      'fd00:70::/64',
      '-o',
      'truss.bandwidth=50mbit',
      '-o',
      'truss.bandwidth.ingress=30mbit',
      NET,
    ]);
    await connected('srv', ['iperf3', '-s'], ['truss.bandwidth=5gbit', 'truss.bandwidth.ingress=5gbit']);
    await runContainer(host, { name: 'cli', network: NET });
    await connected('ovr', undefined, ['truss.bandwidth=20mbit']);
    srvIp = await containerIp(host, 'srv', NET);
    srvIp6 = await docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${NET}").GlobalIPv6Address}}`, 'srv']);
    assert.match(srvIp6, /^fd00:70::/, 'srv has an IPv6 address on bwn');
  });

/** iperf3 from `from` to srv (`reverse`: srv sends to `from`; `v6`: over IPv6): Mbit/s received. */
async function iperf(from: string, reverse = false, v6 = false): Promise<number> {
  await setup();
  const args = [
    'exec',
    from,
    'iperf3',
    '-c',
    v6 ? srvIp6 : srvIp,
    '-t',
    String(SECONDS),
    '-O',
    '1',
    '-J',
    ...(reverse ? ['-R'] : []),
  ];
  const out = await docker(args, (SECONDS + 60) * 1000);
  const bps = (JSON.parse(out) as { end?: { sum_received?: { bits_per_second?: number } } }).end?.sum_received
    ?.bits_per_second;
  assert.ok(typeof bps === 'number' && bps > 0, `iperf3: no rate in ${out.slice(0, 400)}`);
  return bps / 1e6;
}

async function assertRate(what: string, from: string, reverse: boolean, limitMbit: number, v6 = false) {
  const got = await iperf(from, reverse, v6);
  figures.push(`${what}: ${got.toFixed(1)} Mbit/s (limit ${limitMbit}, ${((got / limitMbit) * 100).toFixed(1)} %)`);
  assert.ok(
    Math.abs(got - limitMbit) <= limitMbit * TOLERANCE,
    `${what}: ${got.toFixed(1)} Mbit/s, want ${limitMbit} ± ${TOLERANCE * 100} %`,
  );
  return got;
}

const vethOf = async (ctr: string): Promise<string> => `trv${(await endpointId(host, ctr, NET)).slice(0, 12)}`;
const ifbOf = (veth: string): string => `trf${veth.slice(3)}`;

async function qdiscKinds(dev: string): Promise<string[]> {
  const r = await host.exec(['tc', '-j', 'qdisc', 'show', 'dev', dev]);
  if (r.code !== 0) return [];
  return (JSON.parse(r.stdout) as { kind: string; handle: string }[]).map((q) => `${q.kind} ${q.handle}`);
}
const linkExists = async (name: string): Promise<boolean> =>
  (await host.exec(['ip', 'link', 'show', 'dev', name])).code === 0;

for (const m of MODES)
  describe(modeTitle('bandwidth limits', m), { timeout: 600_000 }, () => {
    before(async () => {
      mode = m;
      once = memoOnce();
      figures.length = 0;
      host = await startHost(m === 'bridge' ? 'bw' : 'bwr');
      await host.startTruss(TRUSS_OPTS);
    });

    after(async () => {
      if (figures.length > 0) printFigures(figures);
      await host?.stop();
    });

    it('refuses a bad rate with a clear message and creates nothing', async () => {
      const r = await host.docker(['network', 'create', '-d', 'truss', '-o', 'truss.bandwidth=100mbps', 'bwbad']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /truss\.bandwidth="100mbps".*megabytes/);
      assert.equal((await host.docker(['network', 'inspect', 'bwbad'])).code, 1);
    });

    it('a container sends at the network egress limit and receives at its ingress limit (±10 %)', async () => {
      await assertRate('cli → srv (network truss.bandwidth=50mbit)', 'cli', false, 50);
      await assertRate('srv → cli (network truss.bandwidth.ingress=30mbit)', 'cli', true, 30);
    });

    it('an endpoint --driver-opt beats the network default, direction by direction', async () => {
      await assertRate('ovr → srv (--driver-opt truss.bandwidth=20mbit)', 'ovr', false, 20);
      await assertRate('srv → ovr (network default ingress kept)', 'ovr', true, 30);
    });

    it('truss status shows the limits in force per container (send/receive)', async () => {
      await setup();
      const r = await host.truss.cli(['status', '--state-dir', host.truss.stateDir]);
      assert.equal(r.code, 0, r.stderr);
      const row = async (ctr: string) => {
        const veth = await vethOf(ctr);
        return r.stdout
          .split('\n')
          .find((l) => l.includes(veth))
          ?.split(/\s+/)
          .at(-1);
      };
      assert.equal(await row('cli'), '50mbit/30mbit', r.stdout);
      assert.equal(await row('ovr'), '20mbit/30mbit', r.stdout);
      assert.equal(await row('srv'), '5gbit/5gbit', r.stdout);
    });

    it('the limits hold over IPv6 too (the qdiscs shape every protocol on the veth)', async () => {
      await assertRate('cli → srv over IPv6 (network truss.bandwidth=50mbit)', 'cli', false, 50, true);
      await assertRate('srv → cli over IPv6 (network truss.bandwidth.ingress=30mbit)', 'cli', true, 30, true);
    });

    it('only limited veths carry truss qdiscs; a hand-deleted ifb is drift and truss reconcile repairs it', async () => {
      await setup();
      const veth = await vethOf('cli');
      assert.deepEqual((await qdiscKinds(veth)).sort(), ['ingress ffff:', 'tbf 7472:']);
      assert.deepEqual(await qdiscKinds(ifbOf(veth)), ['tbf 7472:']);
      await trussQuiet(() => host.trussStatus()); // no pass may repair it before status reads it
      assert.equal((await host.exec(['ip', 'link', 'del', ifbOf(veth)])).code, 0);
      assert.equal((await host.trussStatus()).kernel.inSync, false, 'status must report the missing ifb');
      const r = await host.truss.cli(['reconcile', '--state-dir', host.stateDir]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok((await host.trussStatus()).kernel.inSync, 'in sync after one full pass');
      await assertRate('cli → srv after repair', 'cli', false, 50);
    });

    it('a shaper the kernel refuses shows in status with its error and fails status --check; repaired, exit 0', async () => {
      await setup();
      const veth = await vethOf('ovr');
      const ifb = ifbOf(veth);
      const status = () => host.truss.cli(['status', '--state-dir', host.stateDir]);
      const check = (...more: string[]) => host.truss.cli(['status', '--check', '--state-dir', host.stateDir, ...more]);
      assert.equal((await check()).code, 0, 'healthy before');
      await trussQuiet(() => host.trussStatus()); // no pass may repair it before status reads it
      // an ifb that is not truss's (another alias) under the ifb's name: ensureShaper refuses it (never deletes it)
      assert.equal((await host.exec(['ip', 'link', 'del', ifb])).code, 0);
      assert.equal((await host.exec(['ip', 'link', 'add', ifb, 'type', 'ifb'])).code, 0);
      assert.equal((await host.exec(['ip', 'link', 'set', ifb, 'alias', 'someone-else'])).code, 0);
      try {
        assert.equal((await host.truss.cli(['reconcile', '--state-dir', host.stateDir])).code, 0);
        const text = (await status()).stdout;
        assert.match(text, /^HEALTH: \d+ problem\(s\)/m, text);
        assert.doesNotMatch(text, /^KERNEL: in sync\b/m, text);
        assert.match(text, /^OBJECTS IN ERROR \(1\)$/m, text);
        const row = text.split('\n').find((l) => l.startsWith(`shaper:${veth}`));
        assert.ok(row, `no OBJECTS IN ERROR row for ${veth}:\n${text}`);
        assert.match(
          row,
          /TRUSS_ERR_KERNEL_OBJECT_FOREIGN +\d+ s ago +\d+ s ago +endpoint .*interface trf\w+ already exists/,
        );
        // the full pass of `truss reconcile`, or the engine's retry of the failed object 500 ms later
        // (backoff), which a slow machine runs before this status reads: either shows the failure
        assert.match(text, /^LAST PASS: (full|incremental) .*1 failure\(s\)/m, text);
        // names from this host's dockerd, next to the ids
        assert.ok(
          text.split('\n').some((l) => l.includes(veth) && /\bovr\b/.test(l)),
          text,
        );
        assert.ok(
          text.split('\n').some((l) => /\bbwn\b/.test(l) && l.includes('50mbit/30mbit')),
          text,
        );
        const bad = await check();
        assert.equal(bad.code, 1, bad.stdout);
        assert.match(
          bad.stdout,
          new RegExp(`^unhealthy: .*\n(.*\n)*  - object shaper:${veth} in error for`),
          bad.stdout,
        );
        const badJson = await check('--json');
        assert.equal(badJson.code, 1);
        assert.equal(JSON.parse(badJson.stdout).reconciler.objects[`shaper:${veth}`].state, 'error');
        assert.match(badJson.stderr, /^unhealthy: /);
      } finally {
        await host.exec(['ip', 'link', 'del', ifb]);
      }
      assert.equal((await host.truss.cli(['reconcile', '--state-dir', host.stateDir])).code, 0);
      const good = await check();
      assert.deepEqual([good.code, good.stdout], [0, 'healthy\n'], good.stdout);
      const text = (await status()).stdout;
      assert.match(text, /^HEALTH: ok$/m, text);
      assert.match(text, /^KERNEL: in sync\b/m, text);
      assert.doesNotMatch(text, /OBJECTS IN ERROR/, text);
      assert.deepEqual(await qdiscKinds(ifb), ['tbf 7472:'], "the ifb is truss's again");
    });

    it('kill -9 of truss: limits stay in force, and what was lost meanwhile is rebuilt at start', async () => {
      await setup();
      const veth = await vethOf('cli');
      await host.stopTruss('SIGKILL');
      try {
        assert.equal(host.truss.running(), false, 'the plugin must be dead');
        await assertRate('srv → cli with truss dead', 'cli', true, 30);
        assert.equal((await host.exec(['tc', 'qdisc', 'del', 'dev', veth, 'root'])).code, 0);
      } finally {
        await host.startTruss(TRUSS_OPTS);
      }
      await waitFor(async () => (await host.trussStatus()).kernel.inSync, 30_000, {
        what: 'kernel.inSync after restart',
      });
      assert.ok((await qdiscKinds(veth)).includes('tbf 7472:'), 'the root tbf is back');
      await assertRate('srv → cli after restart', 'cli', true, 30);
    });

    it('a stopped container leaves no qdisc or ifb; removing everything leaves nothing of truss', async () => {
      await setup();
      const veths = await Promise.all(['cli', 'ovr', 'srv'].map(vethOf));
      const gone = (v: string) => async () => !(await linkExists(v)) && !(await linkExists(ifbOf(v)));
      await docker(['stop', '-t', '1', 'cli']);
      await waitFor(gone(veths[0] as string), 10_000, { what: "cli's veth and ifb gone after docker stop" });
      assert.ok(await linkExists(ifbOf(veths[1] as string)), "ovr's ifb stays");
      await docker(['rm', '-f', 'cli', 'ovr', 'srv'], 60_000);
      for (const v of veths) await waitFor(gone(v), 10_000, { what: `${v} and its ifb gone after docker rm` });
      await docker(['network', 'rm', NET]);
      assert.deepEqual(await trussKernelObjects(host.netnsPath), []);
      await assertNoTrussLeftovers(host);
    });
  });
