/**
 * Kernel tests (root) for bandwidth limits: tc on the host end of a veth and an ifb, with
 * REAL TRAFFIC (iperf3 between two "containers" on one truss bridge), drift repair, pruning,
 * and foreign ifb devices left alone.
 *
 *   A 198.18.41.2 (egress 50mbit, ingress 30mbit) ─┐
 *   B 198.18.41.3 (no limit)                       ─┴─ trb… 198.18.41.1 (host)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ShaperObject } from '../../core/bandwidth.ts';
import { computeDesired } from '../../core/desired.ts';
import type { EndpointSpec, NetworkSpec } from '../../core/model.ts';
import { hostVethName, ifbMark, ifbName, ifbOfHostVeth, shortId } from '../../core/naming.ts';
import type { LinuxDataplane } from './linux-dataplane.ts';
import {
  type Ctr,
  commandRecorder,
  createScratch,
  listTestNamespaces,
  randomId,
  simulatedHost,
  type TestNs,
  testEndpoint,
  testNetwork,
} from './netns-testutil.ts';

const EGRESS = 50_000_000;
const INGRESS = 30_000_000;
const SECONDS = 3;

interface Qdisc {
  kind: string;
  handle: string;
  root?: boolean;
}

describe('bandwidth limits (kernel)', () => {
  const scratch = createScratch();
  let host: TestNs;
  let dp: LinuxDataplane;
  const rec = commandRecorder();
  const N = randomId();
  const net: NetworkSpec = { ...testNetwork(N, 41), bandwidth: { egress: EGRESS, ingress: INGRESS } };
  const a: EndpointSpec = testEndpoint(N);
  const b: EndpointSpec = { ...testEndpoint(N), bandwidth: {} };
  const ctr = {} as Record<'a' | 'b', Ctr>;
  let shaper: ShaperObject;

  const qdiscs = async (dev: string): Promise<Qdisc[]> =>
    JSON.parse(await host.must(['tc', '-j', 'qdisc', 'show', 'dev', dev])) as Qdisc[];
  const linkExists = async (name: string): Promise<boolean> =>
    (await host.run(['ip', 'link', 'show', 'dev', name])).code === 0;
  /** iperf3 from A to B (A's egress) or B to A (-R: A's ingress): received Mbit/s */
  const iperf = async (reverse: boolean): Promise<number> => {
    const r = await ctr.a.ns.run(
      ['iperf3', '-c', ctr.b.ip, '-t', String(SECONDS), '-O', '1', '-J', ...(reverse ? ['-R'] : [])],
      undefined,
      (SECONDS + 20) * 1000,
    );
    const bps = (JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second?: number } } }).end?.sum_received
      ?.bits_per_second;
    assert.ok(typeof bps === 'number', `iperf3: ${r.stdout.slice(0, 300)} ${r.stderr}`);
    return bps / 1e6;
  };

  before(async () => {
    const h = await simulatedHost(scratch, { networks: [net], endpoints: [a, b], onCommand: rec.onCommand });
    ({ ns: host, dp } = h);
    assert.equal(h.desired.shapers.length, 2);
    shaper = h.desired.shapers.find((s) => s.endpointId === a.id) as ShaperObject;
    for (const [k, e, n] of [['a', a, 2] as const, ['b', b, 3] as const]) {
      ctr[k] = await h.join(k, e, `198.18.41.${n}/24`, '198.18.41.1');
    }
    scratch.proc(spawn('nsenter', [`--net=${ctr.b.ns.path}`, '--', 'iperf3', '-s'], { stdio: 'ignore' }));
    await sleep(300);
  });

  it('an endpoint with no limit in force gets no shaper', () => {
    const desired = computeDesired([{ ...net, bandwidth: { egress: EGRESS } }], [{ ...b, bandwidth: {} }]);
    assert.equal(desired.shapers.length, 1, 'an empty override keeps the default');
    assert.equal(computeDesired([testNetwork(N, 41)], [a]).shapers.length, 0);
  });

  it('ensureShaper: root tbf on the host end, ingress redirect to a marked ifb with a tbf; then idempotent', async () => {
    await dp.ensureShaper(shaper);
    const vq = await qdiscs(shaper.name);
    assert.ok(
      vq.some((q) => q.root && q.kind === 'tbf' && q.handle === '7472:'),
      JSON.stringify(vq),
    );
    assert.ok(
      vq.some((q) => q.kind === 'ingress'),
      JSON.stringify(vq),
    );
    const iq = await qdiscs(shaper.ifb);
    assert.ok(
      iq.some((q) => q.root && q.kind === 'tbf' && q.handle === '7472:'),
      JSON.stringify(iq),
    );
    const [l] = await host.ipJson<{ ifalias?: string; flags: string[] }[]>(['-d', 'link', 'show', 'dev', shaper.ifb]);
    assert.equal(l?.ifalias, ifbMark(a.id));
    assert.ok(l?.flags.includes('UP'));
    rec.reset();
    await dp.ensureShaper(shaper);
    assert.deepEqual(rec.writes(), [], 'a converged shaper costs reads only');
    assert.deepEqual(await dp.checkShapers([shaper]), { drifted: [], extra: [], problems: [] });
  });

  it('real traffic: A sends at its egress limit and receives at its ingress limit (±10 %)', async () => {
    const up = await iperf(false);
    const down = await iperf(true);
    console.log(`# iperf3 A→B ${up.toFixed(1)} Mbit/s (limit 50), B→A ${down.toFixed(1)} Mbit/s (limit 30)`);
    assert.ok(Math.abs(up - 50) <= 5, `A's egress ${up.toFixed(1)} Mbit/s, want 50 ± 5`);
    assert.ok(Math.abs(down - 30) <= 3, `A's ingress ${down.toFixed(1)} Mbit/s, want 30 ± 3`);
  });

  it('drift: a qdisc or the ifb deleted by hand shows in checkShapers and ensureShaper restores it', async () => {
    await host.must(['tc', 'qdisc', 'del', 'dev', shaper.name, 'root']);
    let c = await dp.checkShapers([shaper]);
    assert.deepEqual(c.drifted, [shaper.name]);
    await dp.ensureShaper(shaper);
    assert.deepEqual((await dp.checkShapers([shaper])).drifted, []);
    await host.must(['ip', 'link', 'del', shaper.ifb]);
    c = await dp.checkShapers([shaper]);
    assert.deepEqual(c.drifted, [shaper.name]);
    await dp.ensureShaper(shaper);
    assert.deepEqual(await dp.checkShapers([shaper]), { drifted: [], extra: [], problems: [] });
    const up = await iperf(false);
    assert.ok(Math.abs(up - 50) <= 5, `after repair, A's egress ${up.toFixed(1)} Mbit/s, want 50 ± 5`);
  });

  it("foreign ifb devices are never listed or removed; truss's leftovers are", async () => {
    const other = randomId();
    await host.must(['ip', 'link', 'add', 'ifb-user', 'type', 'ifb']);
    await host.must(['ip', 'link', 'add', ifbName(other), 'type', 'ifb']);
    await host.must(['ip', 'link', 'set', ifbName(other), 'alias', 'someone-else']);
    const leftover = randomId();
    await host.must(['ip', 'link', 'add', ifbName(leftover), 'type', 'ifb']);
    await host.must(['ip', 'link', 'set', ifbName(leftover), 'alias', ifbMark(leftover)]);
    const c = await dp.checkShapers([shaper]);
    assert.deepEqual(c.extra, [hostVethName(leftover)]);
    assert.deepEqual(c.extra.map(ifbOfHostVeth), [ifbName(leftover)], 'it names its ifb');
    for (const name of c.extra) await dp.removeShaper(name, ifbOfHostVeth(name));
    await dp.removeShaper(hostVethName(other), ifbName(other));
    assert.equal(await linkExists(ifbName(leftover)), false);
    assert.equal(await linkExists(ifbName(other)), true, `${shortId(other)}: a foreign ifb under our name stays`);
    assert.equal(await linkExists('ifb-user'), true);
    // and ensure refuses to take a foreign ifb under the endpoint's name
    await assert.rejects(
      dp.ensureShaper({ ...shaper, name: hostVethName(other), ifb: ifbName(other) }),
      /missing|already exists/,
    );
    await host.must(['ip', 'link', 'del', 'ifb-user']);
    await host.must(['ip', 'link', 'del', ifbName(other)]);
  });

  it('removeShaper: qdiscs and ifb gone, the veth has only its defaults; repeating succeeds', async () => {
    await dp.removeShaper(shaper.name, shaper.ifb);
    const vq = await qdiscs(shaper.name);
    assert.deepEqual(
      vq.map((q) => q.kind),
      ['noqueue'],
    );
    assert.equal(await linkExists(shaper.ifb), false);
    await dp.removeShaper(shaper.name, shaper.ifb);
    await dp.removeShaper('trv000000000000', 'trf000000000000');
    assert.deepEqual(await dp.checkShapers([]), { drifted: [], extra: [], problems: [] });
    const up = await iperf(false);
    assert.ok(up > 100, `unshaped, A sends ${up.toFixed(0)} Mbit/s`);
  });

  it('leaves no test namespace behind', async () => {
    await scratch.close();
    assert.deepEqual(await listTestNamespaces(), []);
  });
});
