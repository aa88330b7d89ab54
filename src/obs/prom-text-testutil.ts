/**
 * A parser of the Prometheus text exposition format (version 0.0.4), for tests: the unit tests
 * of the registry and the e2e suite that scrapes a running truss read what a scraper would,
 * never grep the text. Strict about what it reads: a line it cannot parse is an error, every
 * sample must belong to a family declared by # HELP and # TYPE before it.
 * https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  /** the sample's own name (a histogram's has _bucket, _sum or _count) */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const HELP_RE = new RegExp(`^# HELP (${NAME}) (.*)$`);
const TYPE_RE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SAMPLE_RE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: -?[0-9]+)?$`);
const LABEL_RE = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;
const SUFFIXES: Readonly<Record<MetricType, readonly string[]>> = {
  counter: [''],
  gauge: [''],
  untyped: [''],
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
};

/** The families of an exposition, by name. Throws on the first line that does not fit. */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const help = new Map<string, string>();
  for (const [i, line] of text.split('\n').entries()) {
    const fail = (why: string): never => {
      throw new Error(`exposition line ${i + 1}: ${why}: ${JSON.stringify(line.slice(0, 200))}`);
    };
    if (line === '') continue;
    const h = HELP_RE.exec(line);
    if (h) {
      help.set(h[1] as string, unescapeHelp(h[2] as string));
      continue;
    }
    const t = TYPE_RE.exec(line);
    if (t) {
      const name = t[1] as string;
      if (families.has(name)) fail('a second # TYPE for one family');
      families.set(name, {
        name,
        type: t[2] as MetricType,
        help: help.get(name) ?? fail('# TYPE before its # HELP'),
        samples: [],
      });
      continue;
    }
    if (line.startsWith('#')) continue;
    const s = SAMPLE_RE.exec(line) ?? fail('not a sample');
    const name = s[1] as string;
    const family = familyOf(families, name) ?? fail('a sample of no declared family');
    const value = parseValue(s[3] as string) ?? fail('not a number');
    family.samples.push({ name, labels: parseLabels(s[2] ?? '', fail), value });
  }
  return families;
}

function familyOf(families: Map<string, Family>, sample: string): Family | undefined {
  for (const f of families.values()) {
    if (SUFFIXES[f.type].some((suffix) => `${f.name}${suffix}` === sample)) return f;
  }
  return undefined;
}

/** as Prometheus reads it (Go's ParseFloat: NaN and Inf in any case; prom-client writes `Nan`) */
function parseValue(text: string): number | undefined {
  const t = text.toLowerCase();
  if (t === '+inf' || t === 'inf') return Number.POSITIVE_INFINITY;
  if (t === '-inf') return Number.NEGATIVE_INFINITY;
  if (t === 'nan') return Number.NaN;
  const v = Number(text);
  return text.trim() === '' || Number.isNaN(v) ? undefined : v;
}

function parseLabels(text: string, fail: (why: string) => never): Record<string, string> {
  const out: Record<string, string> = {};
  LABEL_RE.lastIndex = 0;
  while (LABEL_RE.lastIndex < text.length) {
    const m = LABEL_RE.exec(text) ?? fail('malformed labels');
    const name = m[1] as string;
    if (name in out) fail(`label ${name} twice`);
    out[name] = (m[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    if (m[3] === '') break;
  }
  return out;
}

const unescapeHelp = (t: string): string => t.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));

/** The value of the one sample of `name` whose labels include `labels`; undefined when none, throws when several. */
export function sampleValue(
  families: Map<string, Family>,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined {
  const family = familyOf(families, name);
  const hits = (family?.samples ?? []).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (hits.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${hits.length} samples match`);
  return hits[0]?.value;
}

/** The sum of every sample of `name` whose labels include `labels` (0 when none). */
export function sampleSum(
  families: Map<string, Family>,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number {
  const family = familyOf(families, name);
  return (family?.samples ?? [])
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}
