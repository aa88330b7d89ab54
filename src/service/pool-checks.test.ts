/**
 * Security review M3, L4, L8, L9, L10 at the service and wire level: the network driver
 * applies truss's pool checks whatever IPAM gave the pools, endpoint addresses are host
 * addresses that no gateway or other endpoint holds, IPAM never re-reads an address of the
 * other family, echoed values are capped, truss's own link names are refused as bridge
 * names, and IPv6 text is canonical before it is stored.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { CreateEndpointInput, CreateNetworkInput } from '../core/contracts.ts';
import { endpointInput, networkInput } from '../core/testing.ts';
import { silentLogger } from '../obs/logger.ts';
import { decodeCreateNetwork } from '../protocol/wire.ts';
import { MemoryStore } from '../store/memory.ts';
import { DEFAULT_POOLS, IpamService } from './ipam-service.ts';
import { stopTestServices, testEid, testNid, testService } from './testing.ts';

const NID = testNid('a');
const v4 = (pool: string, gateway?: string, aux: Record<string, string> = {}) => ({
  pool,
  ...(gateway !== undefined ? { gateway } : {}),
  auxAddresses: aux,
});
const net = (over: Partial<CreateNetworkInput> = {}): CreateNetworkInput =>
  networkInput({ networkId: NID, ipv4: [v4('198.18.10.0/24', '198.18.10.1/24')], ...over });
const ep = (n: number, over: Partial<CreateEndpointInput> = {}): CreateEndpointInput =>
  endpointInput({ networkId: NID, endpointId: testEid('b', n), address: `198.18.10.${n + 10}/24`, ...over });

afterEach(stopTestServices);

describe('CreateNetwork applies the IPAM pool checks to every pool (M3)', () => {
  /** what, IPv4 pools, IPv6 pools, the message, the code when it is not TRUSS_ERR_ADDRESS_INVALID */
  const refused: [string, CreateNetworkInput['ipv4'], CreateNetworkInput['ipv6'], RegExp, string?][] = [
    [
      '0.0.0.0/0',
      [v4('0.0.0.0/0', '0.0.0.1/0')],
      [],
      /covers every IPv4 address: give a --subnet inside a private range/,
    ],
    [
      'loopback',
      [v4('127.0.0.0/8', '127.0.0.2/8')],
      [],
      /overlaps the loopback range 127\.0\.0\.0\/8: use a private range/,
    ],
    ['multicast', [v4('224.0.0.0/24')], [], /multicast range/],
    ['link-local', [v4('169.254.0.0/16')], [], /link-local range/],
    ['limited broadcast', [v4('255.255.255.255/32')], [], /limited broadcast|too small/],
    ['a /32 pool', [v4('198.18.10.5/32')], [], /is too small/],
    ['host bits', [v4('198.18.10.5/24')], [], /has host bits set: it is not a network address; use 198\.18\.10\.0\/24/],
    ['::/0', [], [v4('::/0')], /covers every IPv6 address/],
    ['fe80::/64', [], [v4('fe80::/64')], /link-local range fe80::\/10/],
    [
      'gateway = network address',
      [v4('198.18.10.0/24', '198.18.10.0/24')],
      [],
      /^gateway 198\.18\.10\.0 is the network address of subnet 198\.18\.10\.0\/24: give a host address, e\.g\. --gateway 198\.18\.10\.1$/,
    ],
    [
      'gateway = broadcast',
      [v4('198.18.10.0/24', '198.18.10.255/24')],
      [],
      /198\.18\.10\.255 is the broadcast address/,
    ],
    [
      'a /32 gateway in a /24',
      [v4('198.18.10.0/24', '198.18.10.1/32')],
      [],
      /has prefix length \/32 but its subnet 198\.18\.10\.0\/24 has \/24: give the gateway as 198\.18\.10\.1\/24/,
    ],
    ['v6 gateway = subnet-router anycast', [], [v4('fd00:10::/64', 'fd00:10::/64')], /subnet-router anycast/],
    [
      'overlapping pools',
      [v4('198.18.10.0/24'), v4('198.18.10.0/25')],
      [],
      /subnet 198\.18\.10\.0\/24 overlaps IPv4 subnet 198\.18\.10\.0\/25 in this network: give each --subnet once/,
      'TRUSS_ERR_POOL_OVERLAP',
    ],
    [
      'the same pool twice',
      [v4('198.18.10.0/24'), v4('198.18.10.0/24')],
      [],
      /is given twice in this network/,
      'TRUSS_ERR_POOL_OVERLAP',
    ],
  ];
  for (const [what, ipv4, ipv6, message, code = 'TRUSS_ERR_ADDRESS_INVALID'] of refused) {
    it(`refuses ${what}`, async () => {
      const { svc, repo } = testService();
      await assert.rejects(svc.createNetwork(net({ ipv4, ipv6 })), { code, message });
      assert.equal((await repo.listNetworks()).length, 0);
    });
  }

  it("accepts the pools Docker's default IPAM hands out", async () => {
    const { svc, repo } = testService();
    const pools: [string, string][] = [
      ['172.17.0.0/16', '172.17.0.1/16'],
      ['172.31.0.0/16', '172.31.0.1/16'],
      ['192.168.16.0/20', '192.168.16.1/20'],
      ['10.10.0.0/24', '10.10.0.1/24'],
    ];
    for (const [i, [pool, gw]] of pools.entries()) {
      await svc.createNetwork(net({ networkId: testNid('c', i), ipv4: [v4(pool, gw)] }));
    }
    await svc.createNetwork(
      net({
        networkId: testNid('d'),
        ipv4: [v4('198.18.20.0/24', '198.18.20.1/24')],
        ipv6: [v4('fd00:20::/64', 'fd00:20::1/64')],
      }),
    );
    assert.equal((await repo.listNetworks()).length, pools.length + 1);
  });
});

describe('CreateEndpoint refuses addresses no container may hold (M3)', () => {
  it('refuses the gateway, the network and broadcast addresses, and another endpoint’s address', async () => {
    const { svc, repo } = testService();
    await svc.createNetwork(net());
    await assert.rejects(svc.createEndpoint(ep(1, { address: '198.18.10.1/24' })), {
      code: 'TRUSS_ERR_ADDRESS_IN_USE',
      message: /198\.18\.10\.1 is the gateway of network .*: give the container another address \(--ip\)/,
    });
    await assert.rejects(svc.createEndpoint(ep(1, { address: '198.18.10.0/24' })), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
      message: /is the network address/,
    });
    await assert.rejects(svc.createEndpoint(ep(1, { address: '198.18.10.255/24' })), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
      message: /is the broadcast address/,
    });
    await svc.createEndpoint(ep(1));
    await svc.createEndpoint(ep(1)); // a replay is fine
    await svc.join({ networkId: NID, endpointId: testEid('b', 1), sandboxKey: '/var/run/docker/netns/1', options: {} });
    await assert.rejects(svc.createEndpoint(ep(2, { address: '198.18.10.11/24' })), {
      code: 'TRUSS_ERR_ADDRESS_IN_USE',
      message: /address 198\.18\.10\.11 is already held by endpoint 0001bbbbbbbb/,
    });
    assert.equal((await repo.listEndpoints(NID)).length, 1);
  });

  it('an unjoined holder (a crash leftover: Docker gave its address out again) does not block', async () => {
    const { svc, repo } = testService();
    await svc.createNetwork(net());
    await svc.createEndpoint(ep(1));
    await svc.createEndpoint(ep(2, { address: '198.18.10.11/24' }));
    assert.equal((await repo.listEndpoints(NID)).length, 2);
  });
});

describe('IPAM keeps address families apart (L4)', () => {
  it('refuses an IPv6 address in an IPv4 pool instead of allocating its low 32 bits', async () => {
    const ipam = new IpamService({ store: new MemoryStore(), log: silentLogger, defaultPools: DEFAULT_POOLS });
    const { poolId } = await ipam.requestPool({
      addressSpace: 'TrussLocal',
      pool: '198.18.45.0/24',
      subPool: '',
      options: {},
      v6: false,
    });
    await assert.rejects(ipam.requestAddress({ poolId, address: '::c612:2d07', options: {} }), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
      message: /address ::c612:2d07 is IPv6 but pool 198\.18\.45\.0\/24 .* is IPv4: request an IPv4 address/,
    });
    await assert.rejects(ipam.requestAddress({ poolId, address: 'fd00::1', options: {} }), {
      code: 'TRUSS_ERR_ADDRESS_INVALID',
      message: /fd00::1 is IPv6/,
    });
    assert.equal(
      (await ipam.requestAddress({ poolId, address: '198.18.45.7', options: {} })).address,
      '198.18.45.7/24',
    );
  });
});

describe('echoed values are capped at 80 characters (L8)', () => {
  const big = 'x'.repeat(100_000);
  for (const generic of [
    { 'truss.bandwidth': big },
    { 'com.docker.network.bridge.name': big },
    { [`truss.${big}`]: '1' },
    { 'truss.egress.via': big },
    { 'truss.cluster': big },
    { 'com.docker.network.driver.mtu': big },
  ]) {
    it(`option ${Object.keys(generic)[0]?.slice(0, 30)}`, async () => {
      const { svc } = testService();
      const err = await svc.createNetwork(net({ generic })).then(
        () => assert.fail('accepted'),
        (e: Error) => e,
      );
      assert.ok(err.message.length < 400, `${err.message.length}: ${err.message.slice(0, 200)}`);
      assert.match(err.message, /\.\.\./);
    });
  }
  it('AddressSpace', async () => {
    const ipam = new IpamService({ store: new MemoryStore(), log: silentLogger, defaultPools: DEFAULT_POOLS });
    await assert.rejects(
      ipam.requestPool({ addressSpace: big, pool: '', subPool: '', options: {}, v6: false }),
      (e: Error) => e.message.length < 300,
    );
  });
});

describe("truss's own link names are not bridge names (L9)", () => {
  for (const name of ['trv517a9f1d7605', 'trc517a9f1d7605', 'trf517a9f1d7605', 'trb517a9f1d7605', 'trwg0', 'trvx0']) {
    it(name, async () => {
      const { svc } = testService();
      await assert.rejects(svc.createNetwork(net({ generic: { 'com.docker.network.bridge.name': name } })), {
        code: 'TRUSS_ERR_OPTION_INVALID',
        message: new RegExp(`bridge.name=${name}: names tr\\[bvcf\\]<12 hex>, trwg0 and trvx0 are truss's own`),
      });
    });
  }
});

describe('IPv6 text is canonical once decoded (L10)', () => {
  it('stores pools, gateways and aux addresses in canonical form', async () => {
    const input = decodeCreateNetwork({
      NetworkID: NID,
      IPv4Data: [{ Pool: '198.18.10.0/24', Gateway: '198.18.10.1/24' }],
      IPv6Data: [
        { Pool: 'FD00:0010:0000::/64', Gateway: 'FD00:10::0001/64', AuxAddresses: { a: 'FD00:10:0::00AA/64' } },
      ],
    });
    assert.deepEqual(input.ipv6, [
      { pool: 'fd00:10::/64', gateway: 'fd00:10::1/64', auxAddresses: { a: 'fd00:10::aa/64' } },
    ]);
    const { svc, repo } = testService();
    await svc.createNetwork(input);
    assert.equal((await repo.getNetwork(NID))?.ipv6[0]?.gateway, 'fd00:10::1/64');
  });
});
