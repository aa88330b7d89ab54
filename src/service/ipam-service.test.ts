import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { RequestAddressInput, RequestPoolInput } from '../core/contracts.ts';
import { formatIp, parseIp, parsePrefix, prefixContains, prefixesOverlap } from '../core/ip.ts';
import { allocationRange } from '../core/ipam/address-selection.ts';
import { IPAM_ADDRS_PREFIX, IPAM_POOLS_PREFIX } from '../core/ipam/keys.ts';
import type { AddressRecord } from '../core/model.ts';
import { silentLogger } from '../obs/logger.ts';
import { MemoryStore } from '../store/memory.ts';
import { openSqliteStore } from '../store/sqlite.ts';
import type { Compare, Op, Store, TxnResult } from '../store/store.ts';
import { DEFAULT_POOLS, type DefaultPool, IpamService } from './ipam-service.ts';

const GW = { RequestAddressType: 'com.docker.network.gateway' };
const ep = (name: string) => ({ 'com.docker.network.endpoint.name': name });

function setup(defaultPools: readonly DefaultPool[] = DEFAULT_POOLS, store: Store = new MemoryStore()) {
  const ipam = new IpamService({ store, log: silentLogger, defaultPools });
  const pool = (p: Partial<RequestPoolInput> = {}) =>
    ipam.requestPool({ addressSpace: 'TrussLocal', pool: '', subPool: '', options: {}, v6: false, ...p });
  const addr = async (poolId: string, address = '', options: Record<string, string> = {}): Promise<string> =>
    (await ipam.requestAddress({ poolId, address, options } satisfies RequestAddressInput)).address;
  return { ipam, store, pool, addr };
}

async function liveAddresses(store: Store): Promise<AddressRecord[]> {
  return (await store.list(IPAM_ADDRS_PREFIX)).items.map((kv) => JSON.parse(kv.value) as AddressRecord);
}

/** A Store that counts txns whose compares failed (to see CAS conflicts actually happen). */
class CountingStore implements Store {
  readonly kind = 'counting';
  failed = 0;
  readonly inner: Store;
  constructor(inner: Store) {
    this.inner = inner;
  }
  get = (k: string) => this.inner.get(k);
  list = (p: string) => this.inner.list(p);
  revision = () => this.inner.revision();
  close = () => this.inner.close();
  async txn(c: readonly Compare[], s: readonly Op[], f?: readonly Op[]): Promise<TxnResult> {
    // why: yield first so that concurrent readers really interleave with writers
    await new Promise((r) => setImmediate(r));
    const r = await this.inner.txn(c, s, f);
    if (!r.succeeded) this.failed++;
    return r;
  }
}

describe('IpamService: pools', () => {
  it('reports capabilities and address spaces', () => {
    const { ipam } = setup();
    assert.deepEqual(ipam.capabilities(), { requiresMacAddress: false, requiresRequestReplay: false });
    assert.deepEqual(ipam.defaultAddressSpaces(), { local: 'TrussLocal', global: 'TrussGlobal' });
  });

  it('grants explicit pools with Docker-style ids and stores them before resolving', async () => {
    const { pool, store } = setup();
    assert.deepEqual(await pool({ pool: '198.18.1.0/24' }), {
      poolId: 'TrussLocal/198.18.1.0/24',
      pool: '198.18.1.0/24',
      data: {},
    });
    const sub = await pool({ addressSpace: 'TrussGlobal', pool: '198.18.2.0/24', subPool: '198.18.2.128/25' });
    assert.equal(sub.poolId, 'TrussGlobal/198.18.2.0/24/198.18.2.128/25');
    const kv = await store.get(`${IPAM_POOLS_PREFIX}${encodeURIComponent(sub.poolId)}`);
    assert.deepEqual(JSON.parse(kv!.value), {
      id: sub.poolId,
      addressSpace: 'TrussGlobal',
      family: 4,
      pool: '198.18.2.0/24',
      subPool: '198.18.2.128/25',
      dynamic: false,
    });
  });

  it('refuses overlaps with any held pool, naming both CIDRs', async () => {
    const { pool } = setup();
    await pool({ pool: '198.18.1.0/24' });
    await assert.rejects(pool({ pool: '198.18.1.0/24' }), {
      code: 'TRUSS_ERR_POOL_OVERLAP',
      message: /pool 198\.18\.1\.0\/24 is already in use \(TrussLocal\/198\.18\.1\.0\/24\)/,
    });
    await assert.rejects(pool({ addressSpace: 'TrussGlobal', pool: '198.18.0.0/16' }), {
      code: 'TRUSS_ERR_POOL_OVERLAP',
      message: /pool 198\.18\.0\.0\/16 overlaps pool 198\.18\.1\.0\/24/,
    });
    await pool({ pool: '198.18.2.0/24' });
  });

  it('refuses malformed requests with clear errors', async () => {
    const { pool } = setup();
    await assert.rejects(pool({ pool: '198.18.1.1/24' }), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
      message: /not a network address; use 198\.18\.1\.0\/24/,
    });
    await assert.rejects(pool({ subPool: '198.18.1.0/25' }), { code: 'TRUSS_ERR_REQUEST_INVALID' });
    await assert.rejects(pool({ pool: 'fd00::/64' }), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
      message: /IPv6 but the request is for IPv4/,
    });
    await assert.rejects(pool({ addressSpace: 'default' }), {
      code: 'TRUSS_ERR_REQUEST_INVALID',
      message: /AddressSpace "default" is not truss's/,
    });
    assert.equal((await pool({ addressSpace: '' })).poolId, 'TrussLocal/10.201.0.0/24');
  });

  it('gives every dynamic request a different pool while earlier ones are held (the overlap loop)', async () => {
    const { pool } = setup();
    const got = [];
    for (let i = 0; i < 3; i++) got.push((await pool()).pool);
    assert.deepEqual(got, ['10.201.0.0/24', '10.201.1.0/24', '10.201.2.0/24']);
    const v6 = await pool({ v6: true });
    assert.deepEqual(v6, { poolId: 'TrussLocal/fd7a:7275:7373::/64', pool: 'fd7a:7275:7373::/64', data: {} });
    assert.equal((await pool({ v6: true, addressSpace: 'TrussGlobal' })).pool, 'fd7a:7275:7373:1::/64');
  });

  it('skips explicit pools inside the defaults and reuses released blocks', async () => {
    const { ipam, pool } = setup();
    await pool({ pool: '10.201.0.128/25' });
    const a = await pool();
    assert.equal(a.pool, '10.201.1.0/24');
    await ipam.releasePool(a.poolId);
    assert.equal((await pool()).pool, '10.201.1.0/24');
  });

  it('runs out with poolExhausted naming the default ranges', async () => {
    const { pool } = setup([{ base: '198.18.0.0/23', size: 24 }]);
    await pool();
    await pool();
    await assert.rejects(pool(), {
      code: 'TRUSS_ERR_POOL_EXHAUSTED',
      message: /all default IPv4 pools are in use \(198\.18\.0\.0\/23:24\)/,
    });
    await assert.rejects(pool({ v6: true }), {
      code: 'TRUSS_ERR_POOL_EXHAUSTED',
      message: /no default IPv6 pools are configured/,
    });
  });

  it('releases pools idempotently, with their addresses', async () => {
    const { ipam, pool, addr, store } = setup();
    const p = await pool({ pool: '198.18.1.0/24' });
    await addr(p.poolId, '', GW);
    await addr(p.poolId, '', ep('web'));
    await ipam.releasePool(p.poolId);
    await ipam.releasePool(p.poolId);
    await ipam.releasePool('TrussLocal/never');
    assert.deepEqual(
      (await store.list('/truss/v1/ipam/')).items.map((kv) => kv.key),
      ['/truss/v1/ipam/pool-seq'],
    );
    await assert.rejects(addr(p.poolId), { code: 'TRUSS_ERR_POOL_NOT_FOUND' });
  });

  it('hands 50 concurrent dynamic requests 50 different pools', async () => {
    const { pool } = setup();
    const got = await Promise.all(Array.from({ length: 50 }, () => pool()));
    assert.equal(new Set(got.map((g) => g.pool)).size, 50);
  });
});

describe('IpamService: addresses', () => {
  it('allocates the gateway, aux and endpoint addresses the way dockerd asks', async () => {
    const { pool, addr, store } = setup();
    const { poolId } = await pool({ pool: '198.18.1.0/24' });
    assert.equal(await addr(poolId, '', GW), '198.18.1.1/24');
    assert.equal(await addr(poolId, '198.18.1.9', {}), '198.18.1.9/24');
    assert.equal(await addr(poolId, '', ep('web')), '198.18.1.2/24');
    assert.equal(await addr(poolId, '198.18.1.77', ep('db')), '198.18.1.77/24');
    assert.deepEqual(
      (await liveAddresses(store)).sort((a, b) => a.address.localeCompare(b.address)),
      [
        { poolId, address: '198.18.1.1', kind: 'gateway' },
        { poolId, address: '198.18.1.2', kind: 'endpoint', owner: 'web' },
        { poolId, address: '198.18.1.77', kind: 'endpoint', owner: 'db' },
        { poolId, address: '198.18.1.9', kind: 'aux' },
      ],
    );
  });

  it('takes a given gateway address and answers with the pool prefix length from a sub-pool', async () => {
    const { pool, addr } = setup();
    const { poolId } = await pool({ pool: '198.18.1.0/24', subPool: '198.18.1.128/25' });
    assert.equal(await addr(poolId, '', GW), '198.18.1.1/24', 'the gateway comes from the whole pool');
    assert.equal(await addr(poolId, '', ep('a')), '198.18.1.128/24');
    const other = await pool({ pool: '198.18.2.0/24' });
    assert.equal(await addr(other.poolId, '198.18.2.254', GW), '198.18.2.254/24');
    assert.equal(await addr(other.poolId, '', ep('a')), '198.18.2.1/24');
  });

  it('refuses addresses outside the pool, reserved ones and ones in use', async () => {
    const { pool, addr } = setup();
    const { poolId } = await pool({ pool: '198.18.1.0/24' });
    await addr(poolId, '', GW);
    await addr(poolId, '198.18.1.5', ep('web'));
    await assert.rejects(addr(poolId, '198.18.2.5', ep('x')), {
      code: 'TRUSS_ERR_ADDRESS_OUT_OF_POOL',
      message: /198\.18\.2\.5 is outside pool 198\.18\.1\.0\/24/,
    });
    await assert.rejects(addr(poolId, '198.18.1.0', ep('x')), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
      message: /network address/,
    });
    await assert.rejects(addr(poolId, '198.18.1.255', {}), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
      message: /broadcast address/,
    });
    await assert.rejects(addr(poolId, '198.18.1.5', ep('x')), {
      code: 'TRUSS_ERR_ADDRESS_IN_USE',
      message: /198\.18\.1\.5 .* already allocated to endpoint web/,
    });
    await assert.rejects(addr(poolId, '198.18.1.1', {}), {
      code: 'TRUSS_ERR_ADDRESS_IN_USE',
      message: /already allocated to the gateway/,
    });
    await assert.rejects(addr(poolId, 'bogus', {}), { code: 'TRUSS_ERR_ADDRESS_INVALID' });
    await assert.rejects(addr('TrussLocal/10.0.0.0/24', '', ep('x')), {
      code: 'TRUSS_ERR_POOL_NOT_FOUND',
      message: /pool TrussLocal\/10\.0\.0\.0\/24 does not exist/,
    });
  });

  it('does not hand out a just-released address again at once, and wraps around', async () => {
    const { ipam, pool, addr } = setup();
    const { poolId } = await pool({ pool: '198.18.1.0/29' }); // hosts .1-.6
    const got = [];
    for (let i = 0; i < 3; i++) got.push(await addr(poolId, '', ep(`c${i}`)));
    assert.deepEqual(got, ['198.18.1.1/29', '198.18.1.2/29', '198.18.1.3/29']);
    await ipam.releaseAddress(poolId, '198.18.1.2');
    assert.equal(await addr(poolId), '198.18.1.4/29');
    await ipam.releaseAddress(poolId, '198.18.1.6'); // never allocated: fine
    assert.equal(await addr(poolId), '198.18.1.5/29');
    assert.equal(await addr(poolId), '198.18.1.6/29');
    assert.equal(await addr(poolId), '198.18.1.2/29', 'wrapped around');
    await assert.rejects(addr(poolId), { code: 'TRUSS_ERR_ADDRESS_EXHAUSTED', message: /no free address left/ });
    await ipam.releaseAddress(poolId, '198.18.1.5');
    assert.equal(await addr(poolId), '198.18.1.5/29', 'the only free one');
  });

  it('releases idempotently', async () => {
    const { ipam, pool, addr, store } = setup();
    const { poolId } = await pool({ pool: '198.18.1.0/24' });
    await addr(poolId, '198.18.1.7', {});
    await ipam.releaseAddress(poolId, '198.18.1.7');
    await ipam.releaseAddress(poolId, '198.18.1.7');
    await ipam.releaseAddress(poolId, 'fd00::1');
    await ipam.releaseAddress('TrussLocal/nothing', '10.0.0.1');
    assert.deepEqual(await liveAddresses(store), []);
  });

  it('models IPv6 like IPv4: a /64 allocates without enumerating it', async () => {
    const { ipam, pool, addr } = setup();
    const { poolId, pool: cidr } = await pool({ v6: true });
    assert.equal(await addr(poolId, '', GW), 'fd7a:7275:7373::1/64');
    assert.equal(await addr(poolId, '', ep('a')), 'fd7a:7275:7373::2/64');
    assert.equal(
      await addr(poolId, 'fd7a:7275:7373:0:ffff:ffff:ffff:ffff', ep('b')),
      'fd7a:7275:7373:0:ffff:ffff:ffff:ffff/64',
    );
    await ipam.releaseAddress(poolId, 'fd7a:7275:7373:0:0:0:0:2'); // non-canonical text is fine
    assert.equal(await addr(poolId), 'fd7a:7275:7373::3/64');
    assert.ok(cidr.endsWith('/64'));
  });

  it('hands 50 concurrent requests on one pool 50 different addresses', async () => {
    const { pool, addr } = setup();
    const { poolId } = await pool({ pool: '198.18.1.0/24' });
    const got = await Promise.all(Array.from({ length: 50 }, (_, i) => addr(poolId, '', ep(`c${i}`))));
    assert.equal(new Set(got).size, 50);
  });

  it('stays correct when two instances race on one store (real CAS conflicts)', async () => {
    const store = new CountingStore(new MemoryStore());
    const a = setup(DEFAULT_POOLS, store);
    const b = setup(DEFAULT_POOLS, store);
    // different address spaces, so only the pool-seq guard (not the pool key) can catch a clash
    const pools = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? a.pool() : b.pool({ addressSpace: 'TrussGlobal' }))),
    );
    assert.equal(new Set(pools.map((p) => p.pool)).size, 20);
    const { poolId } = pools[0]!;
    const got = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).addr(poolId, '', ep(`c${i}`))));
    assert.equal(new Set(got).size, 50);
    assert.ok(store.failed > 0, 'the test did provoke conflicts');
  });

  it('allocates durably on the SQLite store too (50 concurrent)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'truss-ipam-'));
    const store = await openSqliteStore(dir);
    try {
      const { pool, addr } = setup(DEFAULT_POOLS, store);
      const { poolId } = await pool({ pool: '198.18.1.0/24' });
      const got = await Promise.all(Array.from({ length: 50 }, (_, i) => addr(poolId, '', ep(`c${i}`))));
      assert.equal(new Set(got).size, 50);
      await store.close();
      const reopened = await openSqliteStore(dir);
      assert.equal((await liveAddresses(reopened)).length, 50);
      await reopened.close();
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// ---------- properties ----------

type AddrCmd =
  | { readonly op: 'next' }
  | { readonly op: 'gateway' }
  | { readonly op: 'at'; readonly offset: number }
  | { readonly op: 'release'; readonly pick: number }
  | { readonly op: 'releaseAt'; readonly offset: number };

const addrCmd: fc.Arbitrary<AddrCmd> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ op: 'next' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'gateway' as const }) },
  { weight: 1, arbitrary: fc.integer({ min: -2, max: 17 }).map((offset) => ({ op: 'at' as const, offset })) },
  { weight: 3, arbitrary: fc.nat().map((pick) => ({ op: 'release' as const, pick })) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 15 }).map((offset) => ({ op: 'releaseAt' as const, offset })) },
);

const POOL_SHAPES = [
  { pool: '198.18.1.0/28', subPool: '', v6: false },
  { pool: '198.18.1.0/28', subPool: '198.18.1.8/29', v6: false },
  { pool: 'fd00:9::/124', subPool: '', v6: true },
  { pool: 'fd00:9::/64', subPool: 'fd00:9::ffff:ffff:ffff:fff8/125', v6: true },
];

describe('IpamService: properties', () => {
  it('never yields two live records for one address; every address is in its pool; released is not reused next', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...POOL_SHAPES), fc.array(addrCmd, { maxLength: 40 }), async (shape, cmds) => {
        const { ipam, pool, addr, store } = setup();
        const { poolId } = await pool({ pool: shape.pool, subPool: shape.subPool, v6: shape.v6 });
        const prefix = parsePrefix(shape.pool)!;
        const range = allocationRange(prefix, shape.subPool ? parsePrefix(shape.subPool) : undefined)!;
        const base = shape.subPool ? parsePrefix(shape.subPool)!.value : prefix.value;
        const text = (off: number) => formatIp({ family: prefix.family, value: base + BigInt(off) });
        const live = new Set<string>();
        let justReleased: string | undefined;
        for (const c of cmds) {
          let released: string | undefined;
          try {
            if (c.op === 'next' || c.op === 'gateway') {
              const got = await addr(poolId, '', c.op === 'gateway' ? GW : ep('x'));
              const [bare, len] = got.split('/');
              assert.equal(Number(len), prefix.length, 'answers carry the pool prefix length');
              const ip = parseIp(bare!)!;
              assert.ok(prefixContains(prefix, ip), `${got} in ${shape.pool}`);
              if (c.op === 'next') {
                assert.ok(ip.value >= range.first && ip.value <= range.last, `${got} in the allocation range`);
                const freeInRange =
                  Number(range.last - range.first + 1n) -
                  [...live].filter((a) => {
                    const v = parseIp(a)!.value;
                    return v >= range.first && v <= range.last;
                  }).length;
                if (justReleased !== undefined && freeInRange > 1) assert.notEqual(bare, justReleased);
              }
              assert.ok(!live.has(bare!), `${bare} handed out twice`);
              live.add(bare!);
            } else if (c.op === 'at') {
              const want = text(c.offset);
              const bare = (await addr(poolId, want, {})).split('/')[0]!;
              assert.equal(bare, want);
              assert.ok(!live.has(bare), `${bare} handed out twice`);
              live.add(bare);
            } else {
              const target = c.op === 'release' ? [...live][c.pick % Math.max(1, live.size)] : text(c.offset);
              if (target !== undefined) {
                await ipam.releaseAddress(poolId, target);
                const canonical = [...live].find((a) => parseIp(a)!.value === parseIp(target)?.value);
                if (canonical) live.delete(canonical);
                released = canonical;
              }
            }
          } catch (e) {
            const code = (e as { code?: string }).code;
            assert.ok(
              [
                'TRUSS_ERR_ADDRESS_EXHAUSTED',
                'TRUSS_ERR_ADDRESS_IN_USE',
                'TRUSS_ERR_ADDRESS_INVALID',
                'TRUSS_ERR_ADDRESS_OUT_OF_POOL',
              ].includes(code ?? ''),
              `unexpected ${String(e)}`,
            );
          }
          justReleased = released;
          const stored = await liveAddresses(store);
          assert.equal(new Set(stored.map((r) => r.address)).size, stored.length, 'no duplicate live records');
          assert.deepEqual(new Set(stored.map((r) => r.address)), live);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('never holds two overlapping pools, whatever the request/release sequence', async () => {
    type PoolCmd = { op: 'dyn'; v6: boolean } | { op: 'explicit'; cidr: string } | { op: 'release'; pick: number };
    const poolCmd: fc.Arbitrary<PoolCmd> = fc.oneof(
      fc.boolean().map((v6) => ({ op: 'dyn' as const, v6 })),
      fc
        .record({ third: fc.integer({ min: 0, max: 5 }), len: fc.constantFrom(22, 23, 24, 25) })
        .map(({ third, len }) => {
          const p = parsePrefix(`198.18.${third}.0/${len}`)!;
          const mask = (1n << BigInt(32 - len)) - 1n;
          const v = p.value & ~mask;
          return { op: 'explicit' as const, cidr: `198.18.${Number((v >> 8n) & 255n)}.${Number(v & 255n)}/${len}` };
        }),
      fc.nat().map((pick) => ({ op: 'release' as const, pick })),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(poolCmd, { maxLength: 25 }), async (cmds) => {
        const { ipam, pool } = setup([
          { base: '198.18.0.0/22', size: 24 },
          { base: 'fd00:9::/62', size: 64 },
        ]);
        const held = new Map<string, string>();
        for (const c of cmds) {
          try {
            if (c.op === 'release') {
              const id = [...held.keys()][c.pick % Math.max(1, held.size)];
              if (id) {
                await ipam.releasePool(id);
                held.delete(id);
              }
              continue;
            }
            const r = c.op === 'dyn' ? await pool({ v6: c.v6 }) : await pool({ pool: c.cidr });
            const p = parsePrefix(r.pool)!;
            for (const other of held.values())
              assert.ok(!prefixesOverlap(p, parsePrefix(other)!), `${r.pool}/${other}`);
            held.set(r.poolId, r.pool);
          } catch (e) {
            const code = (e as { code?: string }).code ?? String(e);
            assert.ok(['TRUSS_ERR_POOL_OVERLAP', 'TRUSS_ERR_POOL_EXHAUSTED'].includes(code), code);
          }
        }
      }),
      { numRuns: 150 },
    );
  });
});
