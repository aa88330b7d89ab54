import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  canonicalCidr,
  checkIfName,
  checkMac,
  isOwnedLink,
  parseIpAddrJson,
  parseRouteDevices,
  toObserved,
} from './links.ts';

// `ip -j -d addr show` of a namespace with one truss bridge + veth pair and a foreign docker0 (trimmed).
const IP_JSON =
  '[{"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK"], "mtu": 65536, "operstate": "DOWN", "address": "00:00:00:00:00:00", "addr_info": []}, {"ifindex": 2, "ifname": "trbaaaaaaaaaaaa", "flags": ["BROADCAST", "MULTICAST", "UP"], "mtu": 1450, "operstate": "UNKNOWN", "address": "06:c5:0d:87:5f:4f", "linkinfo": {"info_kind": "bridge"}, "ifalias": "truss:br:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "addr_info": [{"family": "inet", "local": "198.18.1.1", "prefixlen": 24, "scope": "global"}, {"family": "inet6", "local": "fd00:1::1", "prefixlen": 64, "scope": "global"}, {"family": "inet6", "local": "fe80::38d0:e2ff:fe12:9923", "prefixlen": 64, "scope": "link"}]}, {"ifindex": 3, "link": "trvaaaaaaaaaaaa", "ifname": "trcaaaaaaaaaaaa", "flags": ["BROADCAST", "MULTICAST"], "mtu": 1450, "operstate": "DOWN", "address": "02:5e:aa:aa:aa:aa", "linkinfo": {"info_kind": "veth"}, "addr_info": []}, {"ifindex": 4, "link": "trcaaaaaaaaaaaa", "ifname": "trvaaaaaaaaaaaa", "flags": ["NO-CARRIER", "BROADCAST", "MULTICAST", "UP", "M-DOWN"], "mtu": 1450, "master": "trbaaaaaaaaaaaa", "operstate": "LOWERLAYERDOWN", "address": "06:c5:0d:87:5f:4f", "linkinfo": {"info_kind": "veth", "info_slave_kind": "bridge"}, "ifalias": "truss:ep:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "addr_info": []}, {"ifindex": 5, "ifname": "docker0", "flags": ["BROADCAST", "MULTICAST"], "mtu": 1500, "operstate": "DOWN", "address": "8e:c5:8e:a0:3d:df", "linkinfo": {"info_kind": "bridge"}, "ifalias": "not ours", "addr_info": []}]';
const A = 'a'.repeat(64);
const E = 'e'.repeat(64);

describe('parseIpAddrJson', () => {
  const links = parseIpAddrJson(IP_JSON);

  it('reads every link with kind, mark, mtu, master and global addresses', () => {
    assert.deepEqual(
      links.map((l) => l.name),
      ['lo', 'trbaaaaaaaaaaaa', 'trcaaaaaaaaaaaa', 'trvaaaaaaaaaaaa', 'docker0'],
    );
    const br = links[1];
    assert.equal(br?.kind, 'bridge');
    assert.deepEqual(br?.mark, { kind: 'br', id: A });
    assert.equal(br?.mtu, 1450);
    assert.equal(br?.up, true);
    assert.deepEqual(br?.addresses, ['198.18.1.1/24', 'fd00:1::1/64']);
    const host = links[3];
    assert.equal(host?.master, 'trbaaaaaaaaaaaa');
    assert.deepEqual(host?.mark, { kind: 'ep', id: E });
    assert.equal(links[2]?.mac, '02:5e:aa:aa:aa:aa');
    assert.equal(links[2]?.up, false);
  });

  it('keeps only ours: a mark or a truss name', () => {
    assert.deepEqual(
      links.filter(isOwnedLink).map((l) => l.name),
      ['trbaaaaaaaaaaaa', 'trcaaaaaaaaaaaa', 'trvaaaaaaaaaaaa'],
    );
    assert.equal(links[4]?.alias, 'not ours');
    assert.equal(links[4]?.mark, undefined);
  });

  it('drops the raw alias from ObservedLink', () => {
    const o = toObserved(links[1] as NonNullable<(typeof links)[1]>);
    assert.equal('alias' in o, false);
  });

  it('reads empty and odd output without throwing', () => {
    assert.deepEqual(parseIpAddrJson(''), []);
    assert.deepEqual(parseIpAddrJson('[{"ifname":"x"}]'), []);
  });
});

describe('argument checks for ip batches', () => {
  it('refuses names that could break a batch line', () => {
    for (const bad of ['', 'a b', 'a\nlink del eth0', 'x"y', 'toolongname12345', '../x']) {
      assert.throws(() => checkIfName(bad), { code: 'TRUSS_ERR_OPTION_INVALID' });
    }
    assert.equal(checkIfName('br-lan.10'), 'br-lan.10');
  });
  it('checks MACs and canonicalises CIDRs', () => {
    assert.equal(checkMac('02:5E:00:00:00:01'), '02:5e:00:00:00:01');
    assert.throws(() => checkMac('02:5e:00:00:00'), { code: 'TRUSS_ERR_ADDRESS_INVALID' });
    assert.equal(canonicalCidr('fd00:0001:0:0::1/64'), 'fd00:1::1/64');
    assert.throws(() => canonicalCidr('198.18.0.1'), { code: 'TRUSS_ERR_ADDRESS_INVALID' });
  });
});

describe('parseRouteDevices', () => {
  it('reads the devices of default routes, multipath included', () => {
    assert.deepEqual(parseRouteDevices('[{"dst":"default","gateway":"198.19.0.2","dev":"br0","flags":[]}]'), ['br0']);
    const multipath =
      '[{"dst":"default","flags":[],"nexthops":[{"gateway":"198.19.0.2","dev":"eth0"},{"gateway":"198.19.1.2","dev":"eth1"}]}]';
    assert.deepEqual(parseRouteDevices(multipath), ['eth0', 'eth1']);
    assert.deepEqual(parseRouteDevices(''), []);
  });
});
