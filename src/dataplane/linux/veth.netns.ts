/**
 * Kernel tests (root): veth pairs in a throwaway namespace.
 * Run: node --test --test-concurrency=1 'src/**\/*.netns.ts' (npm run test:kernel).
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { BridgeObject, VethObject } from '../../core/desired.ts';
import { bridgeMac, bridgeName, hostVethName, macFor, ownerMark, peerVethName } from '../../core/naming.ts';
import { createLinuxDataplane, type LinuxDataplane } from './linux-dataplane.ts';
import { commandRecorder, createScratch, listTestNamespaces, randomId, type TestNs } from './netns-testutil.ts';

interface IpLink {
  ifindex: number;
  ifname: string;
  ifalias?: string;
  mtu: number;
  flags: string[];
  master?: string;
  address: string;
}

// twice: one-shot processes, and with a spare `ip -batch -` started ahead, as the daemon runs (exec.ts SpareProcesses)
for (const spareProcesses of [false, true])
  describe(`veth (kernel)${spareProcesses ? ', spare ip processes' : ''}`, () => {
    let host: TestNs;
    let ctr: TestNs;
    let dp: LinuxDataplane;
    const rec = commandRecorder();
    const nid = randomId();
    const br: BridgeObject = {
      name: bridgeName(nid),
      networkId: nid,
      mtu: 1450,
      mac: bridgeMac(nid),
      addresses: ['198.18.20.1/24'],
    };
    const endpoint = (eid = randomId()): VethObject => ({
      name: hostVethName(eid),
      peer: peerVethName(eid),
      networkId: nid,
      endpointId: eid,
      bridge: br.name,
      mtu: 1450,
      peerMac: macFor(eid),
      joined: false,
    });
    const v = endpoint();
    const link = async (name: string, ns: TestNs = host): Promise<IpLink | undefined> => {
      const r = await ns.run(['ip', '-j', '-d', 'link', 'show', 'dev', name]);
      return r.code === 0 ? (JSON.parse(r.stdout) as IpLink[])[0] : undefined;
    };

    const scratch = createScratch();
    before(async () => {
      host = await scratch.ns('veth');
      ctr = await scratch.ns('ctr');
      dp = createLinuxDataplane({ netns: host.path, onCommand: rec.onCommand, spareProcesses });
      scratch.defer(() => dp.close());
      await dp.ensureBridge(br);
    });

    it('creates the pair: host end marked, enslaved, up, MTU, accept_ra=0; peer with MAC and MTU', async (t) => {
      const t0 = performance.now();
      await dp.ensureVeth(v);
      t.diagnostic(`ensureVeth (create) ${(performance.now() - t0).toFixed(1)} ms`);
      const h = await link(v.name);
      assert.equal(h?.ifalias, ownerMark('ep', v.endpointId));
      assert.equal(h?.master, br.name);
      assert.equal(h?.mtu, 1450);
      assert.ok(h?.flags.includes('UP'));
      const p = await link(v.peer);
      assert.equal(p?.address, v.peerMac);
      assert.equal(p?.mtu, 1450);
      assert.equal((await host.must(['sysctl', '-n', `net/ipv6/conf/${v.name}/accept_ra`])).trim(), '0');
    });

    it('ensure twice: same ifindex; the only write is the create the kernel refuses (EEXIST)', async (t) => {
      const before = await link(v.name);
      rec.reset();
      const t0 = performance.now();
      await dp.ensureVeth(v);
      t.diagnostic(`ensureVeth (no change) ${(performance.now() - t0).toFixed(1)} ms, ${rec.argvs.length} commands`);
      // before Join the create is tried first (veth.ts ensureVeth); its `link add` fails, nothing else is written
      const writes = rec.writes();
      assert.equal(writes.length, 1, JSON.stringify(writes));
      assert.deepEqual(writes[0]?.slice(-2), ['-batch', '-']);
      assert.equal((await link(v.name))?.ifindex, before?.ifindex);
      rec.reset();
      await dp.ensureVeth({ ...v, joined: true });
      assert.deepEqual(rec.writes(), [], 'after Join: read, nothing to write');
    });

    it('converges drift: no master, wrong MTU, down', async () => {
      await host.must(['ip', 'link', 'set', v.name, 'nomaster', 'mtu', '1300', 'down']);
      await dp.ensureVeth(v);
      const h = await link(v.name);
      assert.equal(h?.master, br.name);
      assert.equal(h?.mtu, 1450);
      assert.ok(h?.flags.includes('UP'));
    });

    it('after Join (peer moved into the container) converges the host end only', async () => {
      await host.must(['ip', 'link', 'set', v.peer, 'netns', ctr.name]);
      await ctr.must(['ip', 'link', 'set', v.peer, 'name', 'eth0']);
      await host.must(['ip', 'link', 'set', v.name, 'mtu', '1400']);
      await dp.ensureVeth({ ...v, joined: true });
      assert.equal((await link(v.name))?.mtu, 1450);
      assert.equal((await link('eth0', ctr))?.address, v.peerMac);
      assert.equal(await link(v.peer), undefined, 'no new peer in the host namespace');
    });

    it('a joined endpoint whose host end vanished is disconnected: nothing is created', async () => {
      await host.must(['ip', 'link', 'del', v.name]);
      await assert.rejects(dp.ensureVeth({ ...v, joined: true }), {
        code: 'TRUSS_ERR_ENDPOINT_DISCONNECTED',
        kind: 'unavailable',
      });
      assert.equal(await link(v.name), undefined);
      assert.equal(await link(v.peer), undefined);
    });

    it('re-creates a not-yet-joined pair deleted behind its back', async () => {
      await dp.ensureVeth(v);
      await host.must(['ip', 'link', 'del', v.peer]);
      await dp.ensureVeth(v);
      assert.equal((await link(v.peer))?.address, v.peerMac);
    });

    it('leaves no half pair when the bridge is missing', async () => {
      const orphan = { ...endpoint(), bridge: bridgeName(randomId()) };
      await assert.rejects(dp.ensureVeth(orphan), { name: 'KernelError', code: 'ENODEV' });
      assert.equal(await link(orphan.name), undefined);
      assert.equal(await link(orphan.peer), undefined);
    });

    it('marks an unmarked pair with a truss name (killed mid-create) instead of refusing it', async () => {
      const e = endpoint();
      await host.must(['ip', 'link', 'add', e.name, 'type', 'veth', 'peer', 'name', e.peer]);
      await dp.ensureVeth(e);
      const h = await link(e.name);
      assert.equal(h?.ifalias, ownerMark('ep', e.endpointId));
      assert.equal(h?.master, br.name);
    });

    it('refuses a veth carrying someone else’s alias, and removeVeth leaves it', async () => {
      const e = endpoint();
      await host.must(['ip', 'link', 'add', e.name, 'type', 'veth', 'peer', 'name', e.peer]);
      await host.must(['ip', 'link', 'set', e.name, 'alias', 'somebody else']);
      await assert.rejects(dp.ensureVeth(e), { code: 'TRUSS_ERR_KERNEL_OBJECT_FOREIGN' });
      await dp.removeVeth(e.name);
      await dp.listLinks(); // waits for the removal (it runs on in the background)
      assert.equal((await link(e.name))?.ifalias, 'somebody else');
      await host.must(['ip', 'link', 'del', e.name]);
    });

    it('removes host end and peer in the background (listLinks waits for it); removing again succeeds', async () => {
      await dp.removeVeth(v.name);
      await dp.listLinks();
      assert.equal(await link(v.name), undefined);
      assert.equal(await link(v.peer), undefined);
      await dp.removeVeth(v.name);
    });
  });

describe('veth (kernel) cleanup', () => {
  it('leaves no truss-t-* namespace behind', async () => assert.deepEqual(await listTestNamespaces(), []));
});
