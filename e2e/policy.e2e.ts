/**
 * Port policy end to end: one simulated host ("pol", its own dockerd, truss with
 * DOCKER_PLUGIN_DEBUG=true and no periodic resync), real containers, real traffic.
 * "Blocked" is proven at the receiver: tcpdump in the server's network namespace sees no SYN
 * (capture.ts) and the sink recorded nothing; "cut" is a long-lived flow whose bytes stop
 * arriving (flows.ts); timings use connects from inside the container's namespace
 * (netns-tcp.ts), not docker exec. Tests run in order and share memoised fixtures; each
 * leaves the policies as it found them. The last test removes everything and checks that
 * neither `inet truss_policy` nor `inet truss` is left.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { captureSyns, type SynCounts } from './harness/capture.ts';
import { containerIp, containerPid, endpointId, removeContainers, runContainer } from './harness/containers.ts';
import { median, printFigures } from './harness/figures.ts';
import { type Flow, gainedBetween, lastGrowth, startFlow, watchFlows } from './harness/flows.ts';
import { type Host, startHost } from './harness/host.ts';
import { assertNoTrussLeftovers, nftTableExists, trussKernelObjects } from './harness/leftovers.ts';
import { MODES, type Mode, modeOpts, modeTitle } from './harness/modes.ts';
import { msUntilConnects, type NetnsRef, nsPing, nsTcpConnect } from './harness/netns-tcp.ts';
import { memoOnce } from './harness/once.ts';
import { serverSaw, tcpConnect } from './harness/traffic.ts';
import { trussQuiet } from './harness/truss.ts';
import { sleep, waitFor } from './harness/wait.ts';

const DEFAULT_POOLS = '198.18.128.0/17:24';
const TRUSS_OPTS = { debug: true, defaultPools: DEFAULT_POOLS, extraArgs: ['--resync-seconds', '3600'] } as const;
/** The bound for a policy change to reach running containers (and to cut a flow). */
const APPLY_MS = 1000;
/** Servers listen on both ports with the image's tsink. */
const SRV_CMD = ['sh', '-c', 'nc -ll -p 80 -e /bin/tsink & nc -ll -p 8080 -e /bin/tsink & wait'];
const POLICY_TABLE = 'truss_policy';

let host: Host;
const figures: string[] = [];
const setTimes: number[] = [];

interface PolicyEndpoint {
  readonly endpointId: string;
  readonly addresses: readonly string[];
  readonly ingress: string | null;
  readonly override: boolean;
  readonly denied: { readonly packets: number; readonly bytes: number };
}
interface PolicyView {
  readonly networkId: string;
  readonly ingress: string | null;
  readonly source: 'created' | 'runtime' | 'open';
  readonly endpoints: readonly PolicyEndpoint[];
}

const trussNet = (args: readonly string[]) =>
  host.docker(['network', 'create', '-d', 'truss', '--ipam-driver', 'truss', ...modeOpts(mode), ...args]);

let once = memoOnce();
let mode: Mode = 'bridge';

async function createNetwork(name: string, args: readonly string[]): Promise<void> {
  const r = await trussNet([...args, name]);
  assert.equal(r.code, 0, `docker network create ${name}: ${r.stderr}`);
}

/** po: an open truss network (no policy) with server op. */
const po = () =>
  once('po', async () => {
    await createNetwork('po', ['--subnet', '198.18.21.0/24']);
    await runContainer(host, { name: 'op', network: 'po', cmd: SRV_CMD });
  });
/** pa: created with truss.ingress=tcp/80; server srv (80 and 8080) and client cli. */
const pa = () =>
  once('pa', async () => {
    await createNetwork('pa', ['--subnet', '198.18.20.0/24', '-o', 'truss.ingress=tcp/80']);
    await runContainer(host, { name: 'srv', network: 'pa', cmd: SRV_CMD });
    await runContainer(host, { name: 'cli', network: 'pa' });
  });
/** ovr: a server on Docker's default bridge, connected to pa with its own truss.ingress=tcp/8080. */
const ovr = () =>
  once('ovr', async () => {
    await pa();
    await runContainer(host, { name: 'ovr', cmd: SRV_CMD });
    const r = await host.docker(['network', 'connect', '--driver-opt', 'truss.ingress=tcp/8080', 'pa', 'ovr']);
    assert.equal(r.code, 0, `docker network connect --driver-opt truss.ingress=tcp/8080 pa ovr: ${r.stderr}`);
  });

const ipOf = (ctr: string, net: string) => containerIp(host, ctr, net);
const nsOf = async (ctr: string): Promise<NetnsRef> => ({ pid: await containerPid(host, ctr) });
const hostNs = (): NetnsRef => ({ path: host.netnsPath });

async function policy(args: readonly string[]) {
  return host.truss.cli(['policy', ...args, '--state-dir', host.stateDir]);
}

/** `truss policy set NET --ingress SPEC`; returns the command's round trip in ms. */
async function policySet(net: string, spec: string): Promise<number> {
  const t0 = performance.now();
  const r = await policy(['set', net, '--ingress', spec]);
  const ms = performance.now() - t0;
  assert.equal(r.code, 0, `truss policy set ${net} --ingress ${spec} (exit ${r.code}): ${r.stderr}${r.stdout}`);
  setTimes.push(ms);
  return ms;
}

async function policyClear(net: string): Promise<void> {
  const r = await policy(['clear', net]);
  assert.equal(r.code, 0, `truss policy clear ${net} (exit ${r.code}): ${r.stderr}${r.stdout}`);
}

async function policyShow(net: string): Promise<PolicyView> {
  const r = await policy(['show', net, '--json']);
  assert.equal(r.code, 0, `truss policy show ${net} --json (exit ${r.code}): ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as PolicyView;
}

async function endpointView(net: string, ctr: string): Promise<PolicyEndpoint> {
  const eid = await endpointId(host, ctr, net);
  const view = await policyShow(net);
  const ep = view.endpoints.find((e) => e.endpointId === eid);
  assert.ok(ep, `truss policy show ${net} lists no endpoint ${eid.slice(0, 12)} (${ctr}): ${JSON.stringify(view)}`);
  return ep;
}

/** Runs fn while counting SYNs delivered into ctr's namespace. */
async function withSynCapture<T>(ctr: string, ports: readonly number[], fn: () => Promise<T>): Promise<[T, SynCounts]> {
  const cap = await captureSyns(await containerPid(host, ctr), ports);
  let out: T;
  let counts: SynCounts;
  try {
    out = await fn();
    await sleep(100); // let the last retransmit (if any) reach the capture
  } finally {
    counts = await cap.stop();
  }
  assert.equal(counts.dropped, 0, 'tcpdump dropped packets: the SYN count proves nothing');
  return [out, counts];
}

const syns = (c: SynCounts, port: number): number => c.byPort.get(port) ?? 0;

/** The server-side proof: no SYN to `port` arrived, while the positive control did. */
function assertNoSyn(c: SynCounts, port: number, control: number, what: string): void {
  assert.ok(syns(c, control) >= 1, `capture saw no SYN to :${control} (control): ${c.lines.join('\n')}`);
  assert.equal(syns(c, port), 0, `${what}: SYN to :${port} delivered to the server:\n${c.lines.join('\n')}`);
}

for (const m of MODES)
  describe(modeTitle('truss port policy against a real dockerd', m), { timeout: 10 * 60_000 }, () => {
    before(async () => {
      mode = m;
      once = memoOnce();
      figures.length = 0;
      setTimes.length = 0;
      host = await startHost(m === 'bridge' ? 'pol' : 'polr');
      await host.startTruss(TRUSS_OPTS);
    });

    after(async () => {
      if (setTimes.length > 0) {
        figures.push(
          `truss policy set round trip (CLI incl. Docker name lookup, n=${setTimes.length}): median ${median(setTimes).toFixed(0)} ms, max ${Math.max(...setTimes).toFixed(0)} ms`,
        );
      }
      if (figures.length > 0) printFigures(figures);
      await host?.stop();
    });

    it('1. an open network has no policy table; policy set/clear by name adds and removes inet truss_policy', async () => {
      await po();
      const ip = await ipOf('op', 'po');
      const view = await policyShow('po');
      assert.equal(view.source, 'open', `a network created without truss.ingress is open: ${JSON.stringify(view)}`);
      assert.equal(view.ingress, null);
      assert.equal(
        await nftTableExists(POLICY_TABLE, host.netnsPath),
        false,
        'no policy in force: no inet truss_policy',
      );
      assert.ok((await nsTcpConnect(hostNs(), ip, 8080)).ok, 'open network: host -> op:8080 connects');
      try {
        await policySet('po', 'tcp/80');
        assert.ok(await nftTableExists(POLICY_TABLE, host.netnsPath), 'a policy in force: inet truss_policy exists');
        const shown = await policyShow('po');
        assert.equal(shown.source, 'runtime', JSON.stringify(shown));
        assert.equal(shown.ingress, 'tcp/80');
        const [r8080, r80] = await Promise.all([nsTcpConnect(hostNs(), ip, 8080, 2), nsTcpConnect(hostNs(), ip, 80)]);
        assert.equal(r8080.ok, false, `host -> op:8080 must be blocked under tcp/80: ${r8080.output}`);
        assert.ok(r80.ok, `host -> op:80 must connect under tcp/80: ${r80.output}`);
      } finally {
        await policyClear('po');
      }
      const cleared = await policyShow('po');
      assert.equal(cleared.ingress, null, `clear makes the network open again: ${JSON.stringify(cleared)}`);
      await waitFor(async () => !(await nftTableExists(POLICY_TABLE, host.netnsPath)), APPLY_MS, {
        what: 'inet truss_policy gone once no policy is in force',
      });
      assert.ok((await nsTcpConnect(hostNs(), ip, 8080)).ok, 'cleared: host -> op:8080 connects again');
    });

    it('2. -o truss.ingress=tcp/80: 80 connects, 8080 does not, and no SYN to 8080 reaches the server', async () => {
      await pa();
      const ip = await ipOf('srv', 'pa');
      const view = await policyShow('pa');
      assert.equal(view.source, 'created', JSON.stringify(view));
      assert.equal(view.ingress, 'tcp/80');
      for (const ctr of ['srv', 'cli']) {
        const ep = await endpointView('pa', ctr);
        assert.equal(ep.ingress, 'tcp/80', `${ctr} inherits the network's policy`);
        assert.equal(ep.override, false);
      }
      const [[ok80, no8080], counts] = await withSynCapture('srv', [80, 8080], async () => {
        const a = await tcpConnect(host, 'cli', ip, 80, 3);
        const b = await tcpConnect(host, 'cli', ip, 8080, 2);
        return [a, b] as const;
      });
      assert.ok(ok80.ok, `cli -> srv:80 must connect: ${ok80.output}`);
      assert.ok(await serverSaw(host, 'srv', ok80.token), 'srv recorded the :80 token');
      assert.equal(no8080.ok, false, `cli -> srv:8080 must not connect: ${no8080.output}`);
      assert.equal(await serverSaw(host, 'srv', no8080.token), false, 'srv must not receive the :8080 token');
      assertNoSyn(counts, 8080, 80, 'cli -> srv:8080 under tcp/80');
    });

    it('2b. truss doctor: its verdicts match what nc does (allowed, the port policy, different networks)', async () => {
      await Promise.all([pa(), po()]);
      const ip = await ipOf('srv', 'pa');
      const doctor = async (src: string, dst: string, port: number) => {
        const args = ['doctor', src, dst, `${port}/tcp`, '--state-dir', host.stateDir];
        const [text, json, nc] = await Promise.all([
          host.truss.cli(args),
          host.truss.cli([...args, '--json']),
          tcpConnect(host, src, ip, port, 2),
        ]);
        console.log(
          `$ truss ${args.slice(0, 4).join(' ')}  (exit ${text.code}; nc ${nc.ok ? 'connects' : 'fails'})\n${text.stdout}`,
        );
        const walk = JSON.parse(json.stdout) as { verdict: string; summary: string };
        assert.equal(json.code, text.code, `${src} -> ${dst}:${port}: --json exits as the text does: ${json.stderr}`);
        return { code: text.code, out: text.stdout + text.stderr, walk, nc };
      };
      const allowed = await doctor('cli', 'srv', 80);
      assert.ok(allowed.nc.ok, `cli -> srv:80 connects: ${allowed.nc.output}`);
      assert.equal(allowed.code, 0, allowed.out);
      assert.equal(allowed.walk.verdict, 'allowed', allowed.out);
      assert.match(allowed.out, /OK +policy +rule tcp\/80 of network pa's truss.ingress option/);

      const policy = await doctor('cli', 'srv', 8080);
      assert.equal(policy.nc.ok, false, `cli -> srv:8080 must not connect: ${policy.nc.output}`);
      assert.equal(policy.code, 1, policy.out);
      assert.equal(policy.walk.verdict, 'blocked', policy.out);
      assert.match(
        policy.walk.summary,
        /^srv's port policy, network pa's truss.ingress option .*: tcp\/80, admits no tcp\/8080 from /,
      );
      assert.match(policy.walk.summary, /truss policy set pa --ingress tcp\/80,tcp\/8080$/);

      const apart = await doctor('op', 'srv', 80);
      assert.equal(apart.nc.ok, false, `op (po) -> srv (pa):80 must not connect: ${apart.nc.output}`);
      assert.equal(apart.code, 1, apart.out);
      assert.equal(apart.walk.verdict, 'blocked', apart.out);
      assert.match(apart.walk.summary, /^op is on network po and srv on network pa: they share no network/);
      assert.match(apart.walk.summary, /docker network connect pa op$/);
    });

    it('3. the host is subject to the policy, and ping passes only with icmp listed', async () => {
      await pa();
      const ip = await ipOf('srv', 'pa');
      const cli = await nsOf('cli');
      const [[h80, h8080], counts] = await withSynCapture('srv', [80, 8080], async () =>
        Promise.all([nsTcpConnect(hostNs(), ip, 80), nsTcpConnect(hostNs(), ip, 8080, 2)]),
      );
      assert.ok(h80.ok, `host -> srv:80 must connect: ${h80.output}`);
      assert.equal(h8080.ok, false, `host -> srv:8080 must be blocked: ${h8080.output}`);
      assert.equal(await serverSaw(host, 'srv', h8080.token), false, 'srv must not receive the host :8080 token');
      assertNoSyn(counts, 8080, 80, 'host -> srv:8080 under tcp/80');
      const [p1, p2] = await Promise.all([nsPing(cli, ip, 2), nsPing(hostNs(), ip, 2)]);
      assert.equal(p1, false, 'ping cli -> srv must fail without icmp');
      assert.equal(p2, false, 'ping host -> srv must fail without icmp');
      try {
        await policySet('pa', 'tcp/80,icmp');
        const [q1, q2] = await Promise.all([nsPing(cli, ip, 2), nsPing(hostNs(), ip, 2)]);
        assert.ok(q1, 'ping cli -> srv must pass with icmp listed');
        assert.ok(q2, 'ping host -> srv must pass with icmp listed');
      } finally {
        await policySet('pa', 'tcp/80');
      }
      assert.equal(await nsPing(cli, ip, 2), false, 'ping blocked again once icmp is no longer listed');
    });

    it('4. docker network connect --driver-opt truss.ingress=tcp/8080 replaces the policy for that container', async () => {
      await ovr();
      const ip = await ipOf('ovr', 'pa');
      const cli = await nsOf('cli');
      const ep = await endpointView('pa', 'ovr');
      assert.equal(ep.ingress, 'tcp/8080', `ovr's own policy: ${JSON.stringify(ep)}`);
      assert.equal(ep.override, true);
      assert.equal((await endpointView('pa', 'srv')).override, false, 'srv keeps the network policy');
      const [[c8080, c80], counts] = await withSynCapture('ovr', [80, 8080], async () =>
        Promise.all([nsTcpConnect(cli, ip, 8080), nsTcpConnect(cli, ip, 80, 2)]),
      );
      assert.ok(c8080.ok, `cli -> ovr:8080 must connect: ${c8080.output}`);
      assert.equal(c80.ok, false, `cli -> ovr:80 must be blocked: ${c80.output}`);
      assertNoSyn(counts, 80, 8080, 'cli -> ovr:80 under its own tcp/8080');
    });

    it('5. policy set opens 8080 within 1 s; setting tcp/80 again cuts an open 8080 flow, the :80 flow goes on', {
      timeout: 120_000,
    }, async () => {
      await ovr();
      const [ip, ovrIp] = [await ipOf('srv', 'pa'), await ipOf('ovr', 'pa')];
      const cli = await nsOf('cli');
      assert.equal((await nsTcpConnect(cli, ip, 8080, 1)).ok, false, 'precondition: 8080 closed');
      const flows: Flow[] = [];
      try {
        flows.push(await startFlow(host, { from: 'cli', to: 'srv', ip, port: 80 }));
        const setMs = await policySet('pa', 'tcp/80,tcp/8080');
        const openMs = await msUntilConnects(cli, ip, 8080, performance.now(), 3000);
        figures.push(
          `policy set tcp/80,tcp/8080: command ${setMs.toFixed(0)} ms, then 8080 connects after ${openMs} ms`,
        );
        assert.ok(openMs !== undefined && openMs <= APPLY_MS, `8080 must connect within ${APPLY_MS} ms: ${openMs}`);
        // A container with its own truss.ingress is not touched by the network's policy.
        const ovr80 = nsTcpConnect(cli, ovrIp, 80, 2);
        flows.push(await startFlow(host, { from: 'cli', to: 'srv', ip, port: 8080 }));
        const watch = watchFlows(flows);
        await sleep(500);
        const tSet = performance.now();
        await policySet('pa', 'tcp/80');
        const t1 = performance.now();
        await sleep(2500);
        const samples = await watch.stop();
        const last8080 = lastGrowth(samples, 1);
        const cutMs = last8080 === undefined ? undefined : Math.round(last8080 - t1);
        figures.push(
          `policy set tcp/80: command ${(t1 - tSet).toFixed(0)} ms; the 8080 flow last grew ${cutMs} ms after it returned`,
        );
        assert.ok(gainedBetween(samples, 1, tSet - 500, tSet) > 0, 'the 8080 flow carried data before tightening');
        assert.ok(
          cutMs !== undefined && cutMs <= APPLY_MS,
          `the 8080 flow must stop within ${APPLY_MS} ms of tightening; last grew ${cutMs} ms after`,
        );
        assert.ok(gainedBetween(samples, 0, t1 + APPLY_MS, t1 + 2500) > 0, 'the :80 flow must keep carrying data');
        const again = await nsTcpConnect(cli, ip, 8080, 2);
        assert.equal(again.ok, false, `a new 8080 connect must be blocked again: ${again.output}`);
        const o = await ovr80;
        assert.equal(
          o.ok,
          false,
          `ovr (own tcp/8080) must still block :80 under the network's tcp/80,tcp/8080: ${o.output}`,
        );
      } finally {
        await Promise.all(flows.map((f) => f.stop()));
        await policySet('pa', 'tcp/80');
      }
    });

    it('6. counts denied packets per endpoint (policy show --json, status --json)', async () => {
      await pa();
      const ip = await ipOf('srv', 'pa');
      const eid = await endpointId(host, 'srv', 'pa');
      const cli = await nsOf('cli');
      const before = (await endpointView('pa', 'srv')).denied;
      const statusBefore = (await host.trussStatus()).policyCounters?.[eid] ?? { packets: 0, bytes: 0 };
      const attempts = await Promise.all([
        nsTcpConnect(cli, ip, 8080, 1),
        nsTcpConnect(cli, ip, 8080, 1),
        nsTcpConnect(cli, ip, 8080, 1),
        nsTcpConnect(hostNs(), ip, 8080, 1),
      ]);
      for (const a of attempts) assert.equal(a.ok, false, `:8080 must be blocked: ${a.output}`);
      const after = await waitFor(
        async () => {
          const d = (await endpointView('pa', 'srv')).denied;
          return d.packets >= before.packets + attempts.length ? d : false;
        },
        5000,
        { what: `policy show: srv denied packets >= ${before.packets} + ${attempts.length}` },
      );
      assert.ok(after.bytes > before.bytes, `denied bytes must grow: ${before.bytes} -> ${after.bytes}`);
      const st = await host.trussStatus();
      const counter = st.policyCounters?.[eid];
      assert.ok(
        counter,
        `truss status --json policyCounters has no ${eid.slice(0, 12)}: ${JSON.stringify(st.policyCounters)}`,
      );
      assert.ok(
        counter.packets >= statusBefore.packets + attempts.length,
        `status policyCounters packets ${statusBefore.packets} -> ${counter.packets}`,
      );
      figures.push(
        `denied counter for srv after ${attempts.length} blocked connects: +${after.packets - before.packets} packets`,
      );
    });

    it('7. rejects a bad truss.ingress at network create with a clear message and leaves nothing behind', async () => {
      const kernelBefore = await trussKernelObjects(host.netnsPath);
      for (const spec of ['tcp/0', 'tcp/80;reboot']) {
        const r = await trussNet(['-o', `truss.ingress=${spec}`, '--subnet', '198.18.22.0/24', 'pbad']);
        assert.notEqual(r.code, 0, `create with truss.ingress=${spec} must fail`);
        assert.match(r.stderr, /truss\.ingress/, `the error must name truss.ingress: ${r.stderr}`);
        assert.ok(r.stderr.includes(spec), `the error must name the bad token ${spec}: ${r.stderr}`);
        assert.notEqual((await host.docker(['network', 'inspect', 'pbad'])).code, 0, 'pbad must not exist');
      }
      await waitFor(
        async () => {
          const s = JSON.stringify(await host.trussStatus());
          return !s.includes('198.18.22.') && !s.includes('pbad');
        },
        10_000,
        { what: 'truss status without 198.18.22.0/24' },
      );
      assert.deepEqual(await trussKernelObjects(host.netnsPath), kernelBefore, 'no new kernel objects');
    });

    it('7b. rejects a bad truss.ingress on network connect and in truss policy set, changing nothing', async () => {
      await po();
      await pa();
      const endpointsBefore = (await host.trussStatus()).endpoints.length;
      const c = await host.docker(['network', 'connect', '--driver-opt', 'truss.ingress=udp/99999', 'pa', 'op']);
      assert.notEqual(c.code, 0, 'connect with truss.ingress=udp/99999 must fail');
      assert.match(c.stderr, /truss\.ingress/, `the error must name truss.ingress: ${c.stderr}`);
      assert.ok(c.stderr.includes('udp/99999'), `the error must name the bad token: ${c.stderr}`);
      assert.equal(await ipOf('op', 'pa'), '', 'op must not be attached to pa');
      await waitFor(async () => (await host.trussStatus()).endpoints.length === endpointsBefore, 10_000, {
        what: `truss status back to ${endpointsBefore} endpoints`,
      });
      const r = await policy(['set', 'pa', '--ingress', 'tcp/80;reboot']);
      assert.notEqual(r.code, 0, 'truss policy set with tcp/80;reboot must fail');
      assert.ok(`${r.stderr}${r.stdout}`.includes('tcp/80;reboot'), `the error must name the bad token: ${r.stderr}`);
      const view = await policyShow('pa');
      assert.equal(view.ingress, 'tcp/80', `the policy must be unchanged: ${JSON.stringify(view)}`);
    });

    it('8. enforcement survives kill -9 of the plugin (the rules live in the kernel) and its restart', {
      timeout: 120_000,
    }, async () => {
      await pa();
      const ip = await ipOf('srv', 'pa');
      const cli = await nsOf('cli');
      const probe = async (what: string) => {
        const [[r80, r8080], counts] = await withSynCapture('srv', [80, 8080], async () =>
          Promise.all([nsTcpConnect(cli, ip, 80), nsTcpConnect(cli, ip, 8080, 2)]),
        );
        assert.ok(r80.ok, `${what}: cli -> srv:80 must connect: ${r80.output}`);
        assert.equal(r8080.ok, false, `${what}: cli -> srv:8080 must be blocked: ${r8080.output}`);
        assertNoSyn(counts, 8080, 80, what);
      };
      await host.stopTruss('SIGKILL');
      try {
        assert.equal(host.truss.running(), false, 'the plugin must be dead');
        await probe('plugin dead');
      } finally {
        await host.startTruss(TRUSS_OPTS);
      }
      await waitFor(async () => (await host.trussStatus()).kernel.inSync, 30_000, {
        what: 'kernel.inSync after restart',
      });
      // the policy chains in the kernel were right: the start-up pass adopts them, rewriting nothing
      const firstPass = (await host.trussStatus()).reconciler?.firstPass;
      assert.equal(firstPass?.changes, 0, `start-up pass: ${JSON.stringify(firstPass)}`);
      await probe('plugin restarted');
    });

    it('9. a table inet truss_policy deleted behind its back is restored by truss reconcile', async () => {
      await pa();
      const ip = await ipOf('srv', 'pa');
      const cli = await nsOf('cli');
      // why: dockerd activates the restarted plugin (test 8) on its next call, and truss then runs full
      // passes for 10 s (daemon.ts ACTIVATE_RESYNC_MS): one of them would repair the table first
      await trussQuiet(() => host.trussStatus());
      const del = await host.exec(['nft', 'delete', 'table', 'inet', POLICY_TABLE]);
      assert.equal(del.code, 0, `nft delete table inet ${POLICY_TABLE}: ${del.stderr}`);
      const drifted = await host.trussStatus();
      assert.equal(
        drifted.kernel.inSync,
        false,
        `status must report the missing policy table: ${JSON.stringify(drifted.kernel)}`,
      );
      const open = await nsTcpConnect(cli, ip, 8080, 1);
      figures.push(
        `with inet truss_policy deleted, cli -> srv:8080 ${open.ok ? 'connected (no enforcement until repair)' : 'was still blocked'}`,
      );
      const r = await host.truss.cli(['reconcile', '--state-dir', host.stateDir]);
      assert.equal(r.code, 0, `truss reconcile: ${r.stderr}`);
      assert.ok(await nftTableExists(POLICY_TABLE, host.netnsPath), 'inet truss_policy is back');
      assert.ok((await host.trussStatus()).kernel.inSync, 'in sync after one full pass');
      const [[r80, r8080], counts] = await withSynCapture('srv', [80, 8080], async () =>
        Promise.all([nsTcpConnect(cli, ip, 80), nsTcpConnect(cli, ip, 8080, 2)]),
      );
      assert.ok(r80.ok, `cli -> srv:80 must connect after repair: ${r80.output}`);
      assert.equal(r8080.ok, false, `cli -> srv:8080 must be blocked after repair: ${r8080.output}`);
      assertNoSyn(counts, 8080, 80, 'after truss reconcile');
    });

    it('10. docker rm and network rm leave no truss rules (no inet truss_policy, no inet truss)', async () => {
      const ids = (await host.docker(['ps', '-aq'])).stdout.split(/\s+/).filter(Boolean);
      await removeContainers(host, ids);
      assert.equal((await host.docker(['ps', '-aq'])).stdout.trim(), '', 'all containers removed');
      await waitFor(async () => !(await nftTableExists(POLICY_TABLE, host.netnsPath)), 5000, {
        what: 'inet truss_policy gone once no container has a policy',
      });
      const nets = (await host.docker(['network', 'ls', '--filter', 'type=custom', '--format', '{{.Name}}'])).stdout;
      for (const n of nets.split(/\s+/).filter(Boolean)) {
        const r = await host.docker(['network', 'rm', n]);
        assert.equal(r.code, 0, `docker network rm ${n}: ${r.stderr}`);
      }
      await waitFor(() => assertNoTrussLeftovers(host).then(() => true), 15_000, { what: 'no truss leftovers' });
      await assertNoTrussLeftovers(host);
    });
  });
