/**
 * Node identity and a co-located etcd, the user's way: two simulated hosts t1 and t2 with the
 * SAME hostname (`twin`, each in its own UTS namespace, like cloned VMs) on one underlay;
 * etcd runs INSIDE t1's network namespace. truss gets only `--store` (plus short GC and
 * resync periods, so a wrong reclaim would show): t1 addresses etcd as etcd://127.0.0.1:2379,
 * t2 by t1's underlay address. No --node-name, no --advertise-address.
 *   1. t1 registers as `twin` with a fresh node id (<state-dir>/node-id) and advertises its
 *      underlay address (not 127.0.0.1; MTUs from eth-ul, not lo).
 *   2. t2 (same hostname) is refused: truss exits 1 naming both addresses and the fix.
 *   3. t2 with --node-name twin2 works: containers on both hosts get distinct addresses, ping
 *      across, and after several GC/resync periods no live claim was reclaimed.
 *   4. kill -9 of t1's truss and a start on its state: same id, claims and blocks; traffic flows.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { clusterFixture, DEFAULT_POOLS } from './harness/cluster.ts';
import { clusterStatus, nodeIdOf, waitSynced } from './harness/cluster-state.ts';
import { containerIp, createClusterNetwork, runContainer } from './harness/containers.ts';
import { etcdRecords } from './harness/etcd-keys.ts';
import type { Host } from './harness/host.ts';
import { waitExit } from './harness/procs.ts';
import { ping } from './harness/traffic.ts';
import { type Etcd, etcdIn, UNDERLAY_ADDRESS } from './harness/underlay.ts';
import { sleep, waitFor } from './harness/wait.ts';

const HOSTNAME = 'twin';
const NET = 'twins';
const SUBNET = '198.18.96.0/20';
const PREFIX = '/truss/v2/';
/**
 * A GC pass every 2 s (the full resync), reclaiming after 10 s: a wrong reclaim shows within
 * the waits below; shorter graces reclaim endpoints of a `docker run` still under way on a busy
 * machine (the container end is moved into the container only after Join).
 */
const GRACE_MS = 10_000;
const GC = ['--gc-grace-seconds', String(GRACE_MS / 1000), '--resync-seconds', '2'];
const RECLAIMED = 'reclaimed an orphaned cluster address claim';
const UNCLAIMED = 'a local address of a cluster network has no claim of this host in etcd';
const ENDPOINT_RECLAIMED = 'reclaimed orphaned endpoint';

const cluster = clusterFixture({ hosts: ['t1', 't2'], host: { hostname: HOSTNAME }, underlay: { etcd: false } });
let etcd: Etcd | undefined;
const t1 = (): Host => cluster.host('t1');
const t2 = (): Host => cluster.host('t2');
const tail = (h: Host): string => h.truss.logTail();

/** The time (ms since the epoch) of the last log line of h's truss with this msg, after `since`. */
function logTime(h: Host, msg: string, since = 0): number | undefined {
  let at: number | undefined;
  for (const line of h.truss.log().split('\n')) {
    if (!line.startsWith('{')) continue;
    const r = JSON.parse(line) as { msg?: string; time?: string };
    const t = Date.parse(r.time ?? '');
    if (r.msg === msg && t >= since) at = t;
  }
  return at;
}

/** Every key and JSON value under the cluster prefix, read from etcd in t1 (its JSON gateway on 127.0.0.1). */
const records = () => etcdRecords(t1(), 'http://127.0.0.1:2379', PREFIX);

/**
 * node id -> its blocks, its containers' claims and its own address's claim (docs/cluster.md#the-host-address),
 * sorted (what must survive restarts and GC passes).
 */
async function holdings(): Promise<Record<string, { blocks: string[]; claims: string[]; host: string[] }>> {
  const out: Record<string, { blocks: string[]; claims: string[]; host: string[] }> = {};
  for (const [k, v] of await records()) {
    const addr = k.startsWith(`${PREFIX}addrs/`) ? (v.owner === 'truss:host' ? 'host' : 'claims') : undefined;
    const kind = k.startsWith(`${PREFIX}blocks/`) ? 'blocks' : addr;
    if (!kind || typeof v.node !== 'string' || v.node === '*') continue;
    const h = out[v.node] ?? { blocks: [], claims: [], host: [] };
    h[kind].push(String(kind === 'blocks' ? v.block : v.address));
    out[v.node] = h;
  }
  for (const h of Object.values(out)) {
    h.blocks.sort();
    h.claims.sort();
    h.host.sort();
  }
  return out;
}

const serve = (endpoint: string, extra: readonly string[] = []) => ({
  defaultPools: DEFAULT_POOLS,
  // t1's etcd is on t1 (loopback: plaintext is fine); t2 reaches it over the underlay
  extraArgs: [
    '--store',
    `etcd://${endpoint}`,
    ...(endpoint.startsWith('127.') ? [] : ['--etcd-insecure']),
    ...GC,
    ...extra,
  ],
});

describe('truss cluster: node identity and an etcd on the same host', { timeout: 6 * 60_000 }, () => {
  before(async () => {
    await cluster.start();
    // t1 is a host like any other: a default route (via the underlay bridge, which goes nowhere)
    const r = await t1().exec(['ip', 'route', 'add', 'default', 'via', UNDERLAY_ADDRESS]);
    assert.equal(r.code, 0, r.stderr);
    const address = t1().underlayAddress as string;
    etcd = etcdIn(t1().netnsPath, join(t1().dir, 'etcd'), 2379, ['127.0.0.1', address]);
    t1().onStop(async () => etcd?.kill('SIGTERM'));
    await etcd.restart();
  });

  after(() => cluster.stop()); // t2 first: its clean-up still reaches etcd in t1

  it('1. t1 with etcd://127.0.0.1:2379 only: a fresh node id, its hostname as name, its underlay address', {
    timeout: 60_000,
  }, async () => {
    const host = await t1().exec(['nsenter', `--target=${t1().dockerdPid()}`, '--uts', 'hostname']);
    assert.equal(host.stdout.trim(), HOSTNAME);
    await t1().startTruss(serve('127.0.0.1:2379'));
    await waitSynced(t1(), 't1 registered');
    const id = nodeIdOf(t1());
    assert.match(id, /^[0-9a-f]{32}$/);
    const c = await clusterStatus(t1());
    assert.deepEqual([c.node, c.nodeId, c.mtu, c.vxlanMtu], [HOSTNAME, id, 1440, 1450]);
    const rec = (await records()).get(`${PREFIX}nodes/${id}`);
    assert.deepEqual([rec?.id, rec?.name, rec?.address], [id, HOSTNAME, t1().underlayAddress]);
    assert.match(t1().truss.log(), /"addressFrom":"default-route"/);
    const status = await t1().truss.cli(['status', '--state-dir', t1().truss.stateDir]);
    assert.ok(status.stdout.includes(`CLUSTER: host ${HOSTNAME} (node id ${id})`), status.stdout);
  });

  it('2. t2 with the same hostname is refused: exit 1, naming both addresses and the fix', {
    timeout: 90_000,
  }, async () => {
    const t0 = Date.now();
    await t2().startTruss(serve(`${t1().underlayAddress}:2379`));
    const pid = t2().truss.pid() as number;
    assert.ok(await waitExit(pid, 45_000), `t2's truss must exit:\n${tail(t2())}`);
    const refusedMs = Date.now() - t0;
    const suspected = logTime(
      t2(),
      "a node record has this host's name or node id: waiting one lease TTL to see if it is live",
    );
    const refused = logTime(t2(), "another live host has this host's identity; not registering");
    assert.ok(suspected && refused, tail(t2()));
    await waitFor(() => t2().truss.exitCode() !== null, 5000, { what: 'exit code of t2 truss' });
    assert.equal(t2().truss.exitCode(), 1, tail(t2()));
    const id1 = nodeIdOf(t1());
    const id2 = nodeIdOf(t2());
    assert.notEqual(id1, id2);
    const message =
      `truss: node name ${HOSTNAME} is already taken by another live host: ${t1().underlayAddress} (node id ${id1}) ` +
      `is registered as ${HOSTNAME}, and this host ${t2().underlayAddress} (node id ${id2}) cannot be too: ` +
      'give this host its own --node-name, or a unique hostname';
    assert.ok(t2().truss.log().split('\n').includes(message), `expected line:\n${message}\n--- log ---\n${tail(t2())}`);
    assert.equal((await records()).has(`${PREFIX}nodes/${id2}`), false, 't2 never registered');
    assert.ok(t1().truss.running(), "t1's truss keeps running");
    process.stdout.write(
      `# t2 (duplicate name) exited ${refusedMs} ms after its start; refused ${refused - suspected} ms after it ` +
        'first saw the other record (lease TTL 15 s + 2 s)\n',
    );
  });

  it('3. t2 with --node-name twin2: distinct addresses, ping across, no live claim reclaimed', {
    timeout: 150_000,
  }, async () => {
    const id2 = nodeIdOf(t2());
    await t2().startTruss(serve(`${t1().underlayAddress}:2379`, ['--node-name', 'twin2']));
    await waitSynced(t2(), 't2 registered');
    assert.equal(nodeIdOf(t2()), id2, 'the node id made at the refused start is kept');
    for (const h of cluster.hosts) {
      const r = await createClusterNetwork(h, NET, SUBNET);
      assert.equal(r.code, 0, `network create on ${h.name}: ${r.stderr}\n${tail(h)}`);
    }
    await runContainer(t1(), { name: 'ca', network: NET });
    await runContainer(t2(), { name: 'cb', network: NET });
    const a = await containerIp(t1(), 'ca', NET);
    const b = await containerIp(t2(), 'cb', NET);
    assert.notEqual(a, b);
    assert.ok(await ping(t1(), 'ca', b), `a -> b\n${tail(t1())}`);
    assert.ok(await ping(t2(), 'cb', a), `b -> a\n${tail(t2())}`);
    const id1 = nodeIdOf(t1());
    const held = await holdings();
    assert.deepEqual([held[id1]?.claims, held[id2]?.claims], [[a], [b]], JSON.stringify(held));
    const peers = (await clusterStatus(t1())).peers;
    assert.deepEqual(
      peers.map((p) => [p.node, p.name, p.endpoint]),
      [[id2, 'twin2', `${t2().underlayAddress}:51820`]],
    );
    await sleep(2 * GRACE_MS + 4000); // two grace periods and more, a GC pass every 2 s
    for (const h of cluster.hosts) {
      assert.ok(!h.truss.log().includes(RECLAIMED), `${h.name} reclaimed a claim:\n${tail(h)}`);
      assert.ok(!h.truss.log().includes(UNCLAIMED), `${h.name} lost a claim:\n${tail(h)}`);
      assert.ok(!h.truss.log().includes(ENDPOINT_RECLAIMED), `${h.name} reclaimed a live endpoint:\n${tail(h)}`);
    }
    assert.deepEqual(await holdings(), held, 'claims and blocks unchanged after the GC passes');
    assert.ok(await ping(t1(), 'ca', b), 'a -> b after the GC passes');
  });

  it('4. kill -9 of t1 and a start on its state: same id, claims and blocks; traffic flows', {
    timeout: 90_000,
  }, async () => {
    const id1 = nodeIdOf(t1());
    const held = await holdings();
    const pid = t1().truss.pid() as number;
    process.kill(-pid, 'SIGKILL');
    assert.ok(await waitExit(pid, 5000));
    const t0 = Date.now();
    await t1().startTruss(serve('127.0.0.1:2379'));
    await waitSynced(t1(), 't1 registered again');
    const started = logTime(t1(), 'cluster mode', t0) as number;
    const registeredMs = (logTime(t1(), 'registered in the cluster store', t0) as number) - started;
    assert.ok(registeredMs < 10_000, `a restart is not held up by its own old record (${registeredMs} ms)`);
    assert.equal(nodeIdOf(t1()), id1);
    assert.equal((await clusterStatus(t1())).nodeId, id1);
    assert.ok(!t1().truss.log().includes('waiting one lease TTL'), tail(t1()));
    await runContainer(t1(), { name: 'ca2', network: NET });
    const a2 = await containerIp(t1(), 'ca2', NET);
    assert.ok(await ping(t2(), 'cb', a2), `b -> a2 (a new container after the restart)\n${tail(t1())}`);
    assert.ok(await ping(t2(), 'cb', await containerIp(t1(), 'ca', NET)), 'b -> a');
    await sleep(GRACE_MS + 4000); // a grace period and more of GC passes on the restarted t1
    const now = await holdings();
    assert.deepEqual(now[id1]?.blocks, held[id1]?.blocks, 'same blocks');
    assert.deepEqual(now[id1]?.claims, [...(held[id1]?.claims ?? []), a2].sort(), 'same claims, plus a2');
    assert.deepEqual(now[nodeIdOf(t2())], held[nodeIdOf(t2())]);
    for (const h of cluster.hosts) assert.ok(!h.truss.log().includes(RECLAIMED), `${h.name}:\n${tail(h)}`);
    process.stdout.write(`# t1 registered again ${registeredMs} ms after its start on its state (kill -9)\n`);
  });
});
