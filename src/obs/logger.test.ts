/**
 * The logger never takes the daemon down (security review M2, L3): a log reader that goes
 * away (EPIPE) stops logging instead of crashing, and deep values are cut, not overflowed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MAX_JSON_DEPTH } from '../core/safe-json.ts';
import { createLogger } from './logger.ts';

const LOGGER = fileURLToPath(new URL('./logger.ts', import.meta.url));

describe('logger', () => {
  it('survives EPIPE on stdout and stderr when the reader goes away (M2)', { timeout: 20_000 }, async () => {
    // the child logs through the default sink, then writes to stderr too, after both readers closed
    const script = `
      import { createLogger } from ${JSON.stringify(LOGGER)};
      const log = createLogger('info');
      log.info('first');
      await new Promise((r) => setTimeout(r, 300));
      for (let i = 0; i < 2000; i++) { log.info('line', { i, pad: 'x'.repeat(200) }); process.stderr.write('e'.repeat(200)); }
      await new Promise((r) => setTimeout(r, 200));
      process.exitCode = 7;`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.stdout.destroy(); // the reader goes away: the child's next writes get EPIPE
    child.stderr.destroy();
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    assert.equal(code, 7);
  });

  it('cuts values nested deeper than the cap instead of throwing (L3)', () => {
    const lines: string[] = [];
    const log = createLogger('debug', (l) => lines.push(l));
    let v: unknown = [];
    for (let i = 0; i < 100_000; i++) v = [v];
    log.debug('rpc request', { body: v });
    assert.equal(lines.length, 1);
    const entry = JSON.parse(lines[0] as string) as { body: unknown };
    let depth = 0;
    let x = entry.body;
    while (Array.isArray(x)) {
      x = x[0];
      depth++;
    }
    assert.ok(depth <= MAX_JSON_DEPTH, String(depth));
    assert.equal(typeof x, 'string');
  });
});

describe('logger: text format (--log-format text)', () => {
  it('writes one human line per entry: time, level, message, fields (redacted as in JSON)', () => {
    const lines: string[] = [];
    const log = createLogger('info', (l) => lines.push(l), { name: 'truss' }, 'text').child({ component: 'rpc' });
    log.debug('hidden');
    log.info('endpoint joined', { nid: 'abc', note: 'two words', n: 3, privateKey: 'k', nested: { a: 1 } });
    assert.equal(lines.length, 1);
    assert.match(
      lines[0] ?? '',
      /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO {2}endpoint joined name=truss component=rpc nid=abc note="two words" n=3 privateKey=\[redacted\] nested=\{"a":1\}\n$/,
    );
  });
  it('JSON stays the default', () => {
    const lines: string[] = [];
    createLogger('info', (l) => lines.push(l)).info('x', { a: 1 });
    assert.deepEqual(Object.keys(JSON.parse(lines[0] ?? '') as object), ['level', 'time', 'msg', 'a']);
  });
});
