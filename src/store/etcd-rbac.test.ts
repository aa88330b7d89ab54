/**
 * etcd RBAC for real (M4, H1): a real etcd with auth enabled, host a's role made by running the
 * etcdctl commands `truss cluster rbac --node a` prints, host b's by `--apply` (the etcd API).
 * Each host then works normally (registers under a lease, joins, allocates, sees the other),
 * and neither can write the other's records.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { ClusterAgent } from '../cluster/agent.ts';
import { ClusterIpam } from '../cluster/cluster-ipam.ts';
import { clusterKeys } from '../core/cluster/model.ts';
import { rbacPlan, renderEtcdctl } from '../core/cluster/rbac.ts';
import { formatIp, type Prefix, parsePrefix } from '../core/ip.ts';
import { silentLogger } from '../obs/logger.ts';
import { type EtcdStore, openEtcdStore } from './etcd.ts';
import { applyRbac } from './etcd-rbac.ts';
import { type EtcdServer, startEtcd } from './etcd-testutil.ts';

const run = promisify(execFile);
const ETCDCTL = '/usr/bin/etcdctl'; // Debian's etcd-client (scripts/setup.sh)
const subnet = parsePrefix('198.18.64.0/20') as Prefix;
const KEY = (c: string) => `${c.repeat(43)}=`;

describe('etcd RBAC as truss cluster rbac sets it up (real etcd, auth enabled)', () => {
  let server: EtcdServer;
  const stores: EtcdStore[] = [];
  const agents: ClusterAgent[] = [];
  const pw = { root: 'root-pw-1', a: 'a-pw-2', b: 'b-pw-3' };

  const etcdctl = async (argv: string[], stdin?: string) => {
    const p = run(ETCDCTL, ['--endpoints', server.endpoint, '--user', `root:${pw.root}`, ...argv], {
      env: { ETCDCTL_API: '3' },
    });
    if (stdin !== undefined) {
      p.child.stdin?.end(stdin);
    }
    return p;
  };

  const open = (user: string, password: string) =>
    openEtcdStore({ endpoints: [server.endpoint], auth: { user, password }, log: silentLogger }).then((s) => {
      stores.push(s);
      return s;
    });

  before(async () => {
    server = await startEtcd();
    const admin = new Etcd3({ hosts: server.endpoint });
    try {
      await admin.user('root').create(pw.root);
      await admin.user('root').addRole('root');
      await admin.auth.authEnable();
    } finally {
      admin.close();
    }
    // host a: exactly the etcdctl lines `truss cluster rbac --node a` prints (comments skipped)
    const lines = renderEtcdctl(rbacPlan('a'))
      .split('\n')
      .filter((l) => l.startsWith('etcdctl '));
    for (const line of lines) {
      const [, ...argv] = line.replace(' < PASSWORD_FILE', '').split(' ');
      await etcdctl(argv, line.includes('< PASSWORD_FILE') ? `${pw.a}\n` : undefined);
    }
    // host b: --apply, as root
    const file = join(server.dataDir, 'b-pw');
    await writeFile(file, `${pw.b}\n`);
    await applyRbac({ endpoints: [server.endpoint], auth: { user: 'root', password: pw.root } }, rbacPlan('b'), pw.b);
  });

  after(async () => {
    for (const a of agents) await a.stop();
    for (const s of stores) await s.close();
    await server?.stop();
  });

  it('refuses a wrong password and an anonymous client', async () => {
    const t0 = Date.now();
    await assert.rejects(
      open('truss-a', 'wrong'),
      /^TrussError: etcd at 127\.0\.0\.1:\d+ refused truss \(user truss-a\): .*authentication failed.*; check --etcd-user and --etcd-password-file, and the user's role \(truss cluster rbac --node ID\)$/,
    );
    assert.ok(Date.now() - t0 < 3000, 'at once, not after the dial timeout');
    await assert.rejects(
      openEtcdStore({ endpoints: [server.endpoint], log: silentLogger }),
      /refused truss \(no user\): .*user name is empty/,
    );
  });

  it('each host works normally: registers, joins, allocates and sees the other', async () => {
    for (const [node, password, c] of [
      ['a', pw.a, 'A'],
      ['b', pw.b, 'B'],
    ] as const) {
      const store = await open(`truss-${node}`, password);
      const ipam = new ClusterIpam({ store, node, log: silentLogger });
      const agent = new ClusterAgent({
        store,
        node: { id: node, name: node, address: `198.18.255.${c === 'A' ? 1 : 2}`, wgPublicKey: KEY(c), wgPort: 51820 },
        mtu: { wireguard: 1420, vxlan: 1450 },
        ipam,
        log: silentLogger,
        onChange: () => {},
        localClusters: async () => [],
        leaseTtlSeconds: 5,
        retryMs: 50,
      });
      agents.push(agent);
      agent.start();
      await agent.connected();
      await agent.joinNetwork({
        name: 'blue',
        subnets: ['198.18.64.0/20'],
        encrypt: true,
        fingerprint: 'f',
        shared: ['198.18.64.1/20'],
      });
      const ip = await ipam.allocate('blue', subnet);
      assert.equal(formatIp(ip), c === 'A' ? '198.18.64.2' : '198.18.64.64');
      await ipam.release('blue', ip);
      await ipam.allocate('blue', subnet);
    }
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && (agents[0]?.view()?.blocks.length ?? 0) < 2)
      await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(
      agents[0]
        ?.view()
        ?.blocks.map((b) => [b.block, b.node])
        .sort(),
      [
        ['198.18.64.0/26', 'a'],
        ['198.18.64.64/26', 'b'],
      ],
    );
  });

  it("host a cannot write, overwrite or delete host b's records (nor the old layout), but can its own", async () => {
    const a = await open('truss-a', pw.a);
    const put = (key: string, value = '{}') => a.txn([], [{ type: 'put', key, value }]);
    const b = JSON.stringify({ cluster: 'blue', block: '198.18.64.0/27', node: 'b' });
    for (const key of [
      clusterKeys.node('b'),
      clusterKeys.node('ba'), // no prefix confusion: nodes/a is one key
      clusterKeys.block('blue', '198.18.64.0/27', 'b'),
      clusterKeys.addr('blue', '198.18.64.70', 'b'),
      clusterKeys.member('blue', 'b'),
      clusterKeys.network('blue', 'b'),
      clusterKeys.shared('blue', '198.18.64.1', 'b'),
      clusterKeys.name('blue', 'e'.repeat(64), 'b'),
      `/truss/v2/names/ab/blue/${'e'.repeat(64)}`,
      '/truss/v2/blocks/ab/blue/198.18.64.0_27',
      '/truss/v1/cluster/blocks/blue/198.18.64.0_27',
    ]) {
      await assert.rejects(put(key, b), /permission denied/, key);
    }
    await assert.rejects(
      a.txn([], [{ type: 'delete', key: clusterKeys.addr('blue', '198.18.64.64', 'b') }]),
      /permission denied/,
    );
    assert.ok(await a.get(clusterKeys.addr('blue', '198.18.64.64', 'b')), "b's claim is still there");
    // its own: fine, and every host's records are readable
    await put(clusterKeys.addr('blue', '198.18.64.9', 'a'), '{"cluster":"blue","address":"198.18.64.9","node":"a"}');
    await put(clusterKeys.name('blue', 'e'.repeat(64), 'a'));
    assert.ok((await a.list('/truss/v2/')).items.length > 5);
  });
});
