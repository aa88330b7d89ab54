/**
 * Kernel tests (root): bridges in a throwaway namespace.
 * Run: node --test --test-concurrency=1 'src/**\/*.netns.ts' (npm run test:kernel).
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { BridgeObject } from '../../core/desired.ts';
import { bridgeMac, bridgeName, ownerMark } from '../../core/naming.ts';
import { createLinuxDataplane, type LinuxDataplane } from './linux-dataplane.ts';
import {
  commandRecorder,
  createScratch,
  createTestNs,
  listTestNamespaces,
  pingOk,
  randomId,
  type TestNs,
} from './netns-testutil.ts';

interface IpLink {
  ifindex: number;
  ifname: string;
  ifalias?: string;
  mtu: number;
  flags: string[];
  addr_info?: { local: string; prefixlen: number; scope: string }[];
}

/** Polls `ok` every 50 ms until it holds or `ms` have passed. */
async function waitUntil(ok: () => Promise<boolean>, ms: number): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end && !(await ok()); ) await new Promise((r) => setTimeout(r, 50));
}

describe('bridge (kernel)', () => {
  let ns: TestNs;
  let dp: LinuxDataplane;
  const rec = commandRecorder();
  const nid = randomId();
  const b: BridgeObject = {
    name: bridgeName(nid),
    networkId: nid,
    mtu: 1450,
    mac: bridgeMac(nid),
    addresses: ['198.18.10.1/24', 'fd00:10::1/64'],
  };
  const link = async (name: string): Promise<IpLink | undefined> => {
    const r = await ns.run(['ip', '-j', '-d', 'addr', 'show', 'dev', name]);
    return r.code === 0 ? (JSON.parse(r.stdout) as IpLink[])[0] : undefined;
  };
  const globals = (l: IpLink | undefined): string[] =>
    (l?.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`);

  const scratch = createScratch();
  before(async () => {
    ns = await scratch.ns('br');
    dp = createLinuxDataplane({ netns: ns.path, onCommand: rec.onCommand });
  });

  it('creates a marked bridge with MTU, gateways, up and accept_ra=0; ensure twice = same ifindex, no writes', async (t) => {
    const t0 = performance.now();
    await dp.ensureBridge(b);
    t.diagnostic(`ensureBridge (create) ${(performance.now() - t0).toFixed(1)} ms`);
    const first = await link(b.name);
    assert.equal(first?.ifalias, ownerMark('br', nid));
    assert.equal(first?.mtu, 1450);
    assert.ok(first?.flags.includes('UP'));
    assert.deepEqual(globals(first), b.addresses);
    assert.equal((await ns.must(['sysctl', '-n', `net/ipv6/conf/${b.name}/accept_ra`])).trim(), '0');
    assert.equal((await ns.must(['sysctl', '-n', `net/ipv6/conf/${b.name}/accept_dad`])).trim(), '0');

    rec.reset();
    const t1 = performance.now();
    await dp.ensureBridge(b);
    t.diagnostic(`ensureBridge (no change) ${(performance.now() - t1).toFixed(1)} ms, ${rec.argvs.length} commands`);
    assert.deepEqual(rec.writes(), []);
    assert.equal((await link(b.name))?.ifindex, first?.ifindex);
  });

  it('lists it as ours', async () => {
    const links = await dp.listLinks();
    assert.deepEqual(
      links.map((l) => [l.name, l.kind, l.mark?.kind, l.mark?.id]),
      [[b.name, 'bridge', 'br', nid]],
    );
  });

  it('repairs drift: wrong MTU, extra address, missing gateway, down', async () => {
    await ns.must(['ip', 'link', 'set', b.name, 'mtu', '1300', 'down']);
    await ns.must(['ip', 'addr', 'add', '198.18.11.1/24', 'dev', b.name]);
    await ns.must(['ip', 'addr', 'del', '198.18.10.1/24', 'dev', b.name]);
    await dp.ensureBridge(b);
    const l = await link(b.name);
    assert.equal(l?.mtu, 1450);
    assert.ok(l?.flags.includes('UP'));
    assert.deepEqual(globals(l).sort(), [...b.addresses].sort());
  });

  it('keeps the gateway when an extra primary address in its subnet is removed', async () => {
    await ns.must(['ip', 'addr', 'flush', 'dev', b.name, 'scope', 'global']);
    await ns.must(['ip', 'addr', 'add', '198.18.10.5/24', 'dev', b.name]);
    await ns.must(['ip', 'addr', 'add', '198.18.10.1/24', 'dev', b.name]);
    await dp.ensureBridge(b);
    assert.deepEqual(globals(await link(b.name)).sort(), [...b.addresses].sort());
  });

  it('re-creates a bridge deleted behind its back', async () => {
    await ns.must(['ip', 'link', 'del', b.name]);
    await dp.ensureBridge(b);
    assert.equal((await link(b.name))?.ifalias, ownerMark('br', nid));
  });

  it("keeps its own MAC when the port with the lowest MAC leaves: a container's gateway entry stays right", async () => {
    const c = await createTestNs('brc');
    try {
      await ns.must(['ip', 'link', 'add', 'tv1', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', c.name]);
      // a port whose MAC is lower than any other: a bridge without its own MAC would take it
      await ns.must([
        'ip',
        'link',
        'add',
        'tv2',
        'address',
        '02:00:00:00:00:01',
        'type',
        'veth',
        'peer',
        'name',
        'tp2',
      ]);
      for (const port of ['tv1', 'tv2']) await ns.must(['ip', 'link', 'set', port, 'master', b.name, 'up']);
      await c.must(['ip', '-batch', '-'], 'addr add 198.18.10.2/24 dev eth0\nlink set eth0 up\n');
      assert.ok(await pingOk(c, '198.18.10.1'), 'the container reaches its gateway');
      const gwEntry = async () => (await c.must(['ip', 'neigh', 'show', '198.18.10.1'])).split(' ')[4];
      assert.equal(await gwEntry(), b.mac, "the container holds the bridge's own MAC for the gateway");
      await ns.must(['ip', 'link', 'del', 'tv2']);
      assert.equal((await dp.listLinks()).find((l) => l.name === b.name)?.mac, b.mac);
      assert.ok(await pingOk(c, '198.18.10.1'), 'the gateway still answers at once, at the MAC the container holds');
      await ns.must(['ip', 'link', 'del', 'tv1']);
    } finally {
      await c.remove();
    }
  });

  it("sets its own MAC back when someone changes it, and announces it: a container's gateway entry follows", async () => {
    const c = await createTestNs('brc');
    try {
      await ns.must(['ip', 'link', 'add', 'tv3', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', c.name]);
      await ns.must(['ip', 'link', 'set', 'tv3', 'master', b.name, 'up']);
      await c.must(['ip', '-batch', '-'], 'addr add 198.18.10.3/24 dev eth0\nlink set eth0 up\n');
      assert.ok(await pingOk(c, '198.18.10.1'));
      const gwEntry = async () => (await c.must(['ip', 'neigh', 'show', '198.18.10.1'])).split(' ')[4];
      await ns.must(['ip', 'link', 'set', b.name, 'address', '02:00:00:00:00:09']);
      assert.ok((await dp.listLinks()).find((l) => l.name === b.name)?.mac !== b.mac);
      // no traffic: only the kernel's gratuitous ARP (arp_notify, set by truss) can move the entry
      await waitUntil(async () => (await gwEntry()) === '02:00:00:00:00:09', 2000);
      assert.equal(await gwEntry(), '02:00:00:00:00:09', 'even a change by hand is announced to the containers');
      await dp.ensureBridge(b);
      assert.equal((await dp.listLinks()).find((l) => l.name === b.name)?.mac, b.mac);
      await waitUntil(async () => (await gwEntry()) === b.mac, 2000);
      assert.equal(await gwEntry(), b.mac, "the container follows the bridge's MAC without probing");
      await ns.must(['ip', 'link', 'del', 'tv3']);
    } finally {
      await c.remove();
    }
  });

  it('refuses a foreign link with our name and leaves it untouched (ensure and remove)', async () => {
    const other = bridgeName(randomId());
    await ns.must(['ip', 'link', 'add', other, 'mtu', '1400', 'type', 'bridge']);
    const before = await link(other);
    const mine: BridgeObject = { ...b, name: other, networkId: randomId() };
    await assert.rejects(dp.ensureBridge(mine), { code: 'TRUSS_ERR_KERNEL_OBJECT_FOREIGN' });
    await dp.removeBridge(other);
    const after = await link(other);
    assert.deepEqual(after, before);
    assert.equal(
      (await dp.listLinks()).some((l) => l.name === other),
      true,
      'a truss-named link is listed (the reconciler decides), even unmarked',
    );
    await ns.must(['ip', 'link', 'del', other]);
  });

  it("refuses another network's bridge under the name", async () => {
    await assert.rejects(dp.ensureBridge({ ...b, networkId: randomId() }), {
      code: 'TRUSS_ERR_KERNEL_OBJECT_FOREIGN',
      message: /truss's bridge for/,
    });
  });

  it('leaves no half-made bridge when a later batch line fails', async () => {
    await ns.must(['sysctl', '-q', '-w', 'net.ipv6.conf.default.disable_ipv6=1']);
    const nid2 = randomId();
    const b2: BridgeObject = { ...b, name: bridgeName(nid2), networkId: nid2, addresses: ['fd00:12::1/64'] };
    await assert.rejects(dp.ensureBridge(b2), (e: Error & { code?: string; line?: number }) => {
      assert.equal(e.name, 'KernelError');
      assert.equal(e.line, 3);
      return true;
    });
    assert.equal(await link(b2.name), undefined);
    await ns.must(['sysctl', '-q', '-w', 'net.ipv6.conf.default.disable_ipv6=0']);
  });

  it('removes it, and removing again succeeds', async () => {
    await dp.removeBridge(b.name);
    assert.equal(await link(b.name), undefined);
    await dp.removeBridge(b.name);
    assert.deepEqual(await dp.listLinks(), []);
  });
});

describe('bridge (kernel) cleanup', () => {
  it('leaves no truss-t-* namespace behind', async () => assert.deepEqual(await listTestNamespaces(), []));
});
