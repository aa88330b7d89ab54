import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DOCTOR_USAGE, doctorCommand } from './doctor.ts';

describe('truss doctor (arguments)', () => {
  it('--help and -h print the usage and exit 0 without probing', async () => {
    for (const flag of ['--help', '-h']) {
      let out = '';
      const code = await doctorCommand([flag], { env: {}, stdout: (t) => (out += t) });
      assert.equal(code, 0);
      assert.equal(out, DOCTOR_USAGE);
      assert.match(out, /^usage: truss doctor \[--json\]/);
    }
  });

  it('an unknown flag is refused with its name', async () => {
    await assert.rejects(doctorCommand(['--bogus'], { env: {}, stdout: () => {} }), /Unknown option '--bogus'/);
  });
});
