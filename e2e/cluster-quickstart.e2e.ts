/**
 * docs/cluster.md's "Quick start: two hosts, etcd on the first", to the letter. The commands are
 * read from the doc's code block (a changed doc changes the test), HOST1 replaced by host 1's
 * underlay address; the hosts have their own hostnames and a default route via the underlay,
 * as real hosts have.
 *   - etcd runs in host 1's namespace configured only by environment variables: what Debian's
 *     etcd.service sets (ETCD_NAME=%H, ETCD_DATA_DIR, the latter under the test's dir) plus the
 *     doc's ETCD_* lines for /etc/default/etcd. No flag.
 *   - truss starts through scripts/run.sh itself (prepare.sh, then the bundle), with the doc's
 *     flags and nothing else: no --node-name, --advertise-address, --state-dir or --socket (its
 *     default /var/lib/truss is each host's own: a bind mount in the host's mount namespace).
 *   1. host 1 without a default route refuses to start with the documented message (exit 1);
 *   2. host 2 without --etcd-insecure is refused with the documented message (exit 1);
 *   3. both run as documented, the documented `docker network create` on both, TCP and ping
 *      both ways between containers, and `truss status` on host 1 lists both hosts.
 * e2e/cluster-identity.e2e.ts covers same-hostname hosts, GC and restarts with a co-located etcd.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { clusterFixture } from './harness/cluster.ts';
import { nodeIdOf, waitSynced } from './harness/cluster-state.ts';
import { containerIp, runContainer } from './harness/containers.ts';
import type { Host } from './harness/host.ts';
import { REPO_ROOT } from './harness/paths.ts';
import { assertTcp, ping, SINK_CMD } from './harness/traffic.ts';
import { type Etcd, etcdIn, UNDERLAY_ADDRESS } from './harness/underlay.ts';
import { waitFor } from './harness/wait.ts';

const DOC = readFileSync(join(REPO_ROOT, 'docs', 'cluster.md'), 'utf8');
const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim();

/** The quick start as the doc gives it: its sh block, and the inline messages it promises. */
function quickStart() {
  const section = DOC.slice(DOC.indexOf('## Quick start: two hosts, etcd on the first'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block, 'docs/cluster.md: the quick start has a sh block');
  const lines = block.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim());
  const runs = lines.filter((l) => l.startsWith('sudo scripts/run.sh '));
  assert.equal(runs.length, 2, `two scripts/run.sh lines (host 1, host 2):\n${block}`);
  const args = (l: string) => l.slice('sudo scripts/run.sh '.length).split(/\s+/);
  const create = lines.find((l) => l.startsWith('docker network create '));
  assert.ok(create, 'a docker network create line');
  const etcdEnv: Record<string, string> = Object.fromEntries(
    [...block.matchAll(/'(ETCD_[A-Z_]+)=([^'\s]+)'/g)].map((m) => [m[1], m[2]]),
  );
  assert.ok(block.includes('sudo tee -a /etc/default/etcd'), 'the ETCD_* lines go to /etc/default/etcd');
  const message = (start: string): string => {
    const m = new RegExp(`\`(${start.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}[^\`]*)\``).exec(DOC);
    assert.ok(m, `docs/cluster.md documents the message starting ${start}`);
    return oneLine(m[1] as string);
  };
  const doctor = /`sudo truss doctor ([^`]*)`/.exec(DOC)?.[1];
  assert.ok(doctor, 'docs/cluster.md: the quick start names a truss doctor check');
  // the README's short version must say the same as the guide
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8')
    .split('\n')
    .flatMap(
      (l) => /^sudo (?:apt-get install etcd-server && sudo )?scripts\/run\.sh (--store .*?)\s+#/.exec(l)?.[1] ?? [],
    );
  assert.deepEqual(
    readme.map((l) => l.replaceAll('FIRST_HOST_ADDRESS', 'HOST1')),
    runs.map((l) => args(l).join(' ')),
    "the README's multi-host lines",
  );
  return {
    doctor: ['doctor', ...doctor.split(/\s+/)],
    host1: args(runs[0] as string),
    host2: args(runs[1] as string),
    create: create.split(/\s+/).slice(1),
    etcdEnv,
    noDefaultRoute: message('etcd at 127.0.0.1 is on'),
    plaintext: message('--store etcd://HOST1:2379: etcd at HOST1:2379 is not on this host'),
  };
}

const QS = quickStart();
const HOSTNAMES = ['host1', 'host2'];

const cluster = clusterFixture({
  hosts: ['q1', 'q2'],
  host: (_, i) => ({ hostname: HOSTNAMES[i] as string }),
  underlay: { etcd: false },
  runScript: true,
});
let etcd: Etcd | undefined;
const h1 = (): Host => cluster.host('q1');
const h2 = (): Host => cluster.host('q2');
const HOST1 = (): string => h1().underlayAddress as string;
const subst = (argv: readonly string[]): string[] => argv.map((a) => a.replaceAll('HOST1', HOST1()));
const tail = (h: Host): string => h.truss.logTail();

/** scripts/run.sh with these flags, exactly; the first start may build the bundle (prepare.sh). */
const runSh = (h: Host, args: readonly string[]) =>
  h.startTruss({ runScript: true, extraArgs: args, readyTimeoutMs: 120_000 });

/** run.sh that must refuse to start: resolves with its exit code and output once it exited. */
async function refusedStart(h: Host, args: readonly string[]): Promise<{ code: number | null; log: string }> {
  const from = h.truss.log().length;
  await assert.rejects(runSh(h, args), /truss exited during start-up/, `truss ${args.join(' ')} must not start`);
  await waitFor(() => h.truss.exitCode() !== null, 10_000, { what: `exit code of ${h.name}'s truss` });
  return { code: h.truss.exitCode(), log: h.truss.log().slice(from) };
}

/** The default route a real host has (via the underlay bridge, which routes nowhere). */
async function addDefaultRoute(h: Host): Promise<void> {
  const r = await h.exec(['ip', 'route', 'replace', 'default', 'via', UNDERLAY_ADDRESS]);
  assert.equal(r.code, 0, r.stderr);
}

describe('truss cluster: the quick start of docs/cluster.md, as written', { timeout: 5 * 60_000 }, () => {
  before(async () => {
    assert.deepEqual(Object.keys(QS.etcdEnv).sort(), ['ETCD_ADVERTISE_CLIENT_URLS', 'ETCD_LISTEN_CLIENT_URLS']);
    await cluster.start();
    const environment = {
      // what Debian's etcd.service sets before /etc/default/etcd (its data dir moved under the test's)
      ETCD_NAME: HOSTNAMES[0] as string,
      ...Object.fromEntries(Object.entries(QS.etcdEnv).map(([k, v]) => [k, v.replaceAll('HOST1', HOST1())])),
    };
    etcd = etcdIn(h1().netnsPath, join(h1().dir, 'etcd'), 2379, ['127.0.0.1', HOST1()], environment);
    h1().onStop(async () => etcd?.kill('SIGTERM'));
    await etcd.restart();
  });

  after(() => cluster.stop()); // host 2 first: its clean-up still reaches etcd on host 1

  it('0. etcd on host 1 listens on 127.0.0.1 and HOST1 and advertises HOST1, from ETCD_* variables only', async () => {
    const r = await h2().exec([
      'curl',
      '-s',
      '--max-time',
      '3',
      `http://${HOST1()}:2379/v3/cluster/member/list`,
      '-X',
      'POST',
      '-d',
      '{}',
    ]);
    assert.equal(r.code, 0, `host 2 reaches etcd at HOST1:2379: ${r.stderr}`);
    const members = (JSON.parse(r.stdout) as { members: { name: string; clientURLs: string[] }[] }).members;
    assert.deepEqual(
      members.map((m) => [m.name, m.clientURLs]),
      [[HOSTNAMES[0], [`http://${HOST1()}:2379`]]],
    );
    assert.ok(await etcd?.healthy(), 'and on 127.0.0.1');
  });

  it('1. host 1 without a default route refuses to start with the documented message', {
    timeout: 150_000,
  }, async () => {
    const route = await h1().exec(['ip', 'route', 'show', 'default']);
    assert.equal(route.stdout.trim(), '', 'host 1 has no default route yet');
    const { code, log } = await refusedStart(h1(), subst(QS.host1));
    const line = `truss: ${QS.noDefaultRoute}`;
    assert.ok(log.split('\n').includes(line), `expected the line\n${line}\n--- output ---\n${log}`);
    assert.equal(code, 1, log);
  });

  it("1b. the doc's other fix for it, --store etcd://HOST1:2379 on host 1, starts and advertises HOST1", {
    timeout: 60_000,
  }, async () => {
    assert.ok(oneLine(DOC).includes('or `--store etcd://HOST1:2379` (the address'), 'docs/cluster.md suggests it');
    await runSh(h1(), ['--store', `etcd://${HOST1()}:2379`]);
    await waitSynced(h1(), 'host 1 registered');
    const chosen = `"address":"${HOST1()}","addressFrom":"etcd-address"`;
    assert.ok(h1().truss.log().includes(chosen), `expected ${chosen} in\n${tail(h1())}`);
    await h1().stopTruss();
  });

  it('2. host 2 without --etcd-insecure is refused with the documented message', { timeout: 60_000 }, async () => {
    await Promise.all(cluster.hosts.map(addDefaultRoute));
    const flags = subst(QS.host2);
    assert.ok(flags.includes('--etcd-insecure'), flags.join(' '));
    const { code, log } = await refusedStart(
      h2(),
      flags.filter((a) => a !== '--etcd-insecure'),
    );
    const line = `truss: ${QS.plaintext.replaceAll('HOST1', HOST1())}`;
    assert.ok(log.split('\n').includes(line), `expected the line\n${line}\n--- output ---\n${log}`);
    assert.equal(code, 1, log);
  });

  it('3. as documented: both hosts join, the network is created on both, traffic flows both ways', {
    timeout: 150_000,
  }, async () => {
    await runSh(h1(), subst(QS.host1));
    await runSh(h2(), subst(QS.host2));
    for (const h of cluster.hosts) {
      const r = await h.docker(subst(QS.create));
      assert.equal(r.code, 0, `${h.name}: docker ${subst(QS.create).join(' ')}: ${r.stderr}\n${tail(h)}`);
    }
    const net = QS.create.at(-1) as string;
    await Promise.all([
      runContainer(h1(), { name: 'c1', network: net, cmd: SINK_CMD() }),
      runContainer(h2(), { name: 'c2', network: net, cmd: SINK_CMD() }),
    ]);
    const ip1 = await containerIp(h1(), 'c1', net);
    const ip2 = await containerIp(h2(), 'c2', net);
    assert.notEqual(ip1, ip2);
    for (const [from, fromCtr, to, toCtr, ip] of [
      [h1(), 'c1', h2(), 'c2', ip2],
      [h2(), 'c2', h1(), 'c1', ip1],
    ] as const) {
      assert.ok(await ping(from, fromCtr, ip), `ping ${fromCtr} -> ${ip}\n${tail(from)}\n${tail(to)}`);
      await assertTcp(from, fromCtr, to, toCtr, ip);
    }

    // `sudo truss doctor --store etcd://HOST1:2379` on host 2: etcd reachable
    const doctor = await h2().truss.cli(subst(QS.doctor));
    const etcdLine = new RegExp(
      `^OK +etcd reachable \\(--store etcd://${HOST1()}:2379\\) +connected to ${HOST1()}:2379$`,
    );
    assert.ok(
      doctor.stdout.split('\n').some((l) => etcdLine.test(l)),
      `${doctor.stdout}${doctor.stderr}`,
    );
    assert.equal(doctor.code, 0, `${doctor.stdout}${doctor.stderr}`);

    // `sudo truss status` on host 1: the CLUSTER section lists both hosts, and the plaintext warning
    const status = await h1().truss.cli(['status']);
    assert.equal(status.code, 0, status.stderr);
    const id1 = nodeIdOf(h1());
    const id2 = nodeIdOf(h2());
    const out = status.stdout.split('\n');
    assert.ok(out.includes(`CLUSTER: host ${HOSTNAMES[0]} (node id ${id1})`), status.stdout);
    assert.ok(out.includes('etcd: plaintext, auth none'), status.stdout);
    assert.ok(
      out.some((l) => l.startsWith('  WARNING: etcd connection is plaintext')),
      status.stdout,
    );
    const rows = out.map((l) => l.trim().split(/\s+/)).filter((c) => c[0] === net && c[1] !== '*');
    assert.deepEqual(
      rows.map((c) => [c[1], c[2], c[5]]).sort(),
      [
        [id1, HOSTNAMES[0], 'yes'],
        [id2, HOSTNAMES[1], 'yes'],
      ].sort(),
      status.stdout,
    );
  });
});
