import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { joinScript, locateErrors, NftSession } from './nft-session.ts';

describe('joinScript', () => {
  it('joins one-line commands with "; " and remembers where each line starts', () => {
    const j = joinScript('add set bridge t a { type ifname; }\n\ndelete element bridge t a { "x" }\n');
    assert.equal(j?.line, 'add set bridge t a { type ifname; }; delete element bridge t a { "x" }');
    assert.deepEqual(j?.starts, [0, 37, 37, 72]);
  });
  it('refuses what cannot be one line: a block over lines, a comment, nothing', () => {
    assert.equal(joinScript('table bridge t {\n\tset a { type ifname; }\n}\n'), undefined);
    assert.equal(joinScript('add table bridge t # a comment\n'), undefined);
    assert.equal(joinScript('\n\n'), undefined);
    assert.equal(joinScript('add table bridge t }\n{\n'), undefined);
  });
});

describe('locateErrors', () => {
  it("rewrites nft -i's error block to nft -f -'s /dev/stdin:<line>:<cols> form", () => {
    const j = joinScript('add table bridge t\nadd element bridge t s { "x" }\n');
    const col = (j?.line.indexOf('s {') ?? 0) as number;
    const stderr = `Error: No such file or directory\n${j?.line}\n${' '.repeat(col)}^\n`;
    const out = locateErrors(stderr, j?.starts ?? []);
    assert.match(out, /^\/dev\/stdin:2:22-22: Error: No such file or directory\n/);
  });
  it('leaves other text alone', () => assert.equal(locateErrors('something\n', [0]), 'something\n'));
});

describe('NftSession with a stand-in process', () => {
  // `cat` never prints a sentinel block: every transaction waits for its timeout or the process's end
  it('a transaction that outlives its timeout fails as timed out; the next starts a new process', async () => {
    const s = new NftSession(() => spawn('cat', [], { stdio: ['pipe', 'pipe', 'pipe'] }) as never);
    const r = await s.run('add table bridge t', 100);
    assert.equal(r.exitCode, 137);
    assert.equal(r.timedOut, true);
    const r2 = await s.run('add table bridge t', 50);
    assert.equal(r2.exitCode, 137);
    assert.equal(s.started, 2);
    s.close();
  });
  it('a process that ends mid-transaction fails that transaction (exit 128)', async () => {
    const s = new NftSession(() => spawn('sh', ['-c', 'read x; exit 3'], { stdio: ['pipe', 'pipe', 'pipe'] }) as never);
    const r = await s.run('add table bridge t', 5000);
    assert.equal(r.exitCode, 128);
    s.close();
  });
  it("a stand-in that answers with the sentinel block: ok, and errors before it are the transaction's", async () => {
    // prints an error for lines containing "bad", then the parse error nft gives for the sentinel
    const script =
      'while read -r l; do case "$l" in truss-sync-*) printf "Error: syntax error\\n%s\\n            ^\\n" "$l" >&2;; *bad*) printf "Error: Could not process rule: No such file or directory\\n%s\\n^^^\\n" "$l" >&2;; esac; done';
    const s = new NftSession(() => spawn('sh', ['-c', script], { stdio: ['pipe', 'pipe', 'pipe'] }) as never);
    const [a, b, c] = await Promise.all([s.run('good', 5000), s.run('bad', 5000), s.run('good again', 5000)]);
    assert.equal(a.exitCode, 0);
    assert.equal(b.exitCode, 1);
    assert.match(b.stderr, /^Error: Could not process rule/);
    assert.equal(c.exitCode, 0);
    assert.equal(c.stderr, '');
    s.close();
  });
});
