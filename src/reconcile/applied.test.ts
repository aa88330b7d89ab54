import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AppliedSet, fingerprint } from './applied.ts';

const veth = (name: string, mtu = 1500, joined = false) => ({ name, mtu, joined });

describe('fingerprint', () => {
  it('leaves out a veth’s joined flag, and is stable per object', () => {
    assert.equal(fingerprint(veth('a', 1500, false)), fingerprint(veth('a', 1500, true)));
    assert.notEqual(fingerprint(veth('a', 1500)), fingerprint(veth('a', 1400)));
    const o = { name: 'x', addresses: ['198.18.0.1/24'] };
    assert.equal(fingerprint(o), JSON.stringify(o));
    assert.equal(fingerprint(undefined), undefined);
  });
});

describe('AppliedSet', () => {
  it('knows an applied object by identity or by equal content, and what is stale', () => {
    const s = new AppliedSet<ReturnType<typeof veth>>();
    const a = veth('a');
    assert.equal(s.current(a), false);
    s.set(a);
    s.set(veth('b'));
    assert.equal(s.current(a), true);
    assert.equal(s.current(veth('a')), true, 'an equal new object (after a fresh read)');
    assert.equal(s.current(veth('a', 1400)), false);
    assert.deepEqual(s.stale([a]), ['b']);
    s.delete('b');
    assert.deepEqual(s.names(), ['a']);
    assert.equal(s.size, 1);
  });

  it('diff: what needs applying and what is stale, adopting equal new objects', () => {
    const s = new AppliedSet<ReturnType<typeof veth>>();
    const a = veth('a');
    s.set(a);
    s.set(veth('b'));
    const a2 = veth('a', 1500, true); // Join: only `joined` differs
    const c = veth('c');
    const d = s.diff([a2, c]);
    assert.deepEqual(d.changed, [c]);
    assert.deepEqual(d.stale, ['b']);
    assert.equal(s.current(a2), true);
    assert.deepEqual(s.diff([a2, veth('b')]), { changed: [], stale: [] });
  });
});
