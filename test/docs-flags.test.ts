/**
 * docs/reference.md's table of `truss serve` flags agrees with the one table in src/config.ts
 * (SERVE_OPTIONS, which `truss serve --help` and the completion are made from): the same flags,
 * each with its env twin, and the default the help shows.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { SERVE_OPTIONS } from '../src/config.ts';

const REFERENCE = new URL('../docs/reference.md', import.meta.url);

interface DocRow {
  readonly flag: string;
  readonly env: string;
  readonly defaultCell: string;
}

/** The rows of the table under "## `truss serve`", one per flag (a row may name several). */
function documentedFlags(): DocRow[] {
  const text = readFileSync(REFERENCE, 'utf8');
  const section = text.slice(
    text.indexOf('## `truss serve`'),
    text.indexOf('\n## ', text.indexOf('## `truss serve`') + 1),
  );
  const rows: DocRow[] = [];
  for (const line of section.split('\n')) {
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    if (cells.length < 4 || !cells[0]?.includes('`--')) continue;
    const flags = [...(cells[0] ?? '').matchAll(/`--([a-z-]+)/g)].map((m) => m[1] ?? '');
    const envs = [...(cells[1] ?? '').matchAll(/`(TRUSS_[A-Z_]+)`/g)].map((m) => m[1] ?? '');
    assert.equal(envs.length, flags.length, `one env twin per flag in: ${line}`);
    flags.forEach((flag, i) => {
      rows.push({ flag, env: envs[i] ?? '', defaultCell: (cells[2] ?? '').replaceAll('`', '') });
    });
  }
  return rows;
}

test("docs/reference.md lists serve's flags as config.ts's table has them", () => {
  const rows = documentedFlags();
  assert.deepEqual(rows.map((r) => r.flag).sort(), Object.keys(SERVE_OPTIONS).sort());
  for (const r of rows) {
    const o = SERVE_OPTIONS[r.flag as keyof typeof SERVE_OPTIONS];
    assert.equal(r.env, o.env, `--${r.flag}'s env twin`);
    if (o.defaultText)
      assert.ok(r.defaultCell.includes(o.defaultText), `--${r.flag}: default ${o.defaultText} in docs`);
    else assert.equal(r.defaultCell, '', `--${r.flag} has no default`);
  }
});
