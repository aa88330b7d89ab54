import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkoutCommit } from './version.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);
const base = mkdtempSync(join(tmpdir(), 'truss-version-'));
after(() => rmSync(base, { recursive: true, force: true }));

/** A directory with these files (relative path → content). */
function tree(name: string, files: Record<string, string>): string {
  const root = join(base, name);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  mkdirSync(root, { recursive: true });
  return root;
}

describe("checkoutCommit: HEAD's commit as git rev-parse HEAD finds it, else the COMMIT stamp", () => {
  it('a branch whose ref is loose, or packed', () => {
    assert.equal(
      checkoutCommit(tree('loose', { '.git/HEAD': 'ref: refs/heads/main\n', '.git/refs/heads/main': `${A}\n` })),
      A,
    );
    const packed = `# pack-refs with: peeled fully-peeled sorted\n${B} refs/heads/dev\n${C} refs/heads/main\n`;
    assert.equal(
      checkoutCommit(tree('packed', { '.git/HEAD': 'ref: refs/heads/main\n', '.git/packed-refs': packed })),
      C,
    );
  });
  it('a detached HEAD; a worktree (gitdir: file, commondir)', () => {
    assert.equal(checkoutCommit(tree('detached', { '.git/HEAD': `${B}\n` })), B);
    tree('main', { '.git/refs/heads/wt': `${C}\n` });
    const wt = tree('wt', { '.git': `gitdir: ${join(base, 'main/.git/worktrees/wt')}\n` });
    tree('main/.git/worktrees/wt', { HEAD: 'ref: refs/heads/wt\n', commondir: '../..\n' });
    assert.equal(checkoutCommit(wt), C);
  });
  it('no .git: the COMMIT stamp; nothing usable: undefined', () => {
    assert.equal(checkoutCommit(tree('stamped', { COMMIT: `${A}\n` })), A);
    assert.equal(checkoutCommit(tree('bare', { 'package.json': '{}' })), undefined);
    assert.equal(checkoutCommit(tree('junk', { COMMIT: 'not a commit\n' })), undefined);
    assert.equal(checkoutCommit(tree('noref', { '.git/HEAD': 'ref: refs/heads/none\n' })), undefined);
  });
});
