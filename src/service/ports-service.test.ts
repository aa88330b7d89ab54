/**
 * Published ports through the network service, with fixture-shaped requests for both
 * generations of the protocol (Docker <= 28: ProgramExternalConnectivity with the sandbox's
 * portmap on every gateway join; Docker 29: only on gateway-state changes, with the Join
 * options and `no_proxy_6to4`, and Revoke on leave), over the fake dataplane.
 */

import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { CreateNetworkInput } from '../core/contracts.ts';
import type { EndpointId } from '../core/ids.ts';
import { NO_PROXY_6TO4_OPTION, PORTMAP_OPTION } from '../core/portmap.ts';
import { ipamData, networkInput } from '../core/testing.ts';
import type { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import { KernelError } from '../dataplane/linux/exec.ts';
import { stopTestServices, testEid, testId, testNid, testService } from './testing.ts';

const _id = testId;
const NID = testNid('a');
const NID_INTERNAL = testNid('c');
const EID = testEid('b');
const EID2 = testEid('b', 1);
const OWNER = 'ep_0000bbbbbbbb';

// as dockerd 20.10 / 28.5 send them (test/fixtures/dockerd-*.jsonl)
const portmap = (hostPort: number, proto = 6, hostIp = '') => ({
  'com.docker.network.endpoint.exposedports': [{ Proto: proto, Port: 80 }],
  [PORTMAP_OPTION]: [{ Proto: proto, IP: '', Port: 80, HostIP: hostIp, HostPort: hostPort, HostPortEnd: hostPort }],
});

const netInput = (over: Partial<CreateNetworkInput> = {}): CreateNetworkInput =>
  networkInput({ networkId: NID, ipv6: [ipamData('fd00:1::/64')], ...over });

async function setup() {
  const { dp, repo, svc, reconciler } = testService();
  await svc.createNetwork(netInput());
  const attach = async (eid: EndpointId, n: number, options: Record<string, unknown> = portmap(8080)) => {
    await svc.createEndpoint({
      networkId: NID,
      endpointId: eid,
      address: `198.18.1.${n}/24`,
      addressIpv6: `fd00:1::${n}/64`,
      options,
    });
    await svc.join({ networkId: NID, endpointId: eid, sandboxKey: `/var/run/docker/netns/${n}`, options });
  };
  // the DNAT elements (each publishing endpoint also has one hairpin SNAT element per family)
  const elements = () =>
    (dp.portsTable?.elements ?? [])
      .filter((e) => e.map.startsWith('dnat'))
      .map((e) => `${e.map} ${e.key} : ${e.value} ${e.owner}`)
      .sort();
  return { dp, repo, svc, reconciler, attach, elements };
}
afterEach(stopTestServices);

describe('published ports (NetworkService)', () => {
  it('Docker <= 28: Program publishes on both families, a repeat changes nothing, Revoke and Leave unpublish', async () => {
    const { dp, svc, attach, elements } = await setup();
    await attach(EID, 2);
    assert.equal(dp.portsTable, undefined, 'Join alone publishes nothing');
    await svc.programExternalConnectivity(NID, EID, portmap(18081));
    assert.deepEqual(elements(), [
      `dnat4_any tcp . 18081 : 198.18.1.2 . 80 ${OWNER}`,
      `dnat6_any tcp . 18081 : fd00:1::2 . 80 ${OWNER}`,
    ]);
    assert.deepEqual(
      (dp.portsTable as FakeDataplane['portsTable'])?.elements
        .filter((e) => e.map.startsWith('hairpin'))
        .map((e) => `${e.key} : ${e.value}`),
      ['198.18.1.2 . 198.18.1.2 : 198.18.1.1', 'fd00:1::2 . fd00:1::2 : fd00:1::1'],
    );
    const ensures = dp.calls.filter((c) => c.method === 'ensurePorts').length;
    await svc.programExternalConnectivity(NID, EID, portmap(18081));
    assert.equal(dp.calls.filter((c) => c.method === 'ensurePorts').length, ensures, 'a repeat is a no-op');
    assert.deepEqual(await svc.endpointOperInfo(NID, EID), {
      'truss.veth': 'trv0000bbbbbbbb',
      'truss.mac': '02:5e:c6:12:01:02',
      'truss.ports': ['0.0.0.0:18081/tcp', '[::]:18081/tcp'],
    });
    // another endpoint of the sandbox became the gateway: Revoke, then Program again when it comes back
    await svc.revokeExternalConnectivity(NID, EID);
    assert.equal(dp.portsTable, undefined, 'the table goes with the last published port');
    await svc.programExternalConnectivity(NID, EID, portmap(18081));
    assert.equal(elements().length, 2);
    // <= 28 may leave without a Revoke: Leave unpublishes too
    await svc.leave(NID, EID);
    assert.equal(dp.portsTable, undefined);
  });

  it('Docker 29: Program with the Join options (no_proxy_6to4: IPv4 only), Revoke on leave; both idempotent', async () => {
    const { dp, svc, attach, elements } = await setup();
    const joinOptions = portmap(8080, 17);
    await attach(EID, 2, joinOptions);
    await svc.programExternalConnectivity(NID, EID, joinOptions);
    assert.deepEqual(elements(), [
      `dnat4_any udp . 8080 : 198.18.1.2 . 80 ${OWNER}`,
      `dnat6_any udp . 8080 : fd00:1::2 . 80 ${OWNER}`,
    ]);
    // another endpoint became the IPv6 gateway: this one is called again with no_proxy_6to4
    await svc.programExternalConnectivity(NID, EID, { ...joinOptions, [NO_PROXY_6TO4_OPTION]: true });
    assert.deepEqual(elements(), [`dnat4_any udp . 8080 : 198.18.1.2 . 80 ${OWNER}`]);
    await svc.revokeExternalConnectivity(NID, EID);
    await svc.revokeExternalConnectivity(NID, EID);
    await svc.leave(NID, EID);
    await svc.leave(NID, EID);
    assert.equal(dp.portsTable, undefined);
    // unknown endpoints: Revoke succeeds, Program is refused
    await svc.revokeExternalConnectivity(NID, testEid('d'));
    await assert.rejects(svc.programExternalConnectivity(NID, testEid('d'), portmap(1)), {
      code: 'TRUSS_ERR_ENDPOINT_NOT_FOUND',
      message: /not known to truss/,
    });
  });

  it('a host port another container publishes is refused clearly, and nothing changes', async () => {
    const { repo, svc, attach, elements } = await setup();
    await attach(EID, 2);
    await attach(EID2, 3);
    await svc.programExternalConnectivity(NID, EID, portmap(8080));
    await assert.rejects(svc.programExternalConnectivity(NID, EID2, portmap(8080)), {
      code: 'TRUSS_ERR_PORT_IN_USE',
      message: /0\.0\.0\.0:8080\/tcp is already published/,
    });
    assert.equal((await repo.getEndpoint(NID, EID2))?.published, undefined);
    assert.equal(elements().length, 2);
    // once the first is gone the port is free
    await svc.revokeExternalConnectivity(NID, EID);
    await svc.programExternalConnectivity(NID, EID2, portmap(8080));
    assert.ok(elements().every((e) => e.endsWith('ep_0001bbbbbbbb')));
  });

  it('HostPort 0 takes a free ephemeral port, kept across repeats', async () => {
    const { svc, attach, repo } = await setup();
    await attach(EID, 2);
    await attach(EID2, 3);
    const eph = { [PORTMAP_OPTION]: [{ Proto: 6, Port: 80, HostIP: '0.0.0.0', HostPort: 0, HostPortEnd: 0 }] };
    await svc.programExternalConnectivity(NID, EID, eph);
    await svc.programExternalConnectivity(NID, EID2, eph);
    await svc.programExternalConnectivity(NID, EID, eph);
    assert.deepEqual((await repo.getEndpoint(NID, EID))?.published?.ports, [
      { family: 4, proto: 'tcp', hostPort: 32768, port: 80 },
    ]);
    assert.deepEqual(await svc.endpointOperInfo(NID, EID2).then((i) => i['truss.ports']), ['0.0.0.0:32769/tcp']);
  });

  it('refuses a malformed portmap before anything is stored; internal networks publish nothing', async () => {
    const { dp, svc, attach, repo } = await setup();
    await attach(EID, 2);
    await assert.rejects(
      svc.programExternalConnectivity(NID, EID, { [PORTMAP_OPTION]: [{ Proto: 1, Port: 80, HostPort: 1 }] }),
      { code: 'TRUSS_ERR_OPTION_INVALID' },
    );
    assert.equal((await repo.getEndpoint(NID, EID))?.published, undefined);
    await svc.createNetwork(
      netInput({
        networkId: NID_INTERNAL,
        internal: true,
        ipv4: [{ pool: '198.18.2.0/24', auxAddresses: {} }],
        ipv6: [],
      }),
    );
    await svc.createEndpoint({ networkId: NID_INTERNAL, endpointId: EID2, address: '198.18.2.2/24', options: {} });
    await svc.join({ networkId: NID_INTERNAL, endpointId: EID2, sandboxKey: '/var/run/docker/netns/x', options: {} });
    await svc.programExternalConnectivity(NID_INTERNAL, EID2, portmap(8080));
    assert.equal(dp.portsTable, undefined);
  });

  it('a full pass prunes elements of endpoints truss no longer publishes, then the table itself', async () => {
    const { dp, svc, attach, reconciler, elements } = await setup();
    await attach(EID, 2);
    await svc.programExternalConnectivity(NID, EID, portmap(8080));
    // left by an earlier run: an endpoint that is gone
    dp.portsTable?.elements.push({
      map: 'dnat4_any',
      key: 'tcp . 9999',
      value: '198.18.1.77 . 80',
      owner: 'ep_777777777777',
    });
    await reconciler.reconcileNow();
    assert.deepEqual(elements(), [
      `dnat4_any tcp . 8080 : 198.18.1.2 . 80 ${OWNER}`,
      `dnat6_any tcp . 8080 : fd00:1::2 . 80 ${OWNER}`,
    ]);
    await svc.leave(NID, EID);
    dp.portsTable = { elements: [], bridges: new Set(['trb0000aaaaaaaa']) }; // an empty leftover table
    await reconciler.reconcileNow();
    assert.equal(dp.portsTable, undefined);
  });

  it('a kernel failure fails Program and removes the intent; a full pass repairs drift', async () => {
    const { dp, svc, attach, repo, reconciler, elements } = await setup();
    await attach(EID, 2);
    dp.failNext('ensurePorts', new KernelError('EPERM', ['nft'], 1, 'Operation not permitted'));
    await assert.rejects(svc.programExternalConnectivity(NID, EID, portmap(8080)), /Operation not permitted/);
    assert.equal((await repo.getEndpoint(NID, EID))?.published, undefined);
    await svc.programExternalConnectivity(NID, EID, portmap(8080));
    dp.portsTable = undefined; // someone deleted the table
    await reconciler.reconcileNow();
    assert.equal(elements().length, 2);
    assert.deepEqual(await reconciler.check(), []);
  });
});
