import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rbacPlan, renderEtcdctl } from './rbac.ts';

describe('rbacPlan', () => {
  it('reads everything, and writes its own prefix of every kind (names included), nothing else', () => {
    const plan = rbacPlan('a');
    assert.deepEqual(
      plan.grants.map((g) => `${g.permission} ${g.key}${g.prefix ? ' (prefix)' : ''}`),
      [
        'read /truss/ (prefix)',
        'readwrite /truss/v2/nodes/a',
        'readwrite /truss/v2/networks/a/ (prefix)',
        'readwrite /truss/v2/members/a/ (prefix)',
        'readwrite /truss/v2/blocks/a/ (prefix)',
        'readwrite /truss/v2/addrs/a/ (prefix)',
        'readwrite /truss/v2/shared/a/ (prefix)',
        'readwrite /truss/v2/names/a/ (prefix)',
      ],
    );
    assert.match(renderEtcdctl(plan), /grant-permission truss-a --prefix=true readwrite \/truss\/v2\/names\/a\/\n/);
  });

  it('refuses what is not a node id', () => {
    assert.throws(() => rbacPlan('A/'), /expected/);
  });
});
