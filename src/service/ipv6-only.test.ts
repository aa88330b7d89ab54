/**
 * IPv6-only networks (Docker 28+, `--ipv4=false --ipv6`: IPv4Data is empty) and dual-stack ones
 * through the network service and the reconciler: what reaches the (fake) kernel and what Join
 * tells Docker. The wire side is covered by the dockerd-28.5-ipv6only.jsonl replay.
 */

import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { endpointId, networkId } from '../core/ids.ts';
import { ipamData, networkInput } from '../core/testing.ts';
import { renderNftRuleset } from '../dataplane/linux/nft.ts';
import { stopTestServices, testService } from './testing.ts';

const NID = networkId(`0000${'a'.repeat(60)}`);
const EID = endpointId(`0000${'b'.repeat(60)}`);
const BRIDGE = 'trb0000aaaaaaaa';

afterEach(stopTestServices);
const setup = () => testService();

const v6only = networkInput({ networkId: NID, ipv4: [], ipv6: [ipamData('fd00:c4::/64')] });

describe('IPv6-only network (empty IPv4Data)', () => {
  it('bridge has only the v6 gateway; firewall has no v4 subnet and only a v6 masquerade', async () => {
    const { dp, svc } = setup();
    await svc.createNetwork(v6only);
    assert.deepEqual(dp.links.get(BRIDGE)?.addresses, ['fd00:c4::1/64']);
    const net = dp.firewall?.networks[0];
    assert.deepEqual([net?.subnets4, net?.subnets6], [[], ['fd00:c4::/64']]);
    const nat = renderNftRuleset(dp.firewall ?? { networks: [] })
      .split('\n')
      .filter((l) => l.includes('masquerade'));
    assert.equal(nat.length, 1);
    assert.match(nat[0] ?? '', /^\t\tip6 saddr fd00:c4::\/64 /);
  });

  it('an endpoint with only a v6 address joins with an IPv6 gateway and no IPv4 gateway', async () => {
    const { dp, svc } = setup();
    await svc.createNetwork(v6only);
    const res = await svc.createEndpoint({
      networkId: NID,
      endpointId: EID,
      addressIpv6: 'fd00:c4::2/64',
      options: {},
    });
    assert.match(res.macAddress ?? '', /^02:5e:/, 'a MAC even without an IPv4 address to derive it from');
    const join = await svc.join({
      networkId: NID,
      endpointId: EID,
      sandboxKey: '/var/run/docker/netns/1',
      options: {},
    });
    assert.equal(join.gateway, undefined);
    assert.equal(join.gatewayIpv6, 'fd00:c4::1');
    assert.equal(dp.links.get(join.srcName)?.kind, 'veth');
  });

  it('an MTU below 1280 is refused with IPv6 (the IPv6 minimum), 1280 is accepted', async () => {
    const { svc } = setup();
    await assert.rejects(svc.createNetwork({ ...v6only, generic: { 'com.docker.network.driver.mtu': '1279' } }), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /MTU must be between 1280/,
    });
    await svc.createNetwork({ ...v6only, generic: { 'com.docker.network.driver.mtu': '1280' } });
  });

  it('under a port policy the v6 address and the link-local address are policed, and no v4 one', async () => {
    const { dp, svc } = setup();
    await svc.createNetwork({ ...v6only, generic: { 'truss.ingress': 'tcp/80' } });
    const res = await svc.createEndpoint({
      networkId: NID,
      endpointId: EID,
      addressIpv6: 'fd00:c4::2/64',
      options: {},
    });
    await svc.join({ networkId: NID, endpointId: EID, sandboxKey: '/var/run/docker/netns/1', options: {} });
    const addrs = [...dp.policies.values()][0]?.addresses ?? [];
    assert.equal(addrs.length, 2, JSON.stringify(addrs));
    assert.equal(addrs[0], 'fd00:c4::2');
    assert.match(addrs[1] ?? '', /^fe80::/, `link-local from ${res.macAddress}`);
  });
});
