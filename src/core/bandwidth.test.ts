import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  effectiveBandwidth,
  formatRate,
  MAX_RATE,
  MIN_RATE,
  parseBandwidthOptions,
  parseRate,
  shaperFor,
  tbfFor,
} from './bandwidth.ts';
import { computeDesired } from './desired.ts';
import type { EndpointSpec } from './model.ts';
import { parseEndpointOptions, parseNetworkOptions } from './options.ts';
import { endpointSpec, ipamData, networkSpec } from './testing.ts';

const K = 'truss.bandwidth';

describe('parseRate', () => {
  it('reads SI bit units and plain bits per second', () => {
    assert.equal(parseRate(K, '100mbit'), 100_000_000);
    assert.equal(parseRate(K, '1gbit'), 1_000_000_000);
    assert.equal(parseRate(K, '500kbit'), 500_000);
    assert.equal(parseRate(K, '1.5gbit'), 1_500_000_000);
    assert.equal(parseRate(K, '2000000'), 2_000_000);
    assert.equal(parseRate(K, '300000bit'), 300_000);
    assert.equal(parseRate(K, '100Mbit'), 100_000_000, 'units are case-insensitive');
  });
  it('refuses what is not a rate, naming the key and value', () => {
    for (const bad of ['', ' 100mbit', '100 mbit', '100mbit ', 'fast', '-5mbit', '1e6', '0x10', '10.5', '1.2345mbit']) {
      assert.throws(
        () => parseRate(K, bad),
        (e: Error & { code?: string }) => e.code === 'TRUSS_ERR_OPTION_INVALID' && e.message.includes(K),
        bad,
      );
    }
  });
  it('refuses byte units with a hint, and unknown units', () => {
    assert.throws(() => parseRate(K, '100mbps'), { code: 'TRUSS_ERR_OPTION_INVALID', message: /megabytes/ });
    assert.throws(() => parseRate(K, '100mb'), { code: 'TRUSS_ERR_OPTION_INVALID', message: /not accepted/ });
    assert.throws(() => parseRate(K, '100furlong'), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /unknown unit "furlong"/,
    });
  });
  it('bounds the rate', () => {
    assert.equal(parseRate(K, '100kbit'), MIN_RATE);
    assert.equal(parseRate(K, '100gbit'), MAX_RATE);
    assert.throws(() => parseRate(K, '99kbit'), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /between 100kbit and 100gbit/,
    });
    assert.throws(() => parseRate(K, '0'), { code: 'TRUSS_ERR_OPTION_INVALID', message: /between/ });
    assert.throws(() => parseRate(K, '101gbit'), { code: 'TRUSS_ERR_OPTION_INVALID', message: /between/ });
    assert.throws(() => parseRate(K, '99999999999999999999999'), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /between/,
    });
  });
  it('formats in the largest exact unit', () => {
    assert.equal(formatRate(100_000_000), '100mbit');
    assert.equal(formatRate(1_500_000_000), '1500mbit');
    assert.equal(formatRate(123_456), '123456bit');
  });
});

describe('bandwidth options', () => {
  it('network and endpoint options accept both keys', () => {
    assert.deepEqual(parseNetworkOptions({ [K]: '50mbit', 'truss.bandwidth.ingress': '30mbit' }, false).bandwidth, {
      egress: 50_000_000,
      ingress: 30_000_000,
    });
    assert.deepEqual(parseEndpointOptions({ 'truss.bandwidth.ingress': '1gbit' }).bandwidth, {
      ingress: 1_000_000_000,
    });
    assert.equal(parseNetworkOptions({}, false).bandwidth, undefined);
    assert.equal(parseBandwidthOptions({ other: 'x' }), undefined);
  });
  it('bad values are refused before anything is stored', () => {
    assert.throws(() => parseNetworkOptions({ [K]: 'lots' }, false), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /truss\.bandwidth="lots"/,
    });
    assert.throws(() => parseEndpointOptions({ 'truss.bandwidth.ingress': 5 }), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /expected a string/,
    });
    assert.throws(() => parseEndpointOptions({ 'truss.bandwidth.egress': '5mbit' }), {
      code: 'TRUSS_ERR_OPTION_UNKNOWN',
      message: /unknown endpoint option/,
    });
  });
  it('an endpoint limit replaces the network default direction by direction', () => {
    const net = { egress: 50_000_000, ingress: 30_000_000 };
    assert.deepEqual(effectiveBandwidth(net, undefined), net);
    assert.deepEqual(effectiveBandwidth(net, { egress: 10_000_000 }), { egress: 10_000_000, ingress: 30_000_000 });
    assert.deepEqual(effectiveBandwidth(undefined, { ingress: 1_000_000 }), { ingress: 1_000_000 });
    assert.equal(effectiveBandwidth(undefined, undefined), undefined);
  });
});

describe('tbfFor', () => {
  it('burst is 10 ms at the rate, at least 4 full frames; the queue 25 ms more, at least 16 frames and two GSO packets', () => {
    assert.deepEqual(tbfFor(50_000_000, 1500), { rate: 50_000_000, burst: 62_500, limit: 62_500 + 156_250 });
    // 20 Mbit/s: 25 ms is 62,500 bytes, less than two 64 KiB GSO packets
    assert.deepEqual(tbfFor(20_000_000, 1500), { rate: 20_000_000, burst: 25_000, limit: 25_000 + 131_072 });
    // 5 Mbit/s: two GSO packets would be 210 ms; capped at 100 ms
    assert.deepEqual(tbfFor(5_000_000, 1500), { rate: 5_000_000, burst: 6_250, limit: 6_250 + 62_500 });
    assert.deepEqual(tbfFor(1_000_000_000, 1500), { rate: 1e9, burst: 1_250_000, limit: 1_250_000 + 3_125_000 });
    // 1 Mbit/s: 10 ms is 1,250 bytes, less than one frame: the floors hold
    assert.deepEqual(tbfFor(1_000_000, 1500), { rate: 1e6, burst: 4 * 1514, limit: 4 * 1514 + 16 * 1514 });
    assert.equal(tbfFor(1_000_000, 9000).burst, 4 * 9014, 'MTU-aware');
  });
  it('every legal rate gives a bucket of at least one frame and a u32 queue', () => {
    for (const rate of [MIN_RATE, 1e6, 3e7, 1e9, MAX_RATE]) {
      const p = tbfFor(rate, 9216);
      assert.ok(p.burst >= 9230 && p.limit > p.burst && p.limit < 2 ** 32, `${rate}: ${JSON.stringify(p)}`);
    }
  });
});

describe('shaperFor', () => {
  const EID = 'b'.repeat(64);
  const net = { id: 'a'.repeat(64), mtu: 1500, bandwidth: { egress: 50_000_000 } };
  const ep = { id: EID, hostVeth: 'trvbbbbbbbbbbbb' };
  it('names the host veth and the ifb of the endpoint, one tbf per limited direction', () => {
    const s = shaperFor(net, ep);
    assert.deepEqual(s, {
      name: 'trvbbbbbbbbbbbb',
      ifb: 'trfbbbbbbbbbbbb',
      endpointId: EID,
      networkId: net.id,
      egress: tbfFor(50_000_000, 1500),
    });
  });
  it('no limit in force: no shaper at all', () => {
    assert.equal(shaperFor({ id: net.id, mtu: 1500 }, ep), undefined);
  });
});

describe('computeDesired shapers', () => {
  const NID = 'a'.repeat(64);
  const net = networkSpec({ id: NID, ipv4: [ipamData('198.18.1.0/24')], bandwidth: { ingress: 30_000_000 } });
  const ep = (c: string): EndpointSpec => endpointSpec({ networkId: NID, id: c.repeat(64) });
  it('one per endpoint with a limit, memoised on the record (unchanged intent: same objects)', () => {
    const eps = [ep('b'), { ...ep('c'), bandwidth: { egress: 1_000_000 } }];
    const d1 = computeDesired([net], eps);
    const d2 = computeDesired([net], eps);
    assert.equal(d1.shapers.length, 2);
    assert.ok(d1.shapers.every((s, i) => s === d2.shapers[i]));
    const { bandwidth: _b, ...open } = net;
    assert.equal(computeDesired([open], [ep('b')]).shapers.length, 0);
  });
});
