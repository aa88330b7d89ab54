/**
 * Names across hosts (issue 16, docs/names.md), the user's way: three simulated hosts with their
 * own hostnames and their own /etc/resolv.conf naming an upstream DNS server on the underlay (a
 * stand-in answering ext.test); truss started through scripts/run.sh with only the documented
 * cluster flags (`--store etcd://... --etcd-insecure`), no --node-name, no --advertise-address;
 * it finds each host's dockerd at DOCKER_HOST like the docker CLI.
 *   1. DNS across hosts on `-o truss.dns=true`: ping NAME and TCP by name from each host to
 *      containers on the others; aliases and NAME.NETWORK; external names and Docker's own local
 *      names still resolve; a container's own --dns still answers.
 *   2. Following containers: a stopped container stops resolving; one recreated on another host
 *      resolves to its new address (times printed).
 *   3. DNS off on another cluster network: names of other hosts do not resolve there.
 *   4. AAAA on a dual-stack dns network.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { clusterFixture } from './harness/cluster.ts';
import { waitSynced } from './harness/cluster-state.ts';
import { containerIp, createClusterNetwork, createTrussNetwork, runContainer } from './harness/containers.ts';
import { printFigures } from './harness/figures.ts';
import type { Host } from './harness/host.ts';
import { REPO_ROOT } from './harness/paths.ts';
import { SINK_CMD, SINK_PORT, tcpConnect } from './harness/traffic.ts';
import { UNDERLAY_ADDRESS, UNDERLAY_NETNS } from './harness/underlay.ts';
import { waitFor } from './harness/wait.ts';

const BLUE = 'blue';
const BLUE_SUBNET = '198.18.64.0/20';
const RED = 'red';
const RED_SUBNET = '198.18.80.0/20';
const DUAL = 'dual';
/** what the stand-in upstream answers: an external name, and one only the container's own --dns knows */
const EXT = { name: 'ext.test', ip: '198.18.200.10' };
const CUSTOM = { name: 'custom.test', ip: '198.18.200.11' };
const CUSTOM_DNS = '198.18.255.253';

const cluster = clusterFixture({
  hosts: ['n1', 'n2', 'n3'],
  host: (_, i) => ({ hostname: `host${i + 1}`, resolvConf: `nameserver ${UNDERLAY_ADDRESS}\n` }),
  runScript: true,
});
const h = (n: 1 | 2 | 3): Host => cluster.host(`n${n}`);
const upstreams: ChildProcess[] = [];
const figures: string[] = [];

/** A stand-in DNS server on the underlay at `address` (dns-upstream.ts), ready when it says so. */
async function startUpstream(address: string, table: string): Promise<void> {
  const p = spawn(
    'nsenter',
    [
      `--net=/run/netns/${UNDERLAY_NETNS}`,
      process.execPath,
      `${REPO_ROOT}/e2e/harness/dns-upstream.ts`,
      address,
      table,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  upstreams.push(p);
  await new Promise<void>((resolve, reject) => {
    p.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
    p.on('exit', (code) => reject(new Error(`dns-upstream exited ${code}`)));
  });
}

/** `nslookup NAME` in a container: the addresses after the "Name:" line, [] when it did not resolve. */
async function lookup(host: Host, ctr: string, name: string, type = 'A'): Promise<string[]> {
  const r = await host.docker(['exec', ctr, 'nslookup', `-type=${type}`, name], 20_000);
  const out = r.stdout.split('\n');
  const at = out.findIndex((l) => /^Name:/.test(l.trim()));
  if (r.code !== 0 || at < 0) return [];
  return out
    .slice(at)
    .flatMap((l) => /^Address(?: \d+)?:\s*(\S+)/.exec(l.trim())?.[1] ?? [])
    .sort();
}

const resolvesTo = (host: Host, ctr: string, name: string, want: readonly string[], ms = 10_000, type = 'A') =>
  waitFor(async () => JSON.stringify(await lookup(host, ctr, name, type)) === JSON.stringify([...want].sort()), ms, {
    what: `${name} resolving to ${want.join(',') || 'nothing'} in ${ctr} on ${host.name}`,
    intervalMs: 100,
  });

async function ok(r: Promise<{ code: number; stderr: string; stdout: string }>, what: string): Promise<string> {
  const x = await r;
  assert.equal(x.code, 0, `${what}: ${x.stderr}${x.stdout}`);
  return x.stdout.trim();
}

describe('truss names across hosts (DNS)', { timeout: 10 * 60_000 }, () => {
  before(async () => {
    await cluster.start();
    await startUpstream(UNDERLAY_ADDRESS, `${EXT.name}=${EXT.ip}`);
    await ok(
      cluster.underlay.exec(['ip', 'addr', 'add', `${CUSTOM_DNS}/32`, 'dev', 'ulbr0']),
      'the --dns stand-in address',
    );
    await startUpstream(CUSTOM_DNS, `${CUSTOM.name}=${CUSTOM.ip}`);
    const etcd = `etcd://${cluster.underlay.etcd.endpoint}`;
    await Promise.all(
      cluster.hosts.map(async (x) => {
        await ok(x.exec(['ip', 'route', 'replace', 'default', 'via', UNDERLAY_ADDRESS]), 'default route');
        await x.startTruss({
          runScript: true,
          extraArgs: ['--store', etcd, '--etcd-insecure'],
          readyTimeoutMs: 120_000,
        });
      }),
    );
    for (const x of cluster.hosts) assert.ok(await waitSynced(x, 'cluster'), `${x.name} synced`);
    for (const x of cluster.hosts) {
      await ok(createClusterNetwork(x, BLUE, BLUE_SUBNET, ['-o', 'truss.dns=true']), `blue on ${x.name}`);
    }
    for (const x of [h(1), h(2)]) await ok(createClusterNetwork(x, RED, RED_SUBNET), `red on ${x.name}`);
  });

  after(async () => {
    for (const p of upstreams) p.kill();
    await cluster.stop();
    printFigures(figures);
  });

  it('1. resolves containers on other hosts by name, alias and NAME.NETWORK; external and local names still resolve', async () => {
    await ok(
      h(1).docker([
        'run',
        '-d',
        '--name',
        'db',
        '--network',
        BLUE,
        '--network-alias',
        'database',
        ...image(SINK_CMD()),
      ]),
      'db on host 1',
    );
    const dbIp = await containerIp(h(1), 'db', BLUE);
    for (const n of [2, 3] as const) {
      await runContainer(h(n), { name: `app${n}`, network: BLUE });
    }
    const t0 = performance.now();
    await resolvesTo(h(2), 'app2', 'db', [dbIp]).catch(async (e) => {
      console.log('DEBUG nft', (await h(2).exec(['nft', 'list', 'table', 'inet', 'truss_dns'])).stdout);
      console.log('DEBUG ss', (await h(2).exec(['ss', '-ulnp'])).stdout);
      console.log('DEBUG nslookup', JSON.stringify(await h(2).docker(['exec', 'app2', 'nslookup', 'db'])));
      console.log('DEBUG ext', JSON.stringify(await h(2).docker(['exec', 'app2', 'nslookup', EXT.name])));
      console.log('DEBUG status', (await h(2).truss.cli(['status', '--json'])).stdout.slice(0, 3000));
      console.log(
        'DEBUG log',
        h(2)
          .truss.log()
          .split('\n')
          .filter((l) => /names|dns|docker/i.test(l))
          .slice(-30)
          .join('\n'),
      );
      throw e;
    });
    figures.push(`first cross-host answer after start: ${Math.round(performance.now() - t0)} ms`);
    await resolvesTo(h(3), 'app3', 'database', [dbIp]);
    await resolvesTo(h(3), 'app3', 'db.blue', [dbIp]);
    await resolvesTo(h(3), 'app3', 'DB.Blue', [dbIp]);
    // ping and TCP by name, the way users write it
    await ok(h(2).docker(['exec', 'app2', 'ping', '-c', '1', '-W', '5', 'db']), 'ping db from host 2');
    const tcp = await tcpConnect(h(3), 'app3', 'db', SINK_PORT);
    assert.ok(tcp.ok, `TCP to db by name from host 3: ${tcp.output}`);
    // the other way: host 1 resolves a container of host 2
    const app2Ip = await containerIp(h(2), 'app2', BLUE);
    await resolvesTo(h(1), 'db', 'app2', [app2Ip]);
    // external names: relayed to the host's upstream, unchanged
    await resolvesTo(h(2), 'app2', EXT.name, [EXT.ip]);
    // Docker's own local names: a second container on host 2
    await runContainer(h(2), { name: 'local2', network: BLUE });
    await resolvesTo(h(2), 'app2', 'local2', [await containerIp(h(2), 'local2', BLUE)]);
    // a container with its own --dns: that server still answers, and truss names too
    await ok(
      h(2).docker([
        'run',
        '-d',
        '--name',
        'own-dns',
        '--network',
        BLUE,
        '--dns',
        CUSTOM_DNS,
        ...image(['sleep', '3600']),
      ]),
      'own-dns',
    );
    await resolvesTo(h(2), 'own-dns', CUSTOM.name, [CUSTOM.ip]);
    await resolvesTo(h(2), 'own-dns', 'db', [dbIp]);
  });

  it('2. follows containers: a stopped one stops resolving, one recreated on another host resolves to its new address', async () => {
    const dbIp = await containerIp(h(1), 'db', BLUE);
    await ok(h(1).docker(['rm', '-f', 'db']), 'rm db');
    const t0 = performance.now();
    await resolvesTo(h(2), 'app2', 'db', []);
    figures.push(`stopped container gone from another host's answers: ${Math.round(performance.now() - t0)} ms`);
    await ok(h(3).docker(['run', '-d', '--name', 'db', '--network', BLUE, ...image(SINK_CMD())]), 'db on host 3');
    const newIp = await containerIp(h(3), 'db', BLUE);
    assert.notEqual(newIp, dbIp, 'a new address on another host');
    const t1 = performance.now();
    await resolvesTo(h(2), 'app2', 'db', [newIp]);
    figures.push(`container recreated on another host resolves: ${Math.round(performance.now() - t1)} ms`);
  });

  it('3. DNS off on another network: names of other hosts do not resolve there', async () => {
    await runContainer(h(1), { name: 'r1', network: RED });
    await runContainer(h(2), { name: 'r2', network: RED });
    const r1 = await containerIp(h(1), 'r1', RED);
    assert.ok(r1, 'r1 has an address');
    assert.deepEqual(await lookup(h(2), 'r2', 'r1'), [], 'r1 must not resolve on a network without truss.dns');
    // the containers still reach each other by address: only names are off
    await ok(h(2).docker(['exec', 'r2', 'ping', '-c', '1', '-W', '5', r1]), 'ping r1 by address');
  });

  it('4. AAAA on a dual-stack dns network', async () => {
    await ok(
      createTrussNetwork(h(1), [
        '-o',
        'truss.dns=true',
        '--ipv6',
        '--subnet',
        '198.18.112.0/24',
        '--subnet',
        'fd00:112::/64',
        DUAL,
      ]),
      'dual',
    );
    await runContainer(h(1), { name: 'six', network: DUAL });
    await runContainer(h(1), { name: 'asker', network: DUAL });
    const six6 = await ok(
      h(1).docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${DUAL}").GlobalIPv6Address}}`, 'six']),
      'six v6',
    );
    // NAME.NETWORK is truss's (Docker's embedded DNS does not answer it)
    await resolvesTo(h(1), 'asker', `six.${DUAL}`, [six6], 10_000, 'AAAA');
  });
});

/** `docker run` arguments after the options: the test image and its command. */
function image(cmd: readonly string[]): string[] {
  return ['truss-e2e-busybox:1', ...cmd];
}
