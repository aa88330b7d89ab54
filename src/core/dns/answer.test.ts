import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NamedEndpoint } from '../names/model.ts';
import { type DnsView, resolve } from './answer.ts';

const A = 1;
const AAAA = 28;
const MX = 15;

function ep(over: Partial<NamedEndpoint> & Pick<NamedEndpoint, 'name' | 'addresses'>): NamedEndpoint {
  return {
    endpointId: 'e'.repeat(64),
    node: 'n1',
    networkName: 'blue',
    containerId: 'c'.repeat(64),
    aliases: [],
    labels: {},
    ...over,
  };
}

const web1 = ep({ name: 'web-1', aliases: ['web'], addresses: ['198.18.0.10', 'fd00::10'] });
const web2 = ep({ name: 'web-2', aliases: ['web', 'WWW'], addresses: ['198.18.0.9'], node: 'n2' });
const db = ep({ name: 'db', addresses: ['198.18.0.20'] });
const v6only = ep({ name: 'six', addresses: ['fd00::6'] });
const onRed = ep({ name: 'red-only', networkName: 'red', addresses: ['198.18.1.1'] });
const clustered = ep({ name: 'far', networkName: 'blue', cluster: 'blue', addresses: ['198.18.64.5'], node: 'n3' });

const local: DnsView = { networks: [{ networkName: 'blue' }], endpoints: [web1, web2, db, v6only, onRed, clustered] };

describe('resolve', () => {
  it('answers a name, an alias, NAME.NETWORK and ALIAS.NETWORK, case-insensitively, trailing dot ignored', () => {
    for (const name of ['db', 'DB', 'db.', 'db.blue', 'Db.Blue.']) {
      assert.deepEqual(resolve({ name, type: A }, local), { kind: 'answer', addresses: ['198.18.0.20'] }, name);
    }
    assert.deepEqual(resolve({ name: 'www.blue', type: A }, local), { kind: 'answer', addresses: ['198.18.0.9'] });
  });

  it('gives every container behind a shared alias, in numeric order, without duplicates', () => {
    const twice = { ...local, endpoints: [...local.endpoints, web2] };
    assert.deepEqual(resolve({ name: 'web', type: A }, twice), {
      kind: 'answer',
      addresses: ['198.18.0.9', '198.18.0.10'],
    });
    assert.deepEqual(resolve({ name: 'web', type: AAAA }, local), { kind: 'answer', addresses: ['fd00::10'] });
  });

  it('says nodata for a known name of another type, or a family it lacks', () => {
    assert.deepEqual(resolve({ name: 'db', type: AAAA }, local), { kind: 'nodata' });
    assert.deepEqual(resolve({ name: 'six', type: A }, local), { kind: 'nodata' });
    assert.deepEqual(resolve({ name: 'web-1', type: MX }, local), { kind: 'nodata' });
  });

  it('forwards unknown names, names of other networks, and the root', () => {
    assert.deepEqual(resolve({ name: 'example.com', type: A }, local), { kind: 'forward' });
    assert.deepEqual(resolve({ name: 'red-only', type: A }, local), { kind: 'forward' });
    assert.deepEqual(resolve({ name: 'db.red', type: A }, local), { kind: 'forward' });
    assert.deepEqual(resolve({ name: '', type: A }, local), { kind: 'forward' });
    assert.deepEqual(resolve({ name: '.', type: A }, local), { kind: 'forward' });
    assert.deepEqual(resolve({ name: 'db', type: A }, { networks: [], endpoints: [db] }), { kind: 'forward' });
  });

  it('does not match a name written with an escaped dot (a label holding ".")', () => {
    assert.deepEqual(resolve({ name: 'db\\.blue', type: A }, local), { kind: 'forward' });
  });

  it('sees a cluster network by its cluster on every host, and only then', () => {
    assert.deepEqual(
      resolve({ name: 'far', type: A }, local),
      { kind: 'forward' },
      'a local "blue" is not the cluster',
    );
    const view: DnsView = { networks: [{ networkName: 'blue', cluster: 'blue' }], endpoints: local.endpoints };
    assert.deepEqual(resolve({ name: 'far.blue', type: A }, view), { kind: 'answer', addresses: ['198.18.64.5'] });
    assert.deepEqual(resolve({ name: 'db', type: A }, view), { kind: 'forward' }, 'local endpoints are not on it');
  });

  it('looks across all the querying networks, each under its own name', () => {
    const view: DnsView = { networks: [{ networkName: 'blue' }, { networkName: 'red' }], endpoints: local.endpoints };
    assert.deepEqual(resolve({ name: 'red-only.red', type: A }, view), { kind: 'answer', addresses: ['198.18.1.1'] });
    assert.deepEqual(resolve({ name: 'red-only.blue', type: A }, view), { kind: 'forward' });
    assert.deepEqual(resolve({ name: 'db', type: A }, view), { kind: 'answer', addresses: ['198.18.0.20'] });
  });

  it('normalises IPv6 text before deduplicating', () => {
    const a = ep({ name: 'x', addresses: ['FD00:0::1'] });
    const b = ep({ name: 'y', aliases: ['x'], addresses: ['fd00::1'] });
    assert.deepEqual(resolve({ name: 'x', type: AAAA }, { networks: [{ networkName: 'blue' }], endpoints: [a, b] }), {
      kind: 'answer',
      addresses: ['fd00::1'],
    });
  });
});
