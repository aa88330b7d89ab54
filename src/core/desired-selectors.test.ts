import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { computeDesired } from './desired.ts';
import { endpointId } from './ids.ts';
import type { NamedEndpoint } from './names/model.ts';
import { selectorSetName } from './naming.ts';
import { OPT_INGRESS } from './policy/model.ts';
import { parseIngress } from './policy/parse.ts';
import { endpointSpec, networkSpec } from './testing.ts';

const named = (name: string, addresses: string[], labels: Record<string, string> = {}, node = 'n1'): NamedEndpoint => ({
  endpointId: name
    .padEnd(64, '0')
    .replace(/[^0-9a-f]/g, 'e')
    .slice(0, 64),
  node,
  networkName: 'web',
  containerId: 'c'.repeat(64),
  name,
  aliases: [],
  labels,
  addresses,
});

const db = endpointSpec({
  id: endpointId('d'.repeat(64)),
  sandboxKey: '/var/run/docker/netns/x',
  ingress: parseIngress(OPT_INGRESS, 'tcp/5432@name=api-*,icmp@label=role=ops,tcp/22@198.18.7.0/24'),
});
const net = networkSpec();

describe('computeDesired: name= and label= sets', () => {
  it('names a set after the selector text, sha256-hashed', () => {
    const hex = createHash('sha256').update('name=api-*').digest('hex').slice(0, 10);
    assert.equal(selectorSetName({ by: 'name', glob: 'api-*' }), `sel_${hex}`);
    assert.notEqual(selectorSetName({ by: 'label', key: 'a' }), selectorSetName({ by: 'label', key: 'a', value: '' }));
  });

  it('one set per distinct selector of the desired policies, its members the catalog entries it selects', () => {
    const names = [
      named('api-1', ['198.18.0.5', 'fd00::5']),
      named('api-2', ['198.18.9.7'], {}, 'n2'), // another host, another network: still a member
      named('apix', ['198.18.0.6']),
      named('tool', ['198.18.0.8', 'not-an-ip'], { role: 'ops' }),
      named('api-3', ['fd00:0::9']),
    ];
    const d = computeDesired([net], [db], [], names);
    assert.deepStrictEqual(
      d.selectors,
      [
        {
          name: selectorSetName({ by: 'name', glob: 'api-*' }),
          selector: { by: 'name', glob: 'api-*' },
          addresses4: ['198.18.0.5', '198.18.9.7'],
          addresses6: ['fd00::5', 'fd00::9'],
        },
        {
          name: selectorSetName({ by: 'label', key: 'role', value: 'ops' }),
          selector: { by: 'label', key: 'role', value: 'ops' },
          addresses4: ['198.18.0.8'],
          addresses6: [],
        },
      ].sort((a, b) => (a.name < b.name ? -1 : 1)),
    );
  });

  it('membership follows the catalog', () => {
    const before = computeDesired([net], [db], [], [named('api-1', ['198.18.0.5'])]);
    const after = computeDesired([net], [db], [], [named('api-1', ['198.18.0.5']), named('api-2', ['198.18.0.6'])]);
    const apiSet = (d: typeof before) => d.selectors.find((s) => s.selector.by === 'name');
    assert.deepStrictEqual(apiSet(before)?.addresses4, ['198.18.0.5']);
    assert.deepStrictEqual(apiSet(after)?.addresses4, ['198.18.0.5', '198.18.0.6']);
    assert.deepStrictEqual(apiSet(computeDesired([net], [db], []))?.addresses4, [], 'no catalog: empty, still there');
  });

  it('a selector set exists only while a desired policy names it', () => {
    const names = [named('api-1', ['198.18.0.5'])];
    assert.equal(computeDesired([net], [db], [], names).selectors.length, 2);
    // the endpoint leaves (not joined): no policy, no set
    const { sandboxKey: _, ...left } = db;
    assert.deepStrictEqual(computeDesired([net], [left], [], names).selectors, []);
    // its policy no longer names the selector
    const plain = { ...db, ingress: parseIngress(OPT_INGRESS, 'tcp/5432') };
    assert.deepStrictEqual(computeDesired([net], [plain], [], names).selectors, []);
  });

  it('two policies naming one selector share one set', () => {
    const other = { ...db, id: endpointId('e'.repeat(64)), ipv4: '198.18.0.3/24', mac: '02:5e:00:00:00:03' };
    const d = computeDesired([net], [db, other], [], [named('api-1', ['198.18.0.5'])]);
    assert.equal(d.policies.length, 2);
    assert.equal(d.selectors.length, 2);
  });

  it('keeps a set object while the catalog is the same array', () => {
    const names = [named('api-1', ['198.18.0.5'])];
    const a = computeDesired([net], [db], [], names).selectors;
    const b = computeDesired([net], [db], [], names).selectors;
    assert.ok(a.every((s, i) => s === b[i]));
  });
});
