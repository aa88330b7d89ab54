/**
 * docs/grafana-dashboard.json uses the real metric names: every truss_* name in a query is a
 * sample the registry exposes (a histogram's _bucket, _sum, _count included), with the cluster
 * metrics on; every panel queries through the dashboard's data source variable.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createTrussMetrics } from './prometheus.ts';

const DASHBOARD = new URL('../../docs/grafana-dashboard.json', import.meta.url);

interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly datasource?: { readonly uid: string };
  readonly targets?: readonly { readonly expr: string }[];
}

/** the sample names a scrape can show: each family, and a histogram's or summary's series */
async function sampleNames(): Promise<Set<string>> {
  const m = createTrussMetrics({ cluster: true, version: 'test' });
  await m.scrape(); // starts the process collectors
  const names = new Set<string>();
  for (const { name, type } of await m.registry.getMetricsAsJSON()) {
    names.add(name);
    if (String(type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${name}${s}`);
    if (String(type) === 'summary') for (const s of ['_sum', '_count']) names.add(`${name}${s}`);
  }
  return names;
}

describe('the Grafana dashboard (docs/grafana-dashboard.json)', () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    uid: string;
    panels: Panel[];
    templating: { list: { name: string; query: unknown }[] };
  };
  const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

  it('queries only metrics the registry has', async () => {
    const names = await sampleNames();
    const used = new Set(queries.flatMap((q) => q.expr.match(/\btruss_[a-z0-9_]+/g) ?? []));
    assert.ok(used.size >= 25, `the dashboard uses ${used.size} metrics`);
    const unknown = [...used].filter((n) => !names.has(n));
    assert.deepEqual(unknown, [], 'metric names in the dashboard that truss does not expose');
    const variable = JSON.stringify(dashboard.templating.list.find((v) => v.name === 'instance')?.query);
    for (const n of variable.match(/\btruss_[a-z0-9_]+/g) ?? []) assert.ok(names.has(n), n);
  });

  it('has panels with unique ids, each querying through the data source variable', () => {
    const ids = dashboard.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    assert.ok(queries.length >= 25);
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) {
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template
      assert.equal(p.datasource?.uid, '${datasource}', p.title);
      assert.ok((p.targets ?? []).length > 0, p.title);
    }
    for (const q of queries) assert.match(q.expr, /instance=~"\$instance"/, `${q.panel}: ${q.expr}`);
  });
});
