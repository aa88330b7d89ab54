import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseUnderlay, type UnderlayFacts } from './underlay.ts';

const lo = { dev: 'lo', mtu: 65536, addresses: ['127.0.0.1', '::1'] };
const eth = { dev: 'eth0', mtu: 9000, addresses: ['198.18.255.1', 'fe80::1'] };
const docker0 = { dev: 'docker0', mtu: 1500, addresses: ['198.19.254.1'] };
const links = [lo, eth, docker0];
const base: UnderlayFacts = { etcd: '198.18.255.254', links, defaultRoutes: [] };

describe('chooseUnderlay', () => {
  it('--advertise-address wins; MTU of the link holding it', () => {
    const r = chooseUnderlay({
      ...base,
      advertise: '198.18.255.1',
      route: { address: '198.19.254.1', dev: 'docker0', mtu: 1500 },
    });
    assert.deepEqual(r, { address: '198.18.255.1', dev: 'eth0', mtu: 9000, how: 'flag' });
  });
  it('else the source of the route towards etcd', () => {
    const r = chooseUnderlay({ ...base, route: { address: '198.18.255.1', dev: 'eth0', mtu: 9000 } });
    assert.deepEqual(r, { address: '198.18.255.1', dev: 'eth0', mtu: 9000, how: 'route' });
  });
  it('etcd on 127.0.0.1: the default route device address, never lo and its MTU 65536', () => {
    const r = chooseUnderlay({
      ...base,
      etcd: '127.0.0.1',
      route: { address: '127.0.0.1', dev: 'lo', mtu: 65536 },
      defaultRoutes: [{ dev: 'eth0', family: 4 }],
    });
    assert.deepEqual(r, { address: '198.18.255.1', dev: 'eth0', mtu: 9000, how: 'default-route' });
  });
  it("etcd on ::1: the default route's preferred source, IPv6 first", () => {
    const eth6 = { dev: 'eth1', mtu: 1400, addresses: ['fd00::5'] };
    const r = chooseUnderlay({
      ...base,
      etcd: '::1',
      links: [...links, eth6],
      route: { address: '::1', dev: 'lo', mtu: 65536 },
      defaultRoutes: [
        { dev: 'eth0', family: 4 },
        { dev: 'eth1', family: 6, prefsrc: 'fd00::5' },
      ],
    });
    assert.deepEqual(r, { address: 'fd00::5', dev: 'eth1', mtu: 1400, how: 'default-route' });
  });
  it("etcd at one of this host's own addresses: that address", () => {
    const r = chooseUnderlay({
      ...base,
      etcd: '198.18.255.1',
      route: { address: '198.18.255.1', dev: 'lo', mtu: 65536 },
    });
    assert.deepEqual(r, { address: '198.18.255.1', dev: 'eth0', mtu: 9000, how: 'etcd-address' });
  });
  it('errors name --advertise-address', () => {
    const noDefault = { ...base, etcd: '127.0.0.1', route: { address: '127.0.0.1', dev: 'lo', mtu: 65536 } };
    assert.throws(() => chooseUnderlay(noDefault), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message:
        'etcd at 127.0.0.1 is on this host and it has no default route to take its own address from: ' +
        'give --advertise-address (the address other hosts reach this one at)',
    });
    assert.throws(() => chooseUnderlay({ ...base, etcd: 'etcd.example' }), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /a name, or no route .* --advertise-address/,
    });
    assert.throws(() => chooseUnderlay(base), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /no route to it\): give --advertise-address/,
    });
    assert.throws(() => chooseUnderlay({ ...base, advertise: '127.0.0.1' }), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /--advertise-address 127.0.0.1 is a loopback/,
    });
  });
  it('an advertised address not on this host (NAT) takes the route link, else 1500', () => {
    const route = { address: '198.18.255.1', dev: 'eth0', mtu: 9000 };
    assert.deepEqual(chooseUnderlay({ ...base, advertise: '198.18.7.7', route }), {
      address: '198.18.7.7',
      dev: 'eth0',
      mtu: 9000,
      how: 'flag',
    });
    assert.deepEqual(chooseUnderlay({ ...base, advertise: '198.18.7.7' }), {
      address: '198.18.7.7',
      mtu: 1500,
      how: 'flag',
    });
  });
});
