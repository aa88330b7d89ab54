/**
 * The daemon's own share of an attach at scale, without a kernel: the daemon's wiring over an
 * in-memory store and the fake dataplane (src/service/testing.ts), N endpoints over M networks
 * attached one after another (CreateEndpoint + Join through NetworkService), CPU time per attach
 * by window. What grows here grows in JS (intent cache, desired state, plan), not in the kernel.
 * `node bench/scale-js.ts [--endpoints 5000] [--networks 10]`
 */
import { parseArgs } from 'node:util';
import { endpointInput, ipamData, networkInput } from '../src/core/testing.ts';
import { stopTestServices, testEid, testNid, testService } from '../src/service/testing.ts';

const { values } = parseArgs({ options: { endpoints: { type: 'string' }, networks: { type: 'string' } } });
const E = Number(values.endpoints ?? 5000);
const M = Number(values.networks ?? 10);
const bits = Math.max(8, Math.ceil(Math.log2(Math.ceil(E / M) + 3)));
const base = (n: number): number => (198 << 24) + (19 << 16) + (n << bits);
const ip = (v: number): string => [24, 16, 8, 0].map((s) => (v >>> s) & 255).join('.');
const { svc } = testService();
for (let n = 0; n < M; n++) {
  await svc.createNetwork(
    networkInput({ networkId: testNid('a', n), ipv4: [ipamData(`${ip(base(n))}/${32 - bits}`)] }),
  );
}
const cpu: number[] = [];
for (let i = 0; i < E; i++) {
  const n = i % M;
  const k = Math.floor(i / M);
  const c0 = process.cpuUsage();
  const endpointId = testEid('b', i);
  await svc.createEndpoint(
    endpointInput({ networkId: testNid('a', n), endpointId, address: `${ip(base(n) + 2 + k)}/${32 - bits}` }),
  );
  await svc.join({ networkId: testNid('a', n), endpointId, sandboxKey: `/var/run/docker/netns/${i}`, options: {} });
  const c = process.cpuUsage(c0);
  cpu.push((c.user + c.system) / 1000);
}
const W = Math.max(1, Math.floor(E / 10));
const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
const tenths = Array.from({ length: 10 }, (_, d) => mean(cpu.slice(d * W, (d + 1) * W)).toFixed(2));
process.stdout.write(`CPU per attach (ms) by tenth of ${E} over ${M} networks: ${tenths.join(', ')}\n`);
process.stdout.write(`last ÷ first tenth: ${(mean(cpu.slice(-W)) / mean(cpu.slice(0, W))).toFixed(3)}\n`);
// the heap the run left: used (live and not yet collected) against RSS; --expose-gc: live only
(globalThis as { gc?: () => void }).gc?.();
const mem = process.memoryUsage();
const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
process.stdout.write(`heap used ${mib(mem.heapUsed)} MiB of ${mib(mem.heapTotal)}, RSS ${mib(mem.rss)} MiB\n`);
await stopTestServices();
