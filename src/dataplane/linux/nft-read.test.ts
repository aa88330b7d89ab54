import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Exec } from './exec.ts';
import { readCounters, tableSection } from './nft-read.ts';

// `nft list counters` (nft 1.0.6): every table with named counters, one after another
const LISTING = `table bridge truss_guard {
	counter drop_mac {
		packets 2 bytes 84
	}
}
table inet truss_policy {
	counter drop_mac {
		packets 7 bytes 700
	}
	counter ep_0123456789ab {
		packets 3 bytes 180
	}
}
`;

/** An Exec whose `nft` prints LISTING after `ms`, counting its runs. */
function fakeNft(ms = 5): { exec: Exec; runs: () => number } {
  let n = 0;
  const exec: Exec = {
    which: (bin) => `/usr/sbin/${bin}`,
    async run(bin, args, opts) {
      assert.deepEqual([bin, ...args, opts?.stdin], ['nft', '-f', '-', 'list counters\n']);
      n++;
      await new Promise((r) => setTimeout(r, ms));
      return { stdout: LISTING, stderr: '' };
    },
  };
  return { exec, runs: () => n };
}

describe('nft-read: named counters', () => {
  it("takes one table's part of a listing, so equal counter names in another table do not mix", () => {
    assert.equal(tableSection(LISTING, 'bridge', 'truss_guard')?.split('\n').length, 5);
    assert.match(tableSection(LISTING, 'inet', 'truss_policy') ?? '', /packets 7[\s\S]*ep_0123456789ab/);
    assert.equal(tableSection(LISTING, 'inet', 'truss'), undefined, 'no such table (or none of its counters)');
  });

  it('reads that ask at the same time share one nft; a read after it ended starts another', async () => {
    const { exec, runs } = fakeNft();
    const all = (name: string) => name;
    const [guard, policy] = await Promise.all([
      readCounters(exec, 'bridge', 'truss_guard', all),
      readCounters(exec, 'inet', 'truss_policy', all),
    ]);
    assert.deepEqual(guard, { drop_mac: { packets: 2, bytes: 84 } });
    assert.deepEqual(Object.keys(policy), ['drop_mac', 'ep_0123456789ab']);
    assert.equal(runs(), 1);
    assert.deepEqual(await readCounters(exec, 'inet', 'nope', all), {});
    assert.equal(runs(), 2);
  });
});
