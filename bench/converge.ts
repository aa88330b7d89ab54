/**
 * Convergence benchmark (issue 18, item 5; not part of the test suite): `npm run bench:converge`
 * (root, under the e2e lock: it uses the e2e underlay's names). How long from a container's start
 * on host 1 until every other host of the cluster network routes to it, for 2, 5, 10 and 20
 * hosts? Target: the median at 20 hosts ÷ the median at 2 hosts ≤ 1.5.
 *
 * Hosts are simulated without dockerd (bench/converge-hosts.ts): `truss serve` in its own
 * network namespace on the e2e underlay, all on the underlay's one etcd, driven over its plugin
 * socket as dockerd drives it (bench/scale-rpc.ts: request shapes of test/fixtures/dockerd-28.5.jsonl).
 * All MAX hosts run throughout; a host count n is the membership of the cluster network: host 1
 * and hosts 2..n have it (CreateNetwork with truss.cluster, as `docker network create`), the rest
 * not (DeleteNetwork). The counts go up in the first round and down in the second (2,5,10,20 then
 * 20,10,5,2), RUNS/2 starts per count and round, the membership settled before each count's starts.
 *
 * A start is what dockerd sends for `docker run --ip ADDRESS` up to the container's interface:
 * RequestAddress, CreateEndpoint, Join. ADDRESS is in a /26 block nobody holds yet, so host 1
 * claims that block in etcd and every other member must route it (`BLOCK dev trwg0`): a container
 * in a block a host already routes needs nothing from the others, and would measure nothing. The
 * figure is from before RequestAddress until the route to the block appeared in a member's
 * namespace (`ip -ts monitor route` there, ip's own microsecond timestamp): per start the latest
 * member ("every other host routes to it") and the earliest. Join returned is shown beside it.
 * A/A control: the same count's starts of round 1 ÷ round 2. Beside it, the CPU the other members'
 * truss processes used per start (with the ip/nft/wg they ran; /proc/<pid>/stat, 10 ms ticks): every
 * simulated host shares the machine's 2 cores, so n - 1 hosts reacting to one block at once queue for
 * them, which real hosts (each with its own CPU) do not.
 *
 * WireGuard (wireguard-go here: the kernel has no WireGuard module; one per host, idle but for
 * handshakes) unless --vxlan (truss.encrypt=false). Cluster subnet 198.18.64.0/18; the starts'
 * blocks are taken from its top, the hosts' own (their host addresses) come from its bottom.
 * A full run writes bench/results/converge.json and the "Convergence: 2 to 20 hosts" section of
 * docs/benchmarks.md; `--smoke` (3 hosts: counts 2 and 3, 1 start each per round) only prints
 * (e2e/bench-smoke.e2e.ts). Flags: --smoke, --hosts 2,5,10,20, --runs N (10 per count), --vxlan.
 */
import { readFileSync, rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { median, percentile } from '../e2e/harness/figures.ts';
import { startUnderlay, type Underlay } from '../e2e/harness/underlay.ts';
import { sleep, waitFor } from '../e2e/harness/wait.ts';
import { CONVERGE_DIR, SimHost, wallMs } from './converge-hosts.ts';
import { f1, machineFacts, markdownTable, writeDocSection, writeResultsJson } from './lib.ts';
import { createAndJoin, createNetwork, deleteEndpoint, deleteNetwork, leave, requestAddress } from './scale-rpc.ts';

const { values: flags } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    hosts: { type: 'string' },
    runs: { type: 'string' },
    vxlan: { type: 'boolean', default: false },
  },
  strict: true,
});
const SMOKE = flags.smoke === true;
const COUNTS = (flags.hosts ?? (SMOKE ? '2,3' : '2,5,10,20'))
  .split(',')
  .map(Number)
  .sort((a, b) => a - b);
const RUNS = Number(flags.runs ?? (SMOKE ? 2 : 10));
if (COUNTS.some((n) => !Number.isInteger(n) || n < 2 || n > 60) || COUNTS.length === 0) {
  throw new Error(`bench/converge: --hosts wants counts from 2 to 60, got ${flags.hosts}`);
}
if (!Number.isInteger(RUNS) || RUNS < 2 || RUNS % 2 !== 0)
  throw new Error('bench/converge: --runs must be even (two rounds)');
const MAX = Math.max(...COUNTS);
const TARGET_GROWTH = 1.5;
const CLUSTER = 'cv';
const SUBNET = '198.18.64.0/18';
const MODE = flags.vxlan ? 'VXLAN (truss.encrypt=false)' : 'WireGuard (wireguard-go)';
const OPTIONS: Record<string, string> = {
  'truss.cluster': CLUSTER,
  ...(flags.vxlan ? { 'truss.encrypt': 'false' } : {}),
};
/** how long every member gets to route a new block before the start counts as never converged */
const LIMIT_MS = 30_000;

/** The 1-, 5- and 15-minute load averages: the machine is shared, and the figures depend on it. */
const loadAverage = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** The k-th start's block, from the top of SUBNET down (198.18.127.192/26, 198.18.127.128/26, ...). */
function blockOf(k: number): { block: string; address: string } {
  const base = (127 << 8) + 192 - k * 64; // offset in 198.18.0.0/16
  if (base < 96 << 8) throw new Error('bench/converge: out of fresh blocks (use fewer starts)');
  const [hi, lo] = [base >> 8, base & 255];
  return { block: `198.18.${hi}.${lo}/26`, address: `198.18.${hi}.${lo + 10}` };
}

interface Sample {
  readonly hosts: number;
  readonly round: number;
  /** before RequestAddress → Join returned */
  readonly joinMs: number;
  /** before RequestAddress → the route on the last / first other member (undefined: not within LIMIT_MS) */
  readonly allMs?: number;
  readonly firstMs?: number;
  readonly byHost: Record<string, number | null>;
  /** CPU the other members' truss used from the start until the last of them routed it (sum, ms) */
  readonly othersCpuMs: number;
}

/** Membership: hosts 1..n have the cluster network, the others not; then wait until every member routes every other's blocks. */
async function setMembers(hosts: readonly SimHost[], n: number): Promise<void> {
  await Promise.all(
    hosts.map(async (h, i) => {
      if (i < n && !h.net) h.net = await createNetwork(h.client, SUBNET, OPTIONS);
      else if (i >= n && h.net) {
        await deleteNetwork(h.client, h.net);
        h.net = undefined;
      }
    }),
  );
  const members = hosts.slice(0, n);
  // each member holds at least one block (its host address): n - 1 peer routes at least on each
  await waitFor(
    async () => {
      const counts = await Promise.all(members.map(async (h) => (await h.clusterRoutes()).length));
      return counts.every((c) => c >= n - 1);
    },
    120_000,
    { what: `${n} members routing each other`, intervalMs: 250 },
  );
  await sleep(1000); // the last handshakes and watch events
}

let started = 0;
async function measureStart(hosts: readonly SimHost[], n: number, round: number): Promise<Sample> {
  const a = hosts[0] as SimHost;
  const others = hosts.slice(1, n);
  const { block, address } = blockOf(started++);
  const cpu0 = others.map((o) => o.cpuMs());
  const t0 = wallMs();
  const ep = await requestAddress(a.client, a.net as NonNullable<SimHost['net']>, address);
  await createAndJoin(a.client, ep, `/var/run/docker/netns/${ep.id.slice(0, 12)}`);
  const joinMs = wallMs() - t0;
  const deadline = Date.now() + LIMIT_MS;
  while (others.some((o) => o.seen(block) === undefined) && Date.now() < deadline) await sleep(10);
  const othersCpuMs = others.reduce((sum, o, i) => sum + o.cpuMs() - (cpu0[i] as number), 0);
  const times = others.map((o) => {
    const at = o.seen(block);
    return at === undefined ? undefined : Math.max(0, at - t0);
  });
  await leave(a.client, ep);
  await deleteEndpoint(a.client, ep);
  const ok = times.filter((t): t is number => t !== undefined);
  return {
    hosts: n,
    round,
    joinMs,
    ...(ok.length === times.length ? { allMs: Math.max(...ok) } : {}),
    ...(ok.length > 0 ? { firstMs: Math.min(...ok) } : {}),
    byHost: Object.fromEntries(others.map((o, i) => [o.name, times[i] ?? null])),
    othersCpuMs,
  };
}

function table(samples: readonly Sample[]): { lines: string[]; growth: number; summary: object[] } {
  const ms = (v: number): string => f1(v);
  const at = (n: number) => samples.filter((s) => s.hosts === n);
  const all = (ss: readonly Sample[]): number[] => ss.map((s) => s.allMs ?? Number.POSITIVE_INFINITY);
  const base = median(all(at(COUNTS[0] as number)));
  const rows: string[][] = [
    [
      'hosts',
      'n',
      'start → every other host routes it: p50 / p99 (ms)',
      'first host: p50 (ms)',
      'Join returned: p50 (ms)',
      `p50 ÷ ${COUNTS[0]} hosts`,
      'A/A: round 1 ÷ round 2 (p50)',
      'never',
      'CPU of the other hosts per start, mean: all / each (ms)',
    ],
  ];
  const summary: object[] = [];
  for (const n of COUNTS) {
    const ss = at(n);
    const v = all(ss);
    const aa = median(all(ss.filter((s) => s.round === 0))) / median(all(ss.filter((s) => s.round === 1)));
    const never = ss.filter((s) => s.allMs === undefined).length;
    const cpu = ss.reduce((sum, s) => sum + s.othersCpuMs, 0) / Math.max(1, ss.length);
    const row = {
      hosts: n,
      n: ss.length,
      p50: median(v),
      p99: percentile(v, 99),
      firstP50: median(ss.map((s) => s.firstMs ?? Number.POSITIVE_INFINITY)),
      joinP50: median(ss.map((s) => s.joinMs)),
      growth: median(v) / base,
      aa,
      never,
      othersCpuMs: cpu,
      perHostCpuMs: cpu / (n - 1),
    };
    summary.push(row);
    rows.push([
      String(n),
      String(ss.length),
      `${ms(row.p50)} / ${ms(row.p99)}`,
      ms(row.firstP50),
      ms(row.joinP50),
      row.growth.toFixed(3),
      aa.toFixed(3),
      String(never),
      `${f1(row.othersCpuMs)} / ${f1(row.perHostCpuMs)}`,
    ]);
  }
  const growth = median(all(at(MAX))) / base;
  const verdict = [
    ['measure', 'value', 'target', 'verdict'],
    [
      `convergence growth, ${MAX} hosts ÷ ${COUNTS[0]} hosts (p50)`,
      growth.toFixed(3),
      `≤ ${TARGET_GROWTH}`,
      growth <= TARGET_GROWTH ? 'met' : 'MISSED',
    ],
  ];
  return { lines: [...markdownTable(rows), '', ...markdownTable(verdict)], growth, summary };
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const loadBefore = loadAverage();
  rmSync(CONVERGE_DIR, { recursive: true, force: true });
  let underlay: Underlay | undefined;
  const hosts = Array.from({ length: MAX }, (_, i) => new SimHost(i + 1));
  const up: SimHost[] = [];
  const samples: Sample[] = [];
  try {
    underlay = await startUnderlay();
    process.stderr.write(`bench/converge: ${MAX} hosts, counts ${COUNTS.join(',')}, ${RUNS} starts each, ${MODE}\n`);
    // a few at a time: 20 Node start-ups at once on 2 cores only take longer
    for (let i = 0; i < hosts.length; i += 4) {
      const batch = hosts.slice(i, i + 4);
      up.push(...batch);
      await Promise.all(batch.map((h) => h.start(underlay as Underlay)));
    }
    process.stderr.write(`  ${MAX} hosts up (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
    for (let round = 0; round < 2; round++) {
      for (const n of round === 0 ? COUNTS : [...COUNTS].reverse()) {
        await setMembers(hosts, n);
        for (let r = 0; r < RUNS / 2; r++) {
          const s = await measureStart(hosts, n, round);
          samples.push(s);
          process.stderr.write(
            `  round ${round + 1}, ${n} hosts: join ${f1(s.joinMs)} ms, first ${f1(s.firstMs ?? Number.NaN)} ms, all ${f1(s.allMs ?? Number.NaN)} ms\n`,
          );
          await sleep(200);
        }
      }
    }
    await setMembers(hosts, 0);
    const { lines, growth, summary } = table(samples);
    const loadAfter = loadAverage();
    process.stdout.write(
      [
        '',
        `CONVERGENCE BENCHMARK${SMOKE ? ' (smoke: figures mean nothing)' : ''}: ${MAX} hosts, ${MODE}, load average before ${loadBefore}, after ${loadAfter}`,
        ...lines,
        `(${((performance.now() - t0) / 1000).toFixed(0)} s)`,
        '',
      ].join('\n'),
    );
    if (!SMOKE) {
      const facts = await machineFacts();
      writeDocSection(
        [
          '## Convergence: 2 to 20 hosts',
          '',
          `\`npm run bench:converge\` (bench/converge.ts), ${new Date().toISOString().slice(0, 10)}, commit ${facts.commit};`,
          `kernel ${facts.kernel}; CPU ${facts.cpu}; Node ${facts.node}; ${MODE}; load average before ${loadBefore}, after ${loadAfter}.`,
          `${MAX} simulated hosts (\`truss serve\` each in its own network namespace on one underlay bridge, one etcd, no dockerd:`,
          'the benchmark sends the plugin requests dockerd would) run throughout; a host count is how many of them have the',
          'cluster network. A start on host 1 is RequestAddress (with `--ip` in a block nobody holds yet, so every other',
          'host must learn and route a new block) + CreateEndpoint + Join; it has converged when the route to that block',
          `is in every other member's namespace (\`ip -ts monitor route\` there). ${RUNS} starts per count, in two rounds`,
          `(counts up, then down); A/A = the count's round 1 ÷ round 2.`,
          '',
          ...lines,
          '',
        ].join('\n'),
      );
      await writeResultsJson('converge', {
        date: new Date().toISOString(),
        environment: { ...facts, mode: MODE, loadBefore, loadAfter },
        parameters: { counts: COUNTS, runs: RUNS, subnet: SUBNET },
        target: `growth ${MAX}÷${COUNTS[0]} <= ${TARGET_GROWTH}`,
        summary: { growth, perCount: summary },
        samples,
      });
      process.stdout.write('wrote docs/benchmarks.md (Convergence: 2 to 20 hosts) and bench/results/converge.json\n');
    }
    const never = samples.filter((s) => s.allMs === undefined).length;
    if (never > 0) throw new Error(`${never} start(s) never reached every member within ${LIMIT_MS / 1000} s`);
  } finally {
    const problems: string[] = [];
    for (const h of up.reverse()) await h.stop().catch((err: Error) => problems.push(`${h.name}: ${err.message}`));
    await underlay?.stop().catch((err: Error) => problems.push(err.message));
    rmSync(CONVERGE_DIR, { recursive: true, force: true });
    if (problems.length > 0) process.stderr.write(`bench/converge teardown: ${problems.join('; ')}\n`);
  }
}

await main();
