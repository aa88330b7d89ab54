/**
 * EtcdStore against real etcd servers (etcd-testutil.ts): the Store contract every store passes,
 * then what only etcd does: leases that come back, watches that resume and relist, failing fast
 * while etcd is down or black-holed, TLS with client certificates.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { isTrussError } from '../core/errors.ts';
import { createLogger, type Logger, silentLogger } from '../obs/logger.ts';
import { type EtcdStore, type EtcdStoreOptions, openEtcdStore, type WatchEvent, type WatchHandlers } from './etcd.ts';
import {
  type EtcdServer,
  type EtcdTlsFiles,
  makeEtcdTls,
  runningEtcdPids,
  startEtcd,
  startTcpProxy,
  type TcpProxy,
} from './etcd-testutil.ts';
import { storeContract } from './store.contract.ts';
import type { KeyValue } from './store.ts';

/** Set TRUSS_TEST_ETCD_LOG=1 to see the store's own log lines on stderr. */
const log: Logger = process.env.TRUSS_TEST_ETCD_LOG
  ? createLogger('debug', (l) => process.stderr.write(l))
  : silentLogger;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<number> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
  return Date.now() - start;
}

/** Runs `p` and returns how long it took to reject, with the error. */
async function timeRejection(p: Promise<unknown>): Promise<{ ms: number; error: Error & { code?: string } }> {
  const start = Date.now();
  try {
    await p;
  } catch (e) {
    return { ms: Date.now() - start, error: e as Error & { code?: string } };
  }
  throw new Error('expected a rejection');
}

// ---- servers, clients and stores are all closed by the root after(), even when a test fails ----

const servers: EtcdServer[] = [];
const stores: EtcdStore[] = [];
const closers: (() => Promise<unknown> | unknown)[] = [];
let shared: EtcdServer;
let prefixes = 0;

before(async () => {
  shared = await startEtcd();
  servers.push(shared);
});

after(async () => {
  for (const s of stores) await s.close();
  for (const c of closers) await c();
  for (const s of servers) await s.stop();
  assert.deepEqual(runningEtcdPids(), [], 'no etcd left running');
});

async function open(opts: Partial<EtcdStoreOptions> & { server?: EtcdServer } = {}): Promise<EtcdStore> {
  const { server = shared, ...rest } = opts;
  const store = await openEtcdStore({ endpoints: [server.endpoint], prefix: `/t${++prefixes}`, log, ...rest });
  stores.push(store);
  return store;
}

function rawClient(endpoint: string): Etcd3 {
  const client = new Etcd3({ hosts: [endpoint] });
  closers.push(() => client.close());
  return client;
}

/** The lease id a key is attached to ('0' = none), read directly from etcd. */
async function leaseOf(raw: Etcd3, key: string): Promise<string | undefined> {
  const res = await raw.kv.range({ key: Buffer.from(key) });
  return res.kvs[0]?.lease;
}

/** A watch handler that records everything it is told. */
function recorder(): WatchHandlers & {
  events: WatchEvent[];
  resyncs: { items: readonly KeyValue[]; revision: number }[];
  statuses: boolean[];
  revisions: number[];
} {
  const r = {
    events: [] as WatchEvent[],
    resyncs: [] as { items: readonly KeyValue[]; revision: number }[],
    statuses: [] as boolean[],
    revisions: [] as number[],
    onEvents(events: readonly WatchEvent[], revision: number) {
      r.events.push(...events);
      r.revisions.push(revision);
    },
    onResync(items: readonly KeyValue[], revision: number) {
      r.resyncs.push({ items, revision });
    },
    onStatus(s: { connected: boolean }) {
      r.statuses.push(s.connected);
    },
  };
  return r;
}

const put = (key: string, value: string) => ({ type: 'put' as const, key, value });
const del = (key: string) => ({ type: 'delete' as const, key });

// ---------- the contract every store passes ----------

storeContract('etcd', async () => {
  const store = await openEtcdStore({ endpoints: [shared.endpoint], prefix: `/contract${++prefixes}`, log });
  return { store, cleanup: () => store.close() };
});

// ---------- etcd only ----------

describe('EtcdStore', () => {
  it('fails fast, naming the endpoint, when nothing answers (refused and black-holed)', async () => {
    const gone = await startEtcd();
    await gone.stop(); // its port is now closed
    const refused = await timeRejection(openEtcdStore({ endpoints: [gone.endpoint], log, dialTimeoutMs: 1000 }));
    assert.equal(refused.error.code, 'TRUSS_ERR_STORE_UNAVAILABLE');
    assert.ok(isTrussError(refused.error) && refused.error.kind === 'unavailable');
    assert.match(
      refused.error.message,
      new RegExp(`^etcd at ${gone.endpoint} is unavailable: no answer within 1000 ms`),
    );
    assert.ok(refused.ms <= 1500, `refused after ${refused.ms} ms`);

    const hole = await startTcpProxy(shared.endpoint);
    closers.push(() => hole.close());
    hole.blackhole();
    const holed = await timeRejection(openEtcdStore({ endpoints: [hole.endpoint], log, dialTimeoutMs: 1500 }));
    assert.match(holed.error.message, new RegExp(`^etcd at ${hole.endpoint} is unavailable: no answer within 1500 ms`));
    assert.ok(holed.ms <= 2000, `black hole noticed after ${holed.ms} ms`);
  });

  it('puts keys under a lease; revoke deletes them, and so does expiry when keepalives stop', async () => {
    const raw = rawClient(shared.endpoint);
    const store = await open({ prefix: '' });
    const lease = await store.grantLease(2);
    await lease.put('/lease-a/one', '1');
    await lease.put('/lease-a/two', '2');
    assert.equal(await leaseOf(raw, '/lease-a/one'), lease.id);
    assert.deepEqual(
      [...lease.leaseKeys()],
      [
        ['/lease-a/one', '1'],
        ['/lease-a/two', '2'],
      ],
    );
    await lease.put('/lease-a/three', '3');
    await lease.delete('/lease-a/three');
    assert.equal(await store.get('/lease-a/three'), undefined);
    assert.equal(lease.leaseKeys().has('/lease-a/three'), false);
    await lease.revoke();
    assert.equal(lease.state, 'revoked');
    assert.deepEqual((await store.list('/lease-a/')).items, []);
    await assert.rejects(lease.put('/lease-a/three', '3'), { code: 'TRUSS_ERR_STORE_UNAVAILABLE' });

    const other = await open({ prefix: '' });
    const expiring = await other.grantLease(2);
    await expiring.put('/lease-b/k', 'v');
    await sleep(2500); // beyond the TTL: keepalives work
    assert.equal((await store.get('/lease-b/k'))?.value, 'v');
    await other.close(); // keepalives stop, no revoke
    const gone = await waitFor('the key to expire', async () => (await store.get('/lease-b/k')) === undefined, 5000);
    assert.ok(gone <= 3500, `expired ${gone} ms after close`);
  });

  it('re-grants a lease etcd no longer knows and puts its keys back', async () => {
    const raw = rawClient(shared.endpoint);
    const store = await open({ prefix: '' });
    const lease = await store.grantLease(3);
    const lost: string[] = [];
    const restored: string[] = [];
    lease.onLost((reason) => lost.push(reason));
    lease.onRestored((id) => restored.push(id));
    await lease.put('/presence/node-a', '{"name":"node-a"}');
    const first = lease.id;
    await raw.leaseClient.leaseRevoke({ ID: first }); // someone else (or an expiry) removes it
    // the key went with the lease; a keepalive may already have put it back, never under the old one
    // (asserting "gone" here raced that keepalive on a loaded machine)
    assert.notEqual(await leaseOf(raw, '/presence/node-a'), first);
    const back = await waitFor('the key to come back', async () => (await store.get('/presence/node-a')) !== undefined);
    // onRestored fires once every key is written again: the poll above may see the key just before
    await waitFor('onRestored', () => restored.length > 0, 2000);
    assert.match(lost[0] ?? '', /etcd no longer knows lease/);
    assert.deepEqual(restored, [lease.id]);
    assert.notEqual(lease.id, first);
    assert.equal(lease.state, 'alive');
    assert.equal(await leaseOf(raw, '/presence/node-a'), lease.id);
    assert.ok(back <= 3000, `back after ${back} ms`);
    await lease.revoke();
  });

  it('watches a prefix: puts and deletes in revision order, nothing outside the prefix', async () => {
    const store = await open();
    await store.txn([], [put('/w/seed', 's')]);
    const { revision: from } = await store.list('/w/');
    const rec = recorder();
    const watch = store.watchPrefix('/w/', from + 1, rec);
    await waitFor('the watch to connect', () => rec.statuses.includes(true));
    const expected: WatchEvent[] = [];
    for (let i = 0; i < 60; i++) {
      if (i % 5 === 4) {
        const gone = `/w/k${(i - 1) % 7}`; // written by the previous round
        const r = await store.txn([], [del(gone), put('/w/multi', String(i)), put('/w0/outside', 'x')]);
        expected.push({ type: 'delete', key: gone, modRevision: r.revision });
        expected.push({ type: 'put', key: '/w/multi', value: String(i), modRevision: r.revision });
      } else {
        const k = `/w/k${i % 7}`;
        const r = await store.txn([], [put(k, `v${i}`), put('/x/outside', 'x')]);
        expected.push({ type: 'put', key: k, value: `v${i}`, modRevision: r.revision });
      }
    }
    // deleting a missing key changes nothing: no event
    await store.txn([], [del('/w/never')]);
    await waitFor('every event', () => rec.events.length >= expected.length);
    await sleep(100);
    // puts carry the key's create revision: the first write of /w/multi for all of its puts
    assert.deepEqual(
      rec.events.map(({ createRevision: _c, ...e }) => e),
      expected,
    );
    const multi = rec.events.filter((e) => e.key === '/w/multi').map((e) => e.createRevision);
    assert.equal(new Set(multi).size, 1);
    assert.equal(multi[0], expected.find((e) => e.key === '/w/multi')?.modRevision);
    assert.ok(rec.events.every((e) => (e.type === 'put') === (e.createRevision !== undefined)));
    assert.equal(watch.revision, expected.at(-1)?.modRevision);
    assert.deepEqual(rec.resyncs, []);
    await watch.close();

    // fromRevision is inclusive, like etcd's start_revision: history replays from there
    const at = expected[10]?.modRevision ?? 0;
    const replay = recorder();
    const again = store.watchPrefix('/w/', at, replay);
    const tail = expected.filter((e) => e.modRevision >= at);
    await waitFor('the replay', () => replay.events.length >= tail.length);
    assert.deepEqual(
      replay.events.map(({ createRevision: _c, ...e }) => e),
      tail,
    );
    await again.close();
  });

  it('resumes a broken watch after the last event it delivered, missing nothing', async () => {
    const proxy = await startTcpProxy(shared.endpoint);
    closers.push(() => proxy.close());
    const prefix = `/t${prefixes + 1}`;
    const viaProxy = await openEtcdStore({ endpoints: [proxy.endpoint], prefix, log });
    stores.push(viaProxy);
    const direct = await openEtcdStore({ endpoints: [shared.endpoint], prefix, log });
    stores.push(direct);
    const rec = recorder();
    const start = await direct.revision();
    viaProxy.watchPrefix('/r/', start + 1, rec);
    await waitFor('connected', () => rec.statuses.includes(true));
    await direct.txn([], [put('/r/a', '1')]);
    await waitFor('first event', () => rec.events.length === 1);

    proxy.cut();
    await waitFor('the watch to notice', () => rec.statuses.at(-1) === false);
    // more than etcd's 1000-revision catch-up batch: the history comes back in several responses
    const written: number[] = [];
    let i = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (i < 1500) {
          const n = i++;
          written.push((await direct.txn([], [put(`/r/k${n % 4}`, String(n))])).revision);
        }
      }),
    );
    written.sort((a, b) => a - b);
    await direct.txn([], [del('/r/a')]);
    proxy.restore();
    await waitFor('every event after the break', () => rec.events.length === 1502);
    assert.deepEqual(
      rec.events.slice(1, 1501).map((e) => e.modRevision),
      written,
      'every revision, once, in order',
    );
    assert.ok(rec.revisions.length > 2, 'delivered in more than one batch');
    assert.deepEqual(rec.events.at(-1), {
      type: 'delete',
      key: '/r/a',
      modRevision: (written.at(-1) ?? 0) + 1,
    });
    assert.deepEqual(rec.resyncs, []);
    assert.deepEqual(rec.statuses, [true, false, true]);
  });

  it('relists when the revision it must resume from was compacted', async () => {
    const raw = rawClient(shared.endpoint);
    const proxy = await startTcpProxy(shared.endpoint);
    closers.push(() => proxy.close());
    const prefix = `/t${++prefixes}`;
    const viaProxy = await openEtcdStore({ endpoints: [proxy.endpoint], prefix, log });
    stores.push(viaProxy);
    const store = await openEtcdStore({ endpoints: [shared.endpoint], prefix, log });
    stores.push(store);

    // 1. started from an already compacted revision: onResync at once
    const old = (await store.txn([], [put('/c/a', '1'), put('/c/b', '2')])).revision;
    await store.txn([], [put('/c/a', '1b')]);
    const head = (await store.txn([], [del('/c/b')])).revision;
    await raw.kv.compact({ revision: head, physical: true });
    const first = recorder();
    const w1 = store.watchPrefix('/c/', old, first);
    await waitFor('a resync', () => first.resyncs.length === 1);
    assert.deepEqual(
      first.resyncs[0]?.items.map((kv) => [kv.key, kv.value]),
      [['/c/a', '1b']],
    );
    assert.ok((first.resyncs[0]?.revision ?? 0) >= head);
    const next = await store.txn([], [put('/c/z', 'after')]);
    await waitFor('events after the resync', () => first.events.length === 1);
    assert.deepEqual(first.events, [
      { type: 'put', key: '/c/z', value: 'after', modRevision: next.revision, createRevision: next.revision },
    ]);
    await w1.close();

    // 2. a watch cut off while the history it needs is compacted away
    const rec = recorder();
    viaProxy.watchPrefix('/c/', next.revision + 1, rec);
    await waitFor('connected', () => rec.statuses.includes(true));
    proxy.cut();
    await waitFor('the watch to notice', () => rec.statuses.at(-1) === false);
    for (let i = 0; i < 20; i++) await store.txn([], [put(`/c/n${i}`, String(i))]);
    await store.txn([], [del('/c/a'), del('/c/n3')]);
    const compactAt = await store.revision();
    await raw.kv.compact({ revision: compactAt, physical: true });
    proxy.restore();
    await waitFor('a resync', () => rec.resyncs.length === 1);
    const now = await store.list('/c/');
    assert.deepEqual(rec.resyncs[0]?.items, now.items, 'the full current state');
    assert.equal(rec.resyncs[0]?.revision, now.revision);
    assert.deepEqual(rec.events, [], 'no partial history before the resync');
    const later = await store.txn([], [del('/c/z')]);
    await waitFor('events after the resync', () => rec.events.length === 1);
    assert.deepEqual(rec.events, [{ type: 'delete', key: '/c/z', modRevision: later.revision }]);
  });

  it('starts with onResync when given revision 0, and survives a handler that throws', async () => {
    const lines: { msg?: string; handler?: string }[] = [];
    const store = await open({ log: createLogger('error', (l) => lines.push(JSON.parse(l))) });
    await store.txn([], [put('/z/1', 'a'), put('/z/2', 'b')]);
    const rec = recorder();
    const w = store.watchPrefix('/z/', 0, {
      ...rec,
      onResync: (items, revision) => {
        rec.onResync(items, revision);
        throw new Error('a bug in the caller');
      },
    });
    await waitFor('resync', () => rec.resyncs.length === 1);
    assert.deepEqual(
      rec.resyncs[0]?.items.map((kv) => kv.key),
      ['/z/1', '/z/2'],
    );
    const r = await store.txn([], [del('/z/1')]);
    await waitFor('the next event', () => rec.events.length === 1);
    assert.deepEqual(rec.events, [{ type: 'delete', key: '/z/1', modRevision: r.revision }]);
    assert.deepEqual(
      lines.map((l) => [l.msg, l.handler]),
      [['etcd watch handler threw', 'onResync']],
    );
    await w.close();
    await store.txn([], [del('/z/2')]);
    await sleep(100);
    assert.equal(rec.events.length, 1, 'nothing after close');
  });

  it('lists thousands of keys (several pages) at one revision while others write', async () => {
    const store = await open();
    for (let i = 0; i < 2500; i += 100) {
      await store.txn(
        [],
        Array.from({ length: 100 }, (_, j) => put(`/pg/${String(i + j).padStart(5, '0')}`, 'x'.repeat(100))),
      );
    }
    let writing = true;
    const writes: number[] = [];
    const writer = (async () => {
      for (let i = 0; writing; i++) writes.push((await store.txn([], [put(`/pg/new-${i}`, 'n')])).revision);
    })();
    await sleep(20);
    const { items, revision } = await store.list('/pg/');
    writing = false;
    await writer;
    const fresh = items.filter((kv) => kv.key.startsWith('/pg/new-'));
    assert.equal(items.length - fresh.length, 2500);
    assert.ok(
      items.every((kv) => kv.modRevision <= revision),
      'nothing newer than the list revision',
    );
    assert.equal(fresh.length, writes.filter((r) => r <= revision).length, 'everything up to the list revision');
  });

  it('lets exactly one of 50 create-if-absent txns from 5 connections win', async () => {
    const prefix = `/t${++prefixes}`;
    const clients = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const s = await openEtcdStore({ endpoints: [shared.endpoint], prefix, log });
        stores.push(s);
        return s;
      }),
    );
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        clients[i % 5]!.txn([{ key: '/claim', version: 0 }], [put('/claim', `node-${i}`)]),
      ),
    );
    const winners = results.flatMap((r, i) => (r.succeeded ? [i] : []));
    assert.equal(winners.length, 1);
    const kv = await clients[0]!.get('/claim');
    assert.equal(kv?.value, `node-${winners[0]}`);
    assert.equal(kv?.version, 1);
  });

  it('measures txn throughput and watch latency (reported, loosely checked)', async (t) => {
    const store = await open();
    let start = performance.now();
    const n = 300;
    for (let i = 0; i < n; i++) {
      const r = await store.txn([{ key: `/perf/${i}`, version: 0 }], [put(`/perf/${i}`, 'v')]);
      assert.ok(r.succeeded);
    }
    const sequential = n / ((performance.now() - start) / 1000);
    start = performance.now();
    const m = 1000;
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < m) {
          const i = next++;
          await store.txn([{ key: `/perf/p${i}`, version: 0 }], [put(`/perf/p${i}`, 'v')]);
        }
      }),
    );
    const parallel = m / ((performance.now() - start) / 1000);

    const seen = new Map<string, number>();
    const w = store.watchPrefix('/lat/', (await store.revision()) + 1, {
      onEvents: (events) => {
        for (const e of events) seen.set(e.key, performance.now());
      },
      onResync: () => {},
    });
    await sleep(200);
    const latencies: number[] = [];
    for (let i = 0; i < 100; i++) {
      const key = `/lat/${i}`;
      const sent = performance.now();
      await store.txn([], [put(key, 'x')]);
      await waitFor('the event', () => seen.has(key), 5000);
      latencies.push((seen.get(key) ?? 0) - sent);
    }
    await w.close();
    latencies.sort((a, b) => a - b);
    const pct = (p: number): string => (latencies[Math.floor((latencies.length - 1) * p)] ?? 0).toFixed(2);
    t.diagnostic(
      `etcd txn: ${sequential.toFixed(0)}/s sequential, ${parallel.toFixed(0)}/s with 32 in flight; ` +
        `watch latency (txn sent -> onEvents) p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms, max ${pct(1)} ms`,
    );
    assert.ok(sequential > 20, `sequential ${sequential}/s`);
  });
});

describe('EtcdStore while etcd is down', () => {
  let server: EtcdServer;
  before(async () => {
    server = await startEtcd();
    servers.push(server);
  });

  it('brings lease keys back after etcd is killed and restarted, and fails fast meanwhile', async (t) => {
    const raw = rawClient(server.endpoint);
    const store = await open({ server, prefix: '' });
    const lease = await store.grantLease(3);
    const lost: string[] = [];
    const restored: string[] = [];
    lease.onLost((r) => lost.push(r));
    lease.onRestored((id) => restored.push(id));
    await lease.put('/nodes/a', 'here');
    const first = lease.id;
    const rec = recorder();
    store.watchPrefix('/nodes/', (await store.revision()) + 1, rec);
    await waitFor('connected', () => rec.statuses.includes(true));

    await server.kill();
    const killedAt = Date.now();
    // every call fails within 5 s with a clear message while etcd is down
    const calls = await Promise.all([
      timeRejection(store.get('/nodes/a')),
      timeRejection(store.list('/nodes/')),
      timeRejection(store.txn([{ key: '/x', version: 0 }], [put('/x', '1')])),
      timeRejection(store.revision()),
      timeRejection(store.grantLease(5)),
    ]);
    for (const { ms, error } of calls) {
      assert.equal(error.code, 'TRUSS_ERR_STORE_UNAVAILABLE');
      assert.match(error.message, new RegExp(`^etcd at ${server.endpoint} is unavailable: `));
      assert.ok(ms <= 5000, `${error.message} after ${ms} ms`);
    }
    // a lease put while etcd is down fails, but the key stays registered and is written later
    await assert.rejects(lease.put('/nodes/b', 'later'), { code: 'TRUSS_ERR_STORE_UNAVAILABLE' });
    const lostAfter = await waitFor('the lease to be declared lost', () => lost.length === 1, 5000);
    const lostAt = Date.now();
    assert.match(lost[0] ?? '', /no successful keepalive for 2 s/);
    assert.equal(lease.state, 'lost');
    assert.ok(Date.now() - killedAt <= 3000, `lost ${lostAfter} ms after the checks`);
    await waitFor('the watch to notice', () => rec.statuses.at(-1) === false);

    await server.restart();
    const restartedAt = Date.now();
    const backAfter = await waitFor('re-grant', () => restored.length === 1, 6000);
    t.diagnostic(
      `lease (TTL 3 s) lost ${lostAt - killedAt} ms after the kill; keys back ${backAfter} ms after etcd was up`,
    );
    assert.equal(lease.state, 'alive');
    assert.notEqual(lease.id, first);
    assert.equal(await leaseOf(raw, '/nodes/a'), lease.id);
    assert.equal(await leaseOf(raw, '/nodes/b'), lease.id);
    // the old lease came back with etcd (etcd refreshes leases on restart): its expiry must not take our key
    await sleep(3500);
    assert.equal((await store.get('/nodes/a'))?.value, 'here');
    assert.equal(await leaseOf(raw, '/nodes/a'), lease.id);
    assert.ok(Date.now() - restartedAt < 10_000);
    assert.equal(rec.statuses.at(-1), true, 'the watch reconnected');
    await lease.revoke();
  });

  it('resumes a watch across an etcd restart with the events written meanwhile', async () => {
    const store = await open({ server, prefix: '/restart' });
    const rec = recorder();
    store.watchPrefix('/e/', (await store.revision()) + 1, rec);
    await waitFor('connected', () => rec.statuses.includes(true));
    await store.txn([], [put('/e/before', '1')]);
    await waitFor('first event', () => rec.events.length === 1);
    await server.restart();
    // written right after the restart, while the watch is still reconnecting (backoff)
    const writer = await open({ server, prefix: '/restart' });
    const written: number[] = [];
    for (let i = 0; i < 10; i++) written.push((await writer.txn([], [put(`/e/k${i}`, String(i))])).revision);
    await waitFor('every event', () => rec.events.length === 11);
    assert.deepEqual(
      rec.events.slice(1).map((e) => e.modRevision),
      written,
    );
    assert.deepEqual(rec.resyncs, []);
  });

  it('fails every call within 5 s when etcd is black-holed (no RST, no answer)', async () => {
    const proxy: TcpProxy = await startTcpProxy(server.endpoint);
    closers.push(() => proxy.close());
    const store = await openEtcdStore({ endpoints: [proxy.endpoint], log });
    stores.push(store);
    proxy.blackhole();
    const calls = await Promise.all([
      timeRejection(store.get('/a')),
      timeRejection(store.list('/')),
      timeRejection(store.txn([], [put('/b', '1')])),
      timeRejection(store.revision()),
      timeRejection(store.grantLease(5)),
    ]);
    for (const { ms, error } of calls) {
      assert.equal(error.code, 'TRUSS_ERR_STORE_UNAVAILABLE');
      assert.match(error.message, new RegExp(`^etcd at ${proxy.endpoint} is unavailable: .* no answer within 4000 ms`));
      assert.ok(ms >= 3900 && ms <= 5000, `${error.message} after ${ms} ms`);
    }
    proxy.restore();
    await waitFor('calls to work again', async () => {
      try {
        await store.revision();
        return true;
      } catch {
        return false;
      }
    });
  });
});

describe('EtcdStore over TLS', () => {
  let tls: EtcdTlsFiles;
  let server: EtcdServer;
  before(async () => {
    tls = await makeEtcdTls();
    closers.push(() => tls.cleanup());
    server = await startEtcd({ tls: { ca: tls.ca, cert: tls.serverCert, key: tls.serverKey } });
    servers.push(server);
  });

  it('works with a client certificate', async () => {
    const store = await open({ server, tls: { ca: tls.ca, cert: tls.clientCert, key: tls.clientKey } });
    const rec = recorder();
    store.watchPrefix('/tls/', (await store.revision()) + 1, rec);
    const r = await store.txn([{ key: '/tls/a', version: 0 }], [put('/tls/a', 'secret-free')]);
    assert.equal(r.succeeded, true);
    assert.equal((await store.get('/tls/a'))?.value, 'secret-free');
    await waitFor('the event over TLS', () => rec.events.length === 1);
  });

  it('fails cleanly without TLS, with the wrong CA, or with a missing file', async () => {
    const plain = await timeRejection(openEtcdStore({ endpoints: [server.endpoint], log, dialTimeoutMs: 1000 }));
    assert.equal(plain.error.code, 'TRUSS_ERR_STORE_UNAVAILABLE');
    assert.match(
      plain.error.message,
      new RegExp(`^etcd at ${server.endpoint} is unavailable: no answer within 1000 ms`),
    );
    assert.match(plain.error.message, /give --etcd-ca, --etcd-cert and --etcd-key/);
    assert.ok(plain.ms <= 1500);

    const wrongCa = await timeRejection(
      openEtcdStore({
        endpoints: [server.endpoint],
        tls: { ca: tls.otherCa, cert: tls.clientCert, key: tls.clientKey },
        log,
        dialTimeoutMs: 1000,
      }),
    );
    assert.equal(wrongCa.error.code, 'TRUSS_ERR_STORE_UNAVAILABLE');
    assert.match(wrongCa.error.message, /is unavailable: no answer within 1000 ms/);

    await assert.rejects(
      openEtcdStore({
        endpoints: [server.endpoint],
        tls: { ca: tls.ca, cert: tls.serverCert, key: tls.clientKey },
        log,
      }),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'TRUSS_ERR_STORE_UNAVAILABLE');
        assert.match(e.message, /^cannot set up the etcd client \(--etcd-ca .*\): .*key values mismatch/);
        return true;
      },
    );

    await assert.rejects(
      openEtcdStore({
        endpoints: [server.endpoint],
        tls: { ca: `${tls.dir}/missing.crt`, cert: tls.clientCert, key: tls.clientKey },
        log,
      }),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'TRUSS_ERR_STORE_UNAVAILABLE');
        assert.match(e.message, /^--etcd-ca .*missing\.crt: cannot read it \(ENOENT\)/);
        return true;
      },
    );
  });
});
