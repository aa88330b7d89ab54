import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VXLAN_DEVICE, VXLAN_VNI, vtepMac } from '../naming.ts';
import { computeClusterDesired, vtepLinkLocal } from './desired.ts';

const key = (c: string): string => `${c.repeat(42)}A=`;
const view = {
  self: 'a',
  nodes: [
    { name: 'a', address: '198.18.255.1', wgPublicKey: key('A'), wgPort: 51820 },
    { name: 'b', address: '198.18.255.2', wgPublicKey: key('B'), wgPort: 51820 },
    { name: 'c', address: 'fd00:255::3', wgPublicKey: key('C'), wgPort: 51821 },
  ],
  members: [
    { cluster: 'blue', node: 'a' },
    { cluster: 'blue', node: 'b' },
    { cluster: 'blue', node: 'c' },
  ],
  blocks: [
    { cluster: 'blue', block: '198.18.64.0/26', node: 'a' },
    { cluster: 'blue', block: '198.18.64.64/26', node: 'b' },
    { cluster: 'blue', block: '198.18.64.128/26', node: 'c' },
    { cluster: 'blue', block: '198.18.99.0/26', node: 'c' },
  ],
};
const local = [{ cluster: 'blue', subnets: ['198.18.64.0/20'], encrypt: true }];
const opts = {
  wireguard: { listenPort: 51820, mtu: 1440 },
  vxlan: { mtu: 1450, local: '198.18.255.1', dev: 'eth-ul' },
};

describe('computeClusterDesired', () => {
  it('peers are the other members, each allowed only its own blocks in the network', () => {
    const d = computeClusterDesired(view, local, opts);
    assert.deepEqual(
      d.wireguard?.peers.map((p) => [p.node, p.endpoint, p.allowedIps]),
      [
        ['b', '198.18.255.2:51820', ['198.18.64.64/26']],
        ['c', '[fd00:255::3]:51821', ['198.18.64.128/26']],
      ],
    );
    assert.deepEqual(
      d.routes.map((r) => r.dst),
      ['198.18.64.128/26', '198.18.64.64/26'],
    );
    assert.match(d.rejected.join('\n'), /198\.18\.99\.0\/26 of node c is outside/);
    assert.equal(d.wireguard?.publicKey, key('A'), 'own key as published: a rotation re-programs the device');
  });

  it('hosts are their node ids; records of truss before node ids (no id) are their names', () => {
    const twins = {
      self: 'id-1',
      nodes: [
        { id: 'id-1', name: 'twin', address: '198.18.255.1', wgPublicKey: key('A'), wgPort: 51820 },
        { id: 'id-2', name: 'twin', address: '198.18.255.2', wgPublicKey: key('B'), wgPort: 51820 },
        { name: 'old', address: '198.18.255.3', wgPublicKey: key('C'), wgPort: 51820 },
      ],
      members: ['id-1', 'id-2', 'old'].map((node) => ({ cluster: 'blue', node })),
      blocks: [
        { cluster: 'blue', block: '198.18.64.0/26', node: 'id-1' },
        { cluster: 'blue', block: '198.18.64.64/26', node: 'id-2' },
        { cluster: 'blue', block: '198.18.64.128/26', node: 'old' },
      ],
    };
    const d = computeClusterDesired(
      twins,
      [...local, { cluster: 'blue', subnets: ['198.18.64.0/20'], encrypt: false }],
      opts,
    );
    assert.deepEqual(
      d.wireguard?.peers.map((p) => [p.node, p.allowedIps]),
      [
        ['id-2', ['198.18.64.64/26']],
        ['old', ['198.18.64.128/26']],
      ],
    );
    assert.deepEqual(
      d.vxlan?.peers.map((p) => [p.node, p.mac]),
      [
        ['id-2', vtepMac('id-2')],
        ['old', vtepMac('old')],
      ],
    );
    assert.equal(d.vxlan?.mac, vtepMac('id-1'));
    const bad = {
      ...twins,
      nodes: [...twins.nodes, { id: 'BAD', name: 'x', address: '198.18.255.4', wgPublicKey: key('D'), wgPort: 1 }],
    };
    assert.match(computeClusterDesired(bad, local, opts).rejected.join('\n'), /node record "BAD": malformed/);
  });

  it('no encrypted cluster network: no device', () => {
    assert.equal(computeClusterDesired(view, [], opts).wireguard, undefined);
  });

  it('refuses duplicate or invalid keys', () => {
    const dup = { ...view, nodes: view.nodes.map((n) => (n.name === 'c' ? { ...n, wgPublicKey: key('B') } : n)) };
    const d = computeClusterDesired(dup, local, opts);
    assert.deepEqual(d.wireguard?.peers, []);
    const bad = { ...view, nodes: view.nodes.map((n) => (n.name === 'b' ? { ...n, wgPublicKey: 'x' } : n)) };
    assert.deepEqual(
      computeClusterDesired(bad, local, opts).wireguard?.peers.map((p) => p.node),
      ['c'],
    );
  });
});

describe('computeClusterDesired with unencrypted (VXLAN) networks', () => {
  // blue is encrypted (a, b, c); green is not (a, b, d): b is a peer in both.
  const mixed = {
    self: 'a',
    nodes: [...view.nodes, { name: 'd', address: '198.18.255.4', wgPublicKey: 'not-needed', wgPort: 0 }],
    members: [
      ...view.members,
      { cluster: 'green', node: 'a' },
      { cluster: 'green', node: 'b' },
      { cluster: 'green', node: 'd' },
    ],
    blocks: [
      ...view.blocks,
      { cluster: 'green', block: '198.18.96.0/26', node: 'a' },
      { cluster: 'green', block: '198.18.96.64/26', node: 'b' },
      { cluster: 'green', block: '198.18.96.128/26', node: 'd' },
      { cluster: 'green', block: '198.18.96.192/26', node: 'd' },
    ],
  };
  const green = { cluster: 'green', subnets: ['198.18.96.0/20'], encrypt: false };

  it('encrypted blocks route via trwg0, unencrypted ones via the peer underlay address on trvx0', () => {
    const d = computeClusterDesired(mixed, [...local, green], opts);
    assert.deepEqual(
      d.wireguard?.peers.map((p) => [p.node, p.allowedIps]),
      [
        ['b', ['198.18.64.64/26']],
        ['c', ['198.18.64.128/26']],
      ],
    );
    assert.deepEqual(d.vxlan?.peers, [
      { node: 'b', address: '198.18.255.2', mac: vtepMac('b') },
      { node: 'd', address: '198.18.255.4', mac: vtepMac('d') },
    ]);
    assert.equal(d.vxlan?.name, VXLAN_DEVICE);
    assert.equal(d.vxlan?.vni, VXLAN_VNI);
    assert.equal(d.vxlan?.port, 4789);
    assert.equal(d.vxlan?.local, '198.18.255.1');
    assert.equal(d.vxlan?.dev, 'eth-ul');
    assert.equal(d.vxlan?.mac, vtepMac('a'));
    assert.equal(d.vxlan?.mtu, 1450);
    assert.deepEqual(d.routes, [
      { dst: '198.18.64.128/26', dev: 'trwg0' },
      { dst: '198.18.64.64/26', dev: 'trwg0' },
      { dst: '198.18.96.128/26', dev: 'trvx0', via: '198.18.255.4' },
      { dst: '198.18.96.192/26', dev: 'trvx0', via: '198.18.255.4' },
      { dst: '198.18.96.64/26', dev: 'trvx0', via: '198.18.255.2' },
    ]);
  });

  it('a device only for the kind some local network needs', () => {
    const onlyPlain = computeClusterDesired(mixed, [green], opts);
    assert.equal(onlyPlain.wireguard, undefined);
    assert.deepEqual(
      onlyPlain.vxlan?.peers.map((p) => p.node),
      ['b', 'd'],
    );
    assert.ok(onlyPlain.routes.every((r) => r.dev === VXLAN_DEVICE));
    const onlyWg = computeClusterDesired(mixed, local, opts);
    assert.equal(onlyWg.vxlan, undefined);
    assert.deepEqual(computeClusterDesired(mixed, [], opts), { routes: [], rejected: [], alarms: [] });
  });

  it('a VXLAN peer needs no WireGuard key; no peers yet still means a device', () => {
    const lonely = { self: 'a', nodes: [view.nodes[0]], members: [{ cluster: 'green', node: 'a' }], blocks: [] };
    const d = computeClusterDesired(lonely as typeof mixed, [green], opts);
    assert.deepEqual(d.vxlan?.peers, []);
    assert.deepEqual(d.routes, []);
  });

  const withNode = (name: string, patch: Record<string, unknown>) => ({
    ...mixed,
    nodes: mixed.nodes.map((n) => (n.name === name ? { ...n, ...patch } : n)),
  });
  const vxPeers = (v: typeof mixed) => {
    const d = computeClusterDesired(v, [green], opts);
    return { peers: d.vxlan?.peers.map((p) => p.node), routes: d.routes.map((r) => r.dst), rejected: d.rejected };
  };

  it('rejects records that are malformed or claim what is not theirs', () => {
    let r = vxPeers(withNode('d', { address: 'not-an-ip' }));
    assert.deepEqual(r.peers, ['b']);
    assert.match(r.rejected.join('\n'), /node record "d": malformed/);
    r = vxPeers(withNode('d', { address: 42 }));
    assert.deepEqual(r.peers, ['b']);
    r = vxPeers(withNode('d', { address: '198.18.255.2' })); // b's address: neither may have it
    assert.deepEqual(r.peers, []);
    assert.match(
      r.rejected.join('\n'),
      /underlay address 198\.18\.255\.2 is claimed by nodes b, d and which came first is unknown/,
    );
    r = vxPeers(withNode('d', { address: '198.18.255.1' })); // this host's own address
    assert.deepEqual(r.peers, ['b']);
    r = vxPeers(withNode('d', { address: 'fd00:255::4' })); // another family than ours
    assert.deepEqual(r.peers, ['b']);
    assert.match(r.rejected.join('\n'), /not of this host's family/);
    r = vxPeers(withNode('d', { name: 'D;reboot' }));
    assert.deepEqual(r.peers, ['b']);
    assert.deepEqual(r.routes, ['198.18.96.64/26']);
  });

  it('rejects blocks outside the network and malformed block records', () => {
    const v = {
      ...mixed,
      blocks: [
        ...mixed.blocks,
        { cluster: 'green', block: '198.19.0.0/16', node: 'b' },
        { cluster: 'green', block: 7, node: 'b' },
      ] as typeof mixed.blocks,
    };
    const r = vxPeers(v);
    assert.deepEqual(r.routes, ['198.18.96.128/26', '198.18.96.192/26', '198.18.96.64/26']);
    assert.match(r.rejected.join('\n'), /block 198\.19\.0\.0\/16 of node b is outside cluster network green/);
    assert.match(r.rejected.join('\n'), /block record: malformed/);
  });

  it('IPv4 blocks on an IPv4 underlay go via the peer underlay address, every other block via its VTEP link-local', () => {
    const dual = { ...green, subnets: ['198.18.96.0/20', 'fd00:96::/64'] };
    const v = { ...mixed, blocks: [...mixed.blocks, { cluster: 'green', block: 'fd00:96::40/122', node: 'b' }] };
    const d = computeClusterDesired(v, [dual], opts);
    assert.deepEqual(
      d.routes.find((r) => r.dst.includes(':')),
      { dst: 'fd00:96::40/122', dev: 'trvx0', via: vtepLinkLocal(vtepMac('b')) },
      'IPv6 block on an IPv4 underlay',
    );
    assert.ok(d.routes.some((r) => r.dst === '198.18.96.64/26' && r.via === '198.18.255.2'));
    assert.deepEqual(
      d.vxlan?.peers.map((p) => [p.node, p.viaLinkLocal ?? false]),
      [
        ['b', true],
        ['d', false],
      ],
      'only a peer with an IPv6 block needs its link-local neighbour',
    );
    assert.ok(!d.rejected.some((r) => r.includes('fd00:96::')), d.rejected.join('\n'));
    const v6 = {
      ...v,
      nodes: v.nodes.map((n, i) => ({ ...n, address: `fd00:255::${i + 1}` })),
    };
    const d6 = computeClusterDesired(v6, [dual], { ...opts, vxlan: { mtu: 1430, local: 'fd00:255::1' } });
    assert.deepEqual(d6.routes.slice(0, 1), [
      { dst: '198.18.96.128/26', dev: 'trvx0', via: vtepLinkLocal(vtepMac('d')) },
    ]);
    // an IPv6 route cannot take the peer's global underlay address onlink on trvx0: the link-local too
    assert.ok(d6.routes.some((r) => r.dst === 'fd00:96::40/122' && r.via === vtepLinkLocal(vtepMac('b'))));
    assert.deepEqual(d6.rejected, []);
  });

  it('vtepLinkLocal is the EUI-64 link-local address of the MAC', () => {
    assert.equal(vtepLinkLocal('02:aa:bb:cc:dd:ee'), 'fe80::aa:bbff:fecc:ddee');
    assert.equal(vtepLinkLocal('02:00:00:00:00:01'), 'fe80::ff:fe00:1');
  });

  it('without an underlay address there is no VXLAN device', () => {
    const d = computeClusterDesired(mixed, [green], { ...opts, vxlan: { mtu: 1450, local: '' } });
    assert.equal(d.vxlan, undefined);
    assert.match(d.rejected.join('\n'), /no underlay address/);
  });
});

// The review's PoC (issue 13, H1/H2): host h, honest peer v, attacker m; each case failed before.
describe('computeClusterDesired: one bad record affects only itself', () => {
  const K = { h: key('H'), v: key('V'), m: key('M'), m2: key('N') };
  const node = (name: string, address: string, k: string, createRevision?: number) => ({
    name,
    address,
    wgPublicKey: k,
    wgPort: 51820,
    ...(createRevision ? { createRevision } : {}),
  });
  const nodes = [
    node('h', '198.18.251.1', K.h, 1),
    node('v', '198.18.251.2', K.v, 2),
    node('m', '198.18.251.66', K.m, 3),
  ];
  const blk = (block: string, n: string, createRevision?: number) => ({
    cluster: 'blue',
    block,
    node: n,
    ...(createRevision ? { createRevision } : {}),
  });
  const base = {
    self: 'h',
    nodes,
    members: ['h', 'v', 'm'].map((n) => ({ cluster: 'blue', node: n })),
    blocks: [blk('198.18.64.0/26', 'h', 4), blk('198.18.64.64/26', 'v', 5), blk('198.18.64.128/26', 'm', 6)],
  };
  const o = { ...opts, vxlan: { ...opts.vxlan, local: '198.18.251.1' } };
  const wg = (patch: Partial<typeof base>, l: typeof local = local) => {
    const d = computeClusterDesired({ ...base, ...patch }, l, o);
    const peers = Object.fromEntries((d.wireguard?.peers ?? []).map((p) => [p.node, p]));
    return { d, peers, allowed: Object.fromEntries(Object.entries(peers).map(([n, p]) => [n, p.allowedIps])) };
  };
  const honest = { v: ['198.18.64.64/26'], m: ['198.18.64.128/26'] };
  const extra = (...b: (ReturnType<typeof blk> & { key?: string })[]) => ({ blocks: [...base.blocks, ...b] });

  it('baseline: each peer gets exactly its block, nothing is rejected', () => {
    const { d, allowed } = wg({});
    assert.deepEqual(allowed, honest);
    assert.deepEqual([d.rejected, d.alarms], [[], []]);
  });

  it("A, E, F, 0.0.0.0/0: blocks not of the block size (inside v's, inside this host's own, the whole subnet)", () => {
    for (const b of ['198.18.64.64/27', '198.18.64.0/27', '198.18.64.0/20', '0.0.0.0/0']) {
      const { d, allowed } = wg(extra(blk(b, 'm', 9)));
      assert.deepEqual(allowed, honest, b);
      assert.ok(
        d.routes.every((r) => r.dst !== b && !r.dst.startsWith('198.18.64.0/')),
        b,
      );
      assert.match(d.rejected.join('\n'), new RegExp(`block ${b.replace(/[./]/g, '\\$&')} of node m`), b);
    }
  });

  it("E at the block size: a peer's claim of this host's own block, or of a block with a local container, is never routed", () => {
    let r = wg(extra(blk('198.18.64.0/26', 'm', 1)));
    assert.deepEqual(r.allowed, honest);
    assert.match(r.d.alarms.join('\n'), /block 198\.18\.64\.0\/26 of node m overlaps this host's own block/);
    // h's own block record deleted by the attacker, who claims the range: h's container address still wins
    const ownAddr = [{ ...local[0]!, localAddresses: ['198.18.64.2'] }];
    r = wg({ blocks: [blk('198.18.64.0/26', 'm', 1), ...base.blocks.slice(1)] }, ownAddr);
    assert.deepEqual(r.allowed, honest);
    assert.match(r.d.alarms.join('\n'), /contains this host's container address 198\.18\.64\.2/);
  });

  it("B: a second claim of v's block: the older claim wins; unknown order: routed to neither, the device stays valid", () => {
    let r = wg(extra(blk('198.18.64.64/26', 'm', 9)));
    assert.deepEqual(r.allowed, honest);
    assert.match(
      r.d.rejected.join('\n'),
      /block 198\.18\.64\.64\/26 of node m overlaps block 198\.18\.64\.64\/26 of node v, claimed first/,
    );
    r = wg({ blocks: [...base.blocks, blk('198.18.64.64/26', 'm')].map(({ createRevision: _, ...b }) => b) });
    assert.deepEqual(r.allowed, { m: ['198.18.64.128/26'] });
    const all = Object.values(r.allowed).flat();
    assert.equal(new Set(all).size, all.length, 'no allowed IP is given to two peers');
  });

  it('C: another record naming v: its key disagrees, or it is newer; unknown order: v is not redirected', () => {
    const fake = { ...node('v', '198.18.251.66', K.m2), key: '/truss/v2/nodes/zzz' };
    let r = wg({ nodes: [...nodes.map((n) => ({ ...n, key: `/truss/v2/nodes/${n.name}` })), fake] });
    assert.equal(r.peers.v?.publicKey, K.v);
    assert.equal(r.peers.v?.endpoint, '198.18.251.2:51820');
    assert.match(r.d.alarms.join('\n'), /node record under \/truss\/v2\/nodes\/zzz names node v/);
    r = wg({ nodes: [...nodes, { ...fake, key: undefined, createRevision: 99 } as never] });
    assert.equal(r.peers.v?.publicKey, K.v);
    r = wg({ nodes: [...nodes.map(({ createRevision: _, ...n }) => n), node('v', '198.18.251.66', K.m2)] });
    assert.equal(r.peers.v, undefined);
    assert.deepEqual(r.allowed, { m: ['198.18.64.128/26'] });
  });

  it("K: a newer record with v's public key is rejected, v keeps its peer; an alarm is raised", () => {
    const x = node('x', '198.18.251.67', K.v, 9);
    const { d, allowed } = wg({ nodes: [...nodes, x], members: [...base.members, { cluster: 'blue', node: 'x' }] });
    assert.deepEqual(allowed, honest);
    assert.match(d.alarms.join('\n'), /WireGuard public key \S+ is claimed by nodes v, x: node v claimed it first/);
    const mine = wg({ nodes: [...nodes, node('x', '198.18.251.67', K.h, 9)] });
    assert.deepEqual(mine.allowed, honest);
    assert.match(mine.d.alarms.join('\n'), /node x: its WireGuard public key \S+ is this host's own/);
  });

  it("J (VXLAN): a newer record with v's underlay address is rejected, v keeps its peer", () => {
    const plain = [{ ...local[0]!, encrypt: false }];
    const d = computeClusterDesired({ ...base, nodes: [...nodes, node('x', '198.18.251.2', K.m2, 9)] }, plain, o);
    assert.deepEqual(
      d.vxlan?.peers.map((p) => [p.node, p.address]),
      [
        ['m', '198.18.251.66'],
        ['v', '198.18.251.2'],
      ],
    );
    assert.match(
      d.alarms.join('\n'),
      /underlay address 198\.18\.251\.2 is claimed by nodes v, x: node v claimed it first/,
    );
  });

  it('a zero key, an endpoint at one of this host own addresses or a loopback: that peer only is left out', () => {
    for (const [m, why] of [
      [node('m', '198.18.251.66', `${'A'.repeat(43)}=`), /node m: bad WireGuard public key/],
      [node('m', '198.18.251.1', K.m), /node m: its underlay address 198\.18\.251\.1 is this host's own address/],
      [node('m', '127.0.0.1', K.m), /node m: its underlay address 127\.0\.0\.1 is a loopback address/],
      [node('m', '198.18.64.200', K.m), /inside cluster network 198\.18\.64\.0\/20/],
    ] as const) {
      const { d, allowed } = wg({ nodes: [nodes[0]!, nodes[1]!, m] });
      assert.deepEqual(allowed, { v: honest.v });
      assert.match(d.rejected.join('\n'), why);
    }
  });

  it('blocks that are not canonical, or whose key names another node, are rejected', () => {
    const { d, allowed } = wg(
      extra(blk('198.18.64.193/26', 'm'), {
        ...blk('198.18.64.192/26', 'm'),
        key: '/truss/v2/blocks/v/blue/198.18.64.192_26',
      }),
    );
    assert.deepEqual(allowed, honest);
    assert.match(d.rejected.join('\n'), /block "198\.18\.64\.193\/26" of node m: not a canonical network CIDR/);
    assert.match(d.alarms.join('\n'), /block record under \S+ says 198\.18\.64\.192\/26 of node m/);
  });
});
