/**
 * truss.egress.via through the service and the reconciler, over the fake kernel: validation
 * before anything is written, the table appearing and going with the network, drift repaired on
 * a full pass, a kernel refusal undoing the create.
 */

import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { CreateNetworkInput } from '../core/contracts.ts';
import { egressTable } from '../core/egress.ts';
import { networkId } from '../core/ids.ts';
import { ipamData, networkInput } from '../core/testing.ts';
import { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import { KernelError } from '../dataplane/linux/exec.ts';
import { stopTestServices, testService } from './testing.ts';

const NID = networkId(`0e0e0e${'a'.repeat(58)}`);
const NID2 = networkId(`0e0e0e${'c'.repeat(58)}`); // same first 6 hex: same table id

const netInput = (via: string | undefined, over: Partial<CreateNetworkInput> = {}): CreateNetworkInput =>
  networkInput({
    networkId: NID,
    ipv4: [ipamData('198.18.40.0/24')],
    generic: via === undefined ? {} : { 'truss.egress.via': via },
    ...over,
  });

const setup = (dp = new FakeDataplane()) => testService({ dp });
afterEach(stopTestServices);

describe('truss.egress.via (service + reconciler, fake kernel)', () => {
  it('refuses bad values before writing anything', async () => {
    const { svc, repo, dp } = setup();
    for (const [via, why] of [
      ['198.18.40.1', /gateway/],
      ['fd00::5', /no IPv6 subnet/],
      ['224.0.0.1', /multicast/],
    ] as const) {
      await assert.rejects(svc.createNetwork(netInput(via)), { code: 'TRUSS_ERR_OPTION_INVALID', message: why });
    }
    await assert.rejects(svc.createNetwork(netInput('198.18.40.5', { internal: true })), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /--internal/,
    });
    assert.deepEqual(await repo.listNetworks(), []);
    assert.equal(dp.callsOf('ensureEgress').length, 0);
  });

  it('the table and rules come with the network, are repaired after drift and go with it', async () => {
    const { svc, dp, reconciler } = setup();
    await svc.createNetwork(netInput('198.19.251.2'));
    const t = egressTable(NID);
    assert.deepEqual([...dp.egress.keys()], [t]);
    assert.deepEqual(dp.egress.get(t)?.via, ['198.19.251.2']);
    assert.deepEqual(await reconciler.check(), []);

    dp.egress.clear(); // drift: someone flushed it
    assert.equal((await reconciler.check()).length, 1);
    await reconciler.reconcileNow();
    assert.deepEqual([...dp.egress.keys()], [t], 'a full pass repairs it');

    await svc.deleteNetwork(NID);
    assert.equal(dp.egress.size, 0);
    assert.deepEqual(await reconciler.check(), []);
  });

  it('a network without the option costs no egress work on incremental passes', async () => {
    const { svc, dp } = setup();
    await svc.createNetwork(netInput(undefined));
    await svc.deleteNetwork(NID);
    const ensures = dp.callsOf('ensureEgress').length;
    assert.ok(ensures <= 1, `at most the start-up full pass converges egress (${ensures})`);
  });

  it('a next hop the kernel refuses fails the create and undoes it', async () => {
    const dp = new FakeDataplane();
    const { svc, repo } = setup(dp);
    await svc.createNetwork(
      netInput(undefined, { networkId: NID2, ipv4: [{ pool: '198.18.41.0/24', auxAddresses: {} }] }),
    );
    dp.failNext('ensureEgress', new KernelError('EINVAL', ['ip'], 2, 'Error: Nexthop has invalid gateway.'));
    await assert.rejects(svc.createNetwork(netInput('198.19.9.9')), /invalid gateway/);
    const last = dp.callsOf('ensureEgress').at(-1)?.arg as { networks: unknown[] } | undefined;
    assert.deepEqual(last?.networks, [], 'the undo converges egress again: what the failed pass left goes');
    assert.deepEqual(
      (await repo.listNetworks()).map((n) => n.id),
      [NID2],
    );
  });

  it('two networks whose table ids collide: the second is refused', async () => {
    const { svc } = setup();
    await svc.createNetwork(netInput('198.19.251.2'));
    await assert.rejects(
      svc.createNetwork(
        netInput('198.19.251.2', { networkId: NID2, ipv4: [{ pool: '198.18.41.0/24', auxAddresses: {} }] }),
      ),
      { code: 'TRUSS_ERR_NETWORK_CONFLICT', message: /routing table .* is already used/ },
    );
  });
});
