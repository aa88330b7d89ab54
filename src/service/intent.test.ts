import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeDesired } from '../core/desired.ts';
import { errors } from '../core/errors.ts';
import type { EndpointSpec } from '../core/model.ts';
import { endpointSpec, networkSpec } from '../core/testing.ts';
import { MemoryStore } from '../store/memory.ts';
import type { Compare, Op, TxnResult } from '../store/store.ts';
import { IntentRepo } from './intent.ts';

const NID = 'a'.repeat(64);
const net = networkSpec({ id: NID });
const endpoint = (c: string): EndpointSpec => endpointSpec({ networkId: NID, id: c.repeat(64) });

/** A store whose next txn commits and then throws (the caller cannot know the outcome). */
class FlakyStore extends MemoryStore {
  failNext = false;
  override async txn(
    compares: readonly Compare[],
    success: readonly Op[],
    failure?: readonly Op[],
  ): Promise<TxnResult> {
    const r = await super.txn(compares, success, failure);
    if (this.failNext) {
      this.failNext = false;
      throw errors.storeUnavailable('connection lost after the commit');
    }
    return r;
  }
}

describe('IntentRepo snapshot cache', () => {
  it('serves writes from memory and keeps unchanged records as the same objects', async () => {
    const repo = new IntentRepo(new MemoryStore());
    await repo.createNetwork(net);
    const r1 = await repo.createEndpoint(endpoint('b'));
    const s1 = await repo.snapshot();
    assert.equal(s1.revision, r1);
    assert.equal(await repo.snapshot(), s1, 'nothing written: the same snapshot');
    const r2 = await repo.createEndpoint(endpoint('c'));
    const s2 = await repo.snapshot();
    assert.equal(s2.revision, r2);
    assert.deepEqual(
      s2.endpoints.map((e) => e.id),
      ['b'.repeat(64), 'c'.repeat(64)],
    );
    assert.equal(s2.networks[0], s1.networks[0], 'the network did not change: same object');
    assert.equal(s2.endpoints[0], s1.endpoints[0]);
    assert.ok(Object.isFrozen(s2.endpoints[1]), 'records handed out are frozen');
    const r3 = await repo.putEndpoint({ ...endpoint('b'), sandboxKey: '/var/run/docker/netns/1' });
    const r4 = await repo.deleteEndpoint(NID, 'c'.repeat(64));
    const s3 = await repo.snapshot();
    assert.ok(r4 > r3);
    assert.equal(s3.revision, r4);
    assert.deepEqual(s3.endpoints, [{ ...endpoint('b'), sandboxKey: '/var/run/docker/netns/1' }]);
  });

  it('fresh re-reads the store and keeps the objects whose modRevision did not move', async () => {
    const store = new MemoryStore();
    const repo = new IntentRepo(store);
    await repo.createNetwork(net);
    await repo.createEndpoint(endpoint('b'));
    const s1 = await repo.snapshot();
    // a write behind the repo's back (none happens in truss): only a fresh read sees it
    const other = endpoint('d');
    await store.txn([], [{ type: 'put', key: `/truss/v1/endpoints/${NID}/${other.id}`, value: JSON.stringify(other) }]);
    assert.equal((await repo.snapshot()).endpoints.length, 1);
    const s2 = await repo.snapshot({ fresh: true });
    assert.equal(s2.endpoints.length, 2);
    assert.equal(s2.endpoints[0], s1.endpoints[0], 'unchanged record: same object');
    assert.equal(s2.networks[0], s1.networks[0]);
    assert.equal(s2.revision, await store.revision());
  });

  it('takes a no-op write revision, so a waiter on it is satisfied', async () => {
    const store = new MemoryStore();
    const repo = new IntentRepo(store);
    await repo.createNetwork(net);
    await repo.snapshot();
    // other keys (IPAM) move the store revision; deleting an absent endpoint returns it
    await store.txn([], [{ type: 'put', key: '/truss/v1/ipam/pools/x', value: '{}' }]);
    const r = await repo.deleteEndpoint(NID, 'e'.repeat(64));
    assert.equal(r, await store.revision());
    assert.equal((await repo.snapshot()).revision, r);
  });

  it('drops the cache when a write outcome is unknown, and reads the truth next time', async () => {
    const store = new FlakyStore();
    const repo = new IntentRepo(store);
    await repo.createNetwork(net);
    await repo.snapshot();
    store.failNext = true;
    await assert.rejects(repo.createEndpoint(endpoint('b')), /connection lost/);
    const s = await repo.snapshot();
    assert.deepEqual(
      s.endpoints.map((e) => e.id),
      ['b'.repeat(64)],
      'the write did commit',
    );
  });

  it('applies concurrent writes in commit order', async () => {
    const repo = new IntentRepo(new MemoryStore());
    await repo.createNetwork(net);
    await repo.snapshot();
    const b = endpoint('b');
    await repo.createEndpoint(b);
    const revs = await Promise.all([
      repo.putEndpoint({ ...b, sandboxKey: '/var/run/docker/netns/0' }),
      repo.putEndpoint({ ...b, sandboxKey: '/var/run/docker/netns/1' }),
      repo.putEndpoint({ ...b, sandboxKey: '/var/run/docker/netns/2' }),
    ]);
    const s = await repo.snapshot();
    assert.equal(s.revision, Math.max(...revs));
    assert.equal(s.endpoints[0]?.sandboxKey, '/var/run/docker/netns/2');
  });
});

describe('computeDesired memo', () => {
  it('reuses an endpoint object while its records are the same objects, and rebuilds when one changes', () => {
    const b = endpoint('b');
    const d1 = computeDesired([net], [b]);
    const d2 = computeDesired([net], [b]);
    assert.equal(d2.veths[0], d1.veths[0]);
    const d3 = computeDesired([{ ...net, mtu: 1400 }], [b]);
    assert.notEqual(d3.veths[0], d1.veths[0]);
    assert.equal(d3.veths[0]?.mtu, 1400);
    const joined: EndpointSpec = { ...b, sandboxKey: '/var/run/docker/netns/1' };
    assert.equal(computeDesired([net], [joined]).policies.length, 0, 'open network: no chain');
    const closed = computeDesired([net], [joined], [{ networkId: NID, ingress: [] }]);
    assert.equal(closed.policies.length, 1, 'a new run-time policy record rebuilds the endpoint');
    assert.deepEqual(closed.policies[0]?.rules, []);
  });
});

describe('IntentRepo address index (holding)', () => {
  it('follows creates, updates and deletes, and a full read', async () => {
    const repo = new IntentRepo(new MemoryStore());
    await repo.createNetwork(net);
    const b = { ...endpoint('b'), ipv4: '198.18.0.7/24', ipv6: 'fd00:0:0:0::7/64' };
    await repo.createEndpoint(b);
    const ids = async (a: string) => (await repo.holding(NID, a)).map((e) => e.id);
    assert.deepEqual(await ids('198.18.0.7'), [b.id]);
    assert.deepEqual(await ids('fd00::7'), [b.id], 'canonical form');
    assert.deepEqual(await ids('198.18.0.7'), [b.id]);
    await repo.putEndpoint({ ...b, ipv4: '198.18.0.8/24' });
    assert.deepEqual(await ids('198.18.0.7'), []);
    assert.deepEqual(await ids('198.18.0.8'), [b.id]);
    assert.deepEqual(await repo.holding('x'.repeat(64), '198.18.0.8'), [], 'another network');
    await repo.snapshot({ fresh: true });
    assert.deepEqual(await ids('198.18.0.8'), [b.id], 'rebuilt after a full read');
    await repo.deleteEndpoint(NID, b.id);
    assert.deepEqual(await ids('198.18.0.8'), []);
  });
});
