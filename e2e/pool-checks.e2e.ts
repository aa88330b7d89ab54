/**
 * The network driver's pool checks with Docker's own default IPAM (security review M3):
 * `docker network create -d truss` without `--ipam-driver truss` hands truss whatever Docker's
 * IPAM allocated. Ordinary pools work end to end; a link-local pool is refused with a message
 * that names the fix, and leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inCidr } from './harness/cidr.ts';
import { containerIp, removeContainers, runContainer } from './harness/containers.ts';
import { type Host, startHost } from './harness/host.ts';
import { assertNoTrussLeftovers } from './harness/leftovers.ts';
import { ping, SINK_CMD, tcpConnect } from './harness/traffic.ts';
import { waitFor } from './harness/wait.ts';

let host: Host;

describe("truss networks on Docker's default IPAM", { timeout: 10 * 60_000 }, () => {
  before(async () => {
    host = await startHost('pools');
    await host.startTruss({ extraArgs: ['--resync-seconds', '3600'] });
  });

  after(async () => {
    await host?.stop();
  });

  it('a --subnet from the default IPAM works: addresses, gateway, traffic', { timeout: 180_000 }, async () => {
    const r = await host.docker(['network', 'create', '-d', 'truss', '--subnet', '198.18.60.0/24', 'dflt']);
    assert.equal(r.code, 0, r.stderr);
    const driver = (await host.docker(['network', 'inspect', '-f', '{{.IPAM.Driver}}', 'dflt'])).stdout.trim();
    assert.equal(driver, 'default');
    await Promise.all(['p1', 'p2'].map((name) => runContainer(host, { name, network: 'dflt', cmd: SINK_CMD() })));
    const [ip1, ip2] = await Promise.all(['p1', 'p2'].map((c) => containerIp(host, c, 'dflt')));
    for (const ip of [ip1, ip2]) assert.ok(ip && inCidr(ip, '198.18.60.0/24') && ip !== '198.18.60.1', `${ip}`);
    assert.ok(await ping(host, 'p1', '198.18.60.1'), 'the gateway answers');
    const t = await tcpConnect(host, 'p1', ip2 as string);
    assert.ok(t.ok, t.output);
  });

  it('a link-local pool is refused with a message naming the fix, and leaves nothing', async () => {
    const r = await host.docker(['network', 'create', '-d', 'truss', '--subnet', '169.254.0.0/16', 'll']);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /IPv4 subnet 169\.254\.0\.0\/16 overlaps the link-local range 169\.254\.0\.0\/16: use a private range/,
    );
    const ls = (await host.docker(['network', 'ls', '--format', '{{.Name}}'])).stdout.split('\n');
    assert.ok(!ls.includes('ll'), 'Docker did not keep the network');
  });

  it('removing everything leaves nothing of truss', { timeout: 180_000 }, async () => {
    const ids = (await host.docker(['ps', '-aq'])).stdout.split(/\s+/).filter(Boolean);
    await removeContainers(host, ids);
    assert.equal((await host.docker(['network', 'rm', 'dflt'])).code, 0);
    await waitFor(() => assertNoTrussLeftovers(host).then(() => true), 15_000, { what: 'no truss leftovers' });
  });
});
