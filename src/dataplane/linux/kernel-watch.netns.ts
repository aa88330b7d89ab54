/**
 * Kernel tests (root): the change notices a check may answer from an earlier look by
 * (kernel-watch.ts), in a throwaway namespace.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { watchKernel } from './kernel-watch.ts';
import { createScratch, type TestNs } from './netns-testutil.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** the generation once the notices of what was just done have arrived (a monitor's pipe is not instant) */
async function settled(gen: () => number | undefined): Promise<number | undefined> {
  let g = gen();
  for (let i = 0; i < 20; i++) {
    await sleep(25);
    const next = gen();
    if (next === g) return g;
    g = next;
  }
  return g;
}

describe('kernel watch (kernel)', () => {
  let ns: TestNs;
  const scratch = createScratch();
  before(async () => {
    ns = await scratch.ns('watch');
  });

  it('not watching until the monitors ran settleMs; then a change of each kind moves the generation', async () => {
    const w = watchKernel({ netns: ns.path, settleMs: 200 });
    scratch.defer(() => w.close());
    assert.equal(w.generation(), undefined, 'a monitor just started may have missed a change');
    await sleep(300);
    const quiet = await settled(() => w.generation());
    assert.equal(typeof quiet, 'number');
    await sleep(100);
    assert.equal(w.generation(), quiet, 'nothing changed: the generation stays');
    const changes: (readonly string[])[] = [
      ['ip', 'link', 'add', 'trbwatch0', 'type', 'bridge'],
      ['ip', 'addr', 'add', '198.18.77.1/24', 'dev', 'trbwatch0'],
      ['ip', 'link', 'set', 'trbwatch0', 'up'],
      ['ip', 'route', 'add', '198.18.78.0/24', 'via', '198.18.77.2', 'proto', '116'],
      ['ip', 'rule', 'add', 'priority', '30000', 'to', '198.18.79.0/24', 'lookup', 'main'],
      ['nft', 'add', 'table', 'inet', 'truss_watch'],
      ['iptables-nft', '-w', '-N', 'TRUSS-WATCH'],
      ['nft', 'delete', 'table', 'inet', 'truss_watch'],
    ];
    let g = quiet as number;
    for (const argv of changes) {
      await ns.must(argv);
      const next = await settled(() => w.generation());
      assert.ok(next !== undefined && next > g, `${argv.join(' ')}: generation ${g} -> ${next}`);
      g = next;
    }
  });

  it("the kernel's IPv6 link-local bookkeeping after a link comes up moves nothing; a global address does", async () => {
    const w = watchKernel({ netns: ns.path, settleMs: 200 });
    scratch.defer(() => w.close());
    await sleep(300);
    await ns.must(['ip', 'link', 'add', 'trvwatch0', 'type', 'veth', 'peer', 'name', 'trcwatch0']);
    await ns.must(['ip', 'link', 'set', 'trvwatch0', 'up']);
    await ns.must(['ip', 'link', 'set', 'trcwatch0', 'up']);
    const up = await settled(() => w.generation());
    // duplicate address detection: the fe80:: addresses and their routes come about a second later
    await sleep(2500);
    const addrs = await ns.must(['ip', '-6', 'addr', 'show', 'dev', 'trvwatch0']);
    assert.match(addrs, /inet6 fe80::/, 'the link-local address came');
    assert.equal(await settled(() => w.generation()), up, 'link-local noise is not a change');
    await ns.must(['ip', 'addr', 'add', 'fd00:77::1/64', 'dev', 'trvwatch0', 'nodad']);
    const next = await settled(() => w.generation());
    assert.ok(next !== undefined && up !== undefined && next > up, `global address: ${up} -> ${next}`);
    await ns.must(['ip', 'link', 'del', 'trvwatch0']);
  });

  it("a host end's carrier, when its peer comes up in the container's namespace, moves nothing", async () => {
    const ctr = await scratch.ns('watchctr');
    // watching first, as the daemon is when it attaches
    const w = watchKernel({ netns: ns.path, settleMs: 200 });
    scratch.defer(() => w.close());
    await sleep(300);
    await ns.must(['ip', 'link', 'add', 'trbwatch1', 'type', 'bridge']);
    await ns.must(['ip', 'link', 'set', 'trbwatch1', 'up']);
    await ns.must(['ip', 'link', 'add', 'trvwatch1', 'type', 'veth', 'peer', 'name', 'trcwatch1']);
    await ns.must(['ip', 'link', 'set', 'trvwatch1', 'master', 'trbwatch1', 'up']);
    await ns.must(['ip', 'link', 'set', 'trcwatch1', 'netns', ctr.path]);
    const before = await settled(() => w.generation());
    await ctr.must(['ip', 'link', 'set', 'trcwatch1', 'up']);
    await sleep(2500); // carrier, the bridge port's state, then link-local addresses after DAD
    const state = await ns.must(['ip', 'link', 'show', 'dev', 'trvwatch1']);
    assert.match(state, /LOWER_UP/, 'the host end has its carrier');
    assert.equal(await settled(() => w.generation()), before, 'carrier and state only: no change');
    await ns.must(['ip', 'link', 'set', 'trvwatch1', 'mtu', '1400']);
    const next = await settled(() => w.generation());
    assert.ok(next !== undefined && before !== undefined && next > before, `MTU: ${before} -> ${next}`);
    await ns.must(['ip', 'link', 'del', 'trvwatch1']);
    await ns.must(['ip', 'link', 'del', 'trbwatch1']);
  });

  it('a monitor that dies makes it stop watching, and it watches again once restarted', async () => {
    const w = watchKernel({ netns: ns.path, settleMs: 50, monitors: [['sleep', '1']] });
    scratch.defer(() => w.close());
    await sleep(300);
    const g = w.generation();
    assert.equal(typeof g, 'number');
    await sleep(1000); // exited at 1 s: started again 1 s later
    assert.equal(w.generation(), undefined);
    await sleep(1100);
    const again = w.generation();
    assert.ok(again !== undefined && again > (g as number), `${g} -> ${again}`);
    w.close();
    assert.equal(w.generation(), undefined);
  });
});
