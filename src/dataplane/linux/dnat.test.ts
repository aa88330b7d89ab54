import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { PortsObject } from '../../core/desired.ts';
import {
  diffPorts,
  type PortElement,
  parsePortsTableJson,
  planPortDeletes,
  portElements,
  renderPorts,
  renderPortsBase,
  renderPortsTableRemoval,
} from './dnat.ts';

const EID = `0123456789ab${'0'.repeat(52)}`;
const P: PortsObject = {
  name: 'ep_0123456789ab',
  endpointId: EID,
  networkId: 'a'.repeat(64),
  bridge: 'trbaaaaaaaaaaaa',
  hostVeth: 'trv0123456789ab',
  address4: '198.18.0.2',
  address6: 'fd00::2',
  gateway4: '198.18.0.1',
  gateway6: 'fd00::1',
  ports: [
    { family: 4, proto: 'tcp', hostPort: 8080, port: 80 },
    { family: 6, proto: 'tcp', hostPort: 8080, port: 80 },
    { family: 4, proto: 'udp', hostIp: '198.18.9.1', hostPort: 5353, port: 53 },
    { family: 4, proto: 'sctp', hostPort: 9999, port: 9 },
    { family: 6, proto: 'udp', hostIp: 'fd00::9', hostPort: 53, port: 53 },
  ],
};

// `nft -j list table inet truss_ports` after renderPorts(P) was applied (nft 1.0.6, kernel 6.18)
const LISTED = readFileSync(new URL('../../../test/fixtures/nft-truss-ports.json', import.meta.url), 'utf8');

describe('portElements', () => {
  it('puts each binding in the map of its family and host address', () => {
    assert.deepEqual(
      portElements(P).map((e) => `${e.map}: ${e.key} : ${e.value}`),
      [
        'dnat4_any: tcp . 8080 : 198.18.0.2 . 80',
        'dnat6_any: tcp . 8080 : fd00::2 . 80',
        'dnat4: 198.18.9.1 . udp . 5353 : 198.18.0.2 . 53',
        'dnat4_any: sctp . 9999 : 198.18.0.2 . 9',
        'dnat6: fd00::9 . udp . 53 : fd00::2 . 53',
        'hairpin4: 198.18.0.2 . 198.18.0.2 : 198.18.0.1',
        'hairpin6: fd00::2 . fd00::2 : fd00::1',
      ],
    );
  });

  it('validates everything that reaches nft', () => {
    assert.throws(() => portElements({ ...P, name: 'ep_x; flush ruleset' }), /invalid owner/);
    assert.throws(() => portElements({ ...P, bridge: 'br;x' }), /invalid interface name/);
    const { address4: _none, ...noV4 } = P;
    assert.throws(() => portElements(noV4), /container address undefined/);
    assert.throws(() => portElements({ ...P, address4: 'fd00::5' }), /not an IPv4 address/);
    const bad = (over: object) => ({ ...P, ports: [{ ...P.ports[0], ...over }] }) as unknown as PortsObject;
    assert.throws(() => portElements(bad({ hostPort: 0 })), /host port 0/);
    assert.throws(() => portElements(bad({ port: 65536 })), /container port 65536/);
    assert.throws(() => portElements(bad({ proto: 'icmp' })), /protocol "icmp"/);
    assert.throws(() => portElements(bad({ hostIp: '1.2.3.4 } ; flush ruleset' })), /host address/);
  });
});

describe('renderPorts', () => {
  it('declares the base idempotently, rewrites the hooked chains, then adds the elements', () => {
    const text = renderPorts(P);
    assert.ok(text.startsWith(renderPortsBase()));
    assert.match(text, /flush chain inet truss_ports prerouting\n/);
    assert.match(text, /add element inet truss_ports bridges \{ "trbaaaaaaaaaaaa" \}/);
    assert.match(
      text,
      /add element inet truss_ports dnat4_any \{ tcp \. 8080 comment "ep_0123456789ab" : 198\.18\.0\.2 \. 80 \}/,
    );
    assert.doesNotMatch(text, /delete element/);
    assert.match(renderPortsBase(), /ip daddr != 127\.0\.0\.0\/8 fib daddr type local/);
  });

  it('deletes the old elements it is given before adding', () => {
    const old: PortElement = { map: 'dnat4_any', key: 'tcp . 7070', value: '198.18.0.2 . 80', owner: P.name };
    const text = renderPorts(P, [old]);
    const del = text.indexOf('delete element inet truss_ports dnat4_any { tcp . 7070 }');
    assert.ok(del > 0 && del < text.indexOf('add element inet truss_ports dnat4_any'));
  });

  it('removes the whole table with the add-then-delete idiom', () => {
    assert.equal(renderPortsTableRemoval(), 'table inet truss_ports {}\ndelete table inet truss_ports\n');
  });
});

describe('planPortDeletes', () => {
  it('deletes the endpoint own elements and any other holder of a key it wants', () => {
    const installed: PortElement[] = [
      { map: 'dnat4_any', key: 'tcp . 7070', value: '198.18.0.2 . 80', owner: P.name },
      { map: 'dnat4_any', key: 'tcp . 8080', value: '198.18.0.9 . 80', owner: 'ep_999999999999' },
      { map: 'dnat4_any', key: 'tcp . 9090', value: '198.18.0.9 . 80', owner: 'ep_999999999999' },
    ];
    assert.deepEqual(
      planPortDeletes(P, installed).map((e) => e.key),
      ['tcp . 7070', 'tcp . 8080'],
    );
  });
});

describe('reading back', () => {
  it('parses the listed table: elements with owners, rule comments, bridges', () => {
    const t = parsePortsTableJson(LISTED);
    assert.equal(t.elements.length, 7);
    assert.deepEqual(t.bridges, ['trbaaaaaaaaaaaa']);
    assert.equal(t.rules.prerouting?.length, 4);
    assert.ok(t.elements.every((e) => e.owner === P.name));
  });

  it('finds no drift between the rendering and its listing', () => {
    assert.deepEqual(diffPorts([P], parsePortsTableJson(LISTED)), { drifted: [], extra: [], problems: [] });
  });

  it('reports a missing table, a changed endpoint, an extra owner and a damaged chain', () => {
    assert.deepEqual(diffPorts([P], undefined).drifted, [P.name]);
    assert.deepEqual(diffPorts([], undefined), { drifted: [], extra: [], problems: [] });
    const t = parsePortsTableJson(LISTED);
    const changed = { ...P, ports: P.ports.slice(1) };
    assert.deepEqual(diffPorts([changed], t).drifted, [P.name]);
    const extra = diffPorts([], t);
    assert.deepEqual(extra.extra, [P.name]);
    assert.match(extra.problems.join(), /installed but not desired/);
    const damaged = { ...t, rules: { ...t.rules, postrouting: [] } };
    const d = diffPorts([P], damaged);
    assert.deepEqual(d.drifted, [P.name]);
    assert.match(d.problems.join(), /chain postrouting: expected 3 rules, found 0/);
  });

  it('reads protocols given as numbers', () => {
    const doc = {
      nftables: [
        {
          map: {
            name: 'dnat4_any',
            elem: [[{ elem: { val: { concat: [132, 9999] }, comment: P.name } }, { concat: ['198.18.0.2', 9] }]],
          },
        },
      ],
    };
    assert.deepEqual(parsePortsTableJson(JSON.stringify(doc)).elements, [
      { map: 'dnat4_any', key: 'sctp . 9999', value: '198.18.0.2 . 9', owner: P.name },
    ]);
  });
});
