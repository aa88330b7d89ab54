/**
 * Kernel test (root): no leaks after a crash, and a full state disk fails clearly (issue 13:
 * M1, F8 of the reliability test plan). `truss serve` runs in a throwaway network namespace
 * with a short grace (--gc-grace-seconds 2, --resync-seconds 1).
 *
 * - M1: kill -9 while CreateEndpoints wait for the kernel; Docker never learns of the ones
 *   committed, so they are never joined nor deleted. After the restart and the grace period,
 *   nothing is left: no endpoint record, no veth, no IPAM address.
 * - F8: the state dir on a 4 MiB tmpfs mounted in a private mount namespace (a holder process
 *   keeps it; killing it frees everything). Filled up: every request answers (Err or not),
 *   the daemon stays up, deletes still commit (the reserve), the db reopens across restarts;
 *   after freeing space, requests work without a restart and the kernel matches the store.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { daemonSuite, get, post, stopDaemon, TRUSS, waitForSocket } from '../daemon-testutil.ts';
import { createTestNs, listTestNamespaces, randomId, run, type TestNs } from '../dataplane/linux/netns-testutil.ts';

const FAST = ['--gc-grace-seconds', '2', '--resync-seconds', '1'];

async function waitUntil(what: string, ms: number, ok: () => Promise<boolean>): Promise<number> {
  const t0 = Date.now();
  while (!(await ok())) {
    if (Date.now() - t0 > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return Date.now() - t0;
}

const network = (nid: string, n: number) => ({
  NetworkID: nid,
  Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': {} },
  IPv4Data: [{ AddressSpace: 'TrussLocal', Pool: `198.18.${n}.0/24`, Gateway: `198.18.${n}.1/24`, AuxAddresses: {} }],
  IPv6Data: [],
});
const endpoint = (nid: string, eid: string, address: string, pad = 0) => ({
  NetworkID: nid,
  EndpointID: eid,
  Interface: { Address: address },
  Options: pad > 0 ? { 'com.example.pad': 'x'.repeat(pad) } : {},
});

interface Status {
  endpoints: unknown[];
  addresses: { kind: string }[];
  kernel: { inSync: boolean; problems: string[] };
}
const status = async (adminSock: string): Promise<Status> => (await get(adminSock, '/v1/status')) as unknown as Status;
const vethCount = async (ns: TestNs): Promise<number> =>
  (await ns.ipJson<{ ifname: string }[]>(['link', 'show', 'type', 'veth'])).filter((l) => l.ifname.startsWith('trv'))
    .length;

describe('no leaks after kill -9 mid-CreateEndpoint (M1)', () => {
  const host = daemonSuite('leak', 'leaks');

  it('endpoints committed but never answered are reclaimed after the grace period, with their addresses', async () => {
    const socket = join(host.dir, 'plugin.sock');
    const admin = join(host.dir, 'state', 'admin.sock');
    const argv = host.ns.argv([TRUSS, 'serve', '--state-dir', join(host.dir, 'state'), '--socket', socket, ...FAST]);
    let d = host.start(argv);
    await waitForSocket(d, socket);
    const nid = randomId();
    const pool = await post(socket, '/IpamDriver.RequestPool', { AddressSpace: 'TrussLocal', Pool: '198.18.60.0/24' });
    assert.equal(pool.status, 200, JSON.stringify(pool.body));
    // the gateway first, as dockerd does (else the first address would be it, which CreateEndpoint refuses)
    const gw = await post(socket, '/IpamDriver.RequestAddress', {
      PoolID: pool.body.PoolID,
      Address: '198.18.60.1',
      Options: { RequestAddressType: 'com.docker.network.gateway' },
    });
    assert.equal(gw.status, 200, JSON.stringify(gw.body));
    assert.equal((await post(socket, '/NetworkDriver.CreateNetwork', network(nid, 60))).status, 200);
    const addrs: string[] = [];
    for (let i = 0; i < 20; i++) {
      const a = await post(socket, '/IpamDriver.RequestAddress', { PoolID: pool.body.PoolID, Options: {} });
      addrs.push(String(a.body.Address));
    }
    // 20 parallel creates; kill -9 as soon as the first intent is durable (replies still pending)
    const replies = addrs.map((a) =>
      post(socket, '/NetworkDriver.CreateEndpoint', endpoint(nid, randomId(), a)).then(
        (r) => r.status,
        () => 0,
      ),
    );
    await waitUntil('an endpoint intent is stored', 15_000, async () => (await status(admin)).endpoints.length > 0);
    await stopDaemon(d);
    const codes = await Promise.all(replies);
    d = host.start(argv);
    await waitForSocket(d, socket);
    const before = await status(admin);
    const leaked = before.endpoints.length;
    console.log(
      `# M1: ${codes.filter((c) => c === 0).length}/20 creates unanswered, ${leaked} committed after restart`,
    );
    assert.ok(leaked > 0);
    const ms = await waitUntil('every unjoined endpoint reclaimed', 120_000, async () => {
      const s = await status(admin);
      return (
        s.endpoints.length === 0 && s.addresses.every((a) => a.kind !== 'endpoint') && (await vethCount(host.ns)) === 0
      );
    }).catch(async (e) => {
      const s = await status(admin);
      throw new Error(
        `${e.message}: ${s.endpoints.length} endpoints, ${JSON.stringify(s.addresses)}, ${await vethCount(host.ns)} veths\n${d.output().slice(-3000)}`,
      );
    });
    console.log(`# M1: ${leaked} leaked endpoints reclaimed ${ms} ms after the restart (grace 2 s, resync 1 s)`);
    await waitUntil('kernel in sync', 10_000, async () => (await status(admin)).kernel.inSync);
    assert.match(d.output(), /"msg":"reclaimed orphaned endpoint".*"reason":"no container joined it"/);
    await stopDaemon(d);
  });

  it('a joined endpoint is never reclaimed while its sandbox exists', async () => {
    const socket = join(host.dir, 'plugin2.sock');
    const admin = join(host.dir, 'state2', 'admin.sock');
    const flags = ['--gc-grace-seconds', '8', '--resync-seconds', '1'];
    const d = host.start(
      host.ns.argv([TRUSS, 'serve', '--state-dir', join(host.dir, 'state2'), '--socket', socket, ...flags]),
    );
    await waitForSocket(d, socket);
    const nid = randomId();
    const eid = randomId();
    const sb = await createTestNs('sb'); // the container's sandbox, a live netns file
    assert.equal((await post(socket, '/NetworkDriver.CreateNetwork', network(nid, 61))).status, 200);
    assert.equal(
      (await post(socket, '/NetworkDriver.CreateEndpoint', endpoint(nid, eid, '198.18.61.2/24'))).status,
      200,
    );
    try {
      const j = await post(socket, '/NetworkDriver.Join', { NetworkID: nid, EndpointID: eid, SandboxKey: sb.path });
      assert.equal(j.status, 200, JSON.stringify(j.body));
      await new Promise((r) => setTimeout(r, 20_000)); // > 2 graces: the joined endpoint (peer in the host) stays
      assert.equal((await status(admin)).endpoints.length, 1);
      await sb.remove(); // the sandbox is gone: now it is an orphan
      await waitUntil('the orphan is reclaimed', 60_000, async () => (await status(admin)).endpoints.length === 0);
    } finally {
      await sb.remove();
      await stopDaemon(d);
    }
  });

  it('leaves none of its namespaces behind', async () => {
    await host.ns.remove();
    assert.ok(!(await listTestNamespaces()).includes(host.ns.name));
  });
});

describe('F8: a full state disk', () => {
  const host = daemonSuite('full', 'full');
  let holder: ChildProcess;
  let root: string; // the holder's view of the file system (/proc/PID/root)
  before(async () => {
    mkdirSync(join(host.dir, 'tiny'));
    // killed at the end (the suite's scratch): its mount namespace, and the tmpfs, go with it
    holder = host.scratch.proc(
      spawn(
        'unshare',
        [
          '-m',
          '--propagation',
          'private',
          'sh',
          '-c',
          'mount -t tmpfs -o size=4m,mode=0700 tmpfs "$1" && echo ready && exec sleep 3600',
          'sh',
          join(host.dir, 'tiny'),
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      ),
    );
    await new Promise<void>((resolve, reject) => {
      holder.stdout?.once('data', () => resolve());
      holder.once('exit', (c) => reject(new Error(`tmpfs holder exited ${c}`)));
    });
    root = `/proc/${holder.pid}/root`;
  });

  it('every request answers, deletes still commit, restarts work, and space freed heals without a restart', async () => {
    const stateDir = join(host.dir, 'tiny', 'state');
    const socket = join(host.dir, 'plugin.sock');
    const admin = `${root}${stateDir}/admin.sock`;
    const argv = [
      'nsenter',
      `--target=${holder.pid}`,
      '--mount',
      `--net=${host.ns.path}`,
      '--',
      TRUSS,
      'serve',
      '--state-dir',
      stateDir,
      '--socket',
      socket,
      '--resync-seconds',
      '1',
    ];
    let d = host.start(argv);
    await waitForSocket(d, socket);
    assert.ok(existsSync(`${root}${stateDir}/reserve`));
    const nid = randomId();
    assert.equal((await post(socket, '/NetworkDriver.CreateNetwork', network(nid, 62))).status, 200);
    const created: string[] = [];
    for (let i = 0; i < 10; i++) {
      const eid = randomId();
      const c = await post(socket, '/NetworkDriver.CreateEndpoint', endpoint(nid, eid, `198.18.62.${i + 2}/24`, 4000));
      assert.equal(c.status, 200, JSON.stringify(c.body));
      created.push(eid);
    }
    // fill the disk (leaving the reserve in place)
    await run(['dd', 'if=/dev/zero', `of=${root}${host.dir}/tiny/filler`, 'bs=4k'], undefined, 30_000);
    const errs = new Set<string>();
    let ops = 0;
    let deletes = 0;
    // 100 create/delete operations on a full disk: every one answers; none crashes the daemon
    for (let i = 0; i < 100; i++, ops++) {
      const victim = i % 2 === 1 ? created.shift() : undefined;
      if (victim) {
        const r = await post(socket, '/NetworkDriver.DeleteEndpoint', { NetworkID: nid, EndpointID: victim });
        assert.equal(r.status, 200, `a delete on a full disk must commit: ${JSON.stringify(r.body)}`);
        deletes++;
        continue;
      }
      const eid = randomId();
      const c = await post(socket, '/NetworkDriver.CreateEndpoint', endpoint(nid, eid, `198.18.62.${i + 20}/24`, 4000));
      if (c.status === 200) created.push(eid);
      else errs.add(String(c.body.Err));
    }
    console.log(
      `# F8: ${ops} operations on a full disk, ${deletes} deletes committed; ${created.length} endpoints left; errors: ${[...errs].join(' | ')}`,
    );
    assert.ok(errs.size > 0, 'the disk never filled');
    for (const e of errs)
      assert.match(e, /state database txn failed on .*state\.db: the disk is full; free space on it/);
    assert.equal(d.child.exitCode, null, 'the daemon must stay up');
    // every left endpoint is deleted despite the full disk
    for (const eid of created.splice(0)) {
      const r = await post(socket, '/NetworkDriver.DeleteEndpoint', { NetworkID: nid, EndpointID: eid });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    // restart 3 times in the full state: the db is always loadable
    const t0 = Date.now();
    for (let i = 0; i < 3; i++) {
      await stopDaemon(d, 'SIGTERM');
      d = host.start(argv);
      await waitForSocket(d, socket);
    }
    console.log(`# F8: 3 restarts in the full state took ${Date.now() - t0} ms`);
    // free space: the next writes succeed without a restart; the kernel matches the store
    rmSync(`${root}${host.dir}/tiny/filler`);
    const eid = randomId();
    const ok = await post(socket, '/NetworkDriver.CreateEndpoint', endpoint(nid, eid, '198.18.62.200/24', 4000));
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    await waitUntil('kernel in sync', 15_000, async () => (await status(admin)).kernel.inSync);
    assert.equal((await status(admin)).endpoints.length, 1);
    assert.equal(await vethCount(host.ns), 1);
    await waitUntil('the reserve is back', 20_000, async () => existsSync(`${root}${stateDir}/reserve`));
    await post(socket, '/NetworkDriver.DeleteEndpoint', { NetworkID: nid, EndpointID: eid });
    await stopDaemon(d, 'SIGTERM');
  });

  it('leaves none of its namespaces behind', async () => {
    await host.ns.remove();
    assert.ok(!(await listTestNamespaces()).includes(host.ns.name));
  });
});
