import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import { silentLogger } from '../obs/logger.ts';
import { LEARN_MAX, learnable, UpstreamLearner } from './learn.ts';

const OBJ = {
  bridges: [{ bridge: 'trbaaaaaaaaaaaa', gateway4: '198.18.0.1' }],
  upstreams: [{ address: '198.18.91.53', port: 35301 }],
};

function learner(seen: () => readonly string[], active = () => true) {
  let triggers = 0;
  const l = new UpstreamLearner({
    read: async () => seen(),
    active,
    trigger: () => triggers++,
    log: silentLogger,
  });
  return { l, triggers: () => triggers };
}

describe('UpstreamLearner', () => {
  it('learns new servers once, canonical, and triggers a pass only when something is new', async () => {
    let seen = ['198.18.91.54', '2001:DB8:0::53'];
    const { l, triggers } = learner(() => seen);
    await l.tick();
    assert.deepEqual(l.learnt(), ['198.18.91.54', '2001:db8::53']);
    assert.equal(triggers(), 1);
    await l.tick();
    assert.equal(triggers(), 1, 'nothing new: no pass');
    seen = ['198.18.91.55'];
    await l.tick();
    assert.deepEqual(l.learnt(), ['198.18.91.54', '2001:db8::53', '198.18.91.55'], 'kept after leaving the set');
    assert.equal(triggers(), 2);
  });

  it('never learns loopback or unspecified addresses, nor garbage', async () => {
    const { l, triggers } = learner(() => ['127.0.0.1', '127.0.0.11', '::1', '0.0.0.0', '::', 'x']);
    await l.tick();
    assert.deepEqual(l.learnt(), []);
    assert.equal(triggers(), 0);
    assert.equal(learnable('8.8.8.8'), '8.8.8.8');
  });

  it('reads nothing while no dns network exists; a failed read is retried later', async () => {
    let reads = 0;
    let on = false;
    const l = new UpstreamLearner({
      read: async () => {
        reads++;
        if (reads === 1) throw new Error('nft gone');
        return ['198.18.91.54'];
      },
      active: () => on,
      trigger: () => {},
      log: silentLogger,
    });
    await l.tick();
    assert.equal(reads, 0);
    on = true;
    await l.tick();
    assert.deepEqual(l.learnt(), []);
    await l.tick();
    assert.deepEqual(l.learnt(), ['198.18.91.54']);
  });

  it(`keeps at most ${LEARN_MAX}`, async () => {
    const many = Array.from({ length: LEARN_MAX + 10 }, (_, i) => `198.18.${Math.floor(i / 200)}.${(i % 200) + 1}`);
    const { l } = learner(() => many);
    await l.tick();
    assert.equal(l.learnt().length, LEARN_MAX);
  });

  it('runs on its timer over the fake dataplane until stopped', async () => {
    const dp = new FakeDataplane();
    await dp.ensureDnsRedirect(OBJ);
    dp.dnsSeen = ['198.18.91.54'];
    let triggers = 0;
    const l = new UpstreamLearner({
      read: () => dp.readDnsSeen(),
      active: () => true,
      trigger: () => triggers++,
      log: silentLogger,
      everyMs: 5,
    });
    l.start();
    for (let i = 0; i < 100 && triggers === 0; i++) await sleep(5);
    l.stop();
    assert.deepEqual(l.learnt(), ['198.18.91.54']);
    const reads = dp.callsOf('readDnsSeen').length;
    await sleep(30);
    assert.equal(dp.callsOf('readDnsSeen').length, reads, 'stopped: no more reads');
    // the fake keeps what was learnt across an ensure and drops it with the table
    await dp.ensureDnsRedirect({ ...OBJ, upstreams: [] });
    assert.deepEqual(await dp.readDnsSeen(), ['198.18.91.54']);
    await dp.removeDnsRedirect();
    assert.deepEqual(await dp.readDnsSeen(), []);
  });
});
