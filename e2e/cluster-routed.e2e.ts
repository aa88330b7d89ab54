/**
 * Routed mode (-o truss.mode=routed) on cluster networks: two simulated hosts (one dockerd and one
 * truss each) on one underlay with one etcd, as in cluster.e2e.ts. `rg` is carried by WireGuard
 * (trwg0), `rv` by VXLAN (trvx0, truss.encrypt=false), both routed: no bridge on either host, the
 * container's veth routed straight into the tunnel. TCP and ping across hosts both ways on each,
 * the two networks isolated from each other across hosts too, and nothing left at the end.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { clusterFixture } from './harness/cluster.ts';
import { containerIp, createClusterNetwork, runContainer } from './harness/containers.ts';
import type { Host } from './harness/host.ts';
import { assertRemovedEverything, waitNoTrussLeftovers } from './harness/leftovers.ts';
import { assertTcp, ping, SINK_CMD, tcpConnect } from './harness/traffic.ts';

const cluster = clusterFixture({ hosts: ['q1', 'q2'], truss: {} });
const NETS = [
  { name: 'rg', subnet: '198.18.80.0/20', opts: ['-o', 'truss.mode=routed'] },
  { name: 'rv', subnet: '198.18.112.0/20', opts: ['-o', 'truss.mode=routed', '-o', 'truss.encrypt=false'] },
] as const;
const ctr = (net: string, i: number) => `${net}${i}`;

describe('routed mode on cluster networks (WireGuard and VXLAN) across two hosts', { timeout: 5 * 60_000 }, () => {
  let hosts: Host[] = [];
  before(async () => {
    await cluster.start();
    hosts = [cluster.host('q1'), cluster.host('q2')];
    for (const n of NETS) {
      for (const h of hosts) {
        const r = await createClusterNetwork(h, n.name, n.subnet, n.opts);
        assert.equal(r.code, 0, `docker network create ${n.name} on ${h.name}: ${r.stderr}\n${h.truss.logTail()}`);
      }
    }
    await Promise.all(
      NETS.flatMap((n) =>
        hosts.map((h, i) => runContainer(h, { name: ctr(n.name, i + 1), network: n.name, cmd: SINK_CMD() })),
      ),
    );
  });

  after(() => cluster.stop());

  for (const n of NETS) {
    it(`${n.name} (${n.name === 'rg' ? 'WireGuard' : 'VXLAN'}): TCP and ping across the hosts, both ways; no bridge`, async () => {
      const [a, b] = hosts as [Host, Host];
      const ipA = await containerIp(a, ctr(n.name, 1), n.name);
      const ipB = await containerIp(b, ctr(n.name, 2), n.name);
      await assertTcp(a, ctr(n.name, 1), b, ctr(n.name, 2), ipB);
      await assertTcp(b, ctr(n.name, 2), a, ctr(n.name, 1), ipA);
      assert.equal(await ping(a, ctr(n.name, 1), ipB), true, 'ping across');
      for (const h of hosts) {
        const r = await h.exec(['ip', '-d', 'link', 'show', 'type', 'bridge']);
        assert.doesNotMatch(r.stdout, /trb[0-9a-f]{12}/, `${h.name}: a routed network has no bridge`);
      }
    });
  }

  it('the two networks stay apart across hosts', async () => {
    const [a, b] = hosts as [Host, Host];
    const ipRv = await containerIp(b, ctr('rv', 2), 'rv');
    const ipRg = await containerIp(b, ctr('rg', 2), 'rg');
    assert.equal((await tcpConnect(a, ctr('rg', 1), ipRv, undefined, 2)).ok, false, 'rg -> rv on the other host');
    assert.equal((await tcpConnect(a, ctr('rv', 1), ipRg, undefined, 2)).ok, false, 'rv -> rg on the other host');
  });

  it('everything removed on every host leaves nothing of truss', { timeout: 120_000 }, async () => {
    await assertRemovedEverything(cluster.hosts);
    await waitNoTrussLeftovers(cluster.hosts);
  });
});
