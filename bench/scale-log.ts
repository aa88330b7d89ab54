/**
 * bench/scale --daemon-debug: where an attach spends its time, read from the daemon's debug
 * log. The benchmark sends one RPC at a time, so every `kernel command` and `reconcile pass`
 * line between an endpoint's CreateEndpoint request and its Join response belongs to that
 * attach (a periodic full pass that overlaps is counted too, and shows up as such).
 */
import { median } from '../e2e/harness/figures.ts';
import { f1 } from './lib.ts';

export interface AttachBreakdown {
  /** ms per kind of kernel command (argv's first words), summed over the attach */
  readonly commands: Record<string, number>;
  readonly commandCount: number;
  readonly passes: number;
  readonly passMs: number;
  readonly fullPasses: number;
}

const commandKey = (argv: readonly string[]): string =>
  argv
    .slice(0, 3)
    .map((a) => (/^tr[a-z]?[0-9a-f]{6,}/.test(a) ? 'LINK' : a.replace(/^.*\//, '')))
    .join(' ');

/** One breakdown per attach, in the order of the CreateEndpoint requests in the log. */
export function attachBreakdowns(log: string): AttachBreakdown[] {
  const out: AttachBreakdown[] = [];
  let cur: { eid: string; b: { -readonly [K in keyof AttachBreakdown]: AttachBreakdown[K] } } | undefined;
  for (const line of log.split('\n')) {
    if (!line.startsWith('{')) continue;
    let o: { msg?: string; rpc?: string; eid?: string; durationMs?: number; argv?: string[]; full?: boolean };
    try {
      o = JSON.parse(line);
    } catch {
      continue;
    }
    if (o.msg === 'rpc request' && o.rpc === 'NetworkDriver.CreateEndpoint' && o.eid) {
      cur = { eid: o.eid, b: { commands: {}, commandCount: 0, passes: 0, passMs: 0, fullPasses: 0 } };
    } else if (cur && o.msg === 'kernel command' && Array.isArray(o.argv) && typeof o.durationMs === 'number') {
      const k = commandKey(o.argv);
      cur.b.commands[k] = (cur.b.commands[k] ?? 0) + o.durationMs;
      cur.b.commandCount++;
    } else if (cur && o.msg === 'reconcile pass' && typeof o.durationMs === 'number') {
      cur.b.passes++;
      cur.b.passMs += o.durationMs;
      if (o.full) cur.b.fullPasses++;
    } else if (cur && o.msg === 'rpc response' && o.rpc === 'NetworkDriver.Join' && o.eid === cur.eid) {
      out.push(cur.b);
      cur = undefined;
    }
  }
  return out;
}

/** Median per attach of each command kind (and of the totals), first window vs last window. */
export function breakdownLines(all: readonly AttachBreakdown[], window: number): string[] {
  const first = all.slice(0, window);
  const last = all.slice(-window);
  const keys = new Set(all.flatMap((b) => Object.keys(b.commands)));
  const med = (bs: readonly AttachBreakdown[], f: (b: AttachBreakdown) => number): number => median(bs.map(f));
  const kernel = (b: AttachBreakdown): number => Object.values(b.commands).reduce((a, x) => a + x, 0);
  const rows = [
    { k: 'all kernel commands', f: kernel },
    { k: 'kernel commands (count)', f: (b: AttachBreakdown) => b.commandCount },
    { k: 'reconcile passes (count)', f: (b: AttachBreakdown) => b.passes },
    { k: 'reconcile passes (their durationMs)', f: (b: AttachBreakdown) => b.passMs },
    { k: 'passes minus kernel commands (JS, store)', f: (b: AttachBreakdown) => b.passMs - kernel(b) },
    ...[...keys].map((k) => ({ k, f: (b: AttachBreakdown) => b.commands[k] ?? 0 })),
  ];
  const full = (bs: readonly AttachBreakdown[]) => bs.filter((b) => b.fullPasses > 0).length;
  return [
    `per attach, median, first ${first.length} -> last ${last.length} (attaches overlapping a full pass: ${full(first)} -> ${full(last)}):`,
    ...rows.map((r) => `  ${f1(med(first, r.f)).padStart(7)} -> ${f1(med(last, r.f)).padStart(7)}  ${r.k}`),
  ];
}
