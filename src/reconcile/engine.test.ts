/** The engine itself, over scripted kinds on a fake kernel (no truss kind involved). */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { silentLogger } from '../obs/logger.ts';
import { Engine, type EngineObserver, type PassResult } from './engine.ts';
import type { Kind, Owner, SetKind, WholeKind } from './kind.ts';

interface Obj {
  readonly name: string;
  readonly v: number;
  /** a veth's bridge */
  readonly on?: string;
}
interface Desired {
  readonly revision: number;
  readonly bridges: readonly Obj[];
  readonly veths: readonly Obj[];
  readonly fw?: Obj;
}

/** A kernel of named tables; every write is logged; names in `failing` make their writes throw. */
class Kernel {
  readonly tables = new Map<string, Map<string, number>>();
  readonly writes: string[] = [];
  readonly failing = new Set<string>();
  delayMs = 0;
  onWrite: () => void = () => {};
  running = 0;
  maxRunning = 0;

  table(kind: string): Map<string, number> {
    let t = this.tables.get(kind);
    if (!t) {
      t = new Map();
      this.tables.set(kind, t);
    }
    return t;
  }

  async write(op: string, kind: string, name: string, apply: () => void): Promise<void> {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      this.writes.push(`${op} ${kind}:${name}`);
      this.onWrite();
      if (this.failing.has(`${kind}:${name}`)) throw new Error(`${kind} ${name} refused`);
      apply();
    } finally {
      this.running--;
    }
  }
}

function setKind(
  k: Kernel,
  name: string,
  pick: (d: Desired) => readonly Obj[],
  extra: Partial<SetKind<Desired, Obj>> = {},
) {
  const kind: SetKind<Desired, Obj> = {
    shape: 'set',
    name,
    wanted: pick,
    check: async (wanted) => {
      const t = k.table(name);
      const drifted = wanted.filter((o) => t.get(o.name) !== o.v).map((o) => o.name);
      const keep = new Set(wanted.map((o) => o.name));
      const extraNames = [...t.keys()].filter((n) => !keep.has(n));
      return { problems: [...drifted, ...extraNames].map((n) => `${name} ${n} differs`), drifted, extra: extraNames };
    },
    ensure: (o) => k.write('ensure', name, o.name, () => k.table(name).set(o.name, o.v)),
    remove: (n) => k.write('remove', name, n, () => k.table(name).delete(n)),
    ...extra,
  };
  return kind;
}

function wholeKind(k: Kernel, name: string, needs?: readonly string[]): WholeKind<Desired, Obj> {
  return {
    shape: 'whole',
    name,
    wanted: (d) => d.fw,
    check: async (want) => (k.table(name).get('') === want?.v ? [] : [`${name} differs`]),
    ensure: (o) => k.write('ensure', name, '', () => k.table(name).set('', o.v)),
    remove: () => k.write('remove', name, '', () => k.table(name).delete('')),
    ...(needs ? { needs } : {}),
  };
}

const engines: Engine<Desired, Desired>[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stop()));
});

function setup(k: Kernel, first: Omit<Desired, 'revision'>, kinds?: Kind<Desired>[], observer?: EngineObserver) {
  const state = { desired: { revision: 1, ...first } as Desired };
  let passes = 0;
  const engine = new Engine<Desired, Desired>({
    load: async () => state.desired,
    derive: async (d) => {
      passes++;
      return d;
    },
    kinds: kinds ?? [
      setKind(k, 'bridge', (d) => d.bridges, { removeAt: 'last' }),
      setKind(k, 'veth', (d) => d.veths, { needs: (v) => `bridge:${v.on}`, removeAt: 'last' }),
      wholeKind(k, 'firewall', ['bridge:b1']),
    ],
    log: silentLogger,
    resyncMs: 3_600_000,
    backoff: { firstMs: 20, maxMs: 80 },
    ...(observer ? { observer } : {}),
  });
  engines.push(engine);
  const change = (next: Omit<Desired, 'revision'>) => {
    state.desired = { revision: state.desired.revision + 1, ...next };
    return state.desired.revision;
  };
  return { engine, change, passes: () => passes };
}

const b = (name: string, v = 1): Obj => ({ name, v });
const veth = (name: string, on: string, v = 1): Obj => ({ name, v, on });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('engine', () => {
  it('a failed bridge skips its veths (and what needs it); the rest is programmed', async () => {
    const k = new Kernel();
    k.failing.add('bridge:b1');
    const { engine } = setup(k, {
      bridges: [b('b1'), b('b2')],
      veths: [veth('v1', 'b1'), veth('v2', 'b2')],
      fw: b('fw'),
    });
    await assert.rejects(engine.waitFor(1, ['veth:v1'], 2_000), /bridge b1 could not be programmed/);
    await engine.waitFor(1, ['veth:v2', 'bridge:b2'], 2_000);
    // (then the retry of b1 alone)
    assert.deepEqual(k.writes.slice(0, 3), ['ensure bridge:b1', 'ensure bridge:b2', 'ensure veth:v2']);
    const objects = engine.status().objects;
    assert.equal(objects['veth:v1']?.state, 'error');
    assert.equal(objects['veth:v1']?.code, 'TRUSS_ERR_RECONCILE_FAILED');
    assert.equal(objects.firewall?.state, 'error');
    assert.equal(objects['veth:v2']?.state, 'ok');
  });

  it('status: an object in error keeps when its failures began; the last pass names what failed', async () => {
    const k = new Kernel();
    k.failing.add('bridge:b1');
    const { engine } = setup(k, { bridges: [b('b1'), b('b2')], veths: [] });
    await assert.rejects(engine.waitFor(1, ['bridge:b1'], 2_000));
    const first = engine.status().objects['bridge:b1'];
    assert.equal(first?.since, first?.updatedAt, 'the first failure starts the run');
    while (k.writes.filter((w) => w === 'ensure bridge:b1').length < 3) await sleep(10);
    await engine.idle();
    const later = engine.status();
    assert.equal(later.objects['bridge:b1']?.since, first?.since, 'retries keep the start of the run');
    assert.equal(later.objects['bridge:b1']?.lastError, 'bridge b1 refused');
    assert.deepEqual(later.lastPass?.failed, ['bridge:b1']);
    assert.match(later.lastPass?.at ?? '', /^\d{4}-\d\d-\d\dT/);
    assert.equal(later.objects['bridge:b2']?.since, undefined);
    k.failing.clear();
    await engine.reconcileNow();
    const clean = engine.status();
    assert.equal(clean.objects['bridge:b1']?.state, 'ok');
    assert.equal(clean.objects['bridge:b1']?.since, undefined);
    assert.equal(clean.lastPass?.failed, undefined);
  });

  it('backoff: retries double from firstMs up to maxMs, and reset after a clean pass', async () => {
    const k = new Kernel();
    k.failing.add('bridge:b1');
    const { engine } = setup(k, { bridges: [b('b1')], veths: [] });
    // each attempt notes the delay the previous failed pass set
    const seen: number[] = [];
    k.onWrite = () => seen.push(engine.backoffMs);
    engine.trigger();
    while (seen.length < 5) await sleep(10);
    assert.deepEqual(seen.slice(0, 5), [0, 20, 40, 80, 80]);
    const attempts = k.writes.length;
    assert.ok(attempts >= 4, `retried on its own: ${attempts} attempts`);
    k.failing.clear();
    await sleep(120);
    await engine.idle();
    assert.equal(engine.backoffMs, 0);
    const settled = k.writes.length;
    await sleep(200);
    assert.equal(k.writes.length, settled, 'no retries once clean');
  });

  it('waitFor: times out with a code while the pass is slower, and resolves for a later waiter', async () => {
    const k = new Kernel();
    k.delayMs = 150;
    const { engine } = setup(k, { bridges: [b('b1')], veths: [] });
    await assert.rejects(engine.waitFor(1, ['bridge:b1'], 30), { code: 'TRUSS_ERR_RECONCILE_TIMEOUT' });
    await engine.waitFor(1, ['bridge:b1'], 2_000);
    assert.equal(engine.status().reconciledRevision, 1);
  });

  it('serialised passes: never two at once, however many triggers and waiters', async () => {
    const k = new Kernel();
    k.delayMs = 5;
    const { engine, change } = setup(k, { bridges: [], veths: [] });
    const waits: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      const rev = change({ bridges: [b(`b${i % 4}`, i)], veths: [] });
      if (i % 3 === 0) engine.trigger('full');
      waits.push(engine.waitFor(rev, [`bridge:b${i % 4}`], 5_000));
    }
    await Promise.all(waits);
    assert.equal(k.maxRunning, 1);
    assert.deepEqual([...k.table('bridge').entries()], [['b3', 19]]);
  });

  it('adopt after restart: a full pass over a kernel that matches writes nothing', async () => {
    const k = new Kernel();
    const want = { bridges: [b('b1'), b('b2')], veths: [veth('v1', 'b1')], fw: b('fw', 7) };
    const first = setup(k, want);
    assert.equal((await first.engine.reconcileNow())?.changes, 4);
    await first.engine.stop();
    const writes = k.writes.length;
    const restarted = setup(k, want);
    const pass = await restarted.engine.reconcileNow();
    assert.equal(k.writes.length, writes, `no writes: ${k.writes.slice(writes).join(', ')}`);
    assert.equal(pass?.changes, 0);
    assert.equal(restarted.engine.status().firstPass?.changes, 0);
    assert.equal(restarted.engine.status().objects['veth:v1']?.state, 'ok');
    // and an incremental pass afterwards has nothing to do either: the adopted objects are the record
    restarted.engine.trigger();
    await restarted.engine.idle();
    assert.equal(k.writes.length, writes);
    assert.deepEqual(await restarted.engine.check(), []);
  });

  it('a full pass repairs drift and prunes leftovers, veths before their bridge', async () => {
    const k = new Kernel();
    k.table('bridge').set('old', 1);
    k.table('veth').set('vold', 1);
    k.table('bridge').set('b1', 5);
    const { engine } = setup(k, { bridges: [b('b1')], veths: [] });
    assert.equal((await engine.check()).length, 3);
    await engine.reconcileNow();
    assert.deepEqual(k.writes, ['ensure bridge:b1', 'remove bridge:old', 'remove veth:vold'].sort(byOrder(k.writes)));
    assert.ok(k.writes.indexOf('remove veth:vold') > k.writes.indexOf('ensure bridge:b1'));
    assert.deepEqual(await engine.check(), []);
  });

  it('tells its observer of each pass and of the drift full passes find, by kind', async () => {
    const k = new Kernel();
    const seen = { passes: [] as PassResult[], failed: [] as boolean[], drift: [] as string[] };
    const observer: EngineObserver = {
      pass: (r) => seen.passes.push(r),
      passFailed: (full) => seen.failed.push(full),
      drift: (kind, n) => seen.drift.push(`${kind} ${n}`),
    };
    const first = { bridges: [b('b1')], veths: [veth('v1', 'b1')], fw: b('fw') };
    const { engine, change } = setup(k, first, undefined, observer);
    await engine.reconcileNow();
    assert.deepEqual(
      seen.passes.map((p) => [p.full, p.changes, p.failures]),
      [[true, 3, 0]],
    );
    // as logged ('kernel drift'): a set kind's full pass counts what the kernel lacks
    assert.deepEqual(seen.drift.splice(0).sort(), ['bridge 1', 'veth 1']);
    await engine.reconcileNow();
    assert.deepEqual(seen.drift, [], 'a full pass over a kernel that matches finds no drift');
    k.table('veth').delete('v1');
    k.table('bridge').set('stray', 1);
    k.table('firewall').set('', 9);
    await engine.reconcileNow();
    assert.deepEqual(seen.drift.sort(), ['bridge 1', 'firewall 1', 'veth 1']);
    k.failing.add('veth:v2');
    const rev = change({ bridges: [b('b1')], veths: [veth('v1', 'b1'), veth('v2', 'b1')], fw: b('fw') });
    await engine.waitFor(rev, [], 2_000).catch(() => {});
    const last = seen.passes.at(-1);
    assert.deepEqual([last?.full, last?.failures], [false, 1]);
    assert.deepEqual(seen.failed, []);
  });

  it('unwanted objects go veths first, bridges last, when their intent goes', async () => {
    const k = new Kernel();
    const { engine, change } = setup(k, { bridges: [b('b1')], veths: [veth('v1', 'b1')] });
    await engine.reconcileNow();
    k.writes.length = 0;
    const rev = change({ bridges: [], veths: [] });
    await engine.waitFor(rev, [], 2_000);
    assert.deepEqual(k.writes, ['remove bridge:b1', 'remove veth:v1'].sort(byOrder(k.writes)));
    assert.ok(k.writes.indexOf('remove veth:v1') < k.writes.indexOf('remove bridge:b1'));
  });

  it('a failed ensure keeps the object as maybe present: its removal runs when the intent goes', async () => {
    const k = new Kernel();
    k.failing.add('veth:v1');
    k.failing.add('firewall:');
    const { engine, change } = setup(k, { bridges: [b('b1')], veths: [veth('v1', 'b1')], fw: b('fw') });
    await assert.rejects(engine.waitFor(1, ['veth:v1'], 2_000), /veth v1 refused/);
    k.failing.clear();
    const rev = change({ bridges: [b('b1')], veths: [] });
    await engine.waitFor(rev, [], 2_000);
    assert.ok(k.writes.includes('remove veth:v1'), k.writes.join(', '));
    assert.ok(k.writes.includes('remove firewall:'), k.writes.join(', '));
    assert.equal(engine.status().objects['veth:v1'], undefined);
  });

  it('a paused kind is left exactly as it is, and check() says why', async () => {
    const k = new Kernel();
    k.table('bridge').set('keep', 1);
    const kinds = [{ ...setKind(k, 'bridge', (d) => d.bridges), paused: () => 'not synced yet' }];
    const { engine } = setup(k, { bridges: [], veths: [] }, kinds);
    await engine.reconcileNow();
    assert.deepEqual(k.writes, []);
    assert.deepEqual(await engine.check(), ['not synced yet']);
  });

  it('waitFor an owner: only the objects its intent derives decide, whatever their kind', async () => {
    const k = new Kernel();
    k.failing.add('veth:v1');
    const owns = (o: Obj, owner: Owner) =>
      'endpoint' in owner ? o.name === owner.endpoint : o.on === owner.network || o.name === owner.network;
    const kinds: Kind<Desired>[] = [
      setKind(k, 'bridge', (d) => d.bridges, { owns }),
      setKind(k, 'veth', (d) => d.veths, { owns, needs: (v) => `bridge:${v.on}` }),
    ];
    const { engine } = setup(k, { bridges: [b('b1'), b('b2')], veths: [veth('v1', 'b1'), veth('v2', 'b2')] }, kinds);
    await assert.rejects(engine.waitFor(1, { endpoint: 'v1' }, 2_000), /veth v1 refused/);
    await assert.rejects(engine.waitFor(1, { network: 'b1' }, 2_000), /veth v1 refused/);
    await engine.waitFor(1, { endpoint: 'v2' }, 2_000);
    await engine.waitFor(1, { network: 'b2' }, 2_000);
  });

  it('duplicate kind names are refused at registration', () => {
    const k = new Kernel();
    assert.throws(() => setup(k, { bridges: [], veths: [] }, [setKind(k, 'x', () => []), setKind(k, 'x', () => [])]));
  });
});

/** sorts expected entries by where they occur in `actual` (the order is asserted separately) */
function byOrder(actual: readonly string[]) {
  return (a: string, b: string) => actual.indexOf(a) - actual.indexOf(b);
}
