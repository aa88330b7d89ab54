import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eui64LinkLocal } from './link-local.ts';

describe('eui64LinkLocal', () => {
  it('is the kernel EUI-64 link-local of the MAC (universal/local bit flipped, ff:fe inserted)', () => {
    // what `ip -6 addr` shows for a veth with this MAC and addr_gen_mode 0
    assert.equal(eui64LinkLocal('02:5e:c6:12:3d:02'), 'fe80::5e:c6ff:fe12:3d02');
    assert.equal(eui64LinkLocal('00:00:00:00:00:00'), 'fe80::200:ff:fe00:0');
    assert.equal(eui64LinkLocal('AA:BB:CC:DD:EE:FF'), 'fe80::a8bb:ccff:fedd:eeff');
  });

  it('refuses malformed MACs', () => {
    for (const m of ['', '02:5e:c6:12:3d', '02-5e-c6-12-3d-02', '02:5e:c6:12:3d:0g']) {
      assert.equal(eui64LinkLocal(m), undefined, m);
    }
  });
});
