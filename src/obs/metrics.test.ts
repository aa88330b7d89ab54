import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMetrics } from './metrics.ts';

describe('process metrics (admin GET /v1/metrics)', () => {
  it('reports memory and an event-loop delay window that reset() restarts', async () => {
    const m = createMetrics(5);
    try {
      await new Promise((r) => setTimeout(r, 20));
      // why: the deadline is taken after the wait, which a loaded machine may stretch past 40 ms
      const busyUntil = performance.now() + 40;
      while (performance.now() < busyUntil) {
        // block the loop
      }
      await new Promise((r) => setTimeout(r, 20));
      const a = m.read();
      assert.ok(a.memory.rssBytes > 0 && a.memory.heapUsedBytes > 0);
      assert.ok(a.eventLoopDelay.max >= 10, `max ${a.eventLoopDelay.max} ms after blocking ~40 ms`);
      assert.ok(a.eventLoopDelay.p50 <= a.eventLoopDelay.p99 && a.eventLoopDelay.p99 <= a.eventLoopDelay.max);
      m.reset();
      const b = m.read();
      assert.ok(b.eventLoopDelay.sinceMs < a.eventLoopDelay.sinceMs);
      assert.equal(b.eventLoopDelay.max, 0);
    } finally {
      m.stop();
    }
  });
});
