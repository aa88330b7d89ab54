import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEndpointOptions, parseNetworkOptions } from './options.ts';

describe('parseNetworkOptions', () => {
  it('defaults: MTU 1500, NAT on, derived bridge name', () => {
    assert.deepEqual(parseNetworkOptions({}, false), { mtuGiven: false, mtu: 1500, nat: true });
  });
  it('reads bridge name, MTU and truss.nat', () => {
    const o = parseNetworkOptions(
      { 'com.docker.network.bridge.name': 'br-web', 'com.docker.network.driver.mtu': '1400', 'truss.nat': 'false' },
      false,
    );
    assert.deepEqual(o, { bridgeName: 'br-web', mtuGiven: true, mtu: 1400, nat: false });
  });
  it('tolerates keys Docker adds and other drivers own', () => {
    assert.doesNotThrow(() =>
      parseNetworkOptions(
        { 'com.docker.network.enable_ipv4': 'true', 'com.docker.network.bridge.enable_icc': 'true' },
        false,
      ),
    );
  });
  it('parses truss.ingress', () => {
    assert.deepEqual(parseNetworkOptions({ 'truss.ingress': 'tcp/80,udp/53' }, false).ingress, [
      { proto: 'tcp', ports: { from: 80, to: 80 } },
      { proto: 'udp', ports: { from: 53, to: 53 } },
    ]);
    assert.throws(() => parseNetworkOptions({ 'truss.ingress': 'tcp/80;reboot' }, false), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /truss\.ingress/,
    });
  });
  it('refuses unknown truss.* keys, naming the key', () => {
    assert.throws(() => parseNetworkOptions({ 'truss.bogus': '1' }, false), {
      code: 'TRUSS_ERR_OPTION_UNKNOWN',
      message: /truss\.bogus/,
    });
    assert.throws(() => parseNetworkOptions({ 'truss.NAT': 'false' }, false), {
      code: 'TRUSS_ERR_OPTION_UNKNOWN',
      message: /truss\.NAT/,
    });
  });
  it('refuses bad values, naming key and value', () => {
    assert.throws(() => parseNetworkOptions({ 'truss.nat': 'yes' }, false), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /truss\.nat="yes"/,
    });
    assert.throws(() => parseNetworkOptions({ 'com.docker.network.driver.mtu': '1500; reboot' }, false), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /mtu/,
    });
    assert.throws(() => parseNetworkOptions({ 'com.docker.network.driver.mtu': '100' }, false), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /between 576/,
    });
    assert.throws(() => parseNetworkOptions({ 'com.docker.network.driver.mtu': '1000' }, true), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /between 1280/,
    });
    for (const bad of ['a;b', '$(x)', 'a b', 'toolongbridgename0', '-x', 'a/b', '']) {
      assert.throws(
        () => parseNetworkOptions({ 'com.docker.network.bridge.name': bad }, false),
        { code: 'TRUSS_ERR_OPTION_INVALID', message: /bridge\.name/ },
        bad,
      );
    }
  });
});

describe('truss.cluster and truss.encrypt', () => {
  it('encrypt defaults to true (WireGuard); false selects VXLAN', () => {
    assert.deepEqual(parseNetworkOptions({ 'truss.cluster': 'blue' }, false).cluster, { name: 'blue', encrypt: true });
    for (const v of ['false', '0']) {
      assert.deepEqual(parseNetworkOptions({ 'truss.cluster': 'green', 'truss.encrypt': v }, false).cluster, {
        name: 'green',
        encrypt: false,
      });
    }
    assert.deepEqual(parseNetworkOptions({ 'truss.cluster': 'blue', 'truss.encrypt': 'true' }, false).cluster, {
      name: 'blue',
      encrypt: true,
    });
  });
  it('refuses truss.encrypt without truss.cluster, and bad values, naming the key', () => {
    assert.throws(() => parseNetworkOptions({ 'truss.encrypt': 'false' }, false), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /truss\.encrypt only applies/,
    });
    assert.throws(() => parseNetworkOptions({ 'truss.cluster': 'blue', 'truss.encrypt': 'no' }, false), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /truss\.encrypt="no"/,
    });
    assert.throws(() => parseNetworkOptions({ 'truss.cluster': 'Blue!' }, false), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /truss\.cluster/,
    });
  });
});

describe('parseEndpointOptions', () => {
  it('ignores Docker keys, refuses unknown truss keys', () => {
    assert.deepEqual(parseEndpointOptions({ 'com.docker.network.endpoint.exposedports': [{ Proto: 6, Port: 80 }] }), {
      raw: {},
    });
    assert.deepEqual(parseEndpointOptions({ 'truss.ingress': 'tcp/8080' }), {
      raw: { 'truss.ingress': 'tcp/8080' },
      ingress: [{ proto: 'tcp', ports: { from: 8080, to: 8080 } }],
    });
    assert.throws(() => parseEndpointOptions({ 'truss.ingress': 'tcp/0' }), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /truss\.ingress/,
    });
    assert.throws(() => parseEndpointOptions({ 'truss.ingres': 'tcp/80' }), {
      code: 'TRUSS_ERR_OPTION_UNKNOWN',
      message: /truss\.ingres/,
    });
  });
});
