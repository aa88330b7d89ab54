/**
 * Figures the e2e run reports (printed, never asserted): percentiles, and the plugin's
 * per-RPC durations parsed from its debug log (JSON lines carrying `rpc` and `durationMs`).
 */

/** Nearest-rank percentile; NaN for no samples. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

export const median = (values: readonly number[]): number => percentile(values, 50);

export interface RpcSample {
  readonly rpc: string;
  readonly durationMs: number;
  /** Endpoint id if the line carries one (eid / endpointId / EndpointID). */
  readonly eid?: string;
}

/** Response lines of the debug log; `rpc` is normalised to the bare name (`Join`, not `NetworkDriver.Join`). */
export function parseRpcSamples(log: string): RpcSample[] {
  const out: RpcSample[] = [];
  for (const line of log.split('\n')) {
    if (!line.includes('durationMs')) continue;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (typeof o.rpc !== 'string' || typeof o.durationMs !== 'number') continue;
    const rpc = o.rpc.replace(/^\/?(NetworkDriver|IpamDriver)\./, '');
    const eid = [o.eid, o.endpointId, o.EndpointID].find((v): v is string => typeof v === 'string');
    out.push(eid === undefined ? { rpc, durationMs: o.durationMs } : { rpc, durationMs: o.durationMs, eid });
  }
  return out;
}

/**
 * CreateEndpoint+Join per endpoint when lines carry an endpoint id (a prefix match tolerates
 * short vs full ids); otherwise the i-th CreateEndpoint is paired with the i-th Join.
 */
export function createPlusJoinMs(samples: readonly RpcSample[]): number[] {
  const creates = samples.filter((s) => s.rpc === 'CreateEndpoint');
  const joins = samples.filter((s) => s.rpc === 'Join');
  if (creates.every((c) => c.eid) && joins.every((j) => j.eid)) {
    const out: number[] = [];
    for (const c of creates) {
      const j = joins.find((x) => x.eid?.startsWith(c.eid as string) || c.eid?.startsWith(x.eid as string));
      if (j) out.push(c.durationMs + j.durationMs);
    }
    return out;
  }
  const n = Math.min(creates.length, joins.length);
  return Array.from({ length: n }, (_, i) => (creates[i]?.durationMs ?? 0) + (joins[i]?.durationMs ?? 0));
}

const fmt = (ms: number): string => (Number.isFinite(ms) ? `${ms.toFixed(1)} ms` : 'n/a');

export function rpcFigureLines(log: string): string[] {
  const samples = parseRpcSamples(log);
  const both = createPlusJoinMs(samples);
  const lines = [
    `CreateEndpoint+Join (plugin debug log, n=${both.length}): p50 ${fmt(median(both))}, p99 ${fmt(percentile(both, 99))}`,
  ];
  for (const rpc of ['CreateNetwork', 'CreateEndpoint', 'Join', 'Leave', 'DeleteEndpoint', 'RequestAddress']) {
    const v = samples.filter((s) => s.rpc === rpc).map((s) => s.durationMs);
    if (v.length > 0) lines.push(`  ${rpc} (n=${v.length}): p50 ${fmt(median(v))}, p99 ${fmt(percentile(v, 99))}`);
  }
  return lines;
}

/** Prints a block that is easy to find and copy from CI output. */
export function printFigures(lines: readonly string[]): void {
  const block = ['', 'E2E FIGURES:', ...lines.map((l) => `  ${l}`), 'END E2E FIGURES', ''].join('\n');
  process.stdout.write(`${block}\n`);
}

interface ServerVersion {
  readonly Version?: string;
  readonly ApiVersion?: string;
  readonly Components?: readonly { readonly Name?: string; readonly Version?: string }[];
}

/**
 * The figure line naming the dockerd a suite ran against, from `docker version --format
 * '{{json .Server}}'`: its version and API, what it runs containers with, and which binary
 * (`dockerd` = the one on PATH, else TRUSS_E2E_DOCKERD).
 */
export function dockerdFigureLine(serverJson: string, binary: string): string {
  let s: ServerVersion = {};
  try {
    s = JSON.parse(serverJson) as ServerVersion;
  } catch {
    // an unreadable answer still yields a line that says so
  }
  const parts = (s.Components ?? [])
    .filter((c) => c.Name !== undefined && c.Name !== 'Engine')
    .map((c) => `${c.Name} ${c.Version ?? '?'}`);
  const with_ = parts.length > 0 ? `; ${parts.join(', ')}` : '';
  return `dockerd ${s.Version ?? '?'} (API ${s.ApiVersion ?? '?'}${with_}) from ${binary}`;
}
