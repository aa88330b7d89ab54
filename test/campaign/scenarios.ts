/**
 * The fault campaign's scenarios (reliability test plan §5: F1, F2, F9, F11, I1/I6), each against
 * a CampaignHost (a real `truss serve` in a throwaway namespace, real kernel) driven by the
 * dockerd stand-in of rpc.ts. Each returns plain numbers; the CI test (test/campaign.netns.ts)
 * asserts on them with small counts, bench/soak.ts prints them with the plan's counts.
 */
import { percentile } from '../../e2e/harness/figures.ts';
import type { CampaignHost, Status } from './daemon.ts';
import {
  bestEffort,
  EP_STEPS,
  type Ep,
  type EpStep,
  epRollback,
  epStep,
  NET_STEPS,
  type Net,
  type NetStep,
  netRollback,
  netStep,
  newEp,
  newNet,
  PluginClient,
  runSteps,
} from './rpc.ts';

/** Injection points a `docker network create`/`rm` reaches. */
export const NETWORK_POINTS = [
  'create-network:after-intent',
  'kernel:after-ensureBridge',
  'kernel:firewall-between-nft-and-iptables',
  'kernel:after-ensureFirewall',
] as const;
/** Injection points a `docker run --ip X` / `docker rm -f` reaches. */
export const ENDPOINT_POINTS = [
  'request-address:after-store',
  'create-endpoint:after-intent',
  'kernel:before-ensureVeth',
  'kernel:veth-after-create',
  'kernel:after-ensureVeth',
  'kernel:after-ensureGuard',
  'create-endpoint:before-response',
  'join:after-intent',
  'join:before-response',
  'leave:after-intent',
  'delete-endpoint:after-intent',
  'kernel:after-removeVeth',
  'release-address:before-store',
] as const;

const client = (h: CampaignHost): PluginClient => new PluginClient(h.socket);

/**
 * Kernel objects beyond `base`, once a veth deletion still running has had its time: DeleteEndpoint
 * answers before the kernel has unregistered the veth (20-30 ms; veth.ts VethRemovals), so a
 * sample taken at once may see it. Up to 2 s, then whatever is there counts.
 */
async function settledObjects(h: CampaignHost, base: number): Promise<number> {
  const until = performance.now() + 2000;
  for (;;) {
    const n = (await h.kernelObjects()).length - base;
    if (n <= 0 || performance.now() > until) return n;
    await new Promise((r) => setTimeout(r, 20));
  }
}

let lapAt = performance.now();
/** CAMPAIGN_TRACE=1: where the time goes (stderr). */
const lap = (what: string): void => {
  if (!process.env.CAMPAIGN_TRACE) return;
  const now = performance.now();
  process.stderr.write(`campaign: ${what} ${Math.round(now - lapAt)} ms\n`);
  lapAt = now;
};

/**
 * Duplicate IPv4 addresses among the joined endpoints (the ones with an interface in a sandbox).
 * Unjoined endpoints a crash left (M1) may repeat an address: they have no interface in use.
 */
const duplicates = (s: Status): number => {
  const ips = s.endpoints
    .filter((e) => e.sandboxKey !== undefined)
    .map((e) => e.ipv4)
    .filter((a) => a !== undefined);
  return ips.length - new Set(ips).size;
};
/** IPAM addresses held in `poolId` other than the gateway. */
const held = (s: Status, poolId: string): number =>
  s.addresses.filter((a) => a.poolId === poolId && a.kind !== 'gateway').length;

async function withClient<T>(h: CampaignHost, f: (c: PluginClient) => Promise<T>): Promise<T> {
  const c = client(h);
  try {
    return await f(c);
  } finally {
    c.close();
  }
}

export async function createNet(h: CampaignHost, subnet: string): Promise<Net> {
  const n = newNet(subnet);
  await withClient(h, async (c) => {
    for (const s of NET_STEPS.slice(0, 3)) await netStep(c, n, s);
  });
  return n;
}

export async function deleteNet(h: CampaignHost, n: Net): Promise<void> {
  await withClient(h, async (c) => {
    for (const s of NET_STEPS.slice(3)) await netStep(c, n, s);
  });
}

export interface F1Point {
  readonly point: string;
  readonly action: 'crash' | 'error';
  iterations: number;
  /** iterations in which the daemon died at the point (crash) or a request got the injected Err (error) */
  fired: number;
  /** which step failed, how often */
  failedAt: Record<string, number>;
  /** F2: slowest reply of the failing request (ms) */
  maxErrMs: number;
  /** F2: partial objects (veth of the failed endpoint, stored endpoint) seen right after the Err */
  partialObjects: number;
  /** after the rollback and a reconcile: kernel not in sync with the store */
  notInSync: number;
  /** the same --ip / --subnet refused afterwards */
  reuseFailures: number;
  /** endpoints left in the store (unjoined; collected by the endpoint GC once it lands) */
  leakedEndpoints: number;
  /** addresses left in the IPAM that no endpoint of Docker's holds */
  leakedAddresses: number;
  /** networks left in the store that Docker does not know */
  leakedNetworks: number;
  duplicates: number;
  /** truss kernel objects left in the host namespace after the point's last teardown */
  kernelLeftovers: string[];
  errors: string[];
}

const newPoint = (point: string, action: 'crash' | 'error'): F1Point => ({
  point,
  action,
  iterations: 0,
  fired: 0,
  failedAt: {},
  maxErrMs: 0,
  partialObjects: 0,
  notInSync: 0,
  reuseFailures: 0,
  leakedEndpoints: 0,
  leakedAddresses: 0,
  leakedNetworks: 0,
  duplicates: 0,
  kernelLeftovers: [],
  errors: [],
});

/**
 * F1 (action crash) / F2 (action error) at one point × n: per iteration the daemon runs with
 * TRUSS_FAULT=<point>:<action>, the request sequence runs until a step fails, the daemon is
 * restarted clean (crash), dockerd's rollback is sent, a full reconcile runs, and the same
 * `--ip` (or `--subnet`) is used again without faults. `subnet` must be a free /24.
 */
export async function faultPoint(
  h: CampaignHost,
  point: string,
  action: 'crash' | 'error',
  n: number,
  subnet: string,
): Promise<F1Point> {
  const r = newPoint(point, action);
  const isNet = (NETWORK_POINTS as readonly string[]).includes(point);
  const ip = subnet.replace(/0\/24$/, '10');
  await h.start();
  const net = isNet ? undefined : await createNet(h, subnet);
  for (let i = 0; i < n; i++) {
    r.iterations++;
    // a stop to arm the fault, not the fault: SIGTERM lets truss clear the journal entries of the
    // replies it just sent (a kill -9 right after a reply is the journal's one window: reliability.md)
    await h.kill('SIGTERM');
    await h.start(`${point}:${action}`);
    lap('start armed');
    const c = client(h);
    let failed: { step: string; error: string; ms: number } | undefined;
    let netRef: Net | undefined;
    let ep: Ep | undefined;
    if (isNet) {
      netRef = newNet(subnet);
      const nr = netRef;
      failed = await runSteps(NET_STEPS, (s) => netStep(c, nr, s));
    } else {
      ep = newEp(net as Net, ip);
      const e = ep;
      failed = await runSteps(EP_STEPS, (s) => epStep(c, e, s));
    }
    lap(`sequence (${failed?.step})`);
    c.close();
    if (failed) r.failedAt[failed.step] = (r.failedAt[failed.step] ?? 0) + 1;
    if (action === 'crash') {
      if (failed && (await h.exited(5000))) r.fired++;
      else if (failed) r.errors.push(`${failed.step} failed without a crash: ${failed.error}`);
      await h.kill();
      await h.start();
    } else if (failed) {
      if (failed.error.includes('TRUSS_FAULT')) r.fired++;
      else r.errors.push(`${failed.step}: ${failed.error}`);
      r.maxErrMs = Math.max(r.maxErrMs, failed.ms);
      // F2: the handler itself removed what it made (before dockerd's rollback or any GC)
      const s = await h.status();
      if (ep && failed.step === 'CreateEndpoint' && s.endpoints.some((e) => e.id === ep?.id)) r.partialObjects++;
      if (ep && failed.step === 'Join' && s.endpoints.some((e) => e.id === ep?.id && e.sandboxKey !== undefined))
        r.partialObjects++;
      if (ep && failed.step === 'CreateEndpoint') {
        const veth = `trv${ep.id.slice(0, 12)}`;
        if ((await h.kernelObjects()).some((o) => o.includes(veth))) r.partialObjects++;
      }
      await h.kill();
      await h.start();
    }
    lap('restart');
    await withClient(h, async (c2) => {
      if (failed && netRef) {
        const nr = netRef;
        r.errors.push(...(await bestEffort(netRollback(failed.step as NetStep), (s) => netStep(c2, nr, s))));
      } else if (failed && ep) {
        const e = ep;
        r.errors.push(...(await bestEffort(epRollback(failed.step as EpStep), (s) => epStep(c2, e, s))));
      }
      // the same --subnet / --ip again, without faults
      const again = isNet
        ? await (async () => {
            const nr = newNet(subnet);
            return runSteps(NET_STEPS, (s) => netStep(c2, nr, s));
          })()
        : await (async () => {
            const e = newEp(net as Net, ip);
            return runSteps(EP_STEPS, (s) => epStep(c2, e, s));
          })();
      if (again) {
        r.reuseFailures++;
        r.errors.push(`reuse: ${again.step}: ${again.error}`);
      }
    });
    lap('rollback + reuse');
    const k = await h.reconcile();
    lap('reconcile');
    if (!k.inSync) {
      r.notInSync++;
      r.errors.push(`not in sync: ${k.problems.join('; ')}`);
    }
    const s = await h.status();
    r.duplicates = Math.max(r.duplicates, duplicates(s));
    r.leakedEndpoints = s.endpoints.length;
    r.leakedNetworks = s.networks.length - (net ? 1 : 0);
    r.leakedAddresses = net ? held(s, net.poolId) : s.addresses.length;
  }
  if (net) await deleteNet(h, net);
  await h.reconcile();
  r.kernelLeftovers = await h.kernelObjects();
  await h.kill('SIGTERM');
  return r;
}

/** Start the host with a wiped state dir (between points: leaks of one point must not count for the next). */
export async function resetHost(h: CampaignHost): Promise<void> {
  await h.teardown();
  await h.setup();
}

export interface ChurnResult {
  readonly cycles: number;
  readonly failures: string[];
  readonly msPerCycle: number;
  readonly samples: { cycle: number; rssMiB: number; fds: number; kernelObjects: number }[];
  readonly endpointsLeft: number;
  readonly addressesLeft: number;
  readonly kernelLeftovers: string[];
}

/**
 * I1 / I6: `cycles` create→join→leave→delete cycles (RequestAddress … ReleaseAddress) on one
 * network; RSS, fds and truss kernel objects sampled `samples` times; then the network goes and
 * nothing truss-owned may be left.
 */
export async function churn(h: CampaignHost, cycles: number, samples: number, subnet: string): Promise<ChurnResult> {
  await h.start();
  const net = await createNet(h, subnet);
  const failures: string[] = [];
  const out: ChurnResult['samples'] = [];
  const every = Math.max(1, Math.floor(cycles / samples));
  const base = (await h.kernelObjects()).length;
  const c = client(h);
  const t0 = performance.now();
  for (let i = 1; i <= cycles; i++) {
    const ep = newEp(net, subnet.replace(/0\/24$/, String(10 + (i % 200))));
    const f = await runSteps(EP_STEPS, (s) => epStep(c, ep, s));
    if (f) failures.push(`cycle ${i}: ${f.step}: ${f.error}`);
    if (i % every === 0 || i === 1) {
      const r = h.resources();
      out.push({ cycle: i, ...r, kernelObjects: await settledObjects(h, base) });
    }
  }
  const msPerCycle = (performance.now() - t0) / cycles;
  c.close();
  const s = await h.status();
  await deleteNet(h, net);
  await h.reconcile();
  const left = await h.kernelObjects();
  await h.kill('SIGTERM');
  return {
    cycles,
    failures,
    msPerCycle,
    samples: out,
    endpointsLeft: s.endpoints.length,
    addressesLeft: held(s, net.poolId),
    kernelLeftovers: left,
  };
}

export interface ParallelResult {
  readonly rounds: number;
  readonly parallel: number;
  readonly failures: string[];
  readonly duplicates: number;
  readonly attachMs: { p50: number; p95: number; p99: number; max: number };
  readonly endpointsLeft: number;
  readonly notInSync: number;
  readonly kernelLeftovers: string[];
}

/**
 * F9 at the socket level: `rounds` rounds of `parallel` concurrent starts (RequestAddress without
 * --ip, CreateEndpoint + Join timed) then `parallel` concurrent stops, and a mixed half (half
 * start while the other half stops), each "container" on its own connection as dockerd's
 * concurrent requests are.
 */
export async function parallelChurn(
  h: CampaignHost,
  rounds: number,
  parallel: number,
  subnet: string,
): Promise<ParallelResult> {
  await h.start();
  const net = await createNet(h, subnet);
  const failures: string[] = [];
  const attach: number[] = [];
  let dups = 0;
  let notInSync = 0;
  const start = async (): Promise<Ep | undefined> => {
    const c = client(h);
    try {
      const r = await c.call('/IpamDriver.RequestAddress', { PoolID: net.poolId, Address: '', Options: null });
      const ep = newEp(net, String(r.Address).replace(/\/\d+$/, ''));
      const t0 = performance.now();
      await epStep(c, ep, 'CreateEndpoint');
      await epStep(c, ep, 'Join');
      attach.push(performance.now() - t0);
      return ep;
    } catch (e) {
      failures.push(`start: ${(e as Error).message}`);
      return undefined;
    } finally {
      c.close();
    }
  };
  const stop = async (ep: Ep): Promise<void> => {
    const c = client(h);
    try {
      for (const s of ['Leave', 'DeleteEndpoint', 'ReleaseAddress'] as const) await epStep(c, ep, s);
    } catch (e) {
      failures.push(`stop: ${(e as Error).message}`);
    } finally {
      c.close();
    }
  };
  const live = (eps: (Ep | undefined)[]): Ep[] => eps.filter((e) => e !== undefined);
  for (let r = 0; r < rounds; r++) {
    const eps = live(await Promise.all(Array.from({ length: parallel }, start)));
    const s = await h.status();
    dups = Math.max(dups, duplicates(s));
    // mixed: half of them stop while as many new ones start
    const half = Math.floor(eps.length / 2);
    const [, started] = await Promise.all([
      Promise.all(eps.slice(0, half).map(stop)),
      Promise.all(Array.from({ length: half }, start)),
    ]);
    dups = Math.max(dups, duplicates(await h.status()));
    await Promise.all([...eps.slice(half), ...live(started)].map(stop));
    const k = await h.reconcile();
    if (!k.inSync) notInSync++;
  }
  const s = await h.status();
  await deleteNet(h, net);
  await h.reconcile();
  const left = await h.kernelObjects();
  await h.kill('SIGTERM');
  return {
    rounds,
    parallel,
    failures,
    duplicates: dups,
    attachMs: {
      p50: percentile(attach, 50),
      p95: percentile(attach, 95),
      p99: percentile(attach, 99),
      max: Math.max(...attach),
    },
    endpointsLeft: s.endpoints.length,
    notInSync,
    kernelLeftovers: left,
  };
}

export interface RebootResult {
  readonly containers: number;
  /** kernel problems right after the restart's first reconcile (before dockerd's clean-up) */
  readonly problemsAfterBoot: string[];
  readonly bridgeBack: boolean;
  readonly restartFailures: string[];
  readonly notInSyncAtEnd: boolean;
  readonly endpointsLeft: number;
  readonly kernelLeftovers: string[];
}

/**
 * F11: `containers` running endpoints; then a "reboot": the daemon is killed and every truss
 * kernel object goes with the host namespace (deleted and made again), the state dir stays.
 * truss restarts; dockerd's boot clean-up releases the old endpoints (Leave, DeleteEndpoint,
 * ReleaseAddress), then `docker start` asks for the same --ip on new endpoints.
 */
export async function reboot(h: CampaignHost, containers: number, subnet: string): Promise<RebootResult> {
  await h.start();
  const net = await createNet(h, subnet);
  const ips = Array.from({ length: containers }, (_, i) => subnet.replace(/0\/24$/, String(20 + i)));
  const old: Ep[] = [];
  await withClient(h, async (c) => {
    for (const ip of ips) {
      const ep = newEp(net, ip);
      for (const s of EP_STEPS.slice(0, 3)) await epStep(c, ep, s);
      old.push(ep);
    }
  });
  await h.kill();
  await h.rebootNamespace();
  await h.start();
  const boot = await h.reconcile();
  const bridgeBack = (await h.kernelObjects()).some((o) => o.startsWith('link trb'));
  const restartFailures: string[] = [];
  await withClient(h, async (c) => {
    for (const ep of old) {
      restartFailures.push(
        ...(await bestEffort(['Leave', 'DeleteEndpoint', 'ReleaseAddress'] as const, (s) => epStep(c, ep, s))),
      );
    }
    for (const ip of ips) {
      const ep = newEp(net, ip);
      const f = await runSteps(EP_STEPS.slice(0, 3), (s) => epStep(c, ep, s));
      if (f) restartFailures.push(`docker start --ip ${ip}: ${f.step}: ${f.error}`);
      else old.push(ep);
    }
  });
  const end = await h.reconcile();
  await withClient(h, async (c) => {
    for (const ep of old.slice(containers)) {
      restartFailures.push(
        ...(await bestEffort(['Leave', 'DeleteEndpoint', 'ReleaseAddress'] as const, (s) => epStep(c, ep, s))),
      );
    }
  });
  const s = await h.status();
  await deleteNet(h, net);
  await h.reconcile();
  const left = await h.kernelObjects();
  await h.kill('SIGTERM');
  return {
    containers,
    problemsAfterBoot: boot.problems,
    bridgeBack,
    restartFailures,
    notInSyncAtEnd: !end.inSync,
    endpointsLeft: s.endpoints.length,
    kernelLeftovers: left,
  };
}
