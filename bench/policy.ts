/**
 * Port-policy benchmark (not part of the test suite): `npm run bench:policy` (root, like the
 * e2e suite; it starts its own simulated host through the e2e harness, with iperf3 in the
 * test image). Two questions, each asked with the conditions alternated, never in blocks:
 *
 *  (a) throughput: iperf3 TCP between two containers of one truss network whose policy is a
 *      N-entry allow-list (N distinct non-adjacent tcp ports, the iperf port 5201 last, set
 *      with `truss policy set`) ÷ the same with no policy at all (table absent). Target ≥ 0.97.
 *  (b) apply time: one container's policy change (a network with one container, tcp/80 <->
 *      tcp/80,tcp/443) while N entries are installed on other containers ÷ while 10 are.
 *      Timed three ways: the admin API round trip (PUT answers once the kernel has it: the
 *      daemon's own time), the reconcile passes the daemon logs for it (debug log durationMs),
 *      and the `truss policy set` CLI round trip (adds Node start-up and the Docker lookup).
 *      Target ≤ 2 on the daemon's figures.
 *
 * Prints a table; a full run also writes bench/results/policy.json and the "Port policy"
 * section of docs/benchmarks.md. `--smoke` (1 repetition, 100 entries, 1 s iperf) only prints,
 * so CI can prove the benchmark still runs (e2e/bench-smoke.e2e.ts).
 * Flags: --smoke, --reps N (default 5), --entries N (10000), --seconds S (iperf, 5), --changes N (5).
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { containerIp, runContainer } from '../e2e/harness/containers.ts';
import { median } from '../e2e/harness/figures.ts';
import { type Host, startHost } from '../e2e/harness/host.ts';
import { adminRequest } from '../src/cli/admin-client.ts';
import { adminSocketPath } from '../src/config.ts';
import {
  alternate,
  f1,
  iperfGbps,
  machineFacts,
  markdownTable,
  range,
  stats,
  writeDocSection,
  writeResultsJson,
} from './lib.ts';

const { values: flags } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    reps: { type: 'string' },
    entries: { type: 'string' },
    seconds: { type: 'string' },
    changes: { type: 'string' },
  },
  strict: true,
});
const SMOKE = flags.smoke === true;
const REPS = Number(flags.reps ?? (SMOKE ? 1 : 5));
const ENTRIES = Number(flags.entries ?? (SMOKE ? 100 : 10_000));
const SECONDS = Number(flags.seconds ?? (SMOKE ? 1 : 5));
const CHANGES = Number(flags.changes ?? (SMOKE ? 2 : 5));
const SMALL = 10;
const IPERF_PORT = 5201;
const LOAD_CONTAINERS = 2;
const TRUSS_OPTS = { debug: true, defaultPools: '198.18.128.0/17:24', extraArgs: ['--resync-seconds', '3600'] };

for (const [k, v] of Object.entries({ REPS, ENTRIES, SECONDS, CHANGES })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`bench/policy: ${k} must be a positive integer, got ${v}`);
}
if (ENTRIES < LOAD_CONTAINERS * SMALL)
  throw new Error(`bench/policy: --entries must be at least ${LOAD_CONTAINERS * SMALL}`);

/** n distinct tcp ports, odd so that no two are adjacent (no range can merge them), `last` at the end. */
function allowList(n: number, last?: number): string {
  const ports: number[] = [];
  for (let p = 1; ports.length < n - (last === undefined ? 0 : 1); p += 2) if (p !== last) ports.push(p);
  if (last !== undefined) ports.push(last);
  return ports.map((p) => `tcp/${p}`).join(',');
}

let host: Host;

async function docker(args: readonly string[]): Promise<string> {
  const r = await host.docker(args, 120_000);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

async function cliSet(net: string, spec: string | null): Promise<number> {
  const t0 = performance.now();
  const args = spec === null ? ['policy', 'clear', net] : ['policy', 'set', net, '--ingress', spec];
  const r = await host.truss.cli([...args, '--state-dir', host.stateDir], 120_000);
  if (r.code !== 0) throw new Error(`truss ${args.slice(0, 3).join(' ')}: ${r.stderr.trim()}${r.stdout.trim()}`);
  return performance.now() - t0;
}

/** What the daemon logged since byte offset `from`: its reconcile passes and its kernel commands (by command). */
function daemonSince(from: number): { passes: number; ms: number; commands: Record<string, number> } {
  let passes = 0;
  let ms = 0;
  const commands: Record<string, number> = {};
  for (const line of host.truss.log().slice(from).split('\n')) {
    if (!line.includes('durationMs')) continue;
    try {
      const o = JSON.parse(line) as { msg?: string; level?: string; durationMs?: number; argv?: string[] };
      if (typeof o.durationMs !== 'number') continue;
      if (o.msg === 'reconcile pass' && o.level === 'debug') {
        passes++;
        ms += o.durationMs;
      } else if (o.msg === 'kernel command' && Array.isArray(o.argv)) {
        const key = o.argv
          .slice(0, 4)
          .map((a) => a.replace(/^.*\//, '').replace(/^(\d+\.){3}\d+$/, 'IP'))
          .join(' ');
        commands[key] = (commands[key] ?? 0) + o.durationMs;
      }
    } catch {
      // not JSON
    }
  }
  return { passes, ms, commands };
}

/** PUT the network's policy on the admin socket; ms until the daemon answered (it answers once programmed). */
async function apiSet(networkId: string, spec: string): Promise<number> {
  const t0 = performance.now();
  await adminRequest(adminSocketPath(host.stateDir), 'PUT', `/v1/networks/${networkId}/policy`, { ingress: spec });
  return performance.now() - t0;
}

async function iperf(serverIp: string): Promise<number> {
  const omit = SECONDS > 2 ? ['-O', '1'] : [];
  const args = ['exec', 'bc', 'iperf3', '-c', serverIp, '-p', String(IPERF_PORT), '-t', String(SECONDS), ...omit, '-J'];
  const r = await host.docker(args, (SECONDS + 60) * 1000);
  if (r.code !== 0) throw new Error(`iperf3 failed: ${r.stderr.trim()} ${r.stdout.slice(0, 500)}`);
  return iperfGbps(r.stdout);
}

async function environment(): Promise<Record<string, string>> {
  const read = (p: string): string => (existsSync(p) ? readFileSync(p, 'utf8').trim() : 'absent');
  const inHost = async (p: string): Promise<string> => {
    const r = await host.exec(['cat', p]);
    return r.code === 0 ? r.stdout.trim() : 'absent';
  };
  const facts = await machineFacts();
  return {
    kernel: facts.kernel,
    cpu: facts.cpu,
    brNetfilter: !existsSync('/proc/sys/net/bridge')
      ? 'absent'
      : existsSync('/sys/module/br_netfilter')
        ? 'active (module loaded)'
        : 'active (built in)',
    bridgeNfCallIptables: `root netns ${read('/proc/sys/net/bridge/bridge-nf-call-iptables')}, host netns ${await inHost('/proc/sys/net/bridge/bridge-nf-call-iptables')}`,
    docker: (await host.docker(['version', '--format', '{{.Server.Version}}'])).stdout.trim(),
    iperf3: (await host.docker(['exec', 'bc', 'iperf3', '--version'])).stdout.split('\n')[0]?.trim() ?? '',
    node: facts.node,
    commit: facts.commit,
  };
}

interface ApplySamples {
  readonly api: number[];
  readonly daemon: number[];
  readonly cli: number[];
  /** per measured change: ms spent in each kind of kernel command during the PUT */
  readonly commands: Record<string, number>[];
}

interface Results {
  readonly throughput: { readonly none: number[]; readonly policy: number[]; readonly setMs: number[] };
  readonly apply: {
    readonly small: ApplySamples;
    readonly large: ApplySamples;
  };
}

async function setup(): Promise<{ serverIp: string; applyId: string }> {
  const net = (name: string, subnet: string) =>
    docker(['network', 'create', '-d', 'truss', '--ipam-driver', 'truss', '--subnet', subnet, name]);
  await net('bt', '198.18.40.0/24');
  await net('bload', '198.18.41.0/24');
  await net('bapply', '198.18.42.0/24');
  await runContainer(host, { name: 'bs', network: 'bt', cmd: ['iperf3', '-s', '-p', String(IPERF_PORT)] });
  await runContainer(host, { name: 'bc', network: 'bt' });
  for (let i = 0; i < LOAD_CONTAINERS; i++) await runContainer(host, { name: `bl${i}`, network: 'bload' });
  await runContainer(host, { name: 'ba', network: 'bapply' });
  const applyId = await docker(['network', 'inspect', '-f', '{{.Id}}', 'bapply']);
  return { serverIp: await containerIp(host, 'bs', 'bt'), applyId };
}

async function measureThroughput(serverIp: string, r: Results): Promise<void> {
  const spec = allowList(ENTRIES, IPERF_PORT);
  await iperf(serverIp); // warm-up, not counted
  for (let i = 0; i < REPS; i++) {
    // alternate which condition goes first, so a drift over time hits both alike
    for (const cond of alternate(i, ['none', 'policy'] as const)) {
      if (cond === 'policy') r.throughput.setMs.push(await cliSet('bt', spec));
      else await cliSet('bt', null);
      const gbps = await iperf(serverIp);
      r.throughput[cond].push(gbps);
      process.stderr.write(`  throughput rep ${i + 1}/${REPS} ${cond}: ${gbps.toFixed(2)} Gbit/s\n`);
    }
  }
  await cliSet('bt', null);
}

async function measureApply(applyId: string, r: Results): Promise<void> {
  const perLoad = { small: SMALL / LOAD_CONTAINERS, large: ENTRIES / LOAD_CONTAINERS };
  const target = ['tcp/80', 'tcp/80,tcp/443'];
  let k = 0;
  for (let i = 0; i < REPS; i++) {
    for (const cond of alternate(i, ['small', 'large'] as const)) {
      await cliSet('bload', allowList(Math.floor(perLoad[cond])));
      for (let c = 0; c < CHANGES; c++) {
        const from = host.truss.log().length;
        r.apply[cond].api.push(await apiSet(applyId, target[k++ % 2] as string));
        const d = daemonSince(from);
        if (d.passes > 0) r.apply[cond].daemon.push(d.ms);
        r.apply[cond].commands.push(d.commands);
        r.apply[cond].cli.push(await cliSet('bapply', target[k++ % 2] as string));
      }
      const last = r.apply[cond].api.slice(-CHANGES);
      process.stderr.write(`  apply rep ${i + 1}/${REPS} ${cond}: api median ${median(last).toFixed(1)} ms\n`);
    }
  }
  await cliSet('bload', null);
}

function table(r: Results): { lines: string[]; verdicts: Record<string, number> } {
  const N = ENTRIES.toLocaleString('en-US');
  const rows: string[][] = [['measure', 'condition', 'n', 'median', 'min–max', 'ratio', 'target']];
  const verdicts: Record<string, number> = {};
  const pair = (
    label: string,
    unit: string,
    key: string,
    a: number[],
    aName: string,
    b: number[],
    bName: string,
    target: string,
  ) => {
    const [sa, sb] = [stats(a), stats(b)];
    const ratio = sb.median / sa.median;
    verdicts[key] = ratio;
    rows.push([`${label} (${unit})`, aName, String(sa.n), f1(sa.median), range(sa), '', '']);
    rows.push(['', bName, String(sb.n), f1(sb.median), range(sb), ratio.toFixed(3), target]);
  };
  pair(
    'TCP throughput, iperf3',
    'Gbit/s',
    'throughput',
    r.throughput.none,
    'no policy',
    r.throughput.policy,
    `${N}-entry allow-list`,
    '≥ 0.97',
  );
  const small = `${SMALL} entries installed`;
  const large = `${N} entries installed`;
  pair(
    'policy apply, admin API round trip',
    'ms',
    'applyApi',
    r.apply.small.api,
    small,
    r.apply.large.api,
    large,
    '≤ 2',
  );
  if (r.apply.small.daemon.length > 0 && r.apply.large.daemon.length > 0) {
    pair(
      'policy apply, daemon reconcile pass',
      'ms',
      'applyDaemon',
      r.apply.small.daemon,
      small,
      r.apply.large.daemon,
      large,
      '≤ 2',
    );
  }
  pair(
    'policy apply, truss policy set CLI',
    'ms',
    'applyCli',
    r.apply.small.cli,
    small,
    r.apply.large.cli,
    large,
    '(info)',
  );
  return { lines: markdownTable(rows), verdicts };
}

/** Kernel commands the daemon ran during one measured apply, median ms per apply, small vs large. */
function breakdown(r: Results): string[] {
  const keys = new Set([...r.apply.small.commands, ...r.apply.large.commands].flatMap((c) => Object.keys(c)));
  const med = (runs: Record<string, number>[], k: string): number => median(runs.map((c) => c[k] ?? 0));
  const rows = [...keys]
    .map((k) => ({ k, small: med(r.apply.small.commands, k), large: med(r.apply.large.commands, k) }))
    .filter((x) => x.small + x.large >= 1)
    .sort((a, b) => b.large - a.large);
  return rows.map((x) => `  ${f1(x.small).padStart(6)} ms -> ${f1(x.large).padStart(6)} ms  ${x.k}`);
}

/** Median of per-repetition policy/none ratios (each pair measured back to back). */
function pairedThroughputRatio(r: Results): number {
  const n = Math.min(r.throughput.none.length, r.throughput.policy.length);
  return median(Array.from({ length: n }, (_, i) => (r.throughput.policy[i] ?? 0) / (r.throughput.none[i] ?? 1)));
}

async function writeDocs(
  lines: string[],
  env: Record<string, string>,
  r: Results,
  verdicts: Record<string, number>,
): Promise<void> {
  const tset = stats(r.throughput.setMs);
  const section = [
    '## Port policy',
    '',
    `\`npm run bench:policy\` (bench/policy.ts), ${new Date().toISOString().slice(0, 10)}, commit ${env.commit}.`,
    `${REPS} repetitions per condition, conditions alternated; median and min–max. Kernel ${env.kernel}; CPU ${env.cpu};`,
    `br_netfilter ${env.brNetfilter} (bridge-nf-call-iptables: ${env.bridgeNfCallIptables}); dockerd ${env.docker}; ${env.iperf3}; Node ${env.node}.`,
    '',
    ...lines,
    '',
    `- Throughput: iperf3 -t ${SECONDS} between two containers of one truss network; the policy is set on the network`,
    `  (so it is the server's allow-list) as ${ENTRIES.toLocaleString('en-US')} distinct odd tcp ports with 5201 last, and cleared`,
    `  between runs (no policy: table inet truss_policy absent). Setting it took ${f1(tset.median)} ms (median, CLI).`,
    `- Apply: a network with one container switches between tcp/80 and tcp/80,tcp/443 while ${LOAD_CONTAINERS} containers of another`,
    `  network hold ${ENTRIES.toLocaleString('en-US')} (or ${SMALL}) entries between them. Admin API = PUT /v1/networks/{id}/policy, which answers once`,
    '  the kernel has the change; daemon reconcile pass = the durationMs of the passes it logged for that request; CLI adds Node',
    '  start-up and the Docker name lookup.',
    `- Throughput ratio of back-to-back pairs (median of per-repetition ratios): ${pairedThroughputRatio(r).toFixed(3)}.`,
    '- Where the daemon spends an apply (kernel commands it ran during the PUT, median ms per apply,',
    `  ${SMALL} -> ${ENTRIES.toLocaleString('en-US')} entries installed):`,
    '',
    '```',
    ...breakdown(r),
    '```',
    '',
    `- Verdicts: throughput ratio ${verdicts.throughput?.toFixed(3)} (target ≥ 0.97), apply ratio (admin API) ${verdicts.applyApi?.toFixed(3)} (target ≤ 2).`,
    '',
  ].join('\n');
  writeDocSection(section);
  const summary = {
    date: new Date().toISOString(),
    environment: env,
    parameters: {
      reps: REPS,
      entries: ENTRIES,
      iperfSeconds: SECONDS,
      changesPerRep: CHANGES,
      loadContainers: LOAD_CONTAINERS,
    },
    ratios: verdicts,
    targets: { throughput: '>= 0.97', applyApi: '<= 2', applyDaemon: '<= 2' },
    samples: r,
  };
  await writeResultsJson('policy', summary);
}

async function main(): Promise<void> {
  const t0 = performance.now();
  host = await startHost(SMOKE ? 'bsmoke' : 'bench');
  try {
    await host.startTruss(TRUSS_OPTS);
    const { serverIp, applyId } = await setup();
    const r: Results = {
      throughput: { none: [], policy: [], setMs: [] },
      apply: {
        small: { api: [], daemon: [], cli: [], commands: [] },
        large: { api: [], daemon: [], cli: [], commands: [] },
      },
    };
    process.stderr.write(
      `bench/policy: ${REPS} reps, ${ENTRIES} entries, iperf ${SECONDS} s${SMOKE ? ' (smoke)' : ''}\n`,
    );
    await measureThroughput(serverIp, r);
    await measureApply(applyId, r);
    const env = await environment();
    const { lines, verdicts } = table(r);
    const out = [
      '',
      `PORT POLICY BENCHMARK${SMOKE ? ' (smoke: figures mean nothing)' : ''}`,
      `kernel ${env.kernel}; CPU ${env.cpu}; br_netfilter ${env.brNetfilter} (bridge-nf-call-iptables: ${env.bridgeNfCallIptables})`,
      ...lines,
      `throughput ratio of back-to-back pairs (median): ${pairedThroughputRatio(r).toFixed(3)}`,
      'daemon kernel commands per apply (median ms, 10 entries installed -> the large condition):',
      ...breakdown(r),
      `(${((performance.now() - t0) / 1000).toFixed(0)} s)`,
      '',
    ];
    process.stdout.write(out.join('\n'));
    if (!SMOKE) {
      await writeDocs(lines, env, r, verdicts);
      process.stdout.write('wrote docs/benchmarks.md (Port policy) and bench/results/policy.json\n');
    }
  } finally {
    await host.stop();
  }
}

await main();
