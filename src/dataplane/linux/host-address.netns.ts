/**
 * Kernel test (root), issue 17: the host reaches containers on other hosts through its host
 * address (host-address.ts). Two simulated hosts h and v with wireguard-go, each programming what
 * computeClusterDesired makes of one view, as the reconciler does: the device, the host address,
 * then the routes with it as source. Without the host address, what h itself sends to v's
 * container leaves with h's underlay address, which v's WireGuard drops (not in h's allowed-ips);
 * with it, it is answered. h's traffic to its own container keeps the bridge's source.
 *
 *   cH 198.18.64.2 ─ h ─ 198.18.203.1/30 ══ 198.18.203.2 ─ v ─ cV 198.18.64.66
 *     block 198.18.64.0/26, host address .3       block 198.18.64.64/26, host address .67
 * Run: TRUSS_TEST_NS_PREFIX=x- node --test src/dataplane/linux/host-address.netns.ts
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { type ClusterDesired, type ClusterView, computeClusterDesired } from '../../core/cluster/desired.ts';
import { HOST_OWNER } from '../../core/cluster/host-address.ts';
import { checkHostAddresses, ensureHostAddresses } from './host-address.ts';
import { BUSYBOX, createScratch, pingOk, serveHi, tcpHi } from './netns-testutil.ts';
import { ensureRoutes, listRoutes } from './routes.ts';
import { ensureWireguard } from './wireguard.ts';
import { wireguardMark } from './wireguard-go.ts';
import { killWireguardGo, type WgHost, wgHost } from './wireguard-testutil.ts';

const RUN = randomBytes(2).toString('hex');

interface Host extends WgHost {
  readonly id: string;
  readonly underlay: string;
  readonly hostAddress: string;
}

describe('host address: the host reaches a container on another host (kernel, wireguard-go)', {
  timeout: 120_000,
}, () => {
  const scratch = createScratch();
  const devs: string[] = [];
  let H: Host;
  let V: Host;

  async function host(id: string, underlay: string, ctrIp: string, hostAddress: string, block: string, work: string) {
    const dev = `trwg${RUN}${id}`;
    devs.push(dev);
    const gateway = block.replace(/\.(\d+)\/26$/, (_, n: string) => `.${Number(n) + 1}/26`);
    const h = await wgHost(
      scratch,
      { host: `h${id}`, ctr: `c${id}`, link: `br${id}`, gateway, ctrIp },
      { dev, keyDir: join(work, id), block },
    );
    return { ...h, id, underlay, hostAddress };
  }

  before(async () => {
    const work = await fs.mkdtemp(join(tmpdir(), 'truss-hostaddr-'));
    scratch.defer(() => fs.rm(work, { recursive: true, force: true }));
    scratch.defer(() => killWireguardGo(devs));
    H = await host('h', '198.18.203.1', '198.18.64.2', '198.18.64.3', '198.18.64.0/26', work);
    V = await host('v', '198.18.203.2', '198.18.64.66', '198.18.64.67', '198.18.64.64/26', work);
    await H.ns.must(
      ['ip', '-batch', '-'],
      `link add ulh type veth peer name ulv netns ${V.ns.name}\naddr add 198.18.203.1/30 dev ulh\nlink set ulh up\n`,
    );
    await V.ns.must(['ip', '-batch', '-'], 'addr add 198.18.203.2/30 dev ulv\nlink set ulv up\n');
    const server = serveHi(V.ctr);
    scratch.defer(async () => {
      server.kill('SIGKILL');
    });
  });

  const view = (self: Host, withHost: boolean): ClusterView => ({
    self: self.id,
    nodes: [H, V].map((h) => ({ name: h.id, address: h.underlay, wgPublicKey: h.publicKey, wgPort: 51820 })),
    members: [H, V].map((h) => ({ cluster: 'blue', node: h.id })),
    blocks: [H, V].map((h) => ({ cluster: 'blue', block: h.block, node: h.id })),
    ...(withHost
      ? { hostClaims: [{ cluster: 'blue', address: self.hostAddress, node: self.id, owner: HOST_OWNER }] }
      : {}),
  });

  /** What the reconciler does for host h: the device, the host address on it, the routes (its own device name). */
  async function program(h: Host, withHost: boolean): Promise<ClusterDesired> {
    const d = computeClusterDesired(
      view(h, withHost),
      [{ cluster: 'blue', subnets: ['198.18.64.0/20'], encrypt: true, localAddresses: [h.ctrIp] }],
      { wireguard: { listenPort: 51820, mtu: 1420 }, vxlan: { mtu: 1450, local: h.underlay } },
    );
    const w = d.wireguard;
    assert.ok(w);
    await ensureWireguard(h.exec, {
      name: h.dev,
      privateKeyFile: h.keyFile,
      listenPort: w.listenPort,
      mtu: w.mtu,
      peers: w.peers.map((p) => ({ ...p, allowedIps: [...p.allowedIps] })),
    });
    const devices = [{ name: h.dev, mark: wireguardMark(h.dev) }];
    const addrs = (d.hostAddresses ?? []).map((a) => ({ ...a, dev: h.dev }));
    await ensureHostAddresses(h.exec, addrs, devices);
    await ensureRoutes(
      h.exec,
      d.routes.map((r) => ({ ...r, dev: h.dev })),
    );
    return d;
  }

  it('from its underlay address (no host address) the host gets no answer from a container on the other host', async () => {
    await program(V, false);
    await program(H, false);
    let ok = false;
    for (let i = 0; i < 40 && !ok; i++) ok = await pingOk(H.ctr, V.ctrIp);
    assert.ok(ok, 'the tunnel works for containers');
    // the kernel's pick of a source for a route without one: the first fitting address of any
    // link, the underlay's on a real host (here the bridge's, made first): from the underlay address
    // the peer's WireGuard drops it (not in h's allowed-ips)
    const ping = [BUSYBOX, 'ping', '-c1', '-W1', '-I', H.underlay, V.ctrIp];
    assert.notEqual((await H.ns.run(ping)).code, 0, "h's ping from its underlay address: dropped");
  });

  it('with it: the address on the device, the routes from it, TCP and ping answered; local traffic unchanged', async (t) => {
    await program(V, true);
    const d = await program(H, true);
    assert.deepEqual(d.hostAddresses, [{ cluster: 'blue', dev: 'trwg0', address: '198.18.64.3' }]);
    const addrs = await H.ns.ipJson<{ addr_info: { family: string; local: string; prefixlen: number }[] }[]>([
      'addr',
      'show',
      'dev',
      H.dev,
    ]);
    assert.deepEqual(
      addrs[0]?.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
      ['198.18.64.3/32'],
    );
    const [far] = await H.ns.ipJson<{ dev: string; prefsrc: string }[]>(['route', 'get', V.ctrIp]);
    assert.deepEqual([far?.dev, far?.prefsrc], [H.dev, '198.18.64.3']);
    const [near] = await H.ns.ipJson<{ dev: string; prefsrc: string }[]>(['route', 'get', H.ctrIp]);
    assert.deepEqual([near?.dev, near?.prefsrc], ['brh', '198.18.64.1'], 'its own container: the bridge, as before');
    const t0 = performance.now();
    assert.ok(await tcpHi(H.ns, V.ctrIp), 'TCP h -> cV');
    t.diagnostic(`TCP round trip h -> cV: ${(performance.now() - t0).toFixed(1)} ms (incl. nsenter and busybox)`);
    assert.ok(await pingOk(H.ns, V.ctrIp), 'ping h -> cV');
    assert.ok(await pingOk(V.ns, H.ctrIp), 'and v -> cH the same way');
    assert.ok(await pingOk(H.ns, H.ctrIp), 'h -> its own container');
  });

  it('idempotent; without the address the kernel drops the routes from it (why routes need it first)', async () => {
    const devices = [{ name: H.dev, mark: wireguardMark(H.dev) }];
    const want = [{ cluster: 'blue', dev: H.dev, address: H.hostAddress }];
    assert.deepEqual(await ensureHostAddresses(H.exec, want, devices), [], 'nothing to do the second time');
    assert.deepEqual(await checkHostAddresses(H.exec, want, devices), []);
    await ensureHostAddresses(H.exec, [], devices);
    assert.deepEqual(await listRoutes(H.exec), [], 'IPv4 routes with that source went with it');
    await assert.rejects(
      ensureRoutes(H.exec, [{ dst: V.block, dev: H.dev, src: H.hostAddress }]),
      /prefsrc|source|Invalid/i,
      'and a route from an address the host does not have is refused',
    );
    await program(H, true);
    assert.ok(await pingOk(H.ns, V.ctrIp), 'back');
  });

  it('IPv6: a /128 without DAD or prefix route, usable as a route source at once', async () => {
    const devices = [{ name: H.dev, mark: wireguardMark(H.dev) }];
    const want = [
      { cluster: 'blue', dev: H.dev, address: H.hostAddress },
      { cluster: 'blue', dev: H.dev, address: 'fd00:64::3' },
    ];
    await ensureHostAddresses(H.exec, want, devices);
    const v6 = { dst: 'fd00:64::40/122', dev: H.dev, src: 'fd00:64::3' };
    await ensureRoutes(H.exec, [{ dst: V.block, dev: H.dev, src: H.hostAddress }, v6]);
    assert.deepEqual(
      (await listRoutes(H.exec)).filter((r) => r.dst.includes(':')),
      [v6],
    );
    const six = await H.ns.ipJson<{ dst: string }[]>(['-6', 'route', 'show', 'dev', H.dev]);
    assert.ok(!six.some((r) => r.dst === 'fd00:64::3'), `no prefix route for the /128: ${JSON.stringify(six)}`);
    assert.deepEqual(await checkHostAddresses(H.exec, want, devices), []);
  });
});
