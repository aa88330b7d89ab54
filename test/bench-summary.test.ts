/**
 * The issue 18 summary's pure parts (bench/summary-judge.ts, summary-rows.ts) and the placement
 * of its section in docs/benchmarks.md (bench/lib.ts placeSection). bench/*.test.ts is outside
 * the unit glob, so this lives here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { placeSection } from '../bench/lib.ts';
import { findHeading, type Goal, judge, type Part, rowVerdict, runLine, slug } from '../bench/summary-judge.ts';
import { loadText, renderSection, targetRows } from '../bench/summary-rows.ts';

const GE1 = { op: '≥', value: 1 } as const satisfies Goal;

describe('judge', () => {
  it('meets, strict and not', () => {
    assert.equal(judge(1.05, { op: '≥', value: 1.05 }), 'met');
    assert.equal(judge(1.0, { op: '≤', value: 1.0 }), 'met');
    assert.equal(judge(10, { op: '<', value: 10 }), 'missed');
    assert.equal(judge(9.9, { op: '<', value: 10 }), 'met');
  });

  it('is within noise when figure ÷ target lies in the A/A band, as bench/host.ts judges at a target of 1', () => {
    const band = { min: 0.94, max: 1.23 };
    assert.equal(judge(0.998, GE1, band), 'within noise');
    assert.equal(judge(0.93, GE1, band), 'missed');
    // target 1.05: 1.00 ÷ 1.05 = 0.952, inside 0.94–1.23; 0.98 ÷ 1.05 = 0.933, outside
    assert.equal(judge(1.0, { op: '≥', value: 1.05 }, band), 'within noise');
    assert.equal(judge(0.98, { op: '≥', value: 1.05 }, band), 'missed');
    // lower is better: growth 1.8 against ≤ 1.5 is 1.2 × the target
    assert.equal(judge(1.8, { op: '≤', value: 1.5 }, { min: 0.9, max: 1.3 }), 'within noise');
    assert.equal(judge(6.6, { op: '≤', value: 1.5 }, { min: 0.9, max: 1.3 }), 'missed');
  });

  it('is not run without a figure, and never within noise without a band', () => {
    assert.equal(judge(undefined, GE1), 'not run');
    assert.equal(judge(Number.NaN, GE1), 'not run');
    assert.equal(judge(0.99, GE1), 'missed');
  });
});

describe('rowVerdict', () => {
  const part = (label: string, value: number | undefined, goal: Goal, band?: { min: number; max: number }): Part => ({
    label,
    value,
    goal,
    band,
    format: String,
  });
  it('says one word when the parts agree, with the band when within noise', () => {
    assert.equal(rowVerdict([part('a', 2, GE1), part('b', 3, GE1)]), 'met');
    assert.equal(rowVerdict([part('a', 0.99, GE1, { min: 0.9, max: 1.1 })]), 'within noise (A/A 0.90–1.10)');
  });
  it('names each part, worst first, when they differ', () => {
    const parts = [
      part('growth', 1.1, { op: '≤', value: 1.2 }),
      part('RSS', 250, { op: '<', value: 200 }),
      part('pass', undefined, { op: '<', value: 1000 }),
    ];
    assert.equal(rowVerdict(parts), 'not run: pass; missed: RSS; met: growth');
  });
});

describe('runLine', () => {
  it('is one run for one commit within hours', () => {
    const o = [
      { file: 'a.json', date: '2026-12-07T01:00:00Z', commit: 'abc1234' },
      { file: 'b.json', date: '2026-12-07T04:30:00Z', commit: 'abc1234' },
    ];
    assert.match(
      runLine(o, 0),
      /^One run: the 2 measured rows come from commit abc1234, 2026-12-07 01:00 to 2026-12-07 04:30 UTC/,
    );
    assert.match(runLine(o, 2), /2 rows not run\.$/);
  });
  it('is several runs for several commits, or one commit days apart', () => {
    const a = { file: 'a.json', date: '2026-11-28T10:00:00Z', commit: 'abc1234' };
    assert.match(
      runLine([a, { ...a, commit: 'def5678' }], 0),
      /^Several runs, not one: .*2 commits \(abc1234, def5678\)/,
    );
    assert.match(runLine([a, { ...a, date: '2026-12-07T10:00:00Z' }], 0), /^Several runs, not one: .*commit abc1234/);
  });
  it('says so when nothing was measured', () => {
    assert.equal(runLine([], 12), 'No figures yet: every row is not run.');
  });
});

describe('headings', () => {
  const doc =
    '# B\n\n## Scale: 5,000 endpoints\n\n## Scale\n\n## Unencrypted cluster networks (VXLAN, `truss.encrypt=false`)\n';
  it('finds a whole heading by its start, never a longer one', () => {
    assert.equal(findHeading(doc, '## Scale'), '## Scale');
    assert.equal(findHeading(doc, '## Scale: 5,000 endpoints'), '## Scale: 5,000 endpoints');
    assert.equal(findHeading(doc, '## Same host'), undefined);
  });
  it('slugs as GitHub (and test/docs-links.test.ts) do', () => {
    assert.equal(slug('## Scale: 5,000 endpoints'), 'scale-5000-endpoints');
    assert.equal(
      slug('## Unencrypted cluster networks (VXLAN, `truss.encrypt=false`)'),
      'unencrypted-cluster-networks-vxlan-trussencryptfalse',
    );
  });
});

/** Results as the current writers shape them (only the fields the summary reads). */
const CURRENT = {
  host: {
    date: '2026-12-08T01:00:00.000Z',
    environment: { commit: 'abc1234' },
    ratios: {
      tcp1Routed: { ratio: 1.08, aaMin: 0.95, aaMax: 1.06 },
      tcp4Routed: { ratio: 1.02, aaMin: 0.95, aaMax: 1.06 },
      rrRateRouted: { ratio: 1.2, aaMin: 0.97, aaMax: 1.04 },
    },
  },
  cluster: {
    date: '2026-12-08T00:00:00.000Z',
    environment: { commit: 'abc1234' },
    ratios: { trussRoutedOverBarePaired: 0.981 },
    vxlan: { date: '2026-12-08T00:30:00.000Z', commit: 'abc1234', ratios: { trussRoutedOverBarePaired: 0.9 } },
  },
  start: {
    date: '2026-12-08T02:00:00.000Z',
    environment: { commit: 'abc1234' },
    parameters: { burst: 50 },
    summary: {
      ratios: { p50: 0.97, lifecycle: 1.02, burst: 0.8 },
      aa: { p50: 1.01, lifecycle: 0.97, burst: 1.3 },
      plugin: { createPlusJoin: { median: 8.1, p99: 21 }, leavePlusDelete: { median: 4.2 } },
      bursts: { truss: { connect: { p99: 900 } }, bridge: { connect: { p99: 1000 } } },
    },
  },
  scale: {
    date: '2026-12-08T03:00:00.000Z',
    environment: { commit: 'abc1234' },
    parameters: { endpoints: 1000 },
    samples: { statusCliMs: [120, 140, 130, 500, 125] },
  },
  'scale-5k': {
    date: '2026-12-08T04:00:00.000Z',
    environment: { commit: 'abc1234' },
    parameters: { endpoints: 5000 },
    summary: { ratio: 1.1, memory: { rssMiB: 180 } },
    samples: { reconcilePassMs: [700, 900, 800] },
  },
  converge: {
    date: '2026-12-08T05:00:00.000Z',
    environment: { commit: 'abc1234' },
    parameters: { counts: [2, 5, 10, 20] },
    summary: { growth: 1.7, perCount: [{ aa: 0.95 }, { aa: 1.2 }] },
  },
};

describe('targetRows', () => {
  const byMeasure = (r: Parameters<typeof targetRows>[0]) =>
    Object.fromEntries(targetRows(r).map((row) => [row.measure, row]));

  it("has exactly issue 18's rows, in its order", () => {
    assert.deepEqual(
      targetRows({}).map((r) => [r.measure, r.target]),
      [
        ['same-host TCP throughput, routed ÷ Docker bridge (1 and 4 streams)', '≥ 1.05'],
        ['same-host request/response rate, routed ÷ Docker bridge', '≥ 1.10'],
        ['cross-host WireGuard, truss (routed) ÷ bare tunnel of the same implementation', '≥ 0.97'],
        ['cross-host VXLAN, truss (routed) ÷ bare VXLAN device', '≥ 0.95'],
        ['CreateEndpoint + Join p50 with the guard on', '< 10 ms (p99 < 20 ms)'],
        ['Leave + DeleteEndpoint p50', '< 10 ms'],
        ['whole `docker run --rm` lifecycle, truss ÷ bridge', '≤ 1.00'],
        ['`docker run` → first TCP connect, truss ÷ bridge, p50', '≤ 1.00'],
        ["burst of 50, p99 truss ÷ Docker's bridge", '≤ 1.0'],
        ['`truss status` at 1,000 endpoints', '< 150 ms'],
        ['5,000 endpoints: attach growth / RSS / full pass', '≤ 1.2 / < 200 MiB / < 1 s'],
        ['convergence, 20 hosts ÷ 2 hosts', '≤ 1.5'],
      ],
    );
  });

  it('reads every figure from the current shapes', () => {
    const rows = byMeasure(CURRENT);
    const values = (m: string) => rows[m]?.parts.map((p) => p.value);
    assert.deepEqual(values('same-host TCP throughput, routed ÷ Docker bridge (1 and 4 streams)'), [1.08, 1.02]);
    assert.deepEqual(values('cross-host VXLAN, truss (routed) ÷ bare VXLAN device'), [0.9]);
    assert.deepEqual(values('CreateEndpoint + Join p50 with the guard on'), [8.1, 21]);
    assert.deepEqual(values("burst of 50, p99 truss ÷ Docker's bridge"), [0.9]);
    assert.deepEqual(values('`truss status` at 1,000 endpoints'), [130]);
    assert.deepEqual(values('5,000 endpoints: attach growth / RSS / full pass'), [1.1, 180, 800]);
    assert.equal(rows['cross-host VXLAN, truss (routed) ÷ bare VXLAN device']?.origin.date, '2026-12-08T00:30:00.000Z');
  });

  it("judges start.json's ratios against its one A/A ratio, either way from 1", () => {
    const rows = byMeasure(CURRENT);
    const lifecycle = rows['whole `docker run --rm` lifecycle, truss ÷ bridge']?.parts[0];
    assert.deepEqual(lifecycle?.band, { min: 0.97, max: 1 / 0.97 });
    assert.equal(judge(lifecycle?.value, lifecycle!.goal, lifecycle?.band), 'within noise');
    const p50 = rows['`docker run` → first TCP connect, truss ÷ bridge, p50']?.parts[0];
    assert.equal(judge(1.02, p50!.goal, p50?.band), 'missed', '1.02 is outside an A/A of 1.01');
  });

  it('shows "not run" for a figure an older file lacks, and never reads a field that meant something else', () => {
    // host.json before the routed condition; start.json whose ratios.burst was burst p99 ÷ single p99
    const old = {
      host: { date: '2026-11-28T13:09:44.205Z', environment: { commit: '361b693' }, ratios: { tcp1: { ratio: 1 } } },
      start: {
        date: '2026-11-28T12:21:47.629Z',
        environment: { commit: '4e07054' },
        summary: {
          ratios: { p50: 0.976, burst: 19.242 },
          plugin: { createPlusJoin: { median: 17.4, p99: 28.7 } },
          bursts: { truss: { connect: { p99: 11045 } }, bridge: { connect: { p99: 11543 } } },
        },
      },
    };
    const text = renderSection(targetRows(old), '## Same host\n## Container start\n');
    assert.match(
      text,
      /\| same-host TCP throughput[^\n]*\| not run +\| ≥ 1\.05 +\| not run +\| not in host\.json \(2026-11-28 13:09, 361b693\) +\| \[Same host\]\(#same-host\) +\|/,
    );
    assert.match(text, /\| burst of 50[^\n]*\| 0\.957 /);
    assert.match(text, /\| Leave \+ DeleteEndpoint p50 +\| not run /);
    assert.match(
      text,
      /\| convergence, 20 hosts ÷ 2 hosts +\| not run +\| ≤ 1\.5 +\| not run +\| no converge\.json +\| — +\|/,
    );
    // host.json measured nothing the table asks for: only start.json's run counts
    assert.match(text, /One run: the 3 measured rows come from commit 4e07054, .* 9 rows not run\./);
  });

  it('renders verdicts, noise bands and a one-run line from one run', () => {
    const text = renderSection(targetRows(CURRENT), '');
    assert.match(text, /^## Targets \(issue 18\)\n/);
    assert.match(
      text,
      /One run: the 12 measured rows come from commit abc1234, 2026-12-08 00:00 to 2026-12-08 05:00 UTC/,
    );
    // 4 streams: 1.02 ÷ 1.05 = 0.971, inside host's A/A 0.95–1.06
    assert.match(
      text,
      /\| 1\.080 \/ 1\.020 +\| ≥ 1\.05 +\| within noise \(A\/A 0\.95–1\.06\): 4 streams; met: 1 stream \|/,
    );
    assert.match(text, /\| 0\.900 +\| ≥ 0\.95 +\| missed +\|/);
    assert.match(text, /\| 8\.1 ms \(p99 21\.0 ms\) +\| < 10 ms \(p99 < 20 ms\) +\| missed: p99; met: p50 +\|/);
    assert.match(text, /\| 1\.100 \/ 180 MiB \/ 0\.80 s +\| ≤ 1\.2 \/ < 200 MiB \/ < 1 s \| met +\|/);
    // 1.7 ÷ 1.5 = 1.13, inside the A/A 0.95–1.20 of converge's rounds
    assert.match(text, /\| 1\.700 +\| ≤ 1\.5 +\| within noise \(A\/A 0\.95–1\.20\) +\|/);
  });

  it('says when a file measured another count than the target names', () => {
    const c = { ...CURRENT, converge: { ...CURRENT.converge, parameters: { counts: [2, 3, 5] } } };
    assert.match(renderSection(targetRows(c), ''), /\| not comparable \(measured 5 ÷ 2 hosts\) +\|/);
  });
});

describe('loadText', () => {
  it('keeps the 1-minute load average, before → after', () => {
    assert.equal(loadText('7.82 13.16 13.04', '20.23 15.84 13.99'), '7.82 → 20.23');
    assert.equal(loadText('3.13 1.75 1.79', undefined), '3.13');
    assert.equal(loadText(undefined, '1.0 1.0 1.0'), undefined);
  });
});

describe('placeSection', () => {
  const page = '# Benchmarks\n\nIntro.\n\n## Port policy\n\nP.\n\n## Same host\n\nS.\n';
  const sec = '## Targets (issue 18)\n\nT.\n';
  it('puts the section right after the intro, and keeps it there when rewritten', () => {
    const once = placeSection(page, sec, 'top');
    assert.equal(
      once,
      '# Benchmarks\n\nIntro.\n\n## Targets (issue 18)\n\nT.\n\n## Port policy\n\nP.\n\n## Same host\n\nS.\n',
    );
    assert.equal(placeSection(once, '## Targets (issue 18)\n\nU.\n', 'top'), once.replace('T.', 'U.'));
  });
  it('finds a section by its whole heading line: written twice, it is there once', () => {
    const multi = '## Multi-host (WireGuard)\n\nM.\n';
    const once = placeSection(page, multi, 'own place');
    const twice = placeSection(once, multi.replace('M.', 'N.'), 'own place');
    assert.equal(twice, once.replace('M.', 'N.'));
    assert.equal(twice.split('## Multi-host').length, 2);
    assert.equal(placeSection(page, '## Same\n\nX.\n', 'own place').split('## Same').length, 3);
  });
  it('moves it to the top from anywhere else', () => {
    const atEnd = `${page}\n${sec}`;
    assert.equal(placeSection(atEnd, sec, 'top').trimEnd(), placeSection(page, sec, 'top').trimEnd());
  });
  it('replaces in place or appends, as before, by default', () => {
    assert.equal(placeSection(page, '## Port policy\n\nQ.\n', 'own place'), page.replace('P.', 'Q.'));
    assert.equal(placeSection(page, '## New\n\nN.\n', 'own place'), `${page}\n## New\n\nN.\n`);
  });
});
