/**
 * B7 in CI: FUZZ_RUNS (default 1,000) generated requests per route (fuzz.ts); the nightly-style
 * counts run in `npm run bench:soak -- --fuzz-runs N`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type FuzzBed, fuzzBed, fuzzRoute, ROUTES } from './fuzz.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 1000);

describe('B7: fuzzing every request schema', () => {
  let bed: FuzzBed;
  const crashes: unknown[] = [];
  const onCrash = (e: unknown) => crashes.push(e);
  before(async () => {
    process.on('unhandledRejection', onCrash);
    process.on('uncaughtException', onCrash);
    bed = await fuzzBed();
  });
  after(async () => {
    await bed.close();
    process.off('unhandledRejection', onCrash);
    process.off('uncaughtException', onCrash);
  });

  for (const route of Object.keys(ROUTES)) {
    it(`${route}: ${RUNS} cases, JSON replies, rejected = no state change`, async (t) => {
      const r = await fuzzRoute(bed, route, RUNS);
      t.diagnostic(`${r.accepted} accepted, ${r.rejected} rejected`);
      assert.deepEqual(crashes, [], 'no unhandled rejection or exception');
    });
  }
});
