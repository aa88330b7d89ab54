/**
 * The fault campaign at the test plan's counts (docs/reliability.md; not part of the test suite):
 * `npm run bench:soak` (root). Parts (all by default; pick with --only f1,f2,f9,f11,i1,b7):
 *   F1  kill -9 at every injection point × --iterations (20), dockerd's rollback, a reconcile;
 *   F2  an injected kernel error at each CreateEndpoint/Join step × --iterations;
 *   F9  --rounds (20) rounds of --parallel (50) concurrent starts/stops on one network (socket level);
 *   F11 a reboot (the host namespace wiped, the store kept) with 10 containers;
 *   I1/I6 --cycles (1,000) create→join→leave→delete cycles: leaked objects, RSS and fds over time;
 *   B7  --fuzz-runs (20,000) generated requests per route.
 * Prints the numbers and writes bench/results/soak.json; docs/reliability.md quotes them.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../e2e/harness/paths.ts';
import { fuzzBed, fuzzRoute, ROUTES } from '../src/protocol/fuzz.ts';
import { CampaignHost } from '../test/campaign/daemon.ts';
import {
  churn,
  ENDPOINT_POINTS,
  type F1Point,
  faultPoint,
  NETWORK_POINTS,
  parallelChurn,
  reboot,
  resetHost,
} from '../test/campaign/scenarios.ts';
import { machineFacts } from './lib.ts';

const { values: flags } = parseArgs({
  options: {
    only: { type: 'string' },
    iterations: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '20' },
    parallel: { type: 'string', default: '50' },
    cycles: { type: 'string', default: '1000' },
    'fuzz-runs': { type: 'string', default: '20000' },
  },
  strict: true,
});
const only = new Set((flags.only ?? 'f1,f2,f9,f11,i1,b7').split(','));
const num = (k: keyof typeof flags): number => {
  const v = Number(flags[k]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`bench/soak: --${k} must be a positive integer`);
  return v;
};
const SUBNET = '198.18.232.0/24';
const ERROR_POINTS = [
  'kernel:before-ensureVeth',
  'kernel:veth-after-create',
  'kernel:after-ensureVeth',
  'kernel:after-ensureGuard',
];

const results: Record<string, unknown> = { machine: await machineFacts(), startedAt: new Date().toISOString() };
const line = (s: string): void => void process.stdout.write(`${s}\n`);
const pointLine = (r: F1Point): string =>
  `${r.point.padEnd(42)} ${r.action.padEnd(5)} ×${r.iterations} fired ${r.fired} failed-at ${JSON.stringify(r.failedAt)} ` +
  `notInSync ${r.notInSync} reuseFail ${r.reuseFailures} leaked ep/addr/net ${r.leakedEndpoints}/${r.leakedAddresses}/${r.leakedNetworks} ` +
  `dups ${r.duplicates} kernel-left ${r.kernelLeftovers.length}${r.action === 'error' ? ` maxErr ${Math.round(r.maxErrMs)} ms partial ${r.partialObjects}` : ''}`;

const h = new CampaignHost('soak');
await h.setup();
try {
  if (only.has('f1') || only.has('f2')) {
    const points: F1Point[] = [];
    const plan = [
      ...(only.has('f1') ? [...NETWORK_POINTS, ...ENDPOINT_POINTS].map((p) => [p, 'crash'] as const) : []),
      ...(only.has('f2') ? ERROR_POINTS.map((p) => [p, 'error'] as const) : []),
    ];
    for (const [p, action] of plan) {
      await resetHost(h);
      const t0 = performance.now();
      const r = await faultPoint(h, p, action, num('iterations'), SUBNET);
      line(`${pointLine(r)} (${Math.round((performance.now() - t0) / 1000)} s)`);
      for (const e of new Set(r.errors)) line(`    ${e.slice(0, 300)}`);
      points.push(r);
    }
    results.faults = points;
  }
  if (only.has('f9')) {
    await resetHost(h);
    const r = await parallelChurn(h, num('rounds'), num('parallel'), SUBNET);
    line(`F9: ${JSON.stringify({ ...r, failures: r.failures.length })}`);
    for (const f of r.failures.slice(0, 10)) line(`    ${f}`);
    results.f9 = r;
  }
  if (only.has('f11')) {
    await resetHost(h);
    const r = await reboot(h, 10, SUBNET);
    line(`F11: ${JSON.stringify(r)}`);
    results.f11 = r;
  }
  if (only.has('i1')) {
    await resetHost(h);
    const cycles = num('cycles');
    const r = await churn(h, cycles, 20, SUBNET);
    line(
      `I1: ${cycles} cycles, ${r.msPerCycle.toFixed(0)} ms/cycle, failures ${r.failures.length}, endpoints left ${r.endpointsLeft}, addresses left ${r.addressesLeft}, kernel left ${r.kernelLeftovers.length}`,
    );
    line(
      `I6: ${r.samples.map((s) => `#${s.cycle} ${s.rssMiB.toFixed(1)} MiB ${s.fds} fds ${s.kernelObjects} obj`).join(' | ')}`,
    );
    results.i1 = r;
  }
} finally {
  await h.teardown();
}
if (only.has('b7')) {
  const runs = num('fuzz-runs');
  const bed = await fuzzBed();
  const crashes: unknown[] = [];
  process.on('unhandledRejection', (e) => crashes.push(e));
  const out = [];
  const t0 = performance.now();
  for (const route of Object.keys(ROUTES)) out.push(await fuzzRoute(bed, route, runs));
  await bed.close();
  const total = out.reduce((n, r) => n + r.runs, 0);
  line(
    `B7: ${total} cases over ${out.length} routes in ${((performance.now() - t0) / 1000).toFixed(0)} s, unhandled ${crashes.length}, all replies JSON, rejected requests changed nothing`,
  );
  results.b7 = { runs, routes: out, unhandled: crashes.length };
}
writeFileSync(join(REPO_ROOT, 'bench', 'results', 'soak.json'), `${JSON.stringify(results, null, 2)}\n`);
