import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BridgeObject, VethObject } from '../../core/desired.ts';
import { isTrussError } from '../../core/errors.ts';
import { isKernelError, KernelError } from '../linux/exec.ts';
import { createFakeDataplane } from './fake-dataplane.ts';

const N = 'a'.repeat(64);
const E = 'e'.repeat(64);
const br: BridgeObject = { name: 'trbaaaaaaaaaaaa', networkId: N, mtu: 1500, addresses: ['198.18.1.1/24'] };
const ve: VethObject = {
  name: 'trveeeeeeeeeeee',
  peer: 'trceeeeeeeeeeee',
  networkId: N,
  endpointId: E,
  bridge: br.name,
  mtu: 1500,
  peerMac: '02:5e:ee:ee:ee:ee',
  joined: false,
};

describe('FakeDataplane', () => {
  it('creates and converges bridges idempotently, keeping the ifindex', async () => {
    const dp = createFakeDataplane();
    await dp.ensureBridge(br);
    const first = (await dp.listLinks())[0];
    await dp.ensureBridge({ ...br, mtu: 1400 });
    const second = (await dp.listLinks())[0];
    assert.equal(second?.ifindex, first?.ifindex);
    assert.equal(second?.mtu, 1400);
    assert.equal(dp.callsOf('ensureBridge').length, 2);
  });

  it('refuses a foreign link with our name and leaves it', async () => {
    const dp = createFakeDataplane();
    dp.addForeignLink(br.name);
    await assert.rejects(dp.ensureBridge(br), { code: 'TRUSS_ERR_KERNEL_OBJECT_FOREIGN' });
    await dp.removeBridge(br.name);
    assert.equal(dp.links.has(br.name), true);
  });

  it('creates veth pairs, removes both ends, and never re-creates a joined endpoint', async () => {
    const dp = createFakeDataplane();
    await dp.ensureBridge(br);
    await dp.ensureVeth(ve);
    assert.deepEqual(
      (await dp.listLinks()).map((l) => l.name),
      [br.name, ve.peer, ve.name],
    );
    dp.movePeerToContainer(ve.peer);
    dp.deleteBehindBack(ve.name);
    const err = await dp.ensureVeth({ ...ve, joined: true }).catch((e: unknown) => e);
    assert.ok(isTrussError(err));
    assert.equal(err.code, 'TRUSS_ERR_ENDPOINT_DISCONNECTED');
    await dp.ensureVeth(ve);
    await dp.removeVeth(ve.name);
    await dp.removeVeth(ve.name);
    assert.deepEqual(
      (await dp.listLinks()).map((l) => l.name),
      [br.name],
    );
  });

  it('fails a veth without its bridge like the kernel does', async () => {
    const err = await createFakeDataplane()
      .ensureVeth(ve)
      .catch((e: unknown) => e);
    assert.ok(isKernelError(err, 'ENODEV'));
  });

  it('injects faults once (failNext) or until cleared (failAlways)', async () => {
    const dp = createFakeDataplane();
    dp.failNext('ensureBridge', new KernelError('EBUSY', ['ip'], 2, 'RTNETLINK answers: Device or resource busy'));
    await assert.rejects(dp.ensureBridge(br), { code: 'EBUSY' });
    await dp.ensureBridge(br);
    dp.failAlways('applyFirewall', new Error('nft down'));
    await assert.rejects(dp.applyFirewall({ networks: [] }), /nft down/);
    await assert.rejects(dp.applyFirewall({ networks: [] }), /nft down/);
    dp.clearFaults();
    await dp.applyFirewall({ networks: [] });
  });

  it('checks, applies and removes the firewall; raises ip_forward only for non-internal networks', async () => {
    const dp = createFakeDataplane();
    const f = {
      networks: [
        { networkId: N, bridge: br.name, subnets4: ['198.18.1.0/24'], subnets6: [], nat: true, internal: false },
      ],
    };
    assert.deepEqual(await dp.checkFirewall(f), ['nft table inet truss is missing']);
    await dp.applyFirewall(f);
    assert.deepEqual(await dp.checkFirewall(f), []);
    assert.equal((await dp.checkFirewall({ networks: [] })).length, 1);
    await dp.removeFirewall();
    await dp.removeFirewall();
    assert.equal(dp.firewall, undefined);
    await dp.ensureSysctls({ networks: [{ ...(f.networks[0] as (typeof f.networks)[0]), internal: true }] });
    assert.equal(dp.sysctls.get('net/ipv4/ip_forward'), '0');
    await dp.ensureSysctls(f);
    assert.equal(dp.sysctls.get('net/ipv4/ip_forward'), '1');
  });
});
