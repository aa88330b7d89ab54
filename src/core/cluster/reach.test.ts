import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeClusterDesired } from './desired.ts';
import type { NodeRecord } from './model.ts';
import { chooseRelay, learnNat, ownEndpoint, reachable } from './reach.ts';

const key = (c: string): string => `${c.repeat(42)}A=`;
const node = (id: string, address: string, more: Partial<NodeRecord> = {}): NodeRecord => ({
  id,
  name: id,
  address,
  wgPublicKey: key(String.fromCharCode(id.charCodeAt(0) + 1).toUpperCase()), // never all 'A': the zero key
  wgPort: 51820,
  ...more,
});

describe('learnNat: what the reachable hosts saw of this one', () => {
  const c = node('c', '198.18.241.2');
  it('nobody saw it yet: keeps what it knew', () => {
    assert.equal(learnNat(c, [c, node('a', '198.18.255.1')], undefined), undefined);
    assert.equal(learnNat(c, [c], 'independent'), 'independent');
  });
  it('seen at its own address and port: not behind a NAT', () => {
    const a = node('a', '198.18.255.1', { seen: { c: '198.18.241.2:51820' } });
    assert.equal(learnNat(c, [c, a], 'unknown'), undefined);
  });
  it('seen elsewhere by one host: behind a NAT, mapping unknown; by two alike: independent; apart: dependent', () => {
    const a = node('a', '198.18.255.1', { seen: { c: '198.18.255.201:51820' } });
    const b = node('b', '198.18.255.2', { seen: { c: '198.18.255.201:51820' } });
    const b2 = node('b', '198.18.255.2', { seen: { c: '198.18.255.201:31085' } });
    assert.equal(learnNat(c, [c, a], undefined), 'unknown');
    assert.equal(learnNat(c, [c, a, b], undefined), 'independent');
    assert.equal(learnNat(c, [c, a, b2], undefined), 'dependent');
    const moved = node('b', '198.18.255.2', { seen: { c: '198.18.255.211:51820' } });
    assert.equal(learnNat(c, [c, a, moved], undefined), 'unknown', 'its address changed, one host saw it before');
  });
  it('only hosts others can reach count (one behind a NAT would echo what it was told)', () => {
    const d = node('d', '198.18.242.2', { nat: 'independent', seen: { c: '198.18.255.201:1' } });
    assert.equal(learnNat(c, [c, d], undefined), undefined);
  });
});

describe('chooseRelay: rendezvous hashing', () => {
  it('both ends of a pair pick the same relay, never one of themselves, and only move when theirs goes', () => {
    const relays = ['r1', 'r2', 'r3', 'r4'];
    const pick = chooseRelay('c', 'd', relays) as string;
    assert.equal(chooseRelay('d', 'c', relays), pick);
    assert.equal(chooseRelay('c', 'd', [...relays, 'c', 'd']), pick);
    const others = relays.filter((r) => r !== pick);
    const next = chooseRelay('c', 'd', others) as string;
    assert.notEqual(next, pick);
    assert.ok(
      ['r9', pick].includes(chooseRelay('c', 'd', [...relays, 'r9']) as string),
      'a new relay takes a pair or not',
    );
    assert.equal(chooseRelay('c', 'd', []), undefined);
  });
  it('spreads pairs over the relays', () => {
    const count = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      const r = chooseRelay(`h${i}`, `k${i}`, ['r1', 'r2']) as string;
      count.set(r, (count.get(r) ?? 0) + 1);
    }
    assert.ok((count.get('r1') ?? 0) > 60 && (count.get('r2') ?? 0) > 60, JSON.stringify([...count]));
  });
});

describe('computeClusterDesired: paths per peer', () => {
  const opts = { wireguard: { listenPort: 51820, mtu: 1440 }, vxlan: { mtu: 1450, local: '198.18.241.2' } };
  const local = [{ cluster: 'blue', subnets: ['198.18.64.0/20'], encrypt: true }];
  const blocks = [
    { cluster: 'blue', block: '198.18.64.0/26', node: 'a' },
    { cluster: 'blue', block: '198.18.64.64/26', node: 'b' },
    { cluster: 'blue', block: '198.18.64.128/26', node: 'c' },
    { cluster: 'blue', block: '198.18.64.192/26', node: 'd' },
  ];
  const members = ['a', 'b', 'c', 'd'].map((n) => ({ cluster: 'blue', node: n }));
  const seen = { c: '198.18.255.201:51820', d: '198.18.255.202:51820' };
  // a and b public relays; c and d behind two NATs (the same private address: two home routers)
  const a = node('a', '198.18.255.1', { relay: true, seen });
  const b = node('b', '198.18.255.2', { relay: true, seen });
  const c = node('c', '198.18.241.2', { nat: 'independent' });
  const d = node('d', '198.18.241.2', { nat: 'independent' });
  const peers = (self: string, more: { direct?: string[]; nodes?: NodeRecord[] } = {}) =>
    computeClusterDesired(
      { self, nodes: more.nodes ?? [a, b, c, d], members, blocks, ...(more.direct ? { direct: more.direct } : {}) },
      local,
      opts,
    ).wireguard?.peers.map((p) => [p.node, p.path, p.endpoint ?? '-', p.via ?? '-', p.allowedIps.join(',') || '-']);

  it('a public host dials the public ones and lets the NATed ones dial it (no endpoint)', () => {
    assert.deepEqual(peers('a'), [
      ['b', 'direct', '198.18.255.2:51820', '-', '198.18.64.64/26'],
      ['c', 'learned', '-', '-', '198.18.64.128/26'],
      ['d', 'learned', '-', '-', '198.18.64.192/26'],
    ]);
  });

  it('two NATed hosts: relayed through the pair relay, the peer probed at its outside endpoint; the same private address is no conflict', () => {
    const fromC = peers('c');
    const fromD = peers('d');
    const relay = fromC?.find((p) => p[0] === 'd')?.[3] as string;
    assert.ok(relay === 'a' || relay === 'b');
    assert.equal(fromD?.find((p) => p[0] === 'c')?.[3], relay, 'both ends pick the same relay');
    const other = relay === 'a' ? 'b' : 'a';
    const own = { a: '198.18.64.0/26', b: '198.18.64.64/26' };
    assert.deepEqual(fromC, [
      ['a', 'direct', '198.18.255.1:51820', '-', relay === 'a' ? `${own.a},198.18.64.192/26` : own.a],
      ['b', 'direct', '198.18.255.2:51820', '-', relay === 'b' ? `198.18.64.192/26,${own.b}` : own.b],
      ['d', 'relayed', '198.18.255.202:51820', relay, '-'],
    ]);
    assert.ok(fromC?.some((p) => p[0] === other));
  });

  it('a live direct session (a punched hole) takes the peer off the relay once both ends publish it', () => {
    const oneSided = peers('c', { direct: ['d'] })?.find((p) => p[0] === 'd');
    assert.equal(oneSided?.[1], 'relayed', 'd does not say so yet: it would drop what the relay brings');
    const dSays = node('d', '198.18.241.2', { nat: 'independent', punched: ['c'] });
    assert.deepEqual(
      peers('c', { direct: ['d'], nodes: [a, b, c, dSays] })?.find((p) => p[0] === 'd'),
      ['d', 'punched', '198.18.255.202:51820', '-', '198.18.64.192/26'],
    );
  });

  it('a live session keeps its roamed endpoint only while both ends use it (a punch the other gave up is re-pointed)', () => {
    const live = (self: string, nodes: NodeRecord[]) =>
      computeClusterDesired({ self, nodes, members, blocks, direct: ['c', 'd'] }, local, opts).wireguard?.peers.find(
        (p) => p.node === (self === 'c' ? 'd' : 'c'),
      )?.live;
    const punchedPair = [a, b, { ...c, punched: ['d'] }, { ...d, punched: ['c'] }];
    assert.equal(live('c', punchedPair), true, 'punched: where WireGuard roamed it stands');
    assert.equal(live('c', [a, b, c, { ...d, punched: [] }]), undefined, 'd gave up: the relays say where d is now');
    assert.equal(live('a', [a, b, c, d]), true, 'learned: only roaming knows where it is');
  });

  it('a NAT that maps per destination is not punched: relayed, nothing probed (the peer stays, idle)', () => {
    const dep = node('d', '198.18.241.2', { nat: 'dependent' });
    const out = peers('c', { nodes: [a, b, c, dep] });
    assert.deepEqual(out?.find((p) => p[0] === 'd')?.slice(1, 3), ['relayed', '-']);
    assert.ok(
      out?.some((p) => p[4]?.includes('198.18.64.192/26') && p[0] !== 'd'),
      'its block goes to the relay',
    );
  });

  it('no relay: the peer keeps its blocks and is marked unreachable', () => {
    const noRelay = [a, b].map((n) => ({ ...n, relay: false }));
    assert.deepEqual(
      peers('c', { nodes: [...noRelay, c, d] })?.find((p) => p[0] === 'd'),
      ['d', 'unreachable', '198.18.255.202:51820', '-', '198.18.64.192/26'],
    );
  });

  it('a relay that lapsed is not chosen; --public-endpoint makes a NATed host dialled there', () => {
    const viewOf = (lapsed: string[]) =>
      computeClusterDesired({ self: 'c', nodes: [a, b, c, d], members, blocks, lapsed }, local, opts).wireguard?.peers;
    const first = viewOf([])?.find((p) => p.node === 'd')?.via as string;
    const second = viewOf([first])?.find((p) => p.node === 'd')?.via;
    assert.notEqual(second, first);
    const fwd = node('d', '198.18.241.2', { nat: 'independent', publicEndpoint: '198.18.255.202:4500' });
    assert.deepEqual(
      peers('c', { nodes: [a, b, c, fwd] })?.find((p) => p[0] === 'd'),
      ['d', 'direct', '198.18.255.202:4500', '-', '198.18.64.192/26'],
    );
  });

  it('two hosts behind the same NAT dial each other on the LAN (no hairpin needed)', () => {
    const same = { c: '198.18.255.201:51820', d: '198.18.255.201:40001' };
    const a2 = { ...a, seen: same };
    const b2 = { ...b, seen: same };
    const d2 = node('d', '198.18.241.3', { nat: 'independent' });
    assert.equal(peers('c', { nodes: [a2, b2, c, d2] })?.find((p) => p[0] === 'd')?.[2], '198.18.241.3:51820');
  });

  it('a route is capped at its path MTU: the relay and the block owner count, a bigger MTU does not', () => {
    const small = (n: NodeRecord, mtu: number): NodeRecord => ({ ...n, mtu });
    const routes = (nodes: NodeRecord[]) =>
      computeClusterDesired({ self: 'c', nodes, members, blocks }, local, opts).routes.map(
        (r): [string, number | string] => [r.dst, r.mtu ?? '-'],
      );
    const relay = computeClusterDesired(
      { self: 'c', nodes: [a, b, c, d], members, blocks },
      local,
      opts,
    ).wireguard?.peers.find((p) => p.node === 'd')?.via as string;
    const viaSmall = [a, b].map((n) => (n.id === relay ? small(n, 1328) : small(n, 9000)));
    const out = new Map(routes([...viaSmall, c, d]));
    assert.equal(out.get('198.18.64.192/26'), 1328, "d's block goes through the relay's 1328");
    assert.equal(out.get(relay === 'a' ? '198.18.64.0/26' : '198.18.64.64/26'), 1328, "the relay's own block");
    assert.equal(out.get(relay === 'a' ? '198.18.64.64/26' : '198.18.64.0/26'), '-', '9000 is no cap: 1440 stays');
    assert.equal(new Map(routes([a, b, c, small(d, 1392)])).get('198.18.64.192/26'), 1392, "the owner's");
  });

  it('reachable and ownEndpoint', () => {
    assert.equal(reachable(a), true);
    assert.equal(reachable(c), false);
    assert.equal(reachable({ ...c, publicEndpoint: '198.18.255.9:1' }), true);
    assert.equal(ownEndpoint(node('v6', 'fd00::2')), '[fd00::2]:51820');
  });
});
