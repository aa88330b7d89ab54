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
  '-A TRUSS-FORWARD -i tr+ -m comment --comment "truss interfaces" -j ACCEPT',
  '-A TRUSS-FORWARD -o tr+ -m comment --comment "truss interfaces" -j ACCEPT',
];
const net = (id: string, bridge: string): FirewallObject['networks'][number] => ({
  networkId: id,
  bridge,
  subnets4: [],
  subnets6: [],
  nat: true,
  internal: false,
});
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

// The same after dockerd created a bridge network: its jumps and that network's rules went on top.
const DOCKER_ON_TOP = [
  '-P FORWARD DROP',
  '-N DOCKER-USER',
  '-N TRUSS-FORWARD',
  '-A FORWARD -j DOCKER-USER',
  '-A FORWARD -j DOCKER-ISOLATION-STAGE-1',
  '-A FORWARD -o br-0123456789ab -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
  '-A FORWARD -j TRUSS-FORWARD',
  ...RULES,
  '',
].join('\n');

describe('iptables shim', () => {
  it('detects the backend from iptables -V', () => {
    assert.equal(parseBackend('iptables v1.8.9 (nf_tables)\n'), 'nf_tables');
    assert.equal(parseBackend('iptables v1.8.9 (legacy)\n'), 'legacy');
    assert.equal(parseBackend('iptables v1.6.1\n'), 'legacy');
  });

  it('renders one accept per direction on the tr prefix, whatever the number of networks (relay included)', () => {
    assert.deepEqual(renderShimRules(f), RULES);
    const many: FirewallObject = {
      networks: Array.from({ length: 50 }, (_, i) => net(i.toString(16).padStart(64, '0'), `trb${'0'.repeat(11)}${i}`)),
    };
    assert.deepEqual(renderShimRules(many), RULES);
    assert.deepEqual(renderShimRules({ ...f, relay: 'trwg0' }), RULES, 'trwg0 to trwg0 is -i tr+');
  });

  it('a bridge a user named outside the prefix keeps a pair of its own', () => {
    const B = 'b'.repeat(64);
    assert.deepEqual(renderShimRules({ networks: [...f.networks, net(B, 'br-web'), net(A, 'trunk0')] }), [
      ...RULES,
      '-A TRUSS-FORWARD -i br-web -m comment --comment "truss net bbbbbbbbbbbb" -j ACCEPT',
      '-A TRUSS-FORWARD -o br-web -m comment --comment "truss net bbbbbbbbbbbb" -j ACCEPT',
    ]);
  });

  it("an older truss's per-network rules are drift, replaced in place by one restore", () => {
    const old = [
      '-A TRUSS-FORWARD -i trbaaaaaaaaaaaa -m comment --comment "truss net aaaaaaaaaaaa" -j ACCEPT',
      '-A TRUSS-FORWARD -o trbaaaaaaaaaaaa -m comment --comment "truss net aaaaaaaaaaaa" -j ACCEPT',
    ];
    const state = parseShimState(LISTING.replace(RULES.join('\n'), old.join('\n')));
    assert.deepEqual(state.rules, old);
    assert.deepEqual(diffShim(f, state, 4), ['iptables chain TRUSS-FORWARD differs: expected 2 rules, found 2']);
    // declaring the chain flushes it (--noflush keeps the rest); the jump on top stays where it is
    assert.equal(renderShimRestore(f, state), ['*filter', ':TRUSS-FORWARD - [0:0]', ...RULES, 'COMMIT', ''].join('\n'));
  });

  it('parses our chain, its rules and the jump count out of iptables -S', () => {
    assert.deepEqual(parseShimState(LISTING), {
      chainExists: true,
      jumps: 1,
      jumpOnTop: true,
      insertAt: 2,
      rules: RULES,
    });
    assert.deepEqual(parseShimState('-P FORWARD DROP\n'), {
      chainExists: false,
      jumps: 0,
      jumpOnTop: false,
      insertAt: 1,
      rules: [],
    });
    assert.equal(parseShimState(DOCKER_ON_TOP).jumpOnTop, false);
    assert.equal(parseShimState(DOCKER_ON_TOP).insertAt, 2, 'back right after DOCKER-USER');
    // libnetwork moves DOCKER-USER to the top on every network create (truss's too): that is on top
    const userOnTop = ['-N TRUSS-FORWARD', '-A FORWARD -j DOCKER-USER', '-A FORWARD -j TRUSS-FORWARD', ''].join('\n');
    assert.equal(parseShimState(userOnTop).jumpOnTop, true);
  });

  it('puts the jump on top (after a first DOCKER-USER jump) when absent, duplicated or lower; leaves it alone on top', () => {
    const fresh = renderShimRestore(f, { chainExists: false, jumps: 0, jumpOnTop: false, insertAt: 1, rules: [] });
    assert.equal(
      fresh,
      ['*filter', ':TRUSS-FORWARD - [0:0]', ...RULES, '-I FORWARD 1 -j TRUSS-FORWARD', 'COMMIT', ''].join('\n'),
    );
    const present = renderShimRestore(f, parseShimState(LISTING));
    assert.doesNotMatch(present, /FORWARD 1/);
    assert.doesNotMatch(present, /-D FORWARD/);
    const triple = renderShimRestore(f, { chainExists: true, jumps: 3, jumpOnTop: true, insertAt: 1, rules: [] });
    assert.equal(triple.match(/-D FORWARD -j TRUSS-FORWARD/g)?.length, 3);
    assert.match(triple, /-I FORWARD 1 -j TRUSS-FORWARD\nCOMMIT/);
    const moved = renderShimRestore(f, parseShimState(DOCKER_ON_TOP));
    assert.match(moved, /-D FORWARD -j TRUSS-FORWARD\n-I FORWARD 2 -j TRUSS-FORWARD\nCOMMIT/);
  });

  it('removes jumps and chain, and nothing when nothing is there', () => {
    assert.equal(
      renderShimRemoval({ chainExists: true, jumps: 2, jumpOnTop: true, insertAt: 1, rules: [] }),
      '*filter\n-D FORWARD -j TRUSS-FORWARD\n-D FORWARD -j TRUSS-FORWARD\n-F TRUSS-FORWARD\n-X TRUSS-FORWARD\nCOMMIT\n',
    );
    assert.equal(
      renderShimRemoval({ chainExists: false, jumps: 0, jumpOnTop: false, insertAt: 1, rules: [] }),
      undefined,
    );
  });

  it('reports missing chain, wrong jump count and different content', () => {
    assert.deepEqual(diffShim(f, parseShimState(LISTING), 4), []);
    assert.deepEqual(diffShim(f, { chainExists: false, jumps: 0, jumpOnTop: false, insertAt: 1, rules: [] }, 6), [
      'ip6tables chain TRUSS-FORWARD is missing',
    ]);
    assert.deepEqual(diffShim(f, parseShimState(DOCKER_ON_TOP), 4), [
      "iptables jump '-A FORWARD -j TRUSS-FORWARD' is not on top of FORWARD (first, or right after -j DOCKER-USER)",
    ]);
    const drift = diffShim(f, { chainExists: true, jumps: 2, jumpOnTop: true, insertAt: 1, rules: RULES.slice(1) }, 4);
    assert.equal(drift.length, 2);
    assert.match(drift[0] ?? '', /present 2 times/);
    assert.match(drift[1] ?? '', /differs: expected 2 rules, found 1/);
  });
});
