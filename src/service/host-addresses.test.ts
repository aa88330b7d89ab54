import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterIpam } from '../cluster/cluster-ipam.ts';
import { SwitchableStore } from '../cluster/testing.ts';
import type { ClusterView } from '../core/cluster/desired.ts';
import { HOST_OWNER } from '../core/cluster/host-address.ts';
import { type Ip, type Prefix, parseIp, parsePrefix } from '../core/ip.ts';
import { addrKey } from '../core/ipam/keys.ts';
import { ipamData, networkSpec } from '../core/testing.ts';
import { createLogger, silentLogger } from '../obs/logger.ts';
import { MemoryStore } from '../store/memory.ts';
import { HostAddresses } from './host-addresses.ts';
import { IpamService } from './ipam-service.ts';

const SUBNET = '198.18.64.0/20';
const SUBNET6 = 'fd00:64::/64';
const ip = (s: string): Ip => parseIp(s) as Ip;

async function setup() {
  const shared = new SwitchableStore(new MemoryStore());
  const cluster = new ClusterIpam({ store: shared, node: 'a', log: silentLogger });
  const local = new MemoryStore();
  const ipam = new IpamService({ store: local, log: silentLogger, defaultPools: [] });
  const pools: Record<string, string> = {};
  for (const [pool, v6] of [
    [SUBNET, false],
    [SUBNET6, true],
  ] as const) {
    pools[pool] = (await ipam.requestPool({ addressSpace: 'TrussLocal', pool, subPool: '', options: {}, v6 })).poolId;
  }
  await cluster.reserveShared('blue', parsePrefix(SUBNET) as Prefix, ip('198.18.64.1'));
  const warnings: string[] = [];
  const log = createLogger('warn', (line) => warnings.push((JSON.parse(line) as { msg: string }).msg));
  const host = new HostAddresses({ cluster, ipam, log });
  const record = async (pool: string, address: string) =>
    JSON.parse((await local.get(addrKey(pools[pool] as string, address)))?.value ?? 'null');
  const view = (): ClusterView => ({ self: 'a', nodes: [], members: [], blocks: [], hostClaims: [] });
  return { shared, cluster, ipam, host, record, warnings, view, pools };
}

describe('HostAddresses', () => {
  it('claims one address per pool in etcd and records it locally (kind host); again = the same', async () => {
    const t = await setup();
    assert.deepEqual(await t.host.ensure('blue', [SUBNET, SUBNET6]), ['198.18.64.2', 'fd00:64::1']);
    assert.deepEqual(await t.record(SUBNET, '198.18.64.2'), {
      poolId: t.pools[SUBNET],
      address: '198.18.64.2',
      kind: 'host',
      owner: HOST_OWNER,
    });
    assert.equal((await t.record(SUBNET6, 'fd00:64::1'))?.kind, 'host');
    assert.deepEqual(await t.host.ensure('blue', [SUBNET, SUBNET6]), ['198.18.64.2', 'fd00:64::1']);
    // a container of the network never gets it: its allocation comes after it, locally too
    assert.equal((await t.ipam.addressesByPool()).get(SUBNET)?.has('198.18.64.2'), true);
  });

  it('a pool truss does not hold (another IPAM driver) gets nothing: no claim beside addresses not claimed', async () => {
    const t = await setup();
    assert.deepEqual(await t.host.ensure('blue', ['198.18.80.0/20']), []);
  });

  it('join never fails the create: the failure is logged once, and a repair claims it later', async () => {
    const t = await setup();
    t.shared.down = true;
    const net = networkSpec({ cluster: { name: 'blue', encrypt: true }, ipv4: [ipamData(SUBNET)] });
    await t.host.join(net);
    await t.host.repair([net], t.view()); // same error: not logged again
    assert.equal(t.warnings.length, 1);
    t.shared.down = false;
    await t.host.repair([net], t.view());
    assert.equal((await t.record(SUBNET, '198.18.64.2'))?.kind, 'host');
  });

  it('repair: every network on the first pass, then only those whose claim the view lacks', async () => {
    const t = await setup();
    const net = networkSpec({ cluster: { name: 'blue', encrypt: true }, ipv4: [ipamData(SUBNET)] });
    let claims = 0;
    const counting = new HostAddresses({
      cluster: {
        claimHost: (c, s) => {
          claims++;
          return t.cluster.claimHost(c, s);
        },
      },
      ipam: t.ipam,
      log: silentLogger,
    });
    const claimed: ClusterView = {
      ...t.view(),
      hostClaims: [{ cluster: 'blue', address: '198.18.64.2', node: 'a', owner: HOST_OWNER }],
    };
    await counting.repair([net], claimed);
    assert.equal(claims, 1, 'the first pass records every claim locally again');
    await counting.repair([net], claimed);
    assert.equal(claims, 1, 'then nothing while the view has it');
    await counting.repair([net], t.view());
    assert.equal(claims, 2, 'a claim the view lacks is looked for again');
  });
});

describe('IpamService.recordHostAddress', () => {
  it('replaces an earlier host address of the pool; refuses an address another holder has', async () => {
    const t = await setup();
    assert.equal(await t.ipam.recordHostAddress(SUBNET, ip('198.18.64.9')), true);
    assert.equal(await t.ipam.recordHostAddress(SUBNET, ip('198.18.64.2')), true);
    assert.equal(await t.record(SUBNET, '198.18.64.9'), null, 'the earlier one is gone');
    assert.equal((await t.record(SUBNET, '198.18.64.2'))?.kind, 'host');
    await t.ipam.requestAddress({ poolId: t.pools[SUBNET] as string, address: '198.18.64.20', options: {} });
    await assert.rejects(t.ipam.recordHostAddress(SUBNET, ip('198.18.64.20')), {
      code: 'TRUSS_ERR_ADDRESS_IN_USE',
    });
    assert.equal(await t.ipam.recordHostAddress('198.18.80.0/20', ip('198.18.80.2')), false, 'no such pool');
  });
});
