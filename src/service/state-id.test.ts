import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStore } from '../store/memory.ts';
import { ensureStateId, STATE_ID_KEY } from './state-id.ts';

test('a new database gets a state id that adopts nothing unstamped; it is kept', async () => {
  const store = new MemoryStore();
  const a = await ensureStateId(store);
  assert.match(a.stateId, /^[0-9a-f]{16}$/);
  assert.equal(a.adoptUnstamped, false);
  assert.equal(a.created, true);
  const b = await ensureStateId(store);
  assert.deepEqual({ ...b, created: true }, a);
  assert.equal(b.created, false);
});

test('a database that held intent before it had an id (an upgrade) adopts unstamped objects', async () => {
  const store = new MemoryStore();
  await store.txn([], [{ type: 'put', key: '/truss/v1/networks/x', value: '{}' }]);
  const a = await ensureStateId(store);
  assert.equal(a.adoptUnstamped, true);
});

test('an invalid stored id is refused, naming the key', async () => {
  const store = new MemoryStore();
  await store.txn([], [{ type: 'put', key: STATE_ID_KEY, value: '{"stateId":"x"}' }]);
  await assert.rejects(ensureStateId(store), /\/truss\/v1\/state-id/);
});
