/** Unit tests: which `ip monitor` lines are the kernel's own link-local bookkeeping (kernel-watch.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IpNotices, kernelNoise } from './kernel-watch.ts';

describe('kernelNoise', () => {
  it('ignores the IPv6 link-local addresses and routes the kernel makes when a link comes up (as captured)', () => {
    for (const l of [
      '14: h6    inet6 fe80::7cac:6dff:fe0d:3cbd/64 scope link ',
      'local fe80::7cac:6dff:fe0d:3cbd dev h6 table local proto kernel metric 0 pref medium',
      'fe80::/64 dev trvab proto kernel metric 256 pref medium',
      'multicast ff00::/8 dev trvab table local proto kernel metric 256 pref medium',
      'Deleted 14: h6    inet6 fe80::7cac:6dff:fe0d:3cbd/64 scope link ',
      'Deleted local fe80::7cac:6dff:fe0d:3cbd dev h6 table local proto kernel metric 0 pref medium',
    ])
      assert.equal(kernelNoise(l), true, l);
  });
  it('counts everything else: links, global and IPv4 addresses, routes, rules', () => {
    for (const l of [
      '14: trvab@if13: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master trbx state UP group default ',
      'Deleted 14: trvab@if13: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default ',
      '14: trbx    inet6 fd00:70::1/64 scope global ',
      '14: trbx    inet 198.18.70.1/24 brd 198.18.70.255 scope global trbx',
      'local fd00:70::1 dev trbx table local proto kernel metric 0 pref medium',
      'fd00:70::/64 dev trbx proto kernel metric 256 pref medium',
      '198.18.78.0/24 via 198.18.77.2 dev trbwatch0 proto 116 ',
      '30000:	from all to 198.18.79.0/24 lookup main',
      '14: trvab    inet6 fe80::1/64 scope global ',
    ])
      assert.equal(kernelNoise(l), false, l);
  });
});

describe('IpNotices', () => {
  const up = (state: string, flags: string) =>
    `2031: trv3f4ea6ed0e32@if2030: <${flags}> mtu 1500 master trb438c9404d098 state ${state} \n    link/ether fa:61:5c:02:e7:24\n`;
  it("a link's carrier coming seconds after its attach is no change; its first notice, a new master or MTU is", () => {
    const n = new IpNotices();
    assert.equal(n.matters(up('LOWERLAYERDOWN', 'NO-CARRIER,BROADCAST,MULTICAST,UP')), true, 'first seen');
    assert.equal(n.matters(up('UP', 'BROADCAST,MULTICAST,UP,LOWER_UP')), false, 'carrier only (as captured)');
    assert.equal(n.matters(up('UP', 'BROADCAST,MULTICAST,UP,LOWER_UP')), false);
    assert.equal(n.matters(up('DOWN', 'BROADCAST,MULTICAST')), true, 'set down');
    assert.equal(n.matters(up('DOWN', 'BROADCAST,MULTICAST').replace('mtu 1500', 'mtu 1400')), true, 'MTU');
    assert.equal(n.matters(up('DOWN', 'BROADCAST,MULTICAST').replace('fa:61', 'fa:62')), true, 'MAC (its second line)');
  });
  it("the host end's notices once the container's end moved and came up, as captured: no change", () => {
    const n = new IpNotices();
    const before = [
      '4: trvwatch1@trcwatch1: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> mtu 1500 qdisc noqueue master trbwatch1 state LOWERLAYERDOWN group default \n    link/ether 1e:7a:88:68:10:4b brd ff:ff:ff:ff:ff:ff\n',
      '4: trvwatch1@trcwatch1: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> mtu 1500 master trbwatch1 state LOWERLAYERDOWN \n    link/ether 1e:7a:88:68:10:4b\n',
      '2: trbwatch1: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state DOWN group default \n    link/ether 1e:7a:88:68:10:4b brd ff:ff:ff:ff:ff:ff\n',
    ];
    for (const b of before) assert.equal(n.matters(b), true, 'first of each kind');
    for (const after of [
      '4: trvwatch1@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master trbwatch1 state UP \n    link/ether 1e:7a:88:68:10:4b\n',
      '4: trvwatch1@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master trbwatch1 state UP group default \n    link/ether 1e:7a:88:68:10:4b brd ff:ff:ff:ff:ff:ff link-netnsid 0\n',
      '2: trbwatch1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default \n    link/ether 1e:7a:88:68:10:4b brd ff:ff:ff:ff:ff:ff\n',
    ])
      assert.equal(n.matters(after), false, after);
  });
  it('a deleted link counts, and its index is forgotten', () => {
    const n = new IpNotices();
    n.matters(up('UP', 'BROADCAST,MULTICAST,UP,LOWER_UP'));
    assert.equal(n.matters(`Deleted ${up('DOWN', 'BROADCAST,MULTICAST')}`), true);
    assert.equal(n.matters(up('UP', 'BROADCAST,MULTICAST,UP,LOWER_UP')), true, 'the index again: a new link');
  });
  it('a chunk counts when any of its notices does; link-local noise alone does not', () => {
    const n = new IpNotices();
    const noise =
      '14: h6    inet6 fe80::7cac:6dff:fe0d:3cbd/64 scope link \n       valid_lft forever preferred_lft forever\n' +
      'local fe80::7cac:6dff:fe0d:3cbd dev h6 table local proto kernel metric 0 pref medium\n';
    assert.equal(n.matters(noise), false);
    assert.equal(n.matters(`${noise}198.18.78.0/24 via 198.18.77.2 dev trbw proto 116 \n`), true);
  });
  it('a notice split across chunks counts, whatever its first part was', () => {
    const n = new IpNotices();
    assert.equal(n.matters('14: h6    inet6 fe80::7cac:6dff:fe0d:3cbd/64 scope link \n'), false);
    assert.equal(n.matters('       valid_lft forever preferred_lft forever\n'), true, 'the rest of a notice');
    assert.equal(n.matters('198.18.78.0/24 via 198.18'), false, 'a line not ended yet waits');
    assert.equal(n.matters('.77.2 dev trbw proto 116 \n'), true);
  });
});
