import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { afterEach, describe, it } from 'node:test';
import { configureFaults, FAULT_CODE, FAULT_POINTS, fault, faultsArmed, parseFaults, withFaults } from './fault.ts';

afterEach(() => configureFaults(undefined));

describe('TRUSS_FAULT', () => {
  it('is off without the variable: no point fires', () => {
    assert.equal(configureFaults(undefined).size, 0);
    assert.equal(faultsArmed(), false);
    for (const p of FAULT_POINTS) fault(p);
  });

  it('parses point:action lists, kernel:before-/after-<method> included', () => {
    const m = parseFaults('join:after-intent:crash, kernel:after-ensureVeth:error');
    assert.deepEqual(
      [...m],
      [
        ['join:after-intent', 'crash'],
        ['kernel:after-ensureVeth', 'error'],
      ],
    );
    assert.ok(FAULT_POINTS.length >= 10);
  });

  it('refuses unknown points and actions, naming them', () => {
    assert.throws(() => parseFaults('join:sometime:crash'), /unknown injection point "join:sometime"/);
    assert.throws(() => parseFaults('join:after-intent:explode'), /action "explode" .* is not crash or error/);
    assert.throws(() => parseFaults('crash'), /unknown injection point/);
  });

  it('error throws a TrussError with the stable code at that point only', () => {
    configureFaults('create-endpoint:after-intent:error');
    fault('join:after-intent');
    assert.throws(
      () => fault('create-endpoint:after-intent'),
      (e: Error & { code?: string }) => e.code === FAULT_CODE && /create-endpoint:after-intent/.test(e.message),
    );
  });

  it('withFaults wraps async methods before and after, and leaves close() alone', async () => {
    const calls: string[] = [];
    const dp = {
      async ensureVeth(n: string) {
        calls.push(n);
      },
      close() {
        calls.push('close');
        return 'closed';
      },
    };
    configureFaults('kernel:before-ensureVeth:error');
    await assert.rejects(withFaults(dp).ensureVeth('a'), { code: FAULT_CODE });
    assert.deepEqual(calls, []); // before: the kernel was not touched
    configureFaults('kernel:after-ensureVeth:error');
    await assert.rejects(withFaults(dp).ensureVeth('b'), { code: FAULT_CODE });
    assert.deepEqual(calls, ['b']); // after: it was
    assert.equal(withFaults(dp).close(), 'closed');
  });

  it('crash kills the process with SIGKILL', () => {
    const code = `import { configureFaults, fault } from ${JSON.stringify(new URL('./fault.ts', import.meta.url).href)};
configureFaults('join:before-response:crash'); fault('join:before-response'); console.log('survived');`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
    assert.equal(r.signal, 'SIGKILL');
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /TRUSS_FAULT join:before-response:crash/);
  });
});
