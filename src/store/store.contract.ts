/**
 * The Store contract as node:test tests. Every store implementation runs it from its own
 * test file: `storeContract('sqlite', async () => ({ store, cleanup }))`.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Op, Store } from './store.ts';

export type StoreFactory = () => Promise<{ store: Store; cleanup: () => Promise<void> }>;

const put = (key: string, value: string): Op => ({ type: 'put', key, value });
const del = (key: string): Op => ({ type: 'delete', key });

export function storeContract(name: string, make: StoreFactory): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;
    beforeEach(async () => {
      ({ store, cleanup } = await make());
    });
    afterEach(async () => {
      await cleanup();
    });

    it('gets a missing key as undefined', async () => {
      assert.equal(await store.get('/nope'), undefined);
    });

    it('puts, reads back and tracks create/mod revision and version', async () => {
      const r1 = await store.txn([], [put('/a', 'one')]);
      assert.equal(r1.succeeded, true);
      assert.deepEqual(await store.get('/a'), {
        key: '/a',
        value: 'one',
        createRevision: r1.revision,
        modRevision: r1.revision,
        version: 1,
      });
      const r2 = await store.txn([], [put('/a', 'two')]);
      assert.deepEqual(await store.get('/a'), {
        key: '/a',
        value: 'two',
        createRevision: r1.revision,
        modRevision: r2.revision,
        version: 2,
      });
      await store.txn([], [del('/a')]);
      const r4 = await store.txn([], [put('/a', '')]);
      const again = await store.get('/a');
      assert.equal(again?.value, '', 'empty values are values');
      assert.equal(again?.version, 1, 'version restarts after a delete');
      assert.equal(again?.createRevision, r4.revision);
    });

    it('lists by prefix in key order at one revision', async () => {
      await store.txn([], [put('/p/b', '2'), put('/p/a', '1'), put('/p', 'x'), put('/q/a', 'y'), put('/p0', 'z')]);
      await store.txn([], [put('/p/c/d', '3'), put('/o', 'w')]);
      const { items, revision } = await store.list('/p/');
      assert.deepEqual(
        items.map((kv) => [kv.key, kv.value]),
        [
          ['/p/a', '1'],
          ['/p/b', '2'],
          ['/p/c/d', '3'],
        ],
      );
      assert.equal(revision, await store.revision());
      assert.deepEqual((await store.list('/none/')).items, []);
      assert.equal((await store.list('')).items.length, 7, 'the empty prefix lists everything');
    });

    it('lists thousands of keys, in key order, with nothing lost between pages', async () => {
      const name = (i: number): string => `/many/${i.toString(36).padStart(3, '0')}`;
      for (let i = 0; i < 2500; i += 100) {
        await store.txn(
          [],
          Array.from({ length: 100 }, (_, j) => put(name(i + j), String(i + j))),
        );
      }
      const { items, revision } = await store.list('/many/');
      assert.equal(items.length, 2500);
      assert.deepEqual(
        items.map((kv) => kv.key),
        Array.from({ length: 2500 }, (_, i) => name(i)),
      );
      assert.ok(items.every((kv) => kv.value === String(Number.parseInt(kv.key.slice(6), 36))));
      assert.equal(revision, await store.revision());
    });

    it('orders keys by code point (UTF-8 byte order), also beyond ASCII', async () => {
      const keys = ['/k/a', '/k/z', '/k/é', '/k/\uffee', '/k/😀', '/k/\u4e00'];
      await store.txn(
        [],
        keys.map((k) => put(k, k)),
      );
      const listed = (await store.list('/k/')).items.map((kv) => kv.key);
      assert.deepEqual(listed, ['/k/a', '/k/z', '/k/é', '/k/\u4e00', '/k/\uffee', '/k/😀']);
    });

    it('bumps the revision by one per successful write txn, not on a failed or empty one', async () => {
      const r0 = await store.revision();
      const r1 = await store.txn([], [put('/r/a', '1'), put('/r/b', '2')]);
      assert.equal(r1.revision, r0 + 1, 'a multi-op txn is one revision');
      const failed = await store.txn([{ key: '/r/a', value: 'other' }], [put('/r/c', '3')]);
      assert.deepEqual(failed, { succeeded: false, revision: r0 + 1 });
      assert.equal(await store.get('/r/c'), undefined, 'the success branch did not run');
      const noop = await store.txn([], [del('/r/missing')]);
      assert.deepEqual(
        noop,
        { succeeded: true, revision: r0 + 1 },
        'deleting a missing key is fine and changes nothing',
      );
      const r2 = await store.txn([], [del('/r/a')]);
      assert.equal(r2.revision, r0 + 2);
      assert.equal(await store.revision(), r0 + 2);
    });

    it('a txn with compares and no ops only reports whether they hold', async () => {
      const r0 = (await store.txn([], [put('/g/a', '1')])).revision;
      assert.deepEqual(
        await store.txn(
          [
            { key: '/g/a', value: '1' },
            { key: '/g/b', version: 0 },
          ],
          [],
        ),
        {
          succeeded: true,
          revision: r0,
        },
      );
      assert.deepEqual(await store.txn([{ key: '/g/a', version: 0 }], []), { succeeded: false, revision: r0 });
    });

    it('creates if absent with {version: 0}', async () => {
      const first = await store.txn([{ key: '/c', version: 0 }], [put('/c', 'mine')]);
      assert.equal(first.succeeded, true);
      const second = await store.txn([{ key: '/c', version: 0 }], [put('/c', 'theirs')]);
      assert.equal(second.succeeded, false);
      assert.equal((await store.get('/c'))?.value, 'mine');
      const byVersion = await store.txn([{ key: '/c', version: 1 }], [put('/c', 'v2')]);
      assert.equal(byVersion.succeeded, true);
    });

    it('compares modRevision (CAS); an absent key has modRevision 0', async () => {
      const r1 = await store.txn([], [put('/m', '1')]);
      await store.txn([], [put('/other', 'x')]);
      const ok = await store.txn([{ key: '/m', modRevision: r1.revision }], [put('/m', '2')]);
      assert.equal(ok.succeeded, true);
      const stale = await store.txn([{ key: '/m', modRevision: r1.revision }], [put('/m', '3')]);
      assert.equal(stale.succeeded, false);
      assert.equal((await store.get('/m'))?.value, '2');
      assert.equal((await store.txn([{ key: '/absent', modRevision: 0 }], [])).succeeded, true);
    });

    it('compares the modRevision of every key under a prefix (none = holds)', async () => {
      assert.equal((await store.txn([{ key: '/p/', prefixModRevisionAtMost: 0 }], [])).succeeded, true);
      const r1 = await store.txn([], [put('/p/a', '1')]);
      await store.txn([], [put('/q', 'x'), put('/p', 'y')]); // outside the prefix
      const at = await store.revision();
      assert.equal(
        (await store.txn([{ key: '/p/', prefixModRevisionAtMost: at }], [put('/p/b', '2')])).succeeded,
        true,
      );
      assert.equal(
        (await store.txn([{ key: '/p/', prefixModRevisionAtMost: at }], [put('/p/c', '3')])).succeeded,
        false,
      );
      assert.equal(await store.get('/p/c'), undefined);
      assert.equal((await store.txn([{ key: '/p/a', prefixModRevisionAtMost: r1.revision }], [])).succeeded, true);
      await store.txn([], [{ type: 'delete', key: '/p/b' }]); // a delete leaves no key behind
      assert.equal((await store.txn([{ key: '/p/', prefixModRevisionAtMost: at }], [])).succeeded, true);
    });

    it('compares values; an absent key never equals a value', async () => {
      await store.txn([], [put('/v', 'a')]);
      assert.equal((await store.txn([{ key: '/v', value: 'a' }], [put('/v', 'b')])).succeeded, true);
      assert.equal((await store.txn([{ key: '/v', value: 'a' }], [put('/v', 'c')])).succeeded, false);
      assert.equal((await store.txn([{ key: '/absent', value: '' }], [])).succeeded, false);
    });

    it('needs every compare to hold, and runs the failure branch otherwise', async () => {
      await store.txn([], [put('/x', '1'), put('/y', '1')]);
      const before = await store.revision();
      const r = await store.txn(
        [
          { key: '/x', value: '1' },
          { key: '/y', value: '2' },
        ],
        [put('/ok', 'yes')],
        [put('/failed', 'yes'), del('/x')],
      );
      assert.deepEqual(r, { succeeded: false, revision: before + 1 });
      assert.equal(await store.get('/ok'), undefined);
      assert.equal((await store.get('/failed'))?.value, 'yes');
      assert.equal(await store.get('/x'), undefined);
    });

    it('rejects a txn naming a key twice in one branch, writing nothing', async () => {
      const before = await store.revision();
      await assert.rejects(store.txn([], [put('/d', '1'), put('/d', '2')]), { code: 'TRUSS_ERR_INTERNAL' });
      await assert.rejects(store.txn([], [put('', '1')]), { code: 'TRUSS_ERR_INTERNAL' });
      assert.equal(await store.revision(), before);
      assert.equal(await store.get('/d'), undefined);
    });

    it('lets exactly one of 50 parallel create-if-absent txns win', async () => {
      const before = await store.revision();
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => store.txn([{ key: '/race', version: 0 }], [put('/race', String(i))])),
      );
      const winners = results.filter((r) => r.succeeded);
      assert.equal(winners.length, 1);
      assert.equal(await store.revision(), before + 1);
      assert.equal((await store.get('/race'))?.version, 1);
    });

    it('refuses use after close', async () => {
      await store.close();
      await assert.rejects(store.get('/a'), { code: 'TRUSS_ERR_STORE_UNAVAILABLE' });
      await assert.rejects(store.txn([], [put('/a', '1')]), { code: 'TRUSS_ERR_STORE_UNAVAILABLE' });
    });
  });
}
