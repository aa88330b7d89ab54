/**
 * Kernel tests (root): the facts chooseUnderlay decides on, read from a throwaway namespace
 * that looks like a host running etcd itself: `ul0` (198.18.77.1/24, MTU 9000, a veth) with the
 * default route, and lo. etcd addressed as 127.0.0.1 or as 198.18.77.1 routes via lo (MTU
 * 65536); the host must still advertise 198.18.77.1 with ul0's MTU.
 * Run: node --test --test-concurrency=1 src/dataplane/linux/underlay.netns.ts
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { chooseUnderlay } from '../../core/cluster/underlay.ts';
import { createLinuxDataplane, type LinuxDataplane } from './linux-dataplane.ts';
import { createScratch, type TestNs } from './netns-testutil.ts';

describe('underlay facts with etcd on this host (kernel)', () => {
  let host: TestNs;
  let dp: LinuxDataplane;
  const scratch = createScratch();
  before(async () => {
    host = await scratch.ns('ul');
    await host.must(['ip', 'link', 'add', 'ul0', 'mtu', '9000', 'type', 'veth', 'peer', 'name', 'ul0p', 'mtu', '9000']);
    await host.must(['ip', 'link', 'set', 'ul0p', 'up']);
    await host.must(['ip', 'addr', 'add', '198.18.77.1/24', 'dev', 'ul0']);
    await host.must(['ip', 'link', 'set', 'ul0', 'up']);
    await host.must(['ip', 'route', 'add', 'default', 'via', '198.18.77.254', 'dev', 'ul0']);
    dp = createLinuxDataplane({ netns: host.path });
    scratch.defer(() => dp.close());
  });

  const facts = async (etcd: string) => ({
    etcd,
    route: await dp.underlayTowards(etcd),
    links: await dp.readLinks(),
    defaultRoutes: await dp.readDefaultRoutes(),
  });

  it('etcd://127.0.0.1: the route is via lo; the default route device gives the address and MTU', async () => {
    const f = await facts('127.0.0.1');
    assert.equal(f.route?.dev, 'lo');
    assert.equal(f.route?.mtu, 65536);
    assert.deepEqual(f.defaultRoutes, [{ dev: 'ul0', family: 4 }]);
    const { route, ...rest } = f;
    assert.deepEqual(chooseUnderlay({ ...rest, ...(route ? { route } : {}) }), {
      address: '198.18.77.1',
      dev: 'ul0',
      mtu: 9000,
      how: 'default-route',
    });
  });

  it("etcd at the host's own address: that address, ul0's MTU", async () => {
    const { route, ...rest } = await facts('198.18.77.1');
    assert.equal(route?.dev, 'lo');
    assert.deepEqual(chooseUnderlay({ ...rest, ...(route ? { route } : {}) }), {
      address: '198.18.77.1',
      dev: 'ul0',
      mtu: 9000,
      how: 'etcd-address',
    });
  });

  it('without a default route, etcd://127.0.0.1 asks for --advertise-address', async () => {
    await host.must(['ip', 'route', 'del', 'default']);
    const { route, ...rest } = await facts('127.0.0.1');
    assert.throws(() => chooseUnderlay({ ...rest, ...(route ? { route } : {}) }), /give --advertise-address/);
    await host.must(['ip', 'route', 'add', 'default', 'via', '198.18.77.254', 'dev', 'ul0']);
  });
});
