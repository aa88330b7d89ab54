import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { confirmSuspects, decideNodeId, findIdentitySuspects, identityConflictError } from './identity.ts';
import { isValidNodeName, type NodeRecord } from './model.ts';

const FILE = '/var/lib/truss/node-id';
const rec = (o: Partial<NodeRecord> & { name: string }): NodeRecord => ({
  address: '198.18.255.1',
  wgPublicKey: 'k',
  wgPort: 51820,
  ...o,
});

describe('decideNodeId', () => {
  const random = () => '0123456789abcdef0123456789abcdef';
  it('a new host gets a fresh random id that fits the node name pattern', () => {
    const r = decideNodeId({ file: FILE, legacy: false, name: 'twin', random });
    assert.deepEqual(r, { id: '0123456789abcdef0123456789abcdef', origin: 'new' });
    assert.ok(isValidNodeName(r.id));
  });
  it('a host upgraded from truss before node ids keeps its old name as its id', () => {
    assert.deepEqual(decideNodeId({ file: FILE, legacy: true, name: 'h1', random }), { id: 'h1', origin: 'legacy' });
  });
  it('a stored id wins over everything (a restart keeps its identity)', () => {
    assert.deepEqual(decideNodeId({ stored: 'abc', file: FILE, legacy: true, name: 'h1', random }), {
      id: 'abc',
      origin: 'stored',
    });
  });
  it('a damaged file is refused, naming the file and the fix', () => {
    assert.throws(() => decideNodeId({ stored: 'Not An Id', file: FILE, legacy: false, name: 'h1', random }), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /\/var\/lib\/truss\/node-id holds "Not An Id", not a node id .* remove it/,
    });
  });
});

describe('identity conflicts', () => {
  const self = rec({ id: 'aaa', name: 'twin', instance: 'i2', address: '198.18.255.2' });
  it('no suspects: its own record (this process), other names and ids', () => {
    const nodes = [
      rec({ id: 'aaa', name: 'twin', instance: 'i2', address: '198.18.255.2' }),
      rec({ id: 'b', name: 'b' }),
    ];
    assert.deepEqual(findIdentitySuspects(self, undefined, nodes), []);
  });
  it("the previous process's record (same instance as last written, same address) is not a suspect", () => {
    const prev = rec({ id: 'aaa', name: 'twin', instance: 'i1', address: '198.18.255.2' });
    assert.deepEqual(findIdentitySuspects(self, 'i1', [prev]), []);
  });
  it('an upgrade: the record of this host under truss before node ids (no instance, same address) is its own', () => {
    const old = rec({ name: 'aaa', address: '198.18.255.2' });
    assert.deepEqual(findIdentitySuspects(self, undefined, [old]), []);
    assert.equal(findIdentitySuspects(self, undefined, [{ ...old, address: '198.18.255.9' }]).length, 1);
  });
  it('the same id from another instance or address is a suspect (a copied state dir)', () => {
    const other = rec({ id: 'aaa', name: 'twin', instance: 'i1', address: '198.18.255.1' });
    assert.deepEqual(findIdentitySuspects(self, 'i1', [other]), [{ kind: 'id', other }]);
    const unknown = rec({ id: 'aaa', name: 'x', instance: 'i9', address: '198.18.255.2' });
    assert.deepEqual(findIdentitySuspects(self, 'i1', [unknown]), [{ kind: 'id', other: unknown }]);
  });
  it('the same name under another id is a suspect, also a record of truss before node ids', () => {
    const legacy = rec({ name: 'twin' });
    assert.deepEqual(findIdentitySuspects(self, undefined, [legacy]), [{ kind: 'name', other: legacy }]);
  });
  it('confirmed only if a record under that id is still there after the TTL', () => {
    const other = rec({ id: 'bbb', name: 'twin', instance: 'x1' });
    const s = findIdentitySuspects(self, undefined, [other]);
    assert.deepEqual(confirmSuspects(self, s, []), [], 'expired: a crashed host');
    assert.deepEqual(confirmSuspects(self, s, [other]), [{ kind: 'name', other }]);
    const restarted = { ...other, instance: 'x2' };
    assert.deepEqual(confirmSuspects(self, s, [restarted]), [{ kind: 'name', other: restarted }]);
    assert.deepEqual(confirmSuspects(self, s, [{ ...other, name: 'renamed' }]), [], 'renamed meanwhile');
  });
  it('the messages name both addresses and the fix', () => {
    const other = rec({ id: 'bbb', name: 'twin', instance: 'x1', address: '198.18.255.1' });
    assert.equal(
      identityConflictError(self, { kind: 'name', other }, FILE).message,
      'node name twin is already taken by another live host: 198.18.255.1 (node id bbb) is registered as twin, ' +
        'and this host 198.18.255.2 (node id aaa) cannot be too: give this host its own --node-name, or a unique hostname',
    );
    const copy = rec({ id: 'aaa', name: 'twin', instance: 'x1', address: '198.18.255.1' });
    const e = identityConflictError(self, { kind: 'id', other: copy }, FILE);
    assert.equal(e.code, 'TRUSS_ERR_NODE_CONFLICT');
    assert.equal(
      e.message,
      'node id aaa is already used by another live host: 198.18.255.1 (twin) is registered with it, and this host ' +
        '198.18.255.2 (twin) cannot be too; the state dir was copied from one host to the other: on the copy, stop ' +
        'truss, remove /var/lib/truss/node-id and start truss again (it gets a new node id)',
    );
  });
});
