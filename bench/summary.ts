/**
 * Issue 18's targets at a glance (not part of the test suite): `npm run bench:summary`, the last
 * step of `npm run bench`. Measures nothing: it reads the bench/results/*.json the benchmarks
 * before it wrote (host, start, cluster with its vxlan member, scale, scale-5k, converge), judges
 * each of the issue's targets (bench/summary-rows.ts, summary-judge.ts) and writes the
 * "Targets (issue 18)" section right after the intro of docs/benchmarks.md, with the run each
 * figure came from, so that a table filled from several runs says so. Prints the section too.
 * Flags: --print (print only, write nothing).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../e2e/harness/paths.ts';
import { writeDocSection } from './lib.ts';
import { type Results, renderSection, targetRows } from './summary-rows.ts';

const { values: flags } = parseArgs({ options: { print: { type: 'boolean', default: false } }, strict: true });

const FILES = ['host', 'start', 'cluster', 'scale', 'scale-5k', 'converge'] as const;

/** Each results file parsed; a missing one is left out, an unreadable one too (with a warning). */
function readResults(): Results {
  const out: Record<string, unknown> = {};
  for (const name of FILES) {
    const file = join(REPO_ROOT, 'bench', 'results', `${name}.json`);
    if (!existsSync(file)) continue;
    try {
      out[name] = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      process.stderr.write(`bench/summary: ${file} unreadable, its rows show "not run": ${(err as Error).message}\n`);
    }
  }
  return out;
}

const doc = join(REPO_ROOT, 'docs', 'benchmarks.md');
const section = renderSection(targetRows(readResults()), existsSync(doc) ? readFileSync(doc, 'utf8') : '');
process.stdout.write(`${section}\n`);
if (flags.print !== true) {
  writeDocSection(section, 'top');
  process.stdout.write('wrote docs/benchmarks.md (Targets (issue 18))\n');
}
