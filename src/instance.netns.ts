/**
 * Kernel test (root) of issue 13 H3: one truss per host, and no pruning on an empty memory.
 * Real `truss serve` daemons in one throwaway network namespace (one simulated host), each with
 * its own temp --state-dir and --socket:
 *   - a second daemon with another state dir is refused (naming the first) and touches nothing;
 *   - a daemon on a new, empty state dir beside the first one's objects starts, leaves them
 *     alone and reports them (status, log); the first one, restarted, finds its kernel intact;
 *   - an upgrade: unstamped marks (truss before state ids) are adopted by their own database;
 *   - `truss cleanup --foreign` removes the other state's objects.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { before, describe, it } from 'node:test';
import { bridgeName, hostVethName, peerVethName } from './core/naming.ts';
import { daemonSuite, request, type Daemon as StartedDaemon, stopDaemon, TRUSS } from './daemon-testutil.ts';
import { listTestNamespaces, randomId, run, type TestNs } from './dataplane/linux/netns-testutil.ts';

interface Daemon extends StartedDaemon {
  readonly dir: string;
}

const socketOf = (dir: string): string => join(dir, 'plugin.sock');
const adminOf = (dir: string): string => join(dir, 'state', 'admin.sock');

describe('one truss per host; no pruning on an empty memory (H3)', () => {
  const host = daemonSuite('h3', 'h3');
  let ns: TestNs;
  let ctr: TestNs;
  let root: string;
  const nid = randomId();
  const eid = randomId();
  const bridge = bridgeName(nid);
  const veth = hostVethName(eid);

  /** every daemon started, in order (the suite kills them at the end) */
  const daemons: Daemon[] = [];
  function start(dir: string): Daemon {
    const argv = ns.argv([TRUSS, 'serve', '--state-dir', join(dir, 'state'), '--socket', socketOf(dir)]);
    const d = { ...host.start(argv), dir };
    daemons.push(d);
    return d;
  }

  /** Waits for the socket, then for the start-up pass; returns the daemon's status. */
  async function ready(d: Daemon): Promise<Record<string, unknown>> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (d.child.exitCode !== null) throw new Error(`truss serve exited: ${d.output()}`);
      const s = await request(adminOf(d.dir), 'GET', '/v1/status').catch(() => undefined);
      const first = (s?.body.reconciler as { firstPass?: unknown } | undefined)?.firstPass;
      if (first) return s?.body as Record<string, unknown>;
      if (Date.now() > deadline) throw new Error(`truss serve did not reconcile: ${d.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const stop = (d: Daemon): Promise<void> => stopDaemon(d, 'SIGTERM');

  /** What the host's kernel holds of truss: links with their marks, and the nft ruleset. */
  async function kernel(): Promise<{ links: string[]; nft: string }> {
    const links = (await ns.ipJson<{ ifname: string; ifalias?: string }[]>(['-d', 'link', 'show']))
      .filter((l) => l.ifname.startsWith('tr'))
      .map((l) => `${l.ifname} ${l.ifalias ?? '-'}`)
      .sort();
    const nft = (await ns.must(['nft', 'list', 'ruleset'])).replace(/ # handle \d+/g, '');
    return { links, nft };
  }

  const dirA = (): string => join(root, 'a');
  const dirB = (): string => join(root, 'b');
  const dirC = (): string => join(root, 'c');
  const firstPass = (s: Record<string, unknown>) =>
    (s.reconciler as { firstPass: { changes: number; failures: number } }).firstPass;
  const inSync = (s: Record<string, unknown>) => s.kernel as { inSync: boolean; problems: string[] };
  const foreignOf = (s: Record<string, unknown>) =>
    (s.ownership as { foreign: { count: number; links: { name: string }[]; fix?: string } }).foreign;

  before(async () => {
    ({ ns, dir: root } = host);
    ctr = await host.scratch.ns('h3c');
  });

  it('the first daemon makes a network with a joined endpoint (its container in another namespace)', async () => {
    const a = start(dirA());
    await ready(a);
    const sock = socketOf(dirA());
    const net = await request(sock, 'POST', '/NetworkDriver.CreateNetwork', {
      NetworkID: nid,
      Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': {} },
      IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '198.18.30.0/24', Gateway: '198.18.30.1/24', AuxAddresses: {} }],
      IPv6Data: [],
    });
    assert.equal(net.status, 200, JSON.stringify(net.body));
    const ep = await request(sock, 'POST', '/NetworkDriver.CreateEndpoint', {
      NetworkID: nid,
      EndpointID: eid,
      Interface: { Address: '198.18.30.2/24' },
      Options: {},
    });
    assert.equal(ep.status, 200, JSON.stringify(ep.body));
    const join_ = await request(sock, 'POST', '/NetworkDriver.Join', {
      NetworkID: nid,
      EndpointID: eid,
      SandboxKey: ctr.path,
      Options: {},
    });
    assert.equal(join_.status, 200, JSON.stringify(join_.body));
    // Docker's part of Join: the container end leaves the host namespace
    await ns.must(['ip', 'link', 'set', peerVethName(eid), 'netns', ctr.name]);
    const k = await kernel();
    assert.equal(k.links.length, 2, k.links.join('\n'));
    assert.match(k.links.join('\n'), new RegExp(`^${bridge} truss:br:${nid}:[0-9a-f]{16}$`, 'm'));
    assert.match(k.nft, /table inet truss/);
  });

  it('upgrade: marks without a state stamp are adopted by their own database and restamped', async () => {
    await stop(daemons[0] as Daemon);
    // as truss before state ids left them: unstamped marks, no state id in the database
    await ns.must(['ip', 'link', 'set', bridge, 'alias', `truss:br:${nid}`]);
    await ns.must(['ip', 'link', 'set', veth, 'alias', `truss:ep:${eid}`]);
    const db = new DatabaseSync(join(dirA(), 'state', 'state.db'));
    db.prepare('DELETE FROM kv WHERE key = ?').run('/truss/v1/state-id');
    db.close();
    const a = start(dirA());
    const s = await ready(a);
    assert.deepEqual(firstPass(s), { ...firstPass(s), changes: 2, failures: 0 });
    assert.equal(foreignOf(s).count, 0);
    assert.deepEqual(inSync(s), { inSync: true, problems: [] });
    const k = await kernel();
    assert.match(k.links.join('\n'), new RegExp(`^${veth} truss:ep:${eid}:[0-9a-f]{16}$`, 'm'));
  });

  it('a second daemon with another state dir is refused, naming the first, and touches nothing', async () => {
    const a = daemons[1] as Daemon;
    const before_ = await kernel();
    const b = start(dirB());
    const code = await Promise.race([b.exited, new Promise<number>((r) => setTimeout(() => r(-1), 30_000))]);
    assert.equal(code, 1, b.output());
    assert.match(
      b.output(),
      new RegExp(
        `^truss: another truss daemon already runs on this host's network stack \\(pid \\d+, state dir ${join(dirA(), 'state')}, socket ${socketOf(dirA())}\\); ` +
          `one truss per host owns its bridges, veths and nft tables, and a second one with state dir ${join(dirB(), 'state')} would fight it: ` +
          'stop the other one first \\(systemctl stop truss, docker plugin disable truss, or kill that pid\\), or use its state dir$',
        'm',
      ),
    );
    assert.equal((await run(['test', '-e', socketOf(dirB())])).code, 1, 'the second daemon bound no plugin socket');
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await kernel(), before_);
    const s = await request(adminOf(dirA()), 'POST', '/v1/reconcile');
    assert.equal((s.body.pass as { changes: number }).changes, 0);
    await stop(a);
  });

  it('a daemon on a new state dir beside them starts, leaves them alone and reports them', async () => {
    const before_ = await kernel();
    const c = start(dirC());
    const s = await ready(c);
    assert.equal(foreignOf(s).count, 2);
    assert.deepEqual(
      foreignOf(s)
        .links.map((l) => l.name)
        .sort(),
      [bridge, veth].sort(),
    );
    assert.match(String(foreignOf(s).fix), /--state-dir that made them.*truss cleanup --foreign/);
    // a few full passes (the resync): still nothing touched
    for (let i = 0; i < 3; i++) await request(adminOf(dirC()), 'POST', '/v1/reconcile');
    assert.deepEqual(await kernel(), before_);
    const warn = c
      .output()
      .split('\n')
      .filter((l) => l.includes('truss objects of another state found'));
    assert.equal(warn.length, 1, c.output());
    assert.match(warn[0] as string, /"level":"warn"/);
    const cli = await run([TRUSS, 'status', '--state-dir', join(dirC(), 'state')]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(
      cli.stdout,
      /^WARNING: 2 truss object\(s\) of another state \(this state: [0-9a-f]{16}\), left alone and never pruned:$/m,
    );
    assert.match(cli.stdout, new RegExp(`^  - bridge ${bridge} \\(state [0-9a-f]{16}\\)$`, 'm'));
    // truss doctor, without the daemon's help, says the same
    const flags = ['--state-dir', join(dirC(), 'state'), '--socket', socketOf(dirC())];
    const doc = await ns.run([TRUSS, 'doctor', ...flags], undefined, 60_000);
    assert.match(
      doc.stdout,
      new RegExp(
        `^WARN +truss objects of another state +2 not made by state [0-9a-f]{16} \\(${join(dirC(), 'state')}\\), ` +
          `left alone by its daemon: ${bridge}, ${veth}$`,
        'm',
      ),
      doc.stdout,
    );
    assert.match(
      doc.stdout,
      /^ +fix: start truss with the --state-dir that made them to adopt them, or remove them with `truss cleanup --foreign`$/m,
    );
    assert.match(
      doc.stdout,
      new RegExp(
        `^INFO +truss serve on this host +running: pid ${c.child.pid ?? 0}|^INFO +truss serve on this host +running: pid \\d+, state dir ${join(dirC(), 'state')}`,
        'm',
      ),
    );
    await stop(c);
  });

  it('the first daemon, restarted, finds its kernel intact: in sync with 0 changes', async () => {
    const a = start(dirA());
    const s = await ready(a);
    assert.deepEqual(firstPass(s), { ...firstPass(s), changes: 0, failures: 0 });
    assert.deepEqual(inSync(s), { inSync: true, problems: [] });
    assert.equal(foreignOf(s).count, 0);
    assert.equal((s.endpoints as unknown[]).length, 1);
    await stop(a);
  });

  it('truss cleanup --foreign removes them (and the shared tables kept for them)', async () => {
    const c = start(dirC());
    await ready(c);
    const r = await run([TRUSS, 'cleanup', '--foreign', '--state-dir', join(dirC(), 'state')], undefined, 60_000);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // veths first, then bridges
    assert.equal(r.stdout, `removed 2 truss link(s) of another state: ${veth}, ${bridge}\n`);
    const k = await kernel();
    assert.deepEqual(k.links, []);
    assert.doesNotMatch(k.nft, /table inet truss\b/);
    const s = await request(adminOf(dirC()), 'GET', '/v1/status');
    assert.equal(foreignOf(s.body).count, 0);
    const again = await run([TRUSS, 'cleanup', '--foreign', '--state-dir', join(dirC(), 'state')]);
    assert.equal(again.stdout, 'no truss links of another state on this host\n');
    await stop(c);
  });

  it('leaves none of its namespaces behind', async () => {
    await ns.remove();
    await ctr.remove();
    const left = await listTestNamespaces();
    assert.deepEqual(
      left.filter((n) => n === ns.name || n === ctr.name),
      [],
    );
  });
});
