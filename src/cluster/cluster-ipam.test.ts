import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HOST_OWNER } from '../core/cluster/host-address.ts';
import { clusterKeys } from '../core/cluster/model.ts';
import { formatIp, type Ip, type Prefix, parseIp, parsePrefix, prefixContains } from '../core/ip.ts';
import { silentLogger } from '../obs/logger.ts';
import { MemoryStore } from '../store/memory.ts';
import type { Store } from '../store/store.ts';
import { blockOf, ClusterIpam } from './cluster-ipam.ts';
import { SwitchableStore } from './testing.ts';

const subnet = parsePrefix('198.18.64.0/20') as Prefix;
const ip = (s: string): Ip => parseIp(s) as Ip;

function hosts(n: number, store: Store = new MemoryStore()) {
  return Array.from({ length: n }, (_, i) => new ClusterIpam({ store, node: `host${i}`, log: silentLogger }));
}

describe('ClusterIpam', () => {
  it('30 concurrent allocations over 3 hosts are distinct and each lies in its host block', async () => {
    const hs = hosts(3);
    const got = await Promise.all(
      Array.from({ length: 30 }, (_, i) => hs[i % 3]!.allocate('blue', subnet).then((a) => ({ node: i % 3, a }))),
    );
    const texts = got.map((g) => formatIp(g.a));
    assert.equal(new Set(texts).size, 30, `duplicates in ${texts}`);
    const blocks = await hs[0]!.blocks('blue');
    for (const g of got) {
      const owner = blocks.get(`${formatIp({ family: 4, value: blockOf(g.a, 26).value })}/26`);
      assert.equal(owner, `host${g.node}`, `${formatIp(g.a)} must be in host${g.node}'s block`);
      assert.ok(prefixContains(subnet, g.a));
    }
  });

  it('skips the subnet network address and shared (gateway) addresses', async () => {
    const [a, b] = hosts(2);
    await a!.reserveShared('blue', subnet, ip('198.18.64.1'));
    await b!.reserveShared('blue', subnet, ip('198.18.64.1')); // every host's gateway: fine
    assert.equal(formatIp(await a!.allocate('blue', subnet)), '198.18.64.2');
  });

  it('a specific address must be free and not in another host block', async () => {
    const [a, b] = hosts(2);
    const first = await a!.allocate('blue', subnet);
    await assert.rejects(b!.allocate('blue', subnet, first), {
      code: 'TRUSS_ERR_ADDRESS_IN_USE',
      message: /block .* of host host0/,
    });
    await assert.rejects(a!.allocate('blue', subnet, first), {
      code: 'TRUSS_ERR_ADDRESS_IN_USE',
      message: /already used/,
    });
    const far = ip('198.18.70.10');
    assert.equal(formatIp(await b!.allocate('blue', subnet, far)), '198.18.70.10');
    await assert.rejects(a!.allocate('blue', subnet, ip('198.19.0.1')), {
      code: 'TRUSS_ERR_ADDRESS_OUT_OF_POOL',
      message: /not in cluster network/,
    });
  });

  it('release frees only this host claims, and is idempotent', async () => {
    const [a, b] = hosts(2);
    const x = await a!.allocate('blue', subnet);
    await b!.release('blue', x); // not b's: nothing happens
    await assert.rejects(a!.allocate('blue', subnet, x), { code: 'TRUSS_ERR_ADDRESS_IN_USE', message: /already used/ });
    await a!.release('blue', x);
    await a!.release('blue', x);
    assert.equal(formatIp(await a!.allocate('blue', subnet, x)), formatIp(x));
  });

  it('a host that restarts keeps its blocks and claims (nothing is tied to its process)', async () => {
    const store = new MemoryStore();
    const [a] = hosts(1, store);
    const x = await a!.allocate('blue', subnet);
    const [again] = hosts(1, store);
    const y = await again!.allocate('blue', subnet);
    assert.notEqual(formatIp(x), formatIp(y));
    assert.equal(blockOf(x, 26).value, blockOf(y, 26).value, 'same block reused');
  });

  it('fails clearly when the subnet is exhausted', async () => {
    const small = parsePrefix('198.18.99.0/29') as Prefix;
    const [a] = hosts(1);
    for (let i = 0; i < 6; i++) await a!.allocate('tiny', small);
    await assert.rejects(a!.allocate('tiny', small), { code: 'TRUSS_ERR_ADDRESS_EXHAUSTED', message: /no free block/ });
  });

  it('reads only the claims of the block it allocates from (IPv4 and IPv6), and still never doubles', async () => {
    for (const [cidr, n] of [
      ['198.18.64.0/20', 150],
      ['fd00:7275::/118', 150],
    ] as const) {
      const net = parsePrefix(cidr) as Prefix;
      const [a, b] = hosts(2);
      await a!.reserveShared('blue', net, { family: net.family, value: net.value + 1n });
      const got = await Promise.all(
        Array.from({ length: n }, (_, i) => (i % 2 ? b! : a!).allocate('blue', net).then(formatIp)),
      );
      assert.equal(new Set(got).size, n, `${cidr}: duplicates`);
      assert.ok(
        !got.includes(formatIp({ family: net.family, value: net.value + 1n })),
        'the shared address is skipped',
      );
      // a freed address can be had again
      const x = parseIp(got[0] as string) as Ip;
      await a!.release('blue', x);
      assert.equal(formatIp(await a!.allocate('blue', net, x)), got[0]);
    }
  });

  it('queues one host’s allocations; while the store is down every queued one fails fast', async () => {
    const store = new SwitchableStore(new MemoryStore());
    const [a] = hosts(1, store);
    const got = await Promise.all(Array.from({ length: 40 }, () => a!.allocate('blue', subnet).then(formatIp)));
    assert.equal(new Set(got).size, 40);
    store.down = true;
    const t0 = performance.now();
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => a!.allocate('blue', subnet)));
    assert.ok(results.every((r) => r.status === 'rejected' && /unavailable/.test(String(r.reason))));
    assert.ok(performance.now() - t0 < 1000);
    store.down = false;
    assert.ok(await a!.allocate('blue', subnet));
  });

  it('a null or garbage record under any key affects only that key (H2.4: was a TypeError on every RequestAddress)', async () => {
    const store = new MemoryStore();
    const [a] = hosts(1, store);
    const put = (key: string, value: string) => store.txn([], [{ type: 'put', key, value }]);
    await put('/truss/v2/blocks/m/blue/bad', 'null');
    await put('/truss/v2/blocks/m/blue/198.18.64.64_26', '"x"');
    await put('/truss/v2/shared/m/blue/198.18.64.2', 'null');
    await put('/truss/v2/addrs/m/blue/198.18.64.3', '{');
    await put('/truss/v1/cluster/blocks/blue/bad', 'null'); // the old layout's key of the review
    await put('/truss/v1/cluster/addrs/blue/198.18.64.4', 'null');
    assert.equal(formatIp(await a!.allocate('blue', subnet)), '198.18.64.1');
    assert.equal(formatIp(await a!.allocate('blue', subnet, ip('198.18.64.2'))), '198.18.64.2');
    assert.deepEqual([...(await a!.blocks('blue'))], [['198.18.64.0/26', 'host0']]);
    await a!.reserveShared('blue', subnet, ip('198.18.64.20'));
  });

  it('blocks are unique across hosts; a newer overlapping record of another host is ignored (H1)', async () => {
    const store = new MemoryStore();
    const [a, b] = hosts(2, store);
    assert.equal(formatIp(await a!.allocate('blue', subnet)), '198.18.64.1');
    // a hostile host writes a /27 inside a's block, and a copy of a's block, under its own prefix
    const put = (key: string, v: unknown) => store.txn([], [{ type: 'put', key, value: JSON.stringify(v) }]);
    await put('/truss/v2/blocks/m/blue/198.18.64.0_27', { cluster: 'blue', block: '198.18.64.0/27', node: 'm' });
    await put('/truss/v2/blocks/m/blue/198.18.64.0_26', { cluster: 'blue', block: '198.18.64.0/26', node: 'm' });
    assert.deepEqual([...(await a!.blocks('blue'))], [['198.18.64.0/26', 'host0']]);
    assert.equal(formatIp(await a!.allocate('blue', subnet)), '198.18.64.2', 'a keeps allocating from its block');
    await assert.rejects(b!.allocate('blue', subnet, ip('198.18.64.5')), {
      code: 'TRUSS_ERR_ADDRESS_IN_USE',
      message: /block 198\.18\.64\.0\/26 of host host0/,
    });
    // an older hostile /20 over free space: nobody may claim inside it (the older claim wins)
    await put('/truss/v2/blocks/m/blue/198.18.72.0_21', { cluster: 'blue', block: '198.18.72.0/21', node: 'm' });
    await assert.rejects(b!.allocate('blue', subnet, ip('198.18.72.9')), {
      code: 'TRUSS_ERR_ADDRESS_IN_USE',
      message: /block 198\.18\.72\.0\/21 of host m/,
    });
    assert.equal(formatIp(await b!.allocate('blue', subnet)), '198.18.64.64');
  });

  it('claiming a block compares every block record: a block written since the read makes it look again', async () => {
    const store = new MemoryStore();
    const [a] = hosts(1, store);
    const real = store.list.bind(store);
    let raced = false;
    store.list = async (prefix: string) => {
      const r = await real(prefix);
      if (prefix === '/truss/v2/blocks/' && !raced) {
        raced = true; // another host claims the first block right after a read the blocks
        const key = '/truss/v2/blocks/b/blue/198.18.64.0_26';
        await store.txn([], [{ type: 'put', key, value: '{"cluster":"blue","block":"198.18.64.0/26","node":"b"}' }]);
      }
      return r;
    };
    assert.equal(formatIp(await a!.allocate('blue', subnet)), '198.18.64.64');
    assert.deepEqual([...(await a!.blocks('blue'))].sort(), [
      ['198.18.64.0/26', 'b'],
      ['198.18.64.64/26', 'host0'],
    ]);
  });
});

describe('ClusterIpam.claimHost (the host address)', () => {
  it('claims the next free address of its blocks with the host owner, and finds it again', async () => {
    const store = new MemoryStore();
    const [a, b] = hosts(2, store);
    await a!.reserveShared('blue', subnet, ip('198.18.64.1'));
    const first = await a!.claimHost('blue', subnet);
    assert.equal(formatIp(first), '198.18.64.2');
    const again = new ClusterIpam({ store, node: 'host0', log: silentLogger }); // a restart
    assert.equal(formatIp(await again.claimHost('blue', subnet)), '198.18.64.2', 'idempotent');
    const claim = JSON.parse((await store.get(clusterKeys.addr('blue', '198.18.64.2', 'host0')))?.value ?? '{}');
    assert.equal(claim.owner, HOST_OWNER);
    assert.equal(formatIp(await a!.allocate('blue', subnet)), '198.18.64.3', 'no container gets it');
    await assert.rejects(a!.allocate('blue', subnet, first), {
      code: 'TRUSS_ERR_ADDRESS_IN_USE',
      message: /by this host itself \(its host address/,
    });
    // another host claims its own, in a block of its own
    const theirs = await b!.claimHost('blue', subnet);
    assert.equal(formatIp(theirs), '198.18.64.64');
  });

  it('one per family: an IPv6 subnet gets its own', async () => {
    const [a] = hosts(1);
    const v6 = parsePrefix('fd00:64::/64') as Prefix;
    await a!.claimHost('blue', subnet);
    assert.equal(formatIp(await a!.claimHost('blue', v6)), 'fd00:64::1');
    assert.equal(formatIp(await a!.claimHost('blue', subnet)), '198.18.64.1');
  });
});
