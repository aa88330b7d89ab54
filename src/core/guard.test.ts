import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { antispoofEnabled, eui64LinkLocal, guardFor } from './guard.ts';
import type { EndpointSpec, NetworkSpec } from './model.ts';
import { parseEndpointOptions, parseNetworkOptions } from './options.ts';
import { endpointSpec, ipamData, networkSpec } from './testing.ts';

const net = (options: Record<string, string> = {}): NetworkSpec =>
  networkSpec({ ipv6: [ipamData('fd00:1::/64')], options });
const ep = (over: Partial<EndpointSpec> = {}): EndpointSpec =>
  endpointSpec({ mac: '02:5e:c6:12:00:02', ipv6: 'fd00:1::0002/64', ...over });

describe('eui64LinkLocal', () => {
  it('derives the link-local address the kernel gives a MAC (U/L bit flipped, ff:fe inserted)', () => {
    // Docker's bridge classic: 02:42:ac:11:00:02 -> fe80::42:acff:fe11:2
    assert.equal(eui64LinkLocal('02:42:ac:11:00:02'), 'fe80::42:acff:fe11:2');
    assert.equal(eui64LinkLocal('00:11:22:33:44:55'), 'fe80::211:22ff:fe33:4455');
    assert.throws(() => eui64LinkLocal('02:42:ac:11:00'), /not a MAC/);
  });
});

describe('guardFor', () => {
  it('guards the host veth with the MAC, the bare IPv4, the IPv6 (canonical) and the link-local', () => {
    assert.deepEqual(guardFor(net(), ep()), {
      name: 'trvbbbbbbbbbbbb',
      endpointId: 'b'.repeat(64),
      networkId: 'a'.repeat(64),
      mac: '02:5e:c6:12:00:02',
      ipv4: ['198.18.0.2'],
      ipv6: ['fd00:1::2', 'fe80::5e:c6ff:fe12:2'],
    });
  });

  it('an endpoint without addresses may still use its link-local (and nothing else)', () => {
    const { ipv4: _4, ipv6: _6, ...bare } = ep();
    const g = guardFor(net(), bare);
    assert.deepEqual([g?.ipv4, g?.ipv6], [[], ['fe80::5e:c6ff:fe12:2']]);
  });

  it('is off with truss.antispoof=false on the network, unless the endpoint turns it back on', () => {
    assert.equal(guardFor(net({ 'truss.antispoof': 'false' }), ep()), undefined);
    assert.ok(guardFor(net({ 'truss.antispoof': 'false' }), ep({ options: { 'truss.antispoof': 'true' } })));
    assert.equal(guardFor(net(), ep({ options: { 'truss.antispoof': '0' } })), undefined);
    assert.equal(antispoofEnabled(net({ 'truss.antispoof': 'true' }), ep()), true);
  });

  it('never guesses: a stored MAC that is not one gives no guard', () => {
    assert.equal(guardFor(net(), ep({ mac: 'nonsense' })), undefined);
  });
});

describe('truss.antispoof option', () => {
  it('is a known network and endpoint option taking true/false, refused otherwise', () => {
    parseNetworkOptions({ 'truss.antispoof': 'false' }, false);
    assert.deepEqual(parseEndpointOptions({ 'truss.antispoof': 'true' }).raw, { 'truss.antispoof': 'true' });
    assert.throws(() => parseNetworkOptions({ 'truss.antispoof': 'off' }, false), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /truss.antispoof="off": expected true or false/,
    });
    assert.throws(() => parseEndpointOptions({ 'truss.antispoof': 'no' }), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /expected true or false/,
    });
  });
});
