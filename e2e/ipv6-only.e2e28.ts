/**
 * IPv6-only truss networks end to end (`docker network create --ipv4=false --ipv6`, Docker ≥ 28):
 * one simulated host ("v6o", its own dockerd and truss). dockerd sends CreateNetwork with an
 * empty IPv4Data and asks the IPAM driver for an IPv6 pool only; the containers get no IPv4
 * address, reach each other and their gateway over IPv6, and removing everything leaves nothing.
 * Only dockerd 28 and later have --ipv4=false (Debian 12's 20.10 has not): the file is named
 * *.e2e28.ts so that only scripts/test.sh's e2e28 step runs it, and it refuses to run against an
 * older dockerd instead of passing vacuously.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { removeContainers, runContainer } from './harness/containers.ts';
import { run } from './harness/exec.ts';
import { type Host, startHost } from './harness/host.ts';
import { assertNoTrussLeftovers } from './harness/leftovers.ts';
import { DOCKERD, DOCKERD_PATH } from './harness/paths.ts';
import { ping, SINK_CMD, serverSaw, tcpConnect } from './harness/traffic.ts';

const version = (await run([DOCKERD, '--version'], { env: { ...process.env, PATH: DOCKERD_PATH } })).stdout;
const major = Number(/version (\d+)\./.exec(version)?.[1] ?? 0);
if (major < 28) {
  throw new Error(
    `dockerd ${version.trim() || DOCKERD} has no --ipv4=false (Docker 28 added it): run with TRUSS_E2E_DOCKERD naming dockerd 28 or later (scripts/test.sh e2e28)`,
  );
}

const SUBNET = 'fd00:78::/64';
let host: Host;

const v6Of = async (c: string, net: string): Promise<string> => {
  const fmt = `{{with index .NetworkSettings.Networks "${net}"}}{{.IPAddress}}/{{.GlobalIPv6Address}}{{end}}`;
  const r = await host.docker(['inspect', '-f', fmt, c]);
  assert.equal(r.code, 0, r.stderr);
  const [v4, v6] = r.stdout.trim().split('/');
  assert.equal(v4, '', `${c} must have no IPv4 address on ${net}`);
  return v6 ?? '';
};

describe('truss IPv6-only networks against a real dockerd', { timeout: 5 * 60_000 }, () => {
  before(async () => {
    host = await startHost('v6o');
    await host.startTruss({ debug: true, defaultPools: '198.18.176.0/20:24,fd00:79::/48:64' });
  });

  after(async () => {
    await host?.stop();
  });

  it('1. --ipv4=false --ipv6 --subnet: a v6-only network; containers talk over IPv6 and have no IPv4', async () => {
    const r = await host.docker([
      'network',
      'create',
      '-d',
      'truss',
      '--ipam-driver',
      'truss',
      '--ipv4=false',
      '--ipv6',
      '--subnet',
      SUBNET,
      'v6o',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const inspect = await host.docker(['network', 'inspect', 'v6o', '--format', '{{.EnableIPv4}} {{.EnableIPv6}}']);
    assert.equal(inspect.stdout.trim(), 'false true');
    await runContainer(host, { name: 'srv', network: 'v6o', cmd: SINK_CMD() });
    await runContainer(host, { name: 'cli', network: 'v6o' });
    const srv = await v6Of('srv', 'v6o');
    assert.match(srv, /^fd00:78::/);
    await v6Of('cli', 'v6o');
    const inet = await host.docker(['exec', 'cli', 'ip', '-4', 'addr', 'show', 'dev', 'eth0']);
    assert.doesNotMatch(inet.stdout, /inet /, `no IPv4 on eth0: ${inet.stdout}`);
    assert.ok(await ping(host, 'cli', srv), `cli pings srv ${srv}`);
    assert.ok(await ping(host, 'cli', 'fd00:78::1'), 'cli pings its gateway fd00:78::1');
    const tcp = await tcpConnect(host, 'cli', srv);
    assert.ok(tcp.ok, `TCP over IPv6 to ${srv}: ${tcp.output}`);
    assert.ok(await serverSaw(host, 'srv', tcp.token));
  });

  it('2. --ipv4=false --ipv6 without --subnet: the v6 pool comes from truss default pools', async () => {
    const r = await host.docker([
      'network',
      'create',
      '-d',
      'truss',
      '--ipam-driver',
      'truss',
      '--ipv4=false',
      '--ipv6',
      'v6d',
    ]);
    assert.equal(r.code, 0, r.stderr);
    await runContainer(host, { name: 'd1', network: 'v6d' });
    assert.match(await v6Of('d1', 'v6d'), /^fd00:79:/);
    const status = await host.truss.cli(['status', '--state-dir', host.stateDir, '--json']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /fd00:79:/);
  });

  it('3. removing the containers and networks leaves nothing of truss', async () => {
    await removeContainers(host, ['srv', 'cli', 'd1']);
    for (const n of ['v6o', 'v6d']) {
      const r = await host.docker(['network', 'rm', n]);
      assert.equal(r.code, 0, r.stderr);
    }
    await assertNoTrussLeftovers(host);
  });
});
