/**
 * The multi-host benchmark's report (bench/cluster.ts measures): the sample types, the
 * tables, the findings written from the figures, and its section of docs/benchmarks.md.
 */
import { f1, markdownTable, range, type Stats, stats, writeDocSection } from './lib.ts';

/** What the report says about how the figures were taken. */
export interface ReportParams {
  readonly reps: number;
  readonly seconds: number;
  readonly runs: number;
  readonly hostCounts: readonly number[];
  /** hosts started */
  readonly hosts: number;
  readonly probeStepMs: number;
}

/**
 * truss: iperf3 in the two containers (docker exec), as a user runs it; trussNs: the same
 * network path, iperf3 entering the containers' network namespaces only (nsenter), so that it
 * runs in the same cgroup as the baselines' iperf3; bare, hop: the baselines. All four run the
 * newest wireguard-go; trussOld, bareOld: truss and a bare tunnel on the older one (this
 * release's package, bench/cluster-wggo.ts), measured when the machine has both.
 */
export type Cond = 'truss' | 'trussNs' | 'bare' | 'hop' | 'trussOld' | 'bareOld' | 'trussRouted';
/** trussRouted: a second cluster network in routed mode (-o truss.mode=routed), on the newest wireguard-go */
export const CONDS: readonly Cond[] = ['truss', 'bare', 'trussNs', 'hop', 'trussRouted'];
export const OLD_CONDS: readonly Cond[] = ['trussOld', 'bareOld'];
export interface ThroughputSample {
  readonly gbps: number;
  /** share of the machine's CPU (all cores) busy during the run, and in softirq */
  readonly busy: number;
  readonly softirq: number;
  /** CPU seconds per GB carried, of the receiving (A) and the sending (B) wireguard-go */
  readonly wgRxCpuPerGB: number;
  readonly wgTxCpuPerGB: number;
  /** mean size of the packets the sending host's tunnel device took in, and the sender's TCP retransmits */
  readonly tunTxPacketBytes: number;
  readonly retransmits: number;
  /** share of the UDP datagrams arriving on host A dropped for a full socket buffer (wireguard-go's) */
  readonly udpRcvbufDrops: number;
}

export interface StartSample {
  readonly n: number;
  /** the host the container started on, and the members that probed it */
  readonly on: string;
  /** ms from `docker run -d` until it returned (container running) */
  readonly runMs: number;
  /** the same on A right before, with --network none: Docker's own share of a start */
  readonly noneMs: number;
  /** ms from `docker run -d` until the first member connected, and until all had */
  readonly firstMs?: number;
  readonly allMs?: number;
  /** per probing member, ms (undefined: not within CONNECT_LIMIT_MS) */
  readonly byHost: Readonly<Record<string, number | null>>;
  /** the plugin's own time for this start (debug log), ms */
  readonly rpc: Readonly<Record<string, number>>;
}

export interface Results {
  readonly throughput?: Record<Cond, ThroughputSample[]>;
  readonly starts?: StartSample[];
}

export const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;

const COND_LABEL: Record<Cond, string> = {
  bare: 'bare wireguard-go tunnel, host to host',
  truss: 'truss cluster network, container to container',
  hop: 'bare tunnel + veth/bridge hop each side (no truss)',
  trussNs: 'truss, same path, iperf3 nsenter-ed into the containers (not their cgroups)',
  bareOld: "bare tunnel, the older wireguard-go (this release's)",
  trussOld: "truss cluster network, the older wireguard-go (this release's)",
  trussRouted: 'truss cluster network in routed mode (-o truss.mode=routed: no bridge hop), container to container',
};
/** what each condition's ÷ column divides by: the bare tunnel of the same wireguard-go */
const BASE: Record<Cond, Cond> = {
  bare: 'bare',
  truss: 'bare',
  hop: 'bare',
  trussNs: 'bare',
  bareOld: 'bareOld',
  trussOld: 'bareOld',
  trussRouted: 'bare',
};

function throughputRows(t: Record<Cond, ThroughputSample[]>): { rows: string[][]; ratio: number } {
  const g = (c: Cond) => stats(t[c].map((s) => s.gbps));
  const ratio = g('truss').median / g('bare').median;
  const med = (c: Cond, k: keyof ThroughputSample) => stats(t[c].map((s) => s[k])).median;
  const header = ['measure', 'condition', 'n', 'median', 'min–max', '÷ bare', 'target', 'CPU busy', 'softirq'];
  const rows = [[...header, 'wg-go CPU s/GB rx, tx', 'tun pkt B', 'retr', 'UDP drops A']];
  for (const c of ['bare', 'truss', 'trussRouted', 'trussNs', 'hop', 'bareOld', 'trussOld'] as const) {
    if ((t[c] ?? []).length === 0) continue;
    const st = g(c);
    rows.push([
      c === 'bare' ? 'cross-host TCP, iperf3 (Gbit/s)' : '',
      COND_LABEL[c],
      String(st.n),
      f1(st.median),
      range(st),
      c === BASE[c] ? '' : (st.median / g(BASE[c]).median).toFixed(3),
      c === 'truss' ? '≥ 0.95' : c === BASE[c] ? '' : '(info)',
      pct(med(c, 'busy')),
      pct(med(c, 'softirq')),
      `${f1(med(c, 'wgRxCpuPerGB'))}, ${f1(med(c, 'wgTxCpuPerGB'))}`,
      f1(med(c, 'tunTxPacketBytes')),
      f1(med(c, 'retransmits')),
      pct(med(c, 'udpRcvbufDrops')),
    ]);
  }
  return { rows, ratio };
}

function convergenceRows(starts: readonly StartSample[]): { rows: string[][]; growth: Record<string, number> } {
  const counts = [...new Set(starts.map((s) => s.n))].sort((x, y) => x - y);
  const rows = [['measure (ms)', 'hosts', 'n', 'p50', 'p99', 'min–max', 'growth p50', 'target']];
  const of = (n: number, f: (s: StartSample) => number | undefined) =>
    stats(starts.filter((s) => s.n === n).flatMap((s) => (f(s) === undefined ? [] : [f(s) as number])));
  const growth: Record<string, number> = {};
  const lo = counts[0] as number;
  const hi = counts[counts.length - 1] as number;
  for (const [label, key, f] of [
    ['docker run on A → first connect from another host', 'first', (s: StartSample) => s.firstMs],
    ['docker run on A → reachable from every other host', 'all', (s: StartSample) => s.allMs],
    ['docker run -d alone (returns when running)', 'run', (s: StartSample) => s.runMs],
  ] as const) {
    counts.forEach((n, i) => {
      const st: Stats = of(n, f);
      const g = st.median / of(lo, f).median;
      if (n === hi && n !== lo) growth[key] = g;
      const target = n === hi && n !== lo && key === 'all' ? '≤ 1.5' : '';
      rows.push([
        i === 0 ? label : '',
        String(n),
        String(st.n),
        f1(st.median),
        f1(st.p99),
        range(st),
        n === lo ? '' : g.toFixed(3),
        target,
      ]);
    });
  }
  return { rows, growth };
}

/** Where a start's time goes: medians per member count of docker run, the plugin's RPCs, and after. */
function breakdownRows(starts: readonly StartSample[]): string[][] {
  const counts = [...new Set(starts.map((s) => s.n))].sort((x, y) => x - y);
  const rpcs = ['RequestAddress', 'CreateEndpoint', 'Join'];
  const rows = [
    [
      'hosts',
      'docker run -d',
      'same, --network none',
      ...rpcs.map((r) => `${r} (plugin)`),
      'all plugin RPCs',
      'first connect after run returned',
    ],
  ];
  for (const n of counts) {
    const ss = starts.filter((s) => s.n === n);
    const m = (f: (s: StartSample) => number | undefined) =>
      f1(stats(ss.flatMap((s) => (f(s) === undefined ? [] : [f(s) as number]))).median);
    rows.push([
      String(n),
      m((s) => s.runMs),
      m((s) => s.noneMs),
      ...rpcs.map((r) => m((s) => s.rpc[r])),
      m((s) => Object.values(s.rpc).reduce((x, y) => x + y, 0)),
      m((s) => (s.firstMs === undefined ? undefined : s.firstMs - s.runMs)),
    ]);
  }
  return rows;
}

export function report(
  r: Results,
  env: Record<string, string>,
  p: ReportParams,
): { lines: string[]; verdicts: Record<string, number> } {
  const lines: string[] = [];
  const verdicts: Record<string, number> = {};
  if (r.throughput) {
    const t = throughputRows(r.throughput);
    verdicts.throughput = t.ratio;
    verdicts.throughputPaired = paired(r.throughput, 'truss', 'bare');
    verdicts.hopOverBarePaired = paired(r.throughput, 'hop', 'bare');
    verdicts.trussOverHopPaired = paired(r.throughput, 'truss', 'hop');
    verdicts.trussNsOverBarePaired = paired(r.throughput, 'trussNs', 'bare');
    verdicts.trussNsOverHopPaired = paired(r.throughput, 'trussNs', 'hop');
    if ((r.throughput.bareOld ?? []).length > 0) {
      verdicts.trussOldOverBareOldPaired = paired(r.throughput, 'trussOld', 'bareOld');
      verdicts.newestOverOlderBarePaired = paired(r.throughput, 'bare', 'bareOld');
      verdicts.newestOverOlderTrussPaired = paired(r.throughput, 'truss', 'trussOld');
    }
    if ((r.throughput.trussRouted ?? []).length > 0) {
      verdicts.trussRoutedOverBarePaired = paired(r.throughput, 'trussRouted', 'bare');
      verdicts.trussRoutedOverTrussPaired = paired(r.throughput, 'trussRouted', 'truss');
    }
    lines.push(
      ...markdownTable(t.rows),
      '',
      ...throughputFindings(r.throughput, env),
      ...versionFindings(verdicts, env),
      '',
    );
  }
  if (r.starts) {
    const c = convergenceRows(r.starts);
    Object.assign(verdicts, Object.fromEntries(Object.entries(c.growth).map(([k, v]) => [`growth_${k}`, v])));
    lines.push(...markdownTable(c.rows), '', 'Where a start spends its time (medians, ms):', '');
    lines.push(...markdownTable(breakdownRows(r.starts)), '', ...convergenceFindings(r.starts), '');
  }
  lines.push(`Tunnel MTU ${env.tunnelMtu} (underlay ${env.underlayMtu}); ${env.wireguard}.`);
  const verdict = (x: number | undefined, ok: boolean) =>
    x === undefined ? 'not measured' : `${x.toFixed(3)} (${ok ? 'met' : 'missed'})`;
  lines.push(
    '',
    `Verdicts: throughput truss ÷ bare ${verdict(verdicts.throughput, (verdicts.throughput ?? 0) >= 0.95)}, target ≥ 0.95; ` +
      `convergence growth ${Math.min(...p.hostCounts)} → ${Math.max(...p.hostCounts)} hosts (reachable from all, p50) ` +
      `${verdict(verdicts.growth_all, (verdicts.growth_all ?? 99) <= 1.5)}, target ≤ 1.5.`,
  );
  return { lines, verdicts };
}

/** Median of per-repetition x/y (the conditions of one repetition ran back to back). */
function paired(t: Record<Cond, ThroughputSample[]>, x: Cond, y: Cond): number {
  const n = Math.min((t[x] ?? []).length, (t[y] ?? []).length);
  return stats(Array.from({ length: n }, (_, i) => (t[x][i]?.gbps ?? 0) / (t[y][i]?.gbps ?? 1))).median;
}

function throughputFindings(t: Record<Cond, ThroughputSample[]>, env: Record<string, string>): string[] {
  const med = (c: Cond, k: keyof ThroughputSample) => stats(t[c].map((s) => s[k])).median;
  const r = (x: Cond, y: Cond) => paired(t, x, y).toFixed(3);
  const out = [
    `- Per-repetition ratios (median over repetitions; each repetition runs the four conditions back to back): truss ÷ bare ${r('truss', 'bare')},`,
    `  truss (nsenter) ÷ bare ${r('trussNs', 'bare')}, bare+hop ÷ bare ${r('hop', 'bare')}, truss (nsenter) ÷ bare+hop ${r('trussNs', 'hop')}, truss ÷ truss (nsenter) ${r('truss', 'trussNs')}.`,
    `- Every condition is CPU-bound: both cores ${pct(Math.min(...CONDS.map((c) => med(c, 'busy'))))}–${pct(Math.max(...CONDS.map((c) => med(c, 'busy'))))} busy while iperf3 (2 processes) and wireguard-go (2) share them;`,
    `  softirq (forwarding, bridge, veth, conntrack) is ${pct(med('bare', 'softirq'))} of the machine for the bare tunnel, ${pct(med('hop', 'softirq'))} with the hop, ${pct(med('truss', 'softirq'))} for truss.`,
    `- wireguard-go's UDP socket on the receiving host drops ${pct(med('bare', 'udpRcvbufDrops'))} (bare) to ${pct(med('truss', 'udpRcvbufDrops'))} (truss) of the datagrams (UdpRcvbufErrors)` +
      ((t.bareOld ?? []).length > 0
        ? `; the older wireguard-go ${pct(med('bareOld', 'udpRcvbufDrops'))} to ${pct(med('trussOld', 'udpRcvbufDrops'))}.`
        : '.'),
    med('bare', 'udpRcvbufDrops') > 0.01
      ? '  This wireguard-go keeps the default socket buffer and has no TUN offloads, so TCP runs through heavy loss in every condition.'
      : '  The 2022 wireguard-go keeps the default socket buffer and has no TUN offloads (tun pkt B: one MTU per packet);' +
        ' the newest batches packets through its TUN device (GSO/GRO).',
    `- CPU placement: dockerd (cgroupfs driver, cgroup v1) puts every container in a child of ${env.dockerCpuCgroup ?? 'its cgroup'};`,
    "  under contention the containers' iperf3 compete together as one root-level task against wireguard-go and everything",
    "  else, while the baselines' iperf3 (and truss (nsenter)) are root-level tasks themselves.",
  ];
  const [hop, nsHop] = [paired(t, 'hop', 'bare'), paired(t, 'trussNs', 'hop')];
  out.push(
    `- The container's hop without truss: bare+hop ÷ bare ${hop.toFixed(3)} (per packet a forward, a bridge and a veth more on` +
      ' each host, on cores that are already saturated); ' +
      (Math.abs(nsHop - 1) < 0.1
        ? `truss on that path adds nothing measurable beyond it (truss (nsenter) ÷ bare+hop ${nsHop.toFixed(3)}, within this run's noise).`
        : `truss on that path differs from it by truss (nsenter) ÷ bare+hop ${nsHop.toFixed(3)}.`),
  );
  return out;
}

/** The two wireguard-go versions: each as truss ÷ its own bare tunnel, and newest ÷ older. */
function versionFindings(v: Record<string, number>, env: Record<string, string>): string[] {
  if (v.newestOverOlderBarePaired === undefined) return [];
  const f = (x: number | undefined) => (x ?? Number.NaN).toFixed(3);
  return [
    `- wireguard-go versions (${env.wireguard}): truss ÷ bare ${f(v.throughputPaired)} on the newest,` +
      ` ${f(v.trussOldOverBareOldPaired)} on the older; newest ÷ older ${f(v.newestOverOlderBarePaired)} (bare tunnels),` +
      ` ${f(v.newestOverOlderTrussPaired)} (truss). Per repetition the two versions run back to back, their order alternating;` +
      ' truss switches by a restart with --wireguard-go.',
  ];
}

function convergenceFindings(starts: readonly StartSample[]): string[] {
  const counts = [...new Set(starts.map((s) => s.n))].sort((x, y) => x - y);
  const m = (n: number, f: (s: StartSample) => number | undefined) =>
    stats(starts.filter((s) => s.n === n).flatMap((s) => (f(s) === undefined ? [] : [f(s) as number]))).median;
  return counts.map((n) => {
    const [first, run, none] = [m(n, (s) => s.firstMs), m(n, (s) => s.runMs), m(n, (s) => s.noneMs)];
    const plugin = m(n, (s) => Object.values(s.rpc).reduce((x, y) => x + y, 0));
    const after = m(n, (s) => (s.firstMs === undefined ? undefined : s.firstMs - s.runMs));
    return (
      `- ${n} hosts: of the ${f1(first)} ms to the first connect, \`docker run -d\` takes ${f1(run)} ms (the same start with` +
      ` --network none: ${f1(none)} ms; truss's RPCs ${f1(plugin)} ms in all) and the connect succeeds ${f1(after)} ms after it returned.`
    );
  });
}

export function writeDocs(lines: readonly string[], env: Record<string, string>, r: Results, p: ReportParams): void {
  const offl = Object.entries(env)
    .filter(([k]) => k.startsWith('offloads '))
    .map(([k, v]) => `  - ${k.slice('offloads '.length)}: ${v}`);
  const section = [
    '## Multi-host (WireGuard)',
    '',
    `\`npm run bench:cluster\` (bench/cluster.ts), ${new Date().toISOString().slice(0, 10)}, commit ${env.commit}.`,
    `Kernel ${env.kernel}; CPU ${env.cpu}; dockerd ${env.docker}; ${env.iperf3}; Node ${env.node}; bridge-nf-call-iptables in the hosts ${env.bridgeNfCallIptables}.`,
    `Simulated hosts (network namespaces, each with its own dockerd and truss) on one underlay bridge (MTU ${env.underlayMtu}),`,
    `one etcd; WireGuard is ${env.wireguard}.`,
    '',
    ...lines,
    '',
    `- Throughput: iperf3 -t ${p.seconds} (1 s omitted), ${p.reps} repetitions; each repetition runs the four conditions back to back, the`,
    '  order rotating, after one warm-up each. truss: iperf3 server container on host A, client container on host B (docker exec),',
    '  one cluster network (truss.cluster, truss IPAM): veth → bridge → trwg0 (wireguard-go) → underlay → trwg0 → bridge → veth.',
    "  truss (nsenter): the same containers' network namespaces and path, iperf3 started with nsenter --net (outside the",
    "  containers' cgroups). Bare: a second wireguard-go tunnel (bnwg0, own keys and port, 198.19.77.0/24, the same MTU, started",
    '  as truss starts wireguard-go) between the same two host namespaces, iperf3 in the host namespaces. Bare + hop: the same',
    '  tunnel, iperf3 in a plain namespace behind a veth on a plain bridge on each host (FORWARD accept as the first rule).',
    '  CPU busy/softirq: share of all cores during the run (/proc/stat); wg-go CPU: user+system seconds of the receiving (A)',
    '  and sending (B) wireguard-go per GB carried; tun pkt: mean packet size into the sending tunnel; retr: iperf3 retransmits;',
    "  UDP drops A: UdpRcvbufErrors ÷ UDP datagrams arriving on host A (wireguard-go's socket).",
    `- Convergence: ${r.starts ? p.runs : 0} starts per host count; all ${p.hosts} hosts run throughout, the first N are members of the`,
    '  cluster network (created/removed between starts; the counts alternate). A start is `docker run -d` of a TCP sink on a',
    '  member (rotating), then every other member connects from a long-lived container on the network (busybox nc under',
    `  nsenter, a new attempt every ${p.probeStepMs} ms from when \`docker run\` returned; the address is read from the plugin's log,`,
    '  not from docker inspect). "first" = the first member to connect, "all" = the last one. The container is removed after.',
    '- Offloads (`ethtool -k`, host A):',
    ...offl,
    `- Docker's cpu cgroup: ${env.dockerCpuCgroup}.`,
    '- Resilience figures (a host leaving, etcd killed, truss kill -9, 30 concurrent starts) are printed by e2e/cluster.e2e.ts',
    '  (E2E FIGURES block), not measured here.',
    '',
  ].join('\n');
  writeDocSection(section);
}
