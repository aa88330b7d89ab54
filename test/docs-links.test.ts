/**
 * Every relative link in README.md and docs/*.md resolves: the file exists and, for `#anchor`,
 * the target Markdown file has a heading with that GitHub slug. Links inside code (fenced blocks,
 * `spans`) and to other sites are not checked.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

const ROOT = resolve(import.meta.dirname, '..');
const PAGES = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs')).flatMap((f) => (f.endsWith('.md') ? [`docs/${f}`] : [])),
];

/** The page without fenced code blocks and code spans (their brackets are not links). */
function prose(text: string): string {
  return text.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
}

/** GitHub's heading anchor: lower case, punctuation dropped, each space a hyphen; repeats get -1, -2... */
function slugs(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of text.replace(/^```[\s\S]*?^```/gm, '').matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = (m[1] as string)
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

describe('documentation links', () => {
  it('computes GitHub slugs', () => {
    assert.deepEqual(
      [...slugs('# A\n## Checking a host: `truss doctor`\n### `truss status --json`\n## A\n```\n# not\n```\n')],
      ['a', 'checking-a-host-truss-doctor', 'truss-status---json', 'a-1'],
    );
  });

  for (const page of PAGES) {
    it(`${page}: every relative link and #anchor resolves`, () => {
      const broken: string[] = [];
      for (const m of prose(readFileSync(join(ROOT, page), 'utf8')).matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        const link = m[1] as string;
        if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue; // https:, mailto:, file:
        const [path, anchor] = link.split('#', 2) as [string, string | undefined];
        const target = path === '' ? join(ROOT, page) : resolve(ROOT, dirname(page), decodeURI(path));
        if (!existsSync(target)) {
          broken.push(`${link}: no file ${relative(ROOT, target)}`);
          continue;
        }
        if (anchor === undefined || !target.endsWith('.md') || statSync(target).isDirectory()) continue;
        if (!slugs(readFileSync(target, 'utf8')).has(anchor)) broken.push(`${link}: no heading #${anchor}`);
      }
      assert.deepEqual(broken, []);
    });
  }
});
