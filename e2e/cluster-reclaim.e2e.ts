/**
 * Cluster address space coming back to the pool, end to end: two simulated hosts r1 and r2
 * (one dockerd and one truss each) on one underlay with one etcd, the cluster network `teal`
 * (198.18.80.0/20) on both. What etcd holds is read directly (its JSON gateway, from the
 * underlay namespace), and the proof that space is free is another host taking an address in
 * it with `docker run --ip` (refused while the block is someone else's).
 *   1. docker network rm on r1 releases r1's blocks, claims and membership at once.
 *   2. truss cluster forget r1 on r2: refused while r1 is registered; once r1's truss is dead
 *      and its lease expired, it frees r1's blocks and claims.
 * (kill -9 of truss keeping its allocations is cluster.e2e.ts test 6.) The last test removes
 * everything and checks that no host keeps anything of truss.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inCidr } from './harness/cidr.ts';
import { clusterFixture, nodeName } from './harness/cluster.ts';
import { nodeIdOf } from './harness/cluster-state.ts';
import { containerIp, createClusterNetwork, removeContainers, runContainer } from './harness/containers.ts';
import { etcdRecords } from './harness/etcd-keys.ts';
import type { Host } from './harness/host.ts';
import { assertRemovedEverything, waitNoTrussLeftovers } from './harness/leftovers.ts';
import { listNetns } from './harness/netns.ts';
import { memoOnce } from './harness/once.ts';
import { waitExit } from './harness/procs.ts';
import { waitFor } from './harness/wait.ts';

const TEAL = 'teal';
const TEAL_SUBNET = '198.18.80.0/20';
const PREFIX = '/truss/v2/';
/** the agent's lease TTL (cluster/agent.ts) plus slack */
const LEASE_GONE_MS = 25_000;

const cluster = clusterFixture({ hosts: ['r1', 'r2'], truss: {} });
const once = memoOnce();
const r1 = (): Host => cluster.host('r1');
const r2 = (): Host => cluster.host('r2');

/**
 * What `node` (a node id) holds in etcd: blocks (CIDRs), its containers' claims (addresses), its own
 * address's claim (`host`, docs/cluster.md#the-host-address), membership, host record.
 */
async function heldBy(node: string) {
  const ul = cluster.underlay;
  const recs = await etcdRecords<{ node?: string; block?: string; address?: string; owner?: string }>(
    ul,
    ul.etcd.url,
    PREFIX,
  );
  const of = (kind: string) =>
    [...recs].filter(([k, v]) => k.startsWith(`${PREFIX}${kind}/`) && v.node === node).map(([, v]) => v);
  const isHost = (v: { owner?: string }): boolean => v.owner === 'truss:host';
  return {
    blocks: of('blocks').map((v) => v.block as string),
    claims: of('addrs')
      .filter((v) => !isHost(v))
      .map((v) => v.address as string),
    host: of('addrs')
      .filter(isHost)
      .map((v) => v.address as string),
    member: of('members').length > 0,
    registered: recs.has(`${PREFIX}nodes/${node}`),
  };
}

/** An address inside block (a /26 CIDR) at offset, as text. */
function inBlock(block: string, offset: number): string {
  const [base] = block.split('/');
  const parts = (base as string).split('.').map(Number);
  parts[3] = (parts[3] as number) + offset;
  return parts.join('.');
}

const createTeal = (h: Host) => createClusterNetwork(h, TEAL, TEAL_SUBNET);

const teal = () =>
  once('teal', async () => {
    for (const h of cluster.hosts) {
      const r = await createTeal(h);
      assert.equal(r.code, 0, `docker network create ${TEAL} on ${nodeName(h)}: ${r.stderr}\n${h.truss.logTail()}`);
    }
  });

describe('truss cluster: releases and forgotten hosts return address space', { timeout: 5 * 60_000 }, () => {
  before(() => cluster.start());

  after(() => cluster.stop());

  it('1. docker network rm on r1 releases its blocks and claims at once; r2 can use that space', {
    timeout: 120_000,
  }, async () => {
    await teal();
    await runContainer(r1(), { name: 'a1', network: TEAL });
    await runContainer(r2(), { name: 'b1', network: TEAL });
    const before = await heldBy(nodeIdOf(r1()));
    assert.equal(before.blocks.length, 1, `r1 blocks: ${JSON.stringify(before)}`);
    assert.deepEqual(before.claims, [await containerIp(r1(), 'a1', TEAL)]);
    assert.equal(before.host.length, 1, "r1's own address on teal");
    assert.equal(before.member, true);
    // status counts from the agent's watched copy of etcd: under load the watch may trail etcd a moment
    // (2 claims: a1's and the host address)
    const row = new RegExp(`teal\\s+${nodeIdOf(r1())}\\s+r1\\s+1\\s+2\\s+yes`);
    let status = '';
    await waitFor(
      async () => {
        status = (await r1().truss.cli(['status', '--state-dir', r1().truss.stateDir])).stdout;
        if (!row.test(status)) throw new Error(`status printed:\n${status}`);
        return true;
      },
      10_000,
      { what: "r1's status to show teal: 1 block, 2 claims, member yes", intervalMs: 250 },
    );
    assert.ok(status.includes(`CLUSTER: host r1 (node id ${nodeIdOf(r1())})`), status);

    await removeContainers(r1(), ['a1']);
    const rm = await r1().docker(['network', 'rm', TEAL]);
    assert.equal(rm.code, 0, `docker network rm ${TEAL} on r1: ${rm.stderr}`);
    const after = await heldBy(nodeIdOf(r1()));
    assert.deepEqual(
      { ...after, registered: true },
      { blocks: [], claims: [], host: [], member: false, registered: true },
      `r1 after docker network rm:\n${r1().truss.logTail()}`,
    );
    assert.ok(after.registered, 'r1 itself is still registered (it only left the network)');
    assert.ok((await heldBy(nodeIdOf(r2()))).claims.length > 0, "r2's claims stay");

    const ip = inBlock(before.blocks[0] as string, 5);
    assert.ok(inCidr(ip, before.blocks[0] as string));
    await runContainer(r2(), { name: 'b2', network: TEAL, ip }).catch((e: unknown) => {
      throw new Error(`docker run --ip ${ip} on r2: ${String(e)}\n${r2().truss.logTail()}`);
    });
    assert.equal(await containerIp(r2(), 'b2', TEAL), ip);
  });

  it('2. truss cluster forget r1: refused while r1 is registered; after r1 died, frees its blocks', {
    timeout: 120_000,
  }, async () => {
    await teal();
    const again = await createTeal(r1());
    assert.equal(again.code, 0, `docker network create ${TEAL} on r1 again: ${again.stderr}`);
    await runContainer(r1(), { name: 'a2', network: TEAL });
    const id1 = nodeIdOf(r1());
    const held = await heldBy(id1);
    assert.equal(held.blocks.length, 1, JSON.stringify(held));

    const refused = await r2().truss.cli(['cluster', 'forget', id1, '--state-dir', r2().truss.stateDir]);
    assert.equal(refused.code, 1, `forget of a live host must be refused: ${refused.stdout}${refused.stderr}`);
    assert.ok(refused.stderr.includes(`host ${id1} (r1) is registered`), refused.stderr);
    assert.match(refused.stderr, /--force/);
    assert.deepEqual((await heldBy(id1)).blocks, held.blocks, 'nothing freed when refused');

    const pid = r1().truss.pid() as number;
    process.kill(-pid, 'SIGKILL'); // r1 is gone for good (its state stays behind)
    assert.ok(await waitExit(pid, 5000), 'r1 truss must be dead');
    const t0 = performance.now();
    await waitFor(async () => !(await heldBy(id1)).registered, LEASE_GONE_MS, {
      what: "r1's lease to expire",
      intervalMs: 500,
    });
    const leaseMs = Math.round(performance.now() - t0);

    const forgot = await r2().truss.cli(['cluster', 'forget', id1, '--state-dir', r2().truss.stateDir]);
    assert.equal(forgot.code, 0, `truss cluster forget ${id1}: ${forgot.stderr}\n${r2().truss.logTail()}`);
    assert.ok(forgot.stdout.startsWith(`forgot host ${id1}\n`), forgot.stdout);
    // a2's claim and r1's host address
    assert.match(forgot.stdout, /\n {2}teal: 1 block\(s\) \(.*\), 2 address claim\(s\)/);
    assert.ok(forgot.stdout.includes(held.blocks[0] as string), forgot.stdout);
    assert.deepEqual(await heldBy(id1), { blocks: [], claims: [], host: [], member: false, registered: false });

    const ip = inBlock(held.blocks[0] as string, 7);
    await runContainer(r2(), { name: 'b3', network: TEAL, ip });
    assert.equal(await containerIp(r2(), 'b3', TEAL), ip);
    process.stdout.write(
      `# r1 lease gone ${leaseMs} ms after kill -9; ${forgot.stdout.trim().replace(/\n\s*/g, ' / ')}\n`,
    );
  });

  it('3. everything removed on both hosts leaves nothing of truss; etcd and the underlay stop', {
    timeout: 120_000,
  }, async () => {
    if (!r1().truss.running()) await r1().truss.start();
    await assertRemovedEverything(cluster.hosts);
    for (const node of [nodeIdOf(r1()), nodeIdOf(r2())]) {
      const left = await heldBy(node);
      assert.deepEqual(
        [left.blocks, left.claims, left.host, left.member],
        [[], [], [], false],
        `${node} holds nothing in etcd`,
      );
    }
    await waitNoTrussLeftovers(cluster.hosts);
    const names = cluster.hosts.map((h) => h.name);
    const ul = cluster.underlay;
    await cluster.stop();
    assert.deepEqual(
      listNetns().filter((n) => names.includes(n) || n === ul.name),
      [],
      'the hosts and the underlay namespaces must be gone',
    );
  });
});
