/**
 * Cluster IPAM allocation benchmark (not part of the test suite): `node bench/cluster-ipam.ts`.
 * One cluster network (198.18.64.0/18) already holds CLAIMS address claims spread over 5
 * hosts' blocks; then host0 allocates ALLOCS more addresses one after the other (and releases
 * each, so the cluster size stays put). Reports the median and p90 time per allocation, on the
 * memory store and on a real etcd (started here, like the etcd tests). No root needed.
 * Flags: --claims N (default 500), --allocs N (default 200), --no-etcd.
 */
import { parseArgs } from 'node:util';
import { ClusterIpam } from '../src/cluster/cluster-ipam.ts';
import { type Prefix, parsePrefix } from '../src/core/ip.ts';
import { silentLogger } from '../src/obs/logger.ts';
import { openEtcdStore } from '../src/store/etcd.ts';
import { startEtcd } from '../src/store/etcd-testutil.ts';
import { MemoryStore } from '../src/store/memory.ts';
import type { Store } from '../src/store/store.ts';

const { values } = parseArgs({
  options: { claims: { type: 'string' }, allocs: { type: 'string' }, 'no-etcd': { type: 'boolean' } },
  strict: true,
});
const CLAIMS = Number(values.claims ?? 500);
const ALLOCS = Number(values.allocs ?? 200);
const HOSTS = 5;
const subnet = parsePrefix('198.18.64.0/18') as Prefix;

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
};

async function measure(name: string, store: Store): Promise<string> {
  const hosts = Array.from(
    { length: HOSTS },
    (_, i) => new ClusterIpam({ store, node: `host${i}`, log: silentLogger }),
  );
  for (let i = 0; i < CLAIMS; i++) await hosts[i % HOSTS]?.allocate('bench', subnet);
  const self = hosts[0] as ClusterIpam;
  const times: number[] = [];
  for (let i = 0; i < ALLOCS; i++) {
    const t0 = performance.now();
    const ip = await self.allocate('bench', subnet);
    times.push(performance.now() - t0);
    await self.release('bench', ip);
  }
  return `${name.padEnd(7)} ${CLAIMS} claims: allocate median ${pct(times, 50).toFixed(2)} ms, p90 ${pct(times, 90).toFixed(2)} ms (${ALLOCS} allocations)`;
}

const lines = [await measure('memory', new MemoryStore())];
if (!values['no-etcd']) {
  const server = await startEtcd();
  const store = await openEtcdStore({ endpoints: [server.endpoint], log: silentLogger, prefix: '/bench' });
  try {
    lines.push(await measure('etcd', store));
  } finally {
    await store.close();
    await server.stop();
  }
}
process.stdout.write(`${lines.join('\n')}\n`);
