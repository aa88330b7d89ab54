import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clusterKeys, parseClusterKey } from './model.ts';
import { decodeClusterRecord, recordsOf } from './records.ts';

const KEY = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
const node = { id: 'aa01', name: 'h1', address: '198.18.251.1', wgPublicKey: KEY, wgPort: 51820 };
const kv = (key: string, v: unknown, createRevision = 7) => ({ key, value: JSON.stringify(v), createRevision });

describe('cluster key layout (by owner)', () => {
  it('puts the owner right after the kind, so one prefix holds everything a host writes of a kind', () => {
    assert.equal(clusterKeys.node('aa01'), '/truss/v2/nodes/aa01');
    assert.equal(clusterKeys.network('blue', 'aa01'), '/truss/v2/networks/aa01/blue');
    assert.equal(clusterKeys.member('blue', 'aa01'), '/truss/v2/members/aa01/blue');
    assert.equal(clusterKeys.block('blue', '198.18.64.0/26', 'aa01'), '/truss/v2/blocks/aa01/blue/198.18.64.0_26');
    assert.equal(clusterKeys.addr('blue', '198.18.64.2', 'aa01'), '/truss/v2/addrs/aa01/blue/198.18.64.2');
    assert.equal(clusterKeys.shared('blue', '198.18.64.1', 'aa01'), '/truss/v2/shared/aa01/blue/198.18.64.1');
    assert.equal(clusterKeys.ownerPrefix('blocks', 'aa01'), '/truss/v2/blocks/aa01/');
    assert.equal(clusterKeys.ownerPrefix('nodes', 'aa01'), '/truss/v2/nodes/aa01');
  });

  it('parses its keys back and refuses anything else', () => {
    assert.deepEqual(parseClusterKey('/truss/v2/blocks/aa01/blue/198.18.64.0_26'), {
      kind: 'blocks',
      owner: 'aa01',
      cluster: 'blue',
      item: '198.18.64.0/26',
    });
    assert.deepEqual(parseClusterKey('/truss/v2/nodes/aa01'), { kind: 'nodes', owner: 'aa01' });
    for (const bad of [
      '/truss/v2/nodes/aa01/x',
      '/truss/v2/blocks/aa01/blue',
      '/truss/v2/addrs/AA/blue/1.2.3.4',
      '/truss/v2/other/aa01',
      '/truss/v1/cluster/nodes/aa01',
      '/truss/v2/members/aa01/blue/extra',
    ]) {
      assert.equal(parseClusterKey(bad), undefined, bad);
    }
  });
});

describe('decodeClusterRecord (shape and owner)', () => {
  it('keeps a well-formed record of its owner, with its createRevision', () => {
    const d = decodeClusterRecord(kv(clusterKeys.node('aa01'), node));
    assert.equal(d.kind, 'nodes');
    assert.deepEqual(d.kind === 'nodes' && d.record, { ...node, createRevision: 7 });
    const b = decodeClusterRecord(
      kv(clusterKeys.block('blue', '198.18.64.0/26', 'aa01'), {
        cluster: 'blue',
        block: '198.18.64.0/26',
        node: 'aa01',
      }),
    );
    assert.deepEqual(b.kind === 'blocks' && b.record, {
      cluster: 'blue',
      block: '198.18.64.0/26',
      node: 'aa01',
      createRevision: 7,
    });
  });

  it('a record under another host key is malformed (H1: nodes/zzz holding name v, a block of m under v)', () => {
    const zzz = decodeClusterRecord(kv(clusterKeys.node('zzz'), { ...node, id: 'v', name: 'v' }));
    assert.deepEqual(zzz, { kind: 'malformed', key: '/truss/v2/nodes/zzz', why: "its node id is not zzz, the key's" });
    const legacyName = decodeClusterRecord(kv(clusterKeys.node('zzz'), { ...node, id: undefined, name: 'v' }));
    assert.equal(legacyName.kind, 'malformed');
    const block = decodeClusterRecord(
      kv(clusterKeys.block('blue', '198.18.64.0/27', 'v'), { cluster: 'blue', block: '198.18.64.0/27', node: 'm' }),
    );
    assert.equal(block.kind, 'malformed');
    const moved = decodeClusterRecord(
      kv(clusterKeys.block('blue', '198.18.64.0/26', 'm'), { cluster: 'blue', block: '198.18.64.64/26', node: 'm' }),
    );
    assert.equal(moved.kind, 'malformed', 'the block must be the one its key names');
    const otherCluster = decodeClusterRecord(kv(clusterKeys.member('blue', 'm'), { cluster: 'red', node: 'm' }));
    assert.equal(otherCluster.kind, 'malformed');
  });

  it('null, garbage and wrong types are malformed, one key at a time (H2.4)', () => {
    const bad = [
      { key: clusterKeys.block('blue', '198.18.64.0/26', 'm'), value: 'null' },
      { key: clusterKeys.addr('blue', '198.18.64.2', 'm'), value: '{' },
      { key: clusterKeys.addr('blue', '198.18.64.3', 'm'), value: '[1]' },
      { key: clusterKeys.addr('blue', '198.18.64.4', 'm'), value: '"x"' },
      { key: clusterKeys.node('m'), value: JSON.stringify({ ...node, id: 'm', wgPort: '51820' }) },
      { key: clusterKeys.network('blue', 'm'), value: JSON.stringify({ name: 'blue', subnets: 'x', encrypt: true }) },
      { key: clusterKeys.addr('blue', '198.18.064.5', 'm'), value: '{}' },
    ];
    const good = kv(clusterKeys.addr('blue', '198.18.64.9', 'm'), {
      cluster: 'blue',
      address: '198.18.64.9',
      node: 'm',
    });
    const why: string[] = [];
    const ok = recordsOf('addrs', [...bad, good], (k) => why.push(k));
    assert.deepEqual(
      ok.map((d) => d.record.address),
      ['198.18.64.9'],
    );
    assert.equal(why.length, bad.length);
  });
});
