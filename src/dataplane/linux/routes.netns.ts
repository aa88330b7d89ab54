/**
 * Kernel tests (root): truss's routes (routes.ts) in a throwaway namespace with a veth pair and
 * two foreign routes: many routes in one batch, idempotency, replace on change, refusal of a
 * destination a foreign route holds, removal touching only ours.
 * Run: node --test --test-concurrency=1 src/dataplane/linux/routes.netns.ts
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { createExec, type Exec } from './exec.ts';
import { createScratch, listTestNamespaces, type TestNs } from './netns-testutil.ts';
import { ensureRoutes, listRoutes, removeRoute, TRUSS_ROUTE_PROTO } from './routes.ts';

const ms = (t: number): string => `${t.toFixed(1)} ms`;

describe('truss routes (kernel)', { timeout: 60_000 }, () => {
  let h: TestNs;
  let exec: Exec;
  const scratch = createScratch();
  before(async () => {
    h = await scratch.ns('routes');
    exec = createExec({ netns: h.path });
    await h.must(
      ['ip', '-batch', '-'],
      [
        'link add rt0 type veth peer name rt1',
        'link set rt0 up',
        'link set rt1 up',
        'addr add fd00:300::1/64 dev rt0 nodad',
        // a foreign route to a destination truss will want, and one beside ours
        'route add 198.19.5.0/24 dev rt0 proto static',
        'route add 198.19.6.0/24 dev rt0 proto boot',
        '',
      ].join('\n'),
    );
  });
  const show = async (): Promise<{ dst: string; protocol?: string; metrics?: { mtu?: number }[] }[]> => [
    ...(await h.ipJson<{ dst: string }[]>(['route', 'show'])),
    ...(await h.ipJson<{ dst: string }[]>(['-6', 'route', 'show'])),
  ];

  it('programs many routes in one batch, lists only ours, and a second ensure writes nothing', async (t) => {
    const want = Array.from({ length: 200 }, (_, i) => ({ dst: `198.18.${i}.0/24`, dev: 'rt0', mtu: 1440 }));
    want.push({ dst: 'fd00:211::/64', dev: 'rt0', mtu: 1408 });
    let t0 = performance.now();
    const lines = await ensureRoutes(exec, want);
    t.diagnostic(`ensureRoutes 201 routes: ${ms(performance.now() - t0)}`);
    assert.equal(lines.length, 201);
    const ours = await listRoutes(exec);
    assert.equal(ours.length, 201);
    assert.ok(!ours.some((r) => r.dst.startsWith('198.19.')), 'foreign routes are not listed');
    t0 = performance.now();
    assert.deepEqual(await ensureRoutes(exec, want), []);
    t.diagnostic(`ensureRoutes 201 routes, no-op: ${ms(performance.now() - t0)}`);
    const all = await show();
    assert.equal(all.filter((r) => r.protocol === String(TRUSS_ROUTE_PROTO)).length, 201);
  });

  it('replaces on change instead of duplicating', async () => {
    await ensureRoutes(exec, [
      { dst: '198.18.7.0/24', dev: 'rt1' },
      { dst: 'fd00:211::/64', dev: 'rt0', mtu: 1280 },
    ]);
    const all = await show();
    const seven = all.filter((r) => r.dst === '198.18.7.0/24');
    assert.equal(seven.length, 1);
    assert.equal(seven[0]?.metrics, undefined);
    const six = all.filter((r) => r.dst === 'fd00:211::/64');
    assert.equal(six.length, 1);
    assert.equal(six[0]?.metrics?.[0]?.mtu, 1280);
  });

  it("refuses a destination held by a foreign route, still programs the rest, and never deletes another's route", async () => {
    await assert.rejects(
      ensureRoutes(exec, [
        { dst: '198.19.5.0/24', dev: 'rt0' },
        { dst: '198.19.7.0/24', dev: 'rt0' },
      ]),
      { code: 'TRUSS_ERR_KERNEL_OBJECT_FOREIGN', message: /198\.19\.5\.0\/24/ },
    );
    const all = await show();
    assert.equal(all.find((r) => r.dst === '198.19.5.0/24')?.protocol, 'static', 'foreign route untouched');
    assert.equal(all.find((r) => r.dst === '198.19.7.0/24')?.protocol, String(TRUSS_ROUTE_PROTO));
    await removeRoute(exec, '198.19.6.0/24');
    assert.ok(
      (await show()).some((r) => r.dst === '198.19.6.0/24'),
      'a foreign route survives removeRoute',
    );
  });

  it('removeRoute deletes ours; gone is success', async () => {
    for (const r of await listRoutes(exec)) await removeRoute(exec, r.dst);
    assert.deepEqual(await listRoutes(exec), []);
    await removeRoute(exec, '198.18.1.0/24');
    assert.equal((await show()).filter((r) => r.dst.startsWith('198.19.')).length, 2);
  });

  it('leaves no test namespace behind', async () => {
    await h.remove();
    const left = await listTestNamespaces();
    assert.ok(!left.includes(h.name));
  });
});
