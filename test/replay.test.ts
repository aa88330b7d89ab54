/**
 * The whole daemon stack minus the kernel: every request a real dockerd sent (20.10 and
 * 28.5 captures) replayed through the protocol server into the real services, the memory
 * store and the fake dataplane. Docker uses what truss answered (pool ids, addresses,
 * interface names), so values the capture stub answered are swapped for truss's answers
 * in later requests. At the end of each capture (everything removed) nothing may be left.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import { loadConfig } from '../src/config.ts';
import { buildDaemon } from '../src/daemon.ts';
import { FakeDataplane } from '../src/dataplane/fake/fake-dataplane.ts';
import { silentLogger } from '../src/obs/logger.ts';
import { type FixtureRequest, startServer } from '../src/protocol/testing.ts';
import { MemoryStore } from '../src/store/memory.ts';

const load = (name: string): FixtureRequest[] =>
  readFileSync(new URL(`fixtures/${name}`, import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as FixtureRequest);

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

async function stack() {
  const store = new MemoryStore();
  const dp = new FakeDataplane();
  // the daemon's own wiring (src/daemon.ts) over the memory store and the fake kernel
  const config = loadConfig(['--default-pools', '198.18.200.0/22:24'], {});
  const d = await buildDaemon(config, { store, dataplane: dp, log: silentLogger, stamps: false });
  d.start();
  const srv = await startServer({ network: d.network, ipam: d.releases, calls: [], argsOf: () => [] });
  stops.push(async () => {
    await srv.close();
    await d.stop();
  });
  return { store, dp, srv };
}

/**
 * Replace each value the capture stub answered with what truss answered: pool ids in
 * `PoolID` fields, address spaces, pools and addresses elsewhere.
 */
interface Swaps {
  readonly poolIds: Map<string, string>;
  readonly values: Map<string, string>;
}

function swapIn(v: unknown, swaps: Swaps, key = ''): unknown {
  if (typeof v === 'string') return (key === 'PoolID' ? swaps.poolIds : swaps.values).get(v) ?? v;
  if (Array.isArray(v)) return v.map((x) => swapIn(x, swaps));
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, swapIn(x, swaps, k)]));
  }
  return v;
}

/**
 * The captures used a placeholder `-o truss.example=1`; truss refuses unknown truss.* keys, so
 * the replay sends a known one instead. (Their `--driver-opt truss.ingress=tcp/80` is real.)
 */
function adapt(path: string, body: Record<string, unknown>): Record<string, unknown> {
  const opts = body.Options as Record<string, unknown> | null | undefined;
  if (path === '/NetworkDriver.CreateNetwork' && opts) {
    const generic = opts['com.docker.network.generic'] as Record<string, string> | undefined;
    if (generic && 'truss.example' in generic) {
      const { 'truss.example': _placeholder, ...rest } = generic;
      opts['com.docker.network.generic'] = { ...rest, 'truss.nat': 'true' };
    }
  }
  return body;
}

function prepare(req: FixtureRequest, swaps: Swaps): string {
  if (req.body === '') return '';
  return `${JSON.stringify(adapt(req.path, swapIn(JSON.parse(req.body), swaps) as Record<string, unknown>))}\n`;
}

function learn(swaps: Swaps, path: string, stub: unknown, ours: unknown): void {
  const s = stub as Record<string, unknown>;
  const o = ours as Record<string, unknown>;
  const pairs: [unknown, unknown][] = [];
  if (path === '/IpamDriver.GetDefaultAddressSpaces') {
    pairs.push(
      [s.LocalDefaultAddressSpace, o.LocalDefaultAddressSpace],
      [s.GlobalDefaultAddressSpace, o.GlobalDefaultAddressSpace],
    );
  }
  if (path === '/IpamDriver.RequestPool') {
    if (typeof s.PoolID === 'string' && typeof o.PoolID === 'string') swaps.poolIds.set(s.PoolID, o.PoolID);
    pairs.push([s.Pool, o.Pool]);
  }
  if (path === '/IpamDriver.RequestAddress') {
    pairs.push([s.Address, o.Address]);
    pairs.push([String(s.Address).split('/')[0], String(o.Address).split('/')[0]]);
  }
  for (const [a, b] of pairs) if (typeof a === 'string' && typeof b === 'string' && a !== b) swaps.values.set(a, b);
}

for (const fixture of ['dockerd-20.10.jsonl', 'dockerd-28.5.jsonl', 'dockerd-28.5-ipv6only.jsonl']) {
  describe(`replay of ${fixture} through the real services`, () => {
    it('answers every request as Docker needs and leaves nothing behind', async () => {
      const { store, dp, srv } = await stack();
      const swaps: Swaps = { poolIds: new Map(), values: new Map() };
      for (const req of load(fixture)) {
        const body = prepare(req, swaps);
        const reply = await srv.request(req.path, body, { headers: { Accept: req.headers.Accept ?? '' } });
        assert.equal(reply.status, 200, `${req.path} ${body.trim()} -> ${reply.text}`);
        const json = reply.json as Record<string, unknown>;
        assert.ok(!json.Err && !json.Error, `${req.path}: ${reply.text}`);
        learn(swaps, req.path, req.reply, json);
        if (req.path === '/NetworkDriver.Join') {
          const src = (json.InterfaceName as { SrcName: string }).SrcName;
          assert.ok(dp.links.get(src), `Join's SrcName ${src} exists for Docker to move`);
          dp.movePeerToContainer(src); // what libnetwork does next
        }
      }
      assert.deepEqual((await store.list('/truss/v1/networks/')).items, []);
      assert.deepEqual((await store.list('/truss/v1/endpoints/')).items, []);
      assert.deepEqual((await store.list('/truss/v1/ipam/pools/')).items, []);
      assert.deepEqual((await store.list('/truss/v1/ipam/addrs/')).items, []);
      assert.deepEqual([...dp.links.keys()], []);
      assert.equal(dp.firewall, undefined);
    });
  });
}
