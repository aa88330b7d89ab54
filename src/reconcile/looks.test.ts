/**
 * What the engine does not list (looks.ts): idle kinds (nothing wanted, a recent look found
 * nothing), and, for checks, watched kinds while the kernel announced no change since the last look.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { silentLogger } from '../obs/logger.ts';
import { Engine } from './engine.ts';
import type { SetKind, WholeKind } from './kind.ts';

interface Obj {
  readonly name: string;
}
interface Desired {
  readonly revision: number;
  readonly policies: readonly Obj[];
  readonly fw?: Obj;
}

/** One kernel table per kind, with a count of looks; `unreadable`/`failing` make looks/removals throw. */
class Kernel {
  readonly objects = new Map<string, Set<string>>();
  readonly looks = new Map<string, number>();
  readonly unreadable = new Set<string>();
  readonly failing = new Set<string>();
  of(kind: string): Set<string> {
    let s = this.objects.get(kind);
    if (!s) {
      s = new Set();
      this.objects.set(kind, s);
    }
    return s;
  }
  look(kind: string): Set<string> {
    this.looks.set(kind, (this.looks.get(kind) ?? 0) + 1);
    if (this.unreadable.has(kind)) throw new Error(`${kind}: cannot list`);
    return this.of(kind);
  }
  lookCount = (kind: string): number => this.looks.get(kind) ?? 0;
}

function policyKind(k: Kernel): SetKind<Desired, Obj> {
  return {
    shape: 'set',
    name: 'policy',
    wanted: (d) => d.policies,
    check: async (w) => {
      const have = k.look('policy');
      const want = new Set(w.map((o) => o.name));
      const extra = [...have].filter((n) => !want.has(n));
      const drifted = w.filter((o) => !have.has(o.name)).map((o) => o.name);
      return { problems: [...extra, ...drifted].map((n) => `policy ${n} differs`), extra, drifted };
    },
    ensure: async (o) => {
      k.of('policy').add(o.name);
    },
    remove: async (n) => {
      if (k.failing.has(`policy:${n}`)) throw new Error(`policy ${n} refused`);
      k.of('policy').delete(n);
    },
  };
}

function firewallKind(k: Kernel): WholeKind<Desired, Obj> {
  return {
    shape: 'whole',
    name: 'firewall',
    wanted: (d) => d.fw,
    check: async (want) => {
      const have = k.look('firewall');
      if (want === undefined) return have.size > 0 ? ['firewall is not wanted'] : [];
      return have.has(want.name) ? [] : ['firewall differs'];
    },
    ensure: async (o) => {
      k.of('firewall').clear();
      k.of('firewall').add(o.name);
    },
    remove: async () => {
      k.of('firewall').clear();
    },
  };
}

const engines: Engine<Desired, Desired>[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stop()));
});

function setup(
  k: Kernel,
  opts: { idleLookMs?: number; shareFree?: () => boolean; gen?: () => number | undefined; watched?: boolean } = {},
) {
  const state: { desired: Desired } = { desired: { revision: 1, policies: [] } };
  const engine = new Engine<Desired, Desired>({
    load: async () => state.desired,
    derive: async (d) => d,
    kinds: [firewallKind(k), policyKind(k)].map((kind) => ({ ...kind, watched: opts.watched ?? false })),
    log: silentLogger,
    resyncMs: 3_600_000,
    backoff: { firstMs: 3_600_000, maxMs: 3_600_000 },
    ...(opts.idleLookMs !== undefined ? { idleLookMs: opts.idleLookMs } : {}),
    ...(opts.shareFree ? { shareFree: opts.shareFree } : {}),
    ...(opts.gen ? { kernelGeneration: opts.gen } : {}),
  });
  engines.push(engine);
  const change = (next: Omit<Desired, 'revision'>) => {
    state.desired = { revision: state.desired.revision + 1, ...next };
  };
  return { engine, change };
}

describe('engine: idle kinds', () => {
  it('the start-up pass looks at every kind and prunes leftovers; later full passes and checks skip the idle ones', async () => {
    const k = new Kernel();
    k.of('policy').add('ep_leftover');
    const { engine } = setup(k);
    const first = await engine.reconcileNow();
    assert.equal(first?.changes, 1, 'the leftover chain went');
    assert.deepEqual([...k.of('policy')], []);
    assert.equal(k.lookCount('policy'), 1);
    assert.equal(k.lookCount('firewall'), 1);
    for (let i = 0; i < 3; i++) await engine.reconcileNow();
    assert.deepEqual(await engine.check(), []);
    assert.equal(k.lookCount('policy'), 1, 'idle: not listed again');
    assert.equal(k.lookCount('firewall'), 1, 'a whole kind too');
  });

  it('a kind that wanted something is looked at by full passes until one finds nothing of it', async () => {
    const k = new Kernel();
    const { engine, change } = setup(k);
    await engine.reconcileNow();
    change({ policies: [{ name: 'ep_a' }], fw: { name: 'fw1' } });
    await engine.reconcileNow();
    assert.deepEqual([...k.of('policy')], ['ep_a']);
    const looks = k.lookCount('policy');
    change({ policies: [] });
    // the intent goes; behind the daemon's back the chain comes back before the next full pass
    engine.trigger();
    await engine.idle();
    k.of('policy').add('ep_a');
    await engine.reconcileNow();
    assert.equal(k.lookCount('policy'), looks + 1, 'looked at: it wanted something since the last look');
    assert.deepEqual([...k.of('policy')], [], 'and the leftover pruned');
    await engine.reconcileNow();
    assert.equal(k.lookCount('policy'), looks + 1, 'now idle');
  });

  it('an unreadable listing or a failed removal keeps the kind looked at', async () => {
    const k = new Kernel();
    k.unreadable.add('policy');
    const { engine } = setup(k);
    await engine.reconcileNow();
    await engine.reconcileNow();
    assert.equal(k.lookCount('policy'), 2);
    k.unreadable.clear();
    k.of('policy').add('ep_stuck');
    k.failing.add('policy:ep_stuck');
    await engine.reconcileNow();
    await engine.reconcileNow();
    assert.equal(k.lookCount('policy'), 4);
    k.failing.clear();
    await engine.reconcileNow();
    await engine.reconcileNow();
    assert.equal(k.lookCount('policy'), 5, 'idle once the removal worked');
  });

  it('an idle kind is looked at again after idleLookMs (a restored ruleset)', async () => {
    const k = new Kernel();
    const { engine } = setup(k, { idleLookMs: 30 });
    await engine.reconcileNow();
    await engine.reconcileNow();
    assert.equal(k.lookCount('policy'), 1);
    k.of('policy').add('ep_restored');
    await new Promise((r) => setTimeout(r, 40));
    await engine.reconcileNow();
    assert.equal(k.lookCount('policy'), 2);
    assert.deepEqual([...k.of('policy')], []);
  });

  it('while objects of another state are present, no kind is idle', async () => {
    const k = new Kernel();
    let free = false;
    const { engine } = setup(k, { shareFree: () => free });
    await engine.reconcileNow();
    await engine.reconcileNow();
    assert.equal(k.lookCount('policy'), 2);
    free = true;
    await engine.reconcileNow();
    await engine.reconcileNow();
    assert.equal(k.lookCount('policy'), 3);
    free = false;
    await engine.reconcileNow();
    assert.equal(k.lookCount('policy'), 4);
  });
});

describe('engine: checks answer from the last look while the kernel announced no change', () => {
  const wanted = { policies: [{ name: 'ep_a' }], fw: { name: 'fw1' } };
  const looks = (k: Kernel) => k.lookCount('policy') + k.lookCount('firewall');

  it('a second check lists nothing; a change notice, a pass or an unwatched kind make it list', async () => {
    const k = new Kernel();
    let gen: number | undefined = 1;
    const { engine, change } = setup(k, { gen: () => gen, watched: true });
    change(wanted);
    engine.trigger();
    await engine.idle();
    assert.deepEqual(await engine.check(), []);
    const after = looks(k);
    assert.equal(after, 2);
    assert.equal(engine.checkLookedAt(), undefined, 'listed by itself');
    assert.deepEqual(await engine.check(), []);
    assert.equal(looks(k), after, 'answered from the last look');
    assert.ok(engine.checkLookedAt(), 'and says when that look was');
    // a change behind truss's back is announced: the next check lists again and sees it
    k.of('policy').delete('ep_a');
    gen = 2;
    assert.deepEqual(await engine.check(), ['policy ep_a differs']);
    assert.equal(looks(k), after + 2);
    assert.deepEqual(await engine.check(), ['policy ep_a differs'], 'remembered as it was found');
    assert.equal(looks(k), after + 2);
    // a pass may change what is wanted: what was remembered before it is stale
    change({ ...wanted, policies: [] });
    engine.trigger();
    await engine.idle();
    assert.deepEqual(await engine.check(), []);
    assert.equal(looks(k), after + 4);
    // not watching (a monitor down): every check lists
    gen = undefined;
    await engine.check();
    await engine.check();
    assert.equal(looks(k), after + 8);
  });

  it('a full pass that changed nothing is a look; one that repaired something is not', async () => {
    const k = new Kernel();
    const { engine, change } = setup(k, { gen: () => 7, watched: true });
    change(wanted);
    await engine.reconcileNow(); // programs: changes
    const n = looks(k);
    await engine.check();
    assert.equal(looks(k), n + 2, 'after repairs the check lists');
    await engine.reconcileNow(); // changes nothing
    const m = looks(k);
    assert.deepEqual(await engine.check(), []);
    assert.equal(looks(k), m, "the pass's own looks answer");
  });

  it('kinds that are not watched are listed by every check', async () => {
    const k = new Kernel();
    const { engine, change } = setup(k, { gen: () => 1, watched: false });
    change(wanted);
    await engine.reconcileNow();
    await engine.check();
    const n = looks(k);
    await engine.check();
    assert.equal(looks(k), n + 2);
  });
});
