/**
 * The report of the multi-host benchmark's VXLAN part (cluster-vxlan.ts measures): the table,
 * the per-repetition ratios, findings written from the figures, the "Unencrypted cluster
 * networks" section of docs/benchmarks.md and the `vxlan` member of bench/results/cluster.json.
 * No target is set for VXLAN (issue 6 item 6 asks for the ratio): every ratio is info.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../e2e/harness/paths.ts';
import type { VxCond, VxlanResult, VxSample } from './cluster-vxlan.ts';
import { f1, markdownTable, range, stats, writeDocSection, writeResultsJson } from './lib.ts';

const LABEL: Record<VxCond, string> = {
  raw: 'raw underlay veth, host to host (eth-ul, MTU 1500)',
  bare: 'bare VXLAN device, host to host (no truss)',
  hop: 'bare VXLAN + veth/bridge hop each side (no truss)',
  truss: 'truss VXLAN network, container to container',
  trussNs: 'truss, same path, iperf3 nsenter-ed into the containers',
  trussRouted: 'truss VXLAN network in routed mode (no bridge hop), container to container',
};
const ORDER: readonly VxCond[] = ['raw', 'bare', 'hop', 'truss', 'trussRouted', 'trussNs'];

const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;
const gbps = (t: VxlanResult['samples'], c: VxCond) => stats(t[c].map((s) => s.gbps));
const med = (t: VxlanResult['samples'], c: VxCond, k: keyof VxSample) => stats(t[c].map((s) => s[k])).median;

/** Median over repetitions of x ÷ y within one repetition (the conditions of a repetition ran back to back). */
export function pairedVx(t: VxlanResult['samples'], x: VxCond, y: VxCond): number {
  const n = Math.min(t[x].length, t[y].length);
  return stats(Array.from({ length: n }, (_, i) => (t[x][i]?.gbps ?? 0) / (t[y][i]?.gbps ?? 1))).median;
}

/** The ratios recorded in cluster.json (per-repetition medians, and of the medians for the headline). */
export function vxlanRatios(t: VxlanResult['samples']): Record<string, number> {
  return {
    trussOverRaw: gbps(t, 'truss').median / gbps(t, 'raw').median,
    trussOverRawPaired: pairedVx(t, 'truss', 'raw'),
    trussOverBarePaired: pairedVx(t, 'truss', 'bare'),
    bareOverRawPaired: pairedVx(t, 'bare', 'raw'),
    hopOverBarePaired: pairedVx(t, 'hop', 'bare'),
    trussNsOverHopPaired: pairedVx(t, 'trussNs', 'hop'),
    trussOverTrussNsPaired: pairedVx(t, 'truss', 'trussNs'),
    ...(t.trussRouted?.length
      ? {
          trussRoutedOverBarePaired: pairedVx(t, 'trussRouted', 'bare'),
          trussRoutedOverTrussPaired: pairedVx(t, 'trussRouted', 'truss'),
        }
      : {}),
  };
}

export function vxlanLines(r: VxlanResult): string[] {
  const t = r.samples;
  const raw = gbps(t, 'raw').median;
  const bare = gbps(t, 'bare').median;
  const rows = [
    [
      'measure',
      'condition',
      'n',
      'median',
      'min–max',
      '÷ raw',
      '÷ bare VXLAN',
      'CPU busy',
      'softirq',
      'CPU s/GB',
      'iperf3 CPU s/GB',
      'tx pkt B',
      'retr',
    ],
  ];
  for (const c of ORDER) {
    if (t[c].length === 0) continue;
    const st = gbps(t, c);
    rows.push([
      c === 'raw' ? 'cross-host TCP over VXLAN, iperf3 (Gbit/s)' : '',
      LABEL[c],
      String(st.n),
      f1(st.median),
      range(st),
      c === 'raw' ? '' : `${(st.median / raw).toFixed(3)} (info)`,
      c === 'raw' || c === 'bare' ? '' : (st.median / bare).toFixed(3),
      pct(med(t, c, 'busy')),
      pct(med(t, c, 'softirq')),
      f1(med(t, c, 'cpuPerGB')),
      f1(med(t, c, 'iperfCpuPerGB')),
      f1(med(t, c, 'txPacketBytes')),
      f1(med(t, c, 'retransmits')),
    ]);
  }
  const p = (x: VxCond, y: VxCond) => pairedVx(t, x, y).toFixed(3);
  const busy = ORDER.map((c) => med(t, c, 'busy'));
  return [
    ...markdownTable(rows),
    '',
    `- Per-repetition ratios (median over ${r.reps} repetitions of the five conditions back to back): truss ÷ raw ${p('truss', 'raw')},`,
    `  truss ÷ bare VXLAN ${p('truss', 'bare')}, bare VXLAN ÷ raw ${p('bare', 'raw')}, bare+hop ÷ bare ${p('hop', 'bare')},`,
    `  truss (nsenter) ÷ bare+hop ${p('trussNs', 'hop')}, truss ÷ truss (nsenter) ${p('truss', 'trussNs')}.`,
    `- CPU: the machine is ${pct(Math.min(...busy))}–${pct(Math.max(...busy))} busy in every condition (iperf3 client and server and`,
    '  the kernel path share 2 cores), so a path that costs more per byte shows as fewer bytes: CPU s/GB (busy CPU seconds',
    "  of the whole machine per GB carried) is the cost per byte, iperf3 CPU s/GB the two iperf3 processes' share of it.",
    `- Encapsulation: the underlay carries ${f1(med(t, 'raw', 'txPacketBytes'))} B per packet the sending host's eth-ul takes in (GSO/TSO`,
    `  super-packets); bnvx0 takes ${f1(med(t, 'bare', 'txPacketBytes'))} B and trvx0 ${f1(med(t, 'truss', 'txPacketBytes'))} B per packet.`,
    `  CPU per GB: raw ${f1(med(t, 'raw', 'cpuPerGB'))}, bare VXLAN ${f1(med(t, 'bare', 'cpuPerGB'))}, bare+hop ${f1(med(t, 'hop', 'cpuPerGB'))}, truss ${f1(med(t, 'truss', 'cpuPerGB'))} s/GB.`,
    ...stepLines(t),
  ];
}

/**
 * truss ÷ raw as a chain of steps, each one condition ÷ the one before it on the way from the
 * raw underlay to a user's containers: encapsulation (bare ÷ raw), the container's veth/bridge
 * hop (hop ÷ bare), the rest of truss's path (its bridge, nftables and Docker's iptables, not
 * told apart; truss nsenter ÷ hop), and running iperf3 inside the containers' cgroups (truss ÷ truss nsenter).
 */
function stepLines(t: VxlanResult['samples']): string[] {
  const steps: [string, VxCond, VxCond][] = [
    ['VXLAN encapsulation (bare ÷ raw)', 'bare', 'raw'],
    ["a container's veth + bridge hop, no truss (bare+hop ÷ bare)", 'hop', 'bare'],
    [
      "the rest of truss's path, not measured apart: its bridge, nftables (VXLAN guard) and Docker's iptables (truss nsenter ÷ bare+hop)",
      'trussNs',
      'hop',
    ],
    ["iperf3 in the containers' cgroups (truss ÷ truss nsenter)", 'truss', 'trussNs'],
  ];
  const ratios = steps.map(([, x, y]) => pairedVx(t, x, y));
  const product = ratios.reduce((p, r) => p * r, 1);
  return [
    '- Where truss ÷ raw goes, step by step (per-repetition medians; their product',
    `  ${product.toFixed(3)} against truss ÷ raw ${pairedVx(t, 'truss', 'raw').toFixed(3)} measured directly):`,
    ...steps.map(([what], i) => `  - ${what}: ${(ratios[i] as number).toFixed(3)}`),
  ];
}

/** MTU and offloads of the devices, one line each. */
const linkLines = (r: VxlanResult): string[] => Object.entries(r.links).map(([k, v]) => `  - ${k}: ${v}`);

export function writeVxlanDocs(lines: readonly string[], env: Record<string, string>, r: VxlanResult): void {
  const section = [
    '## Unencrypted cluster networks (VXLAN, `truss.encrypt=false`)',
    '',
    `\`npm run bench:cluster -- --part vxlan\` (bench/cluster.ts, cluster-vxlan.ts), ${new Date().toISOString().slice(0, 10)}, commit ${env.commit}.`,
    `Kernel ${env.kernel}; CPU ${env.cpu}; dockerd ${env.docker}; ${env.iperf3}; Node ${env.node}.`,
    'Two simulated hosts (network namespaces, each with its own dockerd and truss, one etcd) on one underlay bridge',
    `(MTU ${env.underlayMtu}); the shared 2-core machine ran other suites at the same time, so only the ratios of`,
    'conditions alternated within the run mean something. Issue 6 item 6 sets no target for VXLAN: the ratios are info.',
    '',
    ...lines,
    '',
    `- iperf3 -t ${r.seconds}${r.seconds > 2 ? ' (1 s omitted)' : ''} B → A, ${r.reps} repetitions, the order rotating, after one warm-up each.`,
    '  truss: iperf3 server container on host A, client container on host B (docker exec), one cluster network with',
    '  `-o truss.encrypt=false` (truss IPAM, 198.18.96.0/20): veth → bridge → trvx0 → underlay → trvx0 → bridge → veth.',
    "  truss (nsenter): the same namespaces and path, iperf3 started with nsenter --net (outside the containers' cgroups).",
    '  Raw: iperf3 between the two host namespaces over their underlay addresses (eth-ul veth → underlay bridge → eth-ul).',
    '  Bare VXLAN: a VXLAN device the benchmark makes between the same two host namespaces (bnvx0: VNI 4242, UDP 4790,',
    '  198.19.80.0/24, MTU 1450, nolearning with static FDB and neighbour entries, local = the underlay address on eth-ul,',
    '  as truss makes trvx0; no nftables guard), iperf3 host to host. Bare + hop: the same device, iperf3 in a plain',
    '  namespace behind a veth on a plain bridge on each host (FORWARD accept as the first rule), routed through bnvx0.',
    '  CPU busy/softirq: share of all cores during the run (/proc/stat); CPU s/GB: busy seconds of all cores per GB;',
    "  iperf3 CPU s/GB: the client's own figure (iperf3 -J) plus the server process's user+system time; tx pkt B: bytes ÷",
    "  packets the sending host's device (eth-ul, bnvx0, trvx0) took in; retr: iperf3 retransmits.",
    '- Devices (host A; MTU and `ethtool -k`):',
    ...linkLines(r),
    '',
    'Functional figures printed by `e2e/cluster-vxlan.e2e.ts` (three simulated hosts, same set-up; both modes on the same',
    'two hosts one after the other; two runs on 2026-11-28 on the shared machine, not rerun here):',
    '',
    '| what | VXLAN (`trvx0`) | WireGuard (`trwg0`, wireguard-go) |',
    '|---|---|---|',
    '| ping RTT container → container on another host, average of 20 | 0.16–0.26 ms | 0.82 ms (2.96 ms in the other run) |',
    '| iperf3 -t 2 container → container on another host | 1.4–14 Gbit/s | 0.16–0.28 Gbit/s |',
    '| IPv4 fragments created or reassembled during the VXLAN iperf3 (container MTU 1450, underlay 1500) | 0 | |',
    "| a host leaves the network → gone from its peer's FDB, neighbours and routes | 0.61–0.89 s | |",
    '',
  ].join('\n');
  writeDocSection(section);
}

/** The `vxlan` member of cluster.json: a run of --part vxlan replaces only it, a full run writes it with the rest. */
export function vxlanJson(r: VxlanResult, env: Record<string, string>): object {
  return {
    date: new Date().toISOString(),
    commit: env.commit,
    parameters: { reps: r.reps, iperfSeconds: r.seconds },
    ratios: vxlanRatios(r.samples),
    targets: 'none (info)',
    links: r.links,
    samples: r.samples,
  };
}

/** Rewrites bench/results/cluster.json with only its `vxlan` member replaced (the WireGuard figures stay). */
export async function mergeVxlanJson(vxlan: object): Promise<void> {
  const file = join(REPO_ROOT, 'bench', 'results', 'cluster.json');
  const old = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
  await writeResultsJson('cluster', { ...old, vxlan });
}
