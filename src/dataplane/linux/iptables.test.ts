import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FirewallObject } from '../../core/desired.ts';
import {
  diffShim,
  parseBackend,
  parseShimState,
  renderShimRemoval,
  renderShimRestore,
  renderShimRules,
} from './iptables.ts';

const A = 'a'.repeat(64);
const f: FirewallObject = {
  networks: [
    { networkId: A, bridge: 'trbaaaaaaaaaaaa', subnets4: ['198.18.1.0/24'], subnets6: [], nat: true, internal: false },
  ],
};
const RULES = [
  '-A TRUSS-FORWARD -i trbaaaaaaaaaaaa -m comment --comment "truss net aaaaaaaaaaaa" -j ACCEPT',
  '-A TRUSS-FORWARD -o trbaaaaaaaaaaaa -m comment --comment "truss net aaaaaaaaaaaa" -j ACCEPT',
];
// `iptables -S` on a host where dockerd runs and truss's shim is installed.
const LISTING = [
  '-P INPUT ACCEPT',
  '-P FORWARD DROP',
  '-P OUTPUT ACCEPT',
  '-N DOCKER-USER',
  '-N TRUSS-FORWARD',
  '-A FORWARD -j TRUSS-FORWARD',
  '-A FORWARD -j DOCKER-USER',
  ...RULES,
  '-A DOCKER-USER -j RETURN',
  '',
].join('\n');

describe('iptables shim', () => {
  it('detects the backend from iptables -V', () => {
    assert.equal(parseBackend('iptables v1.8.9 (nf_tables)\n'), 'nf_tables');
    assert.equal(parseBackend('iptables v1.8.9 (legacy)\n'), 'legacy');
    assert.equal(parseBackend('iptables v1.6.1\n'), 'legacy');
  });

  it('renders one accept per direction per bridge, as iptables -S prints them', () => {
    assert.deepEqual(renderShimRules(f), RULES);
  });

  it('parses our chain, its rules and the jump count out of iptables -S', () => {
    assert.deepEqual(parseShimState(LISTING), { chainExists: true, jumps: 1, rules: RULES });
    assert.deepEqual(parseShimState('-P FORWARD DROP\n'), { chainExists: false, jumps: 0, rules: [] });
  });

  it('inserts the jump at position 1 only when absent, and removes duplicates', () => {
    const fresh = renderShimRestore(f, { chainExists: false, jumps: 0, rules: [] });
    assert.equal(
      fresh,
      ['*filter', ':TRUSS-FORWARD - [0:0]', ...RULES, '-I FORWARD 1 -j TRUSS-FORWARD', 'COMMIT', ''].join('\n'),
    );
    const present = renderShimRestore(f, parseShimState(LISTING));
    assert.doesNotMatch(present, /FORWARD 1/);
    const triple = renderShimRestore(f, { chainExists: true, jumps: 3, rules: [] });
    assert.equal(triple.match(/-D FORWARD -j TRUSS-FORWARD/g)?.length, 2);
  });

  it('removes jumps and chain, and nothing when nothing is there', () => {
    assert.equal(
      renderShimRemoval({ chainExists: true, jumps: 2, rules: [] }),
      '*filter\n-D FORWARD -j TRUSS-FORWARD\n-D FORWARD -j TRUSS-FORWARD\n-F TRUSS-FORWARD\n-X TRUSS-FORWARD\nCOMMIT\n',
    );
    assert.equal(renderShimRemoval({ chainExists: false, jumps: 0, rules: [] }), undefined);
  });

  it('reports missing chain, wrong jump count and different content', () => {
    assert.deepEqual(diffShim(f, parseShimState(LISTING), 4), []);
    assert.deepEqual(diffShim(f, { chainExists: false, jumps: 0, rules: [] }, 6), [
      'ip6tables chain TRUSS-FORWARD is missing',
    ]);
    const drift = diffShim(f, { chainExists: true, jumps: 2, rules: RULES.slice(1) }, 4);
    assert.equal(drift.length, 2);
    assert.match(drift[0] ?? '', /present 2 times/);
    assert.match(drift[1] ?? '', /differs: expected 2 rules, found 1/);
  });
});
