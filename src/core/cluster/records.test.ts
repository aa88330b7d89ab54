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

describe('node records: reachability fields (hosts behind NATs)', () => {
  const decodeNode = (v: unknown) => decodeClusterRecord({ key: clusterKeys.node('aa01'), value: JSON.stringify(v) });
  const why = (v: unknown) => {
    const d = decodeNode(v);
    return d.kind === 'malformed' ? d.why : undefined;
  };
  it('keeps them when well-formed', () => {
    const full = {
      ...node,
      publicEndpoint: '[fd00::7]:4500',
      relay: true,
      nat: 'independent',
      seen: { bb02: '198.18.255.201:51820' },
      punched: ['cc03'],
    };
    const d = decodeNode(full);
    assert.equal(d.kind, 'nodes');
    assert.deepEqual(d.kind === 'nodes' ? { ...d.record } : undefined, full);
  });
  it('refuses each malformed one, with its reason', () => {
    assert.match(why({ ...node, publicEndpoint: 'fd00::7:4500' }) ?? '', /publicEndpoint/);
    assert.match(why({ ...node, publicEndpoint: '[fd00:0::7]:4500' }) ?? '', /publicEndpoint/, 'canonical only');
    assert.match(why({ ...node, relay: 'yes' }) ?? '', /relay/);
    assert.match(why({ ...node, nat: 'full-cone' }) ?? '', /nat is not one of/);
    assert.match(why({ ...node, seen: ['x'] }) ?? '', /seen is not an object/);
    assert.match(why({ ...node, seen: { 'Bad Id': '198.18.255.1:1' } }) ?? '', /not a node id/);
    assert.match(why({ ...node, seen: { bb02: 'here' } }) ?? '', /seen\.bb02/);
    const many = Object.fromEntries(Array.from({ length: 1025 }, (_, i) => [`n${i}`, '198.18.255.1:1']));
    assert.match(why({ ...node, seen: many }) ?? '', /more than 1024/);
    assert.match(why({ ...node, punched: 'cc03' }) ?? '', /punched/);
    assert.match(why({ ...node, punched: ['CC'] }) ?? '', /punched/);
  });
});

describe('name records (names/<id>/<cluster>/<endpoint id>)', () => {
  const EP = 'e'.repeat(64);
  const rec = {
    cluster: 'blue',
    node: 'm',
    endpoint: EP,
    network: 'blue-net',
    container: 'c'.repeat(64),
    name: 'api-1',
    aliases: ['api', 'api.v2'],
    labels: { role: 'api', 'com.example/team': 'any string: é, spaces = ok' },
    addresses: ['198.18.64.2', 'fd00::2'],
  };
  const key = clusterKeys.name('blue', EP, 'm');
  const decode = (v: unknown, k = key) => decodeClusterRecord({ key: k, value: JSON.stringify(v) });
  const why = (v: unknown, k = key) => {
    const d = decode(v, k);
    return d.kind === 'malformed' ? d.why : undefined;
  };

  it('lays out and parses back the key; a well-formed record decodes to itself', () => {
    assert.equal(key, `/truss/v2/names/m/blue/${EP}`);
    assert.equal(clusterKeys.ownerPrefix('names', 'm'), '/truss/v2/names/m/');
    assert.deepEqual(parseClusterKey(key), { kind: 'names', owner: 'm', cluster: 'blue', item: EP });
    assert.equal(parseClusterKey(`/truss/v2/names/m/blue`), undefined);
    assert.equal(parseClusterKey(`/truss/v2/names/m/blue/${EP}/x`), undefined);
    const d = decode(rec);
    assert.equal(d.kind, 'names');
    assert.deepEqual(d.kind === 'names' && d.record, rec);
  });

  it('must agree with its key: node, cluster and endpoint (a record copied under another host)', () => {
    assert.match(why(rec, clusterKeys.name('blue', EP, 'zzz')) ?? '', /node is not zzz/);
    assert.match(why(rec, clusterKeys.name('red', EP, 'm')) ?? '', /cluster is not red/);
    assert.match(why(rec, clusterKeys.name('blue', 'f'.repeat(64), 'm')) ?? '', /endpoint is not/);
    assert.match(
      why({ ...rec, endpoint: 'E'.repeat(64) }, clusterKeys.name('blue', 'E'.repeat(64), 'm')) ?? '',
      /64 hex/,
    );
  });

  it('refuses malformed fields, one reason each', () => {
    const cases: [string, unknown, RegExp][] = [
      ['container not 64 hex', { ...rec, container: 'abc' }, /container/],
      ['container upper case', { ...rec, container: 'C'.repeat(64) }, /container/],
      ['name with a slash', { ...rec, name: '/api' }, /name is not a container name/],
      ['name empty', { ...rec, name: '' }, /name is not/],
      ['network missing', { ...rec, network: undefined }, /network/],
      ['aliases not a list', { ...rec, aliases: 'api' }, /aliases/],
      ['65 aliases', { ...rec, aliases: Array.from({ length: 65 }, (_, i) => `a${i}`) }, /at most 64/],
      ['alias with a space', { ...rec, aliases: ['a b'] }, /alias/],
      ['alias of 256', { ...rec, aliases: ['a'.repeat(256)] }, /alias/],
      ['alias empty', { ...rec, aliases: [''] }, /alias/],
      ['labels a list', { ...rec, labels: ['x'] }, /labels is not an object/],
      [
        '129 labels',
        { ...rec, labels: Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`k${i}`, 'v'])) },
        /128/,
      ],
      ['label key of 129', { ...rec, labels: { ['k'.repeat(129)]: 'v' } }, /label key/],
      ['label value of 1025', { ...rec, labels: { k: 'v'.repeat(1025) } }, /label k/],
      ['label value with a newline', { ...rec, labels: { k: 'a\nb' } }, /control/],
      ['label value not a string', { ...rec, labels: { k: 1 } }, /label k/],
      ['label key with a NUL', { ...rec, labels: { 'a\u0000': 'v' } }, /label key/],
      ['address not canonical', { ...rec, addresses: ['198.18.064.2'] }, /addresses/],
      ['address with a prefix', { ...rec, addresses: ['198.18.64.2/20'] }, /addresses/],
      ['ipv6 not canonical', { ...rec, addresses: ['FD00::2'] }, /addresses/],
      ['5 addresses', { ...rec, addresses: ['1.1.1.1', '1.1.1.2', '1.1.1.3', '1.1.1.4', '1.1.1.5'] }, /at most 4/],
      ['null', null, /not a JSON object/],
    ];
    for (const [what, v, re] of cases) assert.match(why(v) ?? '(accepted)', re, what);
    // at the limits: accepted
    assert.equal(
      why({
        ...rec,
        aliases: Array.from({ length: 64 }, (_, i) => `a${i}`),
        labels: { ['k'.repeat(128)]: 'v'.repeat(1024) },
        addresses: ['1.1.1.1', '1.1.1.2', '1.1.1.3', 'fd00::1'],
      }),
      undefined,
    );
  });

  it('refuses a value larger than 16 KiB, before parsing it', () => {
    const labels = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, 'v'.repeat(1000)]));
    assert.match(why({ ...rec, labels }) ?? '', /larger than 16384 bytes/);
    const d = decodeClusterRecord({ key, value: `"${'x'.repeat(17_000)}"` });
    assert.deepEqual(d, { kind: 'malformed', key, why: 'larger than 16384 bytes' });
  });

  it('a malformed name record is skipped and reported; the others are kept', () => {
    const other = clusterKeys.name('blue', 'a'.repeat(64), 'm');
    const bad: string[] = [];
    const ok = recordsOf(
      'names',
      [kv(key, rec), kv(other, { ...rec, endpoint: 'a'.repeat(64), name: 'no spaces' })],
      (k) => bad.push(k),
    );
    assert.deepEqual(
      ok.map((d) => d.record.name),
      ['api-1'],
    );
    assert.deepEqual(bad, [other]);
  });
});
