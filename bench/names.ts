/**
 * Names benchmark (issue 16; not part of the test suite): `npm run bench:names` (root, like the
 * e2e suite). Two simulated hosts A and B on an underlay with one etcd, each with its own
 * dockerd, truss (--store etcd://) and /etc/resolv.conf naming a stand-in upstream DNS server
 * on the underlay (e2e/harness/dns-upstream.ts, answering ext.test). Three questions:
 *
 *  (1) name-rule update latency: servers on A on cluster network `pol`: `pg` under the network's
 *      policy `tcp/7000@name=api-*` (truss policy set), and `pgc1`, `pgc2` with a container policy
 *      `tcp/7000@<the subnet>` (a CIDR rule that already admits every container: the baseline,
 *      twice for an A/A control). Each run starts `api-K` on A (same host) or B (cross-host),
 *      whose own command opens a new TCP connection to each server every 20 ms (a new SYN each
 *      time: a dropped one's retransmit never hides when the path opened) until one is
 *      acknowledged. The sinks record the line (traffic.ts); the script reads their /tmp/seen
 *      through /proc/PID/root every 5 ms, so no docker exec or inspect is on the clock. Timed from
 *      `docker run -d` returning and from just before it. The CIDR servers get their
 *      connections in the same runs: name ÷ CIDR isolates what learning the name costs. Placement
 *      alternated run by run.
 *  (2) the same cross-host with a large catalog: CATALOG name records of a fake host, all named
 *      api-fake-N (so the selector's set holds them all), written into etcd under
 *      /truss/v2/names/<fake node>/pol/<endpoint>. The agent uses a name record without a live node
 *      record of its owner (cluster/view-cache.ts names(): only records kept after a lease lapsed
 *      are tied to their node record), so no node record and no lease are needed; the records are
 *      deleted again after each block. Blocks of runs without and with the catalog alternate.
 *  (3) DNS query latency from a container on a `truss.dns` network on B, sent to Docker's embedded
 *      DNS (127.0.0.11) by a small UDP client (dns-client.ts) run in the container's network
 *      namespace, one query at a time: (a) a container on B (Docker answers), (b) a container on A
 *      (Docker forwards, truss answers), (c) ext.test (Docker forwards, truss relays to the
 *      upstream), (d) ext.test from a container on a cluster network without truss.dns (Docker
 *      forwards straight to the upstream); (a) twice as the A/A control. Conditions rotated round
 *      by round.
 *
 * Prints a table; a full run also writes bench/results/names.json and the "Names" section of
 * docs/benchmarks.md. `--smoke` (2 runs per placement, a catalog of 100, 20 queries) only prints,
 * so CI can prove the benchmark still runs (e2e/bench-smoke.e2e.ts).
 * Flags: --smoke, --runs N (per placement and per catalog condition, 20), --catalog N (1000),
 * --queries N (per DNS condition, 200).
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { clusterFixture } from '../e2e/harness/cluster.ts';
import { waitSynced } from '../e2e/harness/cluster-state.ts';
import { containerIp, containerPid, createClusterNetwork, runContainer } from '../e2e/harness/containers.ts';
import { run } from '../e2e/harness/exec.ts';
import { percentile } from '../e2e/harness/figures.ts';
import type { Host } from '../e2e/harness/host.ts';
import { IMAGE } from '../e2e/harness/image.ts';
import { enterNetns, nsTcpConnect } from '../e2e/harness/netns-tcp.ts';
import { REPO_ROOT } from '../e2e/harness/paths.ts';
import { SINK_CMD, SINK_PORT } from '../e2e/harness/traffic.ts';
import { UNDERLAY_ADDRESS, type Underlay } from '../e2e/harness/underlay.ts';
import { startUpstreamDns } from '../e2e/harness/upstream-dns.ts';
import { sleep, waitFor } from '../e2e/harness/wait.ts';
import { clusterKeys, type NameRecord } from '../src/core/cluster/model.ts';
import { selectorSetName } from '../src/core/naming.ts';
import {
  alternate,
  f1,
  machineFacts,
  markdownTable,
  range,
  rotate,
  type Stats,
  stats,
  writeDocSection,
  writeResultsJson,
} from './lib.ts';

const { values: flags } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    runs: { type: 'string' },
    catalog: { type: 'string' },
    queries: { type: 'string' },
  },
  strict: true,
});
const SMOKE = flags.smoke === true;
const RUNS = Number(flags.runs ?? (SMOKE ? 2 : 20));
const CATALOG = Number(flags.catalog ?? (SMOKE ? 100 : 1000));
const QUERIES = Number(flags.queries ?? (SMOKE ? 20 : 200));
for (const [k, v] of Object.entries({ RUNS, CATALOG, QUERIES })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`bench/names: ${k} must be a positive integer, got ${v}`);
}
if (CATALOG > 1000) throw new Error('bench/names: --catalog at most 1000 (the fake addresses are 198.18.72.0 + 2i)');
/** DNS: queries per client process; the rounds rotate the conditions */
const PER_ROUND = Math.min(QUERIES, 20);
const ROUNDS = Math.ceil(QUERIES / PER_ROUND);
/** (2): runs per block of one condition */
const BLOCK = SMOKE ? 1 : 5;

const POL = 'pol';
const POL_SUBNET = '198.18.64.0/20';
const DNSN = 'dnsn';
const DNS_SUBNET = '198.18.80.0/20';
const PLAIN = 'plain';
const PLAIN_SUBNET = '198.18.96.0/20';
const NAME_RULE = 'tcp/7000@name=api-*';
const CIDR_RULE = `tcp/${SINK_PORT}@${POL_SUBNET}`;
const EXT = { name: 'ext.test', ip: '198.18.200.10' };
const FAKE_NODE = 'fake-bench';
/** how long a probe keeps trying, and how long the script waits for it */
const LIMIT_MS = 12_000;
const PROBE_STEP_MS = 20;
const READ_STEP_MS = 5;

const SERVERS = ['pg', 'pgc1', 'pgc2'] as const;
type Server = (typeof SERVERS)[number];
type Where = 'same' | 'cross';

let a: Host;
let b: Host;
let underlay: Underlay;

async function must(h: Host, args: readonly string[], timeoutMs = 120_000): Promise<string> {
  const r = await h.docker(args, timeoutMs);
  if (r.code !== 0) throw new Error(`${h.name}: docker ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

async function ok(r: Promise<{ code: number; stdout: string; stderr: string }>, what: string): Promise<string> {
  const x = await r;
  if (x.code !== 0) throw new Error(`${what}: ${x.stderr.trim()}${x.stdout.trim()}`);
  return x.stdout.trim();
}

// ---------------------------------------------------------------- (1) and (2): name rules

interface ServerInfo {
  readonly ip: string;
  /** the sink's /tmp/seen, read from the machine */
  readonly seen: string;
}
const servers = new Map<Server, ServerInfo>();

/**
 * The probe: api-K's own command. One loop per server address, each starting a connection every
 * 20 ms (in the background: a dropped SYN waits for its retransmit, the next attempt does not)
 * until one was acknowledged, for at most LIMIT_MS; then the container idles.
 */
const PROBE = `me=$1; shift
for ip in "$@"; do
  (i=0
   while [ ! -e "/tmp/ok.$ip" ] && [ $i -lt ${Math.ceil(LIMIT_MS / PROBE_STEP_MS)} ]; do
     (echo "$me" | nc -w 2 "$ip" ${SINK_PORT} | grep -q ack && touch "/tmp/ok.$ip") &
     usleep ${PROBE_STEP_MS * 1000}; i=$((i+1))
   done) &
done
exec sleep 3600`;

/** Per server: ms from before `docker run` and from its return until the sink recorded the run's line. */
interface RunSample {
  readonly where: Where;
  readonly catalog: number;
  readonly runMs: number;
  /** from docker run returning */
  readonly fromReturn: Partial<Record<Server, number>>;
  /** from just before docker run */
  readonly fromStart: Partial<Record<Server, number>>;
}

let runCount = 0;
async function measureRun(where: Where, catalog: number): Promise<RunSample> {
  const h = where === 'same' ? a : b;
  const name = `api-${++runCount}`;
  const ips = SERVERS.map((s) => servers.get(s)?.ip as string);
  const t0 = performance.now();
  await must(h, ['run', '-d', '--name', name, '--network', POL, IMAGE, 'sh', '-c', PROBE, 'sh', name, ...ips]);
  const t1 = performance.now();
  const fromReturn: Partial<Record<Server, number>> = {};
  const fromStart: Partial<Record<Server, number>> = {};
  while (performance.now() - t1 < LIMIT_MS && Object.keys(fromReturn).length < SERVERS.length) {
    const now = performance.now();
    for (const s of SERVERS) {
      if (fromReturn[s] !== undefined) continue;
      const file = servers.get(s)?.seen as string;
      if (existsSync(file) && readFileSync(file, 'utf8').split('\n').includes(name)) {
        fromReturn[s] = now - t1;
        fromStart[s] = now - t0;
      }
    }
    await sleep(READ_STEP_MS);
  }
  await must(h, ['rm', '-f', name]);
  await sleep(300); // the removal's own passes settle before the next run
  return { where, catalog, runMs: t1 - t0, fromReturn, fromStart };
}

async function setupPolicy(): Promise<void> {
  await runContainer(a, { name: 'pg', network: POL, cmd: SINK_CMD() });
  for (const s of ['pgc1', 'pgc2']) {
    await must(a, [
      'run',
      '-d',
      '--name',
      s,
      '--network',
      `name=${POL},driver-opt=truss.ingress=${CIDR_RULE}`,
      IMAGE,
      ...SINK_CMD(),
    ]);
  }
  await ok(
    a.truss.cli(['policy', 'set', POL, '--ingress', NAME_RULE, '--state-dir', a.stateDir], 60_000),
    'policy set',
  );
  for (const s of SERVERS) {
    const pid = await containerPid(a, s);
    servers.set(s, { ip: await containerIp(a, s, POL), seen: `/proc/${pid}/root/tmp/seen` });
  }
  // the name rule really refuses others (else (1) would measure nothing): a container not named api-*
  await runContainer(a, { name: 'other', network: POL });
  const ns = { pid: await containerPid(a, 'other') };
  const pg = servers.get('pg')?.ip as string;
  const pgc = servers.get('pgc1')?.ip as string;
  await waitFor(async () => (await nsTcpConnect(ns, pgc, SINK_PORT, 1)).ok, 20_000, {
    what: 'other → pgc1 (CIDR rule)',
  });
  const refused = await nsTcpConnect(ns, pg, SINK_PORT, 1);
  if (refused.ok) throw new Error(`the name rule admitted a container named "other": ${refused.output}`);
  await must(a, ['rm', '-f', 'other']);
}

/** The name rule's set on A (IPv4), as nft lists it. */
async function setElements(): Promise<string[]> {
  const set = `${selectorSetName({ by: 'name', glob: 'api-*' })}_4`;
  const r = await a.exec(['nft', '-j', 'list', 'set', 'inet', 'truss_policy', set]);
  if (r.code !== 0) return [];
  const j = JSON.parse(r.stdout) as { nftables: { set?: { elem?: unknown[] } }[] };
  return (j.nftables.find((x) => x.set)?.set?.elem ?? []).map(String);
}

const fakeAddress = (i: number): string => `198.18.${72 + Math.floor((2 * i) / 256)}.${(2 * i) % 256}`;
const hex64 = (): string => randomBytes(32).toString('hex');

/** etcd's JSON gateway from the underlay (etcd-keys.ts reads the same way). */
async function etcdPost(path: string, body: object): Promise<void> {
  const r = await underlay.exec(
    ['curl', '-sf', '--max-time', '10', '-X', 'POST', `${underlay.etcd.url}${path}`, '-d', JSON.stringify(body)],
    { timeoutMs: 20_000 },
  );
  if (r.code !== 0) throw new Error(`etcd ${path}: ${r.stderr.trim()}${r.stdout.slice(0, 300)}`);
}
const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** Writes n name records of the fake node (100 per transaction, under etcd's 128 ops) and waits until A's set holds them. */
async function writeCatalog(n: number): Promise<number> {
  const t0 = performance.now();
  const puts = Array.from({ length: n }, (_, i) => {
    const endpoint = hex64();
    const record: NameRecord = {
      cluster: POL,
      node: FAKE_NODE,
      endpoint,
      network: POL,
      container: hex64(),
      name: `api-fake-${i}`,
      aliases: [],
      labels: { role: 'api', 'com.example.tier': 'backend' },
      addresses: [fakeAddress(i)],
    };
    return { requestPut: { key: b64(clusterKeys.name(POL, endpoint, FAKE_NODE)), value: b64(JSON.stringify(record)) } };
  });
  for (let i = 0; i < puts.length; i += 100) await etcdPost('/v3/kv/txn', { success: puts.slice(i, i + 100) });
  const fakes = new Set(Array.from({ length: n }, (_, i) => fakeAddress(i)));
  await waitFor(async () => (await setElements()).filter((e) => fakes.has(e)).length === n, 60_000, {
    what: `A's name set holding the ${n} fake names`,
    intervalMs: 100,
  });
  return performance.now() - t0;
}

async function deleteCatalog(): Promise<void> {
  const prefix = clusterKeys.ownerPrefix('names', FAKE_NODE);
  const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  await etcdPost('/v3/kv/deleterange', { key: b64(prefix), range_end: b64(end) });
  await waitFor(async () => !(await setElements()).some((e) => e.startsWith('198.18.7')), 60_000, {
    what: "A's name set without the fake names",
    intervalMs: 100,
  });
}

// ---------------------------------------------------------------- (3): DNS

const DNS_CONDS = ['local', 'localAA', 'remote', 'extTruss', 'extPlain'] as const;
type DnsCond = (typeof DNS_CONDS)[number];
interface DnsSample {
  readonly us: number[];
  failed: number;
  answer: string;
}

async function dnsRound(pid: number, name: string, count: number): Promise<DnsSample> {
  const client = join(REPO_ROOT, 'bench', 'dns-client.ts');
  const r = await run(enterNetns({ pid }, [process.execPath, client, '127.0.0.11', name, String(count)]), {
    timeoutMs: 60_000 + count * 2500,
  });
  if (r.code !== 0) throw new Error(`dns-client ${name}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as DnsSample;
}

async function measureDns(): Promise<Record<DnsCond, DnsSample>> {
  await runContainer(b, { name: 'asker', network: DNSN });
  await runContainer(b, { name: 'loc', network: DNSN });
  await runContainer(a, { name: 'rem', network: DNSN });
  await runContainer(b, { name: 'asker-plain', network: PLAIN });
  const q = await containerPid(b, 'asker');
  const qp = await containerPid(b, 'asker-plain');
  const want = { loc: await containerIp(b, 'loc', DNSN), rem: await containerIp(a, 'rem', DNSN) };
  const target: Record<DnsCond, { pid: number; name: string; want: string }> = {
    local: { pid: q, name: 'loc', want: want.loc },
    localAA: { pid: q, name: 'loc', want: want.loc },
    remote: { pid: q, name: 'rem', want: want.rem },
    extTruss: { pid: q, name: EXT.name, want: EXT.ip },
    extPlain: { pid: qp, name: EXT.name, want: EXT.ip },
  };
  for (const c of DNS_CONDS) {
    const t = target[c];
    await waitFor(async () => (await dnsRound(t.pid, t.name, 1)).answer === t.want, 30_000, {
      what: `${t.name} resolving to ${t.want} (${c})`,
      intervalMs: 200,
    });
  }
  const out = Object.fromEntries(
    DNS_CONDS.map((c): [DnsCond, DnsSample] => [c, { us: [], failed: 0, answer: '' }]),
  ) as Record<DnsCond, DnsSample>;
  if (!SMOKE) for (const c of DNS_CONDS) await dnsRound(target[c].pid, target[c].name, PER_ROUND); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    const n = Math.min(PER_ROUND, QUERIES - r * PER_ROUND);
    for (const c of rotate(r, DNS_CONDS)) {
      const s = await dnsRound(target[c].pid, target[c].name, n);
      if (s.answer !== '' && s.answer !== target[c].want)
        throw new Error(`${c}: answered ${s.answer}, not ${target[c].want}`);
      out[c].us.push(...s.us);
      out[c].failed += s.failed;
      out[c].answer = s.answer;
    }
    process.stderr.write(`  dns round ${r + 1}/${ROUNDS}\n`);
  }
  return out;
}

// ---------------------------------------------------------------- report

const p50 = (v: readonly number[]): number => percentile(v, 50);
const p99 = (v: readonly number[]): number => percentile(v, 99);
/** '—' against a baseline of about nothing (a CIDR rule admits before `docker run` even returns) */
const ratio = (x: number, y: number, baseP50 = y): string =>
  !(baseP50 >= 0.5) ? '—' : Number.isFinite(x / y) ? (x / y).toFixed(3) : 'n/a';
const delta = (d: number): string => (Number.isFinite(d) ? `${d >= 0 ? '+' : '−'}${f1(Math.abs(d))}` : 'n/a');
const stat = (s: Stats): string[] => [String(s.n), f1(s.median), f1(s.p99), range(s)];

interface Report {
  readonly lines: string[];
  readonly ratios: Record<string, number>;
}

function report(
  runs: readonly RunSample[],
  catalogRuns: readonly RunSample[],
  dns: Record<DnsCond, DnsSample> | undefined,
  env: Record<string, string>,
): Report {
  const ratios: Record<string, number> = {};
  const pick = (list: readonly RunSample[], s: Server, from: 'fromReturn' | 'fromStart') =>
    list.flatMap((r) => (r[from][s] === undefined ? [] : [r[from][s] as number]));
  const missing = (list: readonly RunSample[], s: Server) => list.filter((r) => r.fromReturn[s] === undefined).length;
  const rows: string[][] = [['measure', 'condition', 'n', 'p50', 'p99', 'min–max', 'ratio p50', 'ratio p99', 'Δ p50']];
  const row = (what: string, cond: string, v: readonly number[], base?: readonly number[]): string[] => [
    what,
    cond,
    ...stat(stats(v)),
    base ? ratio(p50(v), p50(base), p50(base)) : '',
    base ? ratio(p99(v), p99(base), p50(base)) : '',
    base ? delta(p50(v) - p50(base)) : '',
  ];
  for (const where of ['same', 'cross'] as const) {
    const list = runs.filter((r) => r.where === where);
    const label = where === 'same' ? 'same host (api-K on A)' : 'cross-host (api-K on B)';
    for (const from of ['fromReturn', 'fromStart'] as const) {
      const base = pick(list, 'pgc1', from);
      const what = `${label}: ${from === 'fromReturn' ? 'docker run returned' : 'before docker run'} → connect admitted (ms)`;
      const name = pick(list, 'pg', from);
      const miss = (s: Server) => (missing(list, s) > 0 ? ` (${missing(list, s)} never)` : '');
      rows.push(row(what, `name rule ${NAME_RULE}${miss('pg')}`, name, base));
      rows.push(row('', `CIDR rule ${CIDR_RULE} (baseline)${miss('pgc1')}`, base));
      rows.push(row('', `CIDR rule again, same runs (A/A)${miss('pgc2')}`, pick(list, 'pgc2', from), base));
      // run-to-run noise: the name rule's even-numbered runs against its odd-numbered ones
      const odd = pick(
        list.filter((_, i) => i % 2 === 0),
        'pg',
        from,
      );
      const even = pick(
        list.filter((_, i) => i % 2 === 1),
        'pg',
        from,
      );
      rows.push(row('', 'name rule, even runs vs odd runs (A/A across runs)', even, odd));
      const k = `${where}_${from === 'fromReturn' ? 'return' : 'start'}`;
      if (p50(base) >= 0.5) {
        ratios[`${k}_name_vs_cidr_p50`] = p50(name) / p50(base);
        ratios[`${k}_name_vs_cidr_p99`] = p99(name) / p99(base);
      }
      ratios[`${k}_name_minus_cidr_p50_ms`] = p50(name) - p50(base);
      ratios[`${k}_name_p50_ms`] = p50(name);
      ratios[`${k}_name_p99_ms`] = p99(name);
      ratios[`${k}_aa_runs_p50`] = p50(even) / p50(odd);
    }
  }
  if (catalogRuns.length > 0) {
    const without = catalogRuns.filter((r) => r.catalog === 0);
    const withC = catalogRuns.filter((r) => r.catalog > 0);
    const w0 = pick(without, 'pg', 'fromReturn');
    const w1 = pick(withC, 'pg', 'fromReturn');
    const c0 = pick(without, 'pgc1', 'fromStart');
    const c1 = pick(withC, 'pgc1', 'fromStart');
    ratios.catalog_p50 = p50(w1) / p50(w0);
    ratios.catalog_p99 = p99(w1) / p99(w0);
    ratios.catalog_minus_p50_ms = p50(w1) - p50(w0);
    ratios.catalog_cidr_control_p50 = p50(c1) / p50(c0);
    ratios.catalog_cidr_control_minus_p50_ms = p50(c1) - p50(c0);
    const what = 'cross-host name rule, docker run returned → admitted (ms)';
    rows.push(row(what, "catalog: the two hosts' own names", w0));
    rows.push(row('', `catalog + ${CATALOG} names of a fake host (all api-*)`, w1, w0));
    rows.push(row('control: CIDR rule, before docker run → admitted (ms)', 'without the fake names', c0));
    rows.push(row('', `with the ${CATALOG} fake names`, c1, c0));
  }
  if (dns) {
    const us = (c: DnsCond) => dns[c].us;
    const lbl: Record<DnsCond, string> = {
      local: '(a) container on the same host: Docker answers',
      localAA: '(a) again (A/A)',
      remote: '(b) container on the other host: truss answers',
      extTruss: '(c) ext.test on a truss.dns network: truss relays',
      extPlain: '(d) ext.test on a network without truss.dns',
    };
    const base: Record<DnsCond, DnsCond | undefined> = {
      local: undefined,
      localAA: 'local',
      remote: 'local',
      extTruss: 'extPlain',
      extPlain: undefined,
    };
    for (const c of ['local', 'localAA', 'remote', 'extPlain', 'extTruss'] as const) {
      const v = us(c);
      const bc = base[c];
      const fail = dns[c].failed > 0 ? ` (${dns[c].failed} unanswered)` : '';
      rows.push([
        c === 'local' ? 'DNS query via 127.0.0.11, round trip (µs)' : '',
        `${lbl[c]}${fail}`,
        ...stat(stats(v)),
        bc ? ratio(p50(v), p50(us(bc))) : '',
        bc ? ratio(p99(v), p99(us(bc))) : '',
        bc ? delta(p50(v) - p50(us(bc))) : '',
      ]);
    }
    ratios.dns_remote_vs_local_p50 = p50(us('remote')) / p50(us('local'));
    ratios.dns_relay_vs_plain_p50 = p50(us('extTruss')) / p50(us('extPlain'));
    ratios.dns_aa_p50 = p50(us('localAA')) / p50(us('local'));
    ratios.dns_remote_vs_local_p99 = p99(us('remote')) / p99(us('local'));
    ratios.dns_relay_vs_plain_p99 = p99(us('extTruss')) / p99(us('extPlain'));
  }
  const lines = [
    ...markdownTable(rows),
    '',
    `Machine: ${env.cpu}, shared (a VM: other work on the machine shows in the tails); kernel ${env.kernel}; Docker ${env.docker} (vfs); Node ${env.node}; commit ${env.commit}.`,
    `${RUNS} runs per placement (alternated), probe every ${PROBE_STEP_MS} ms, sinks read every ${READ_STEP_MS} ms; catalog part: blocks of ${BLOCK} cross-host runs, without/with alternated, ${RUNS} runs each; DNS: ${QUERIES} queries per condition in ${ROUNDS} rounds of ${PER_ROUND}, order rotated.`,
    "Δ p50: p50 minus the baseline's p50 (ms, or µs for DNS). Ratios against a baseline of about 0 ms are left out (—): the CIDR rule admits the new container before `docker run -d` has even returned, so the name rule's cost from that moment is its Δ, and its ratio is the one from before `docker run`. With 20 runs, p99 is the largest.",
  ];
  return { lines, ratios };
}

// ---------------------------------------------------------------- main

const upstreams: ChildProcess[] = [];

async function startUpstream(): Promise<void> {
  upstreams.push(await startUpstreamDns(UNDERLAY_ADDRESS, `${EXT.name}=${EXT.ip}`));
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const cluster = clusterFixture({
    hosts: SMOKE ? ['ms1', 'ms2'] : ['mb1', 'mb2'],
    host: () => ({ resolvConf: `nameserver ${UNDERLAY_ADDRESS}\n` }),
    truss: {},
  });
  try {
    await cluster.start();
    [a, b] = cluster.hosts as [Host, Host];
    underlay = cluster.underlay;
    await startUpstream();
    for (const h of [a, b]) {
      await ok(h.exec(['ip', 'route', 'replace', 'default', 'via', UNDERLAY_ADDRESS]), `${h.name}: default route`);
      if (!(await waitSynced(h, 'cluster'))) throw new Error(`${h.name}: not synced with the cluster`);
      await ok(createClusterNetwork(h, POL, POL_SUBNET), `${h.name}: ${POL}`);
      await ok(createClusterNetwork(h, DNSN, DNS_SUBNET, ['-o', 'truss.dns=true']), `${h.name}: ${DNSN}`);
      await ok(createClusterNetwork(h, PLAIN, PLAIN_SUBNET), `${h.name}: ${PLAIN}`);
    }
    process.stderr.write(
      `bench/names: ${RUNS} runs per placement, catalog ${CATALOG}, ${QUERIES} DNS queries${SMOKE ? ' (smoke)' : ''}\n`,
    );
    await setupPolicy();
    const log = (s: RunSample, tag: string): void => {
      const f = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(0));
      process.stderr.write(
        `  ${tag} ${s.where}: run ${s.runMs.toFixed(0)} ms; admitted after return: name ${f(s.fromReturn.pg)}, cidr ${f(s.fromReturn.pgc1)}/${f(s.fromReturn.pgc2)} ms\n`,
      );
    };
    if (!SMOKE) log(await measureRun('cross', 0), 'warm-up'); // not counted
    const runs: RunSample[] = [];
    for (let i = 0; i < RUNS; i++) {
      for (const where of alternate(i, ['same', 'cross'] as const)) {
        const s = await measureRun(where, 0);
        runs.push(s);
        log(s, `run ${i + 1}/${RUNS}`);
      }
    }
    const catalogRuns: RunSample[] = [];
    const catalogWriteMs: number[] = [];
    const blocks = Math.ceil(RUNS / BLOCK);
    for (let r = 0; r < blocks; r++) {
      for (const cond of alternate(r, ['without', 'with'] as const)) {
        if (cond === 'with') catalogWriteMs.push(await writeCatalog(CATALOG));
        for (let k = 0; k < Math.min(BLOCK, RUNS - r * BLOCK); k++) {
          const s = await measureRun('cross', cond === 'with' ? CATALOG : 0);
          catalogRuns.push(s);
          log(s, `catalog ${cond} ${r + 1}/${blocks}`);
        }
        if (cond === 'with') await deleteCatalog();
      }
    }
    const dns = await measureDns();
    const facts = await machineFacts();
    const env: Record<string, string> = {
      ...facts,
      docker: await must(a, ['version', '--format', '{{.Server.Version}}']),
      catalogWriteAndProgramMs: catalogWriteMs.map((x) => x.toFixed(0)).join(', '),
    };
    const { lines, ratios } = report(runs, catalogRuns, dns, env);
    const out = [
      '',
      `NAMES BENCHMARK${SMOKE ? ' (smoke: figures mean nothing)' : ''}`,
      ...lines,
      `(${((performance.now() - t0) / 1000).toFixed(0)} s)`,
      '',
    ];
    process.stdout.write(out.join('\n'));
    if (!SMOKE) {
      writeDocs(lines, env, ratios);
      await writeResultsJson('names', {
        date: new Date().toISOString(),
        environment: env,
        parameters: {
          runs: RUNS,
          catalog: CATALOG,
          queries: QUERIES,
          probeStepMs: PROBE_STEP_MS,
          readStepMs: READ_STEP_MS,
          block: BLOCK,
          nameRule: NAME_RULE,
          cidrRule: CIDR_RULE,
        },
        ratios,
        samples: { runs, catalogRuns, dns },
      });
      process.stdout.write('wrote docs/benchmarks.md (Names) and bench/results/names.json\n');
    }
  } finally {
    for (const p of upstreams) p.kill();
    const t1 = performance.now();
    await cluster.stop().catch((err: Error) => process.stderr.write(`${err.message}\n`));
    process.stderr.write(`bench/names: teardown ${((performance.now() - t1) / 1000).toFixed(0)} s\n`);
  }
}

function writeDocs(lines: readonly string[], env: Record<string, string>, r: Record<string, number>): void {
  const x = (k: string): string => (Number.isFinite(r[k]) ? (r[k] as number).toFixed(2) : 'n/a');
  const section = [
    '## Names: policy by name and DNS (`bench/names.ts`)',
    '',
    'Two simulated hosts A and B (own dockerd, truss with `--store etcd://`, an upstream DNS stand-in on the',
    'underlay). **Policy by name**: how long after `docker run -d --name api-K` returns a new container can open',
    `a connection that only \`${NAME_RULE}\` admits (the network's policy on A), against servers whose CIDR rule`,
    'admits the whole subnet already (the time until the container can connect at all: the baseline, twice for',
    "an A/A control), in the same runs. The container's own command opens a new connection to every server every",
    `${PROBE_STEP_MS} ms; the servers record it, and the script reads that from the machine every ${READ_STEP_MS} ms. With a large`,
    `catalog: the same cross-host with ${CATALOG} name records of a fake host in etcd, all named \`api-fake-N\`, so the`,
    "rule's set holds them all and every update rewrites it. **DNS**: one query at a time to Docker's embedded",
    'DNS (127.0.0.11) from inside a container on B (`bench/dns-client.ts` in its network namespace: no process',
    'start per query).',
    '',
    ...lines,
    '',
    `Reading it: the name rule admits a new container ${x('same_return_name_minus_cidr_p50_ms')} ms (p50) after a CIDR rule does on the`,
    `same host and ${x('cross_return_name_minus_cidr_p50_ms')} ms after across hosts (Docker's event, then for cross-host the etcd round trip`,
    `and A's watch, then one nft transaction per changed set); counted from before \`docker run\`, that is`,
    `${x('same_start_name_vs_cidr_p50')}× and ${x('cross_start_name_vs_cidr_p50')}× the baseline (p50). With ${CATALOG} more names in the catalog the`,
    `cross-host figure is ${x('catalog_p50')}× (p50) what it is without (+${x('catalog_minus_p50_ms')} ms); in the same runs the CIDR control,`,
    `which counts from before \`docker run\` on B, moved ${x('catalog_cidr_control_p50')}× (+${x('catalog_cidr_control_minus_p50_ms')} ms): with the fake names the start`,
    `on B is slower too, although B has no policy (likely: each pass reads the whole catalog, and WatchedRecords.names() decodes every record again). DNS: a name of another host answered by truss costs`,
    `${x('dns_remote_vs_local_p50')}× a local name answered by Docker (p50); relaying an external name through truss costs`,
    `${x('dns_relay_vs_plain_p50')}× going to the upstream directly. The catalog write (etcd, ${CATALOG} records in transactions of`,
    `100) until A's set held them all took ${env.catalogWriteAndProgramMs} ms.`,
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on a VM with 2 shared cores; raw samples in`,
    '`bench/results/names.json`. Rerun: `npm run bench:names`.',
    '',
  ].join('\n');
  writeDocSection(section);
}

await main();
