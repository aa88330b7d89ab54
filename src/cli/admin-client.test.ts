import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { forgetBody } from '../core/admin-api.ts';
import { decodeReply, jsonOutput } from './admin-client.ts';

const FORGET = {
  node: 'gone',
  wasRegistered: false,
  clusters: [{ cluster: 'c', claims: [], blocks: [], member: true }],
};

describe('admin replies in the CLI', () => {
  it('decodes a reply of version 1, or without a version (a daemon before the contract)', () => {
    assert.deepStrictEqual(decodeReply(forgetBody, { schemaVersion: 1, ...FORGET }, 'cluster forget'), FORGET);
    assert.deepStrictEqual(decodeReply(forgetBody, FORGET, 'cluster forget'), FORGET);
    // a field it does not know (added by a newer daemon, same version) is dropped, not refused
    assert.deepStrictEqual(decodeReply(forgetBody, { ...FORGET, since: 'x' }, 'cluster forget'), FORGET);
  });

  it('refuses another version, and a reply outside the contract, naming the field', () => {
    assert.throws(
      () => decodeReply(forgetBody, { schemaVersion: 2, ...FORGET }, 'cluster forget'),
      /admin schema version 2, this CLI reads version 1/,
    );
    assert.throws(
      () => decodeReply(forgetBody, { ...FORGET, clusters: [{ cluster: 'c' }] }, 'cluster forget', 'a hint'),
      /unexpected cluster forget reply \(clusters\[\]\): clusters\[0\]\.claims: .*older than the daemon\? \(a hint\)$/,
    );
  });

  it('--json: the reply as sent, schemaVersion first', () => {
    assert.equal(jsonOutput({ b: 1, a: [2] }), `${JSON.stringify({ schemaVersion: 1, b: 1, a: [2] }, null, 2)}\n`);
    assert.equal(jsonOutput({ schemaVersion: 1, b: 1 }), `${JSON.stringify({ schemaVersion: 1, b: 1 }, null, 2)}\n`);
    assert.throws(() => jsonOutput({ schemaVersion: 3 }), /admin schema version 3/);
  });
});
