/**
 * Kernel test (root), issue 13 F14/S7: hostile cluster records affect only themselves. Two
 * simulated hosts h and v with wireguard-go; a third host m exists only as records an attacker
 * wrote: a /27 inside h's OWN block (E), a copy of v's block (B, newer), h's own block at the
 * block size, the whole subnet (F). Each host programs what computeClusterDesired (the pure
 * core) and selectWireguardPeers (the device guard) make of that view, as the reconciler does.
 *
 *   cH 198.18.64.2 ─ h ─ 198.18.202.1/30 ══ 198.18.202.2 ─ v ─ cV 198.18.64.66
 *     block 198.18.64.0/26                          block 198.18.64.64/26
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { type ClusterView, computeClusterDesired } from '../../core/cluster/desired.ts';
import { createScratch, pingOk } from './netns-testutil.ts';
import { selectWireguardPeers } from './peer-select.ts';
import { ensureRoutes } from './routes.ts';
import { ensureWireguard, readWireguard } from './wireguard.ts';
import { killWireguardGo, type WgHost, wgHost } from './wireguard-testutil.ts';

const RUN = randomBytes(2).toString('hex');
const pubKey = (): string =>
  Buffer.from(generateKeyPairSync('x25519').publicKey.export({ format: 'jwk' }).x as string, 'base64url').toString(
    'base64',
  );

interface Host extends WgHost {
  readonly id: string;
  readonly underlay: string;
}

describe('hostile cluster records affect only themselves (kernel, wireguard-go)', { timeout: 120_000 }, () => {
  const scratch = createScratch();
  const devs: string[] = [];
  let work = '';
  let H: Host;
  let V: Host;

  async function host(id: string, underlay: string, ctrIp: string, block: string): Promise<Host> {
    const dev = `trwg${RUN}${id}`;
    devs.push(dev);
    const gateway = block.replace(/\.\d+\/26$/, (m) => `.${Number(m.slice(1, m.indexOf('/'))) + 1}/26`);
    const h = await wgHost(
      scratch,
      { host: `h${id}`, ctr: `c${id}`, link: `br${id}`, gateway, ctrIp },
      { dev, keyDir: join(work, id), block },
    );
    return { ...h, id, underlay };
  }

  before(async () => {
    work = await fs.mkdtemp(join(tmpdir(), 'truss-hostile-'));
    scratch.defer(() => fs.rm(work, { recursive: true, force: true }));
    scratch.defer(() => killWireguardGo(devs));
    H = await host('h', '198.18.202.1', '198.18.64.2', '198.18.64.0/26');
    V = await host('v', '198.18.202.2', '198.18.64.66', '198.18.64.64/26');
    await H.ns.must(
      ['ip', '-batch', '-'],
      `link add ulh type veth peer name ulv netns ${V.ns.name}\naddr add 198.18.202.1/30 dev ulh\nlink set ulh up\n`,
    );
    await V.ns.must(['ip', '-batch', '-'], 'addr add 198.18.202.2/30 dev ulv\nlink set ulv up\n');
  });

  /** The etcd view with m's hostile records on top of the honest ones (createRevision: etcd's order). */
  const view = (self: string): ClusterView => {
    const node = (h: { id: string; underlay: string; publicKey: string }, rev: number) => ({
      name: h.id,
      address: h.underlay,
      wgPublicKey: h.publicKey,
      wgPort: 51820,
      createRevision: rev,
      key: `/truss/v2/nodes/${h.id}`,
    });
    const blk = (block: string, node: string, rev: number) => ({ cluster: 'blue', block, node, createRevision: rev });
    return {
      self,
      nodes: [node(H, 1), node(V, 2), node({ id: 'm', underlay: '198.18.202.66', publicKey: pubKey() }, 3)],
      members: ['h', 'v', 'm'].map((node) => ({ cluster: 'blue', node })),
      blocks: [
        blk(H.block, 'h', 4),
        blk(V.block, 'v', 5),
        blk('198.18.64.128/26', 'm', 6),
        blk('198.18.64.0/27', 'm', 7), // E: inside h's own block
        blk(V.block, 'm', 8), // B: v's block again, newer
        blk(H.block, 'm', 9), // h's own block at the block size
        blk('198.18.64.0/20', 'm', 10), // F: the whole subnet
      ],
    };
  };

  async function program(h: Host): Promise<string[]> {
    const d = computeClusterDesired(
      view(h.id),
      [{ cluster: 'blue', subnets: ['198.18.64.0/20'], encrypt: true, localAddresses: [h.ctrIp] }],
      { wireguard: { listenPort: 51820, mtu: 1420 }, vxlan: { mtu: 1450, local: h.underlay } },
    );
    const w = d.wireguard;
    assert.ok(w);
    const dev = selectWireguardPeers(
      {
        name: h.dev,
        privateKeyFile: h.keyFile,
        listenPort: w.listenPort,
        mtu: w.mtu,
        peers: w.peers.map((p) => ({ ...p, allowedIps: [...p.allowedIps] })),
      },
      h.publicKey,
    );
    assert.deepEqual(dev.dropped, []);
    await ensureWireguard(h.exec, dev.device);
    await ensureRoutes(
      h.exec,
      d.routes.map((r) => ({ dst: r.dst, dev: h.dev })),
    );
    return [...d.rejected];
  }

  it("h's own container stays on its bridge, v keeps its block, m gets only its own; traffic h <-> v flows", async () => {
    const rejected = [...(await program(V)), ...(await program(H))];
    assert.ok(rejected.some((r) => /198\.18\.64\.0\/27 of node m/.test(r)));
    assert.ok(rejected.some((r) => /198\.18\.64\.64\/26 of node m overlaps/.test(r)));
    const [route] = await H.ns.ipJson<{ dev: string }[]>(['route', 'get', H.ctrIp]);
    assert.equal(route?.dev, 'brh', "h's local container is reached on its bridge, not through the tunnel");
    const wg = await readWireguard(H.exec, H.dev);
    const allowed = Object.fromEntries(
      (wg?.peers ?? []).map((p) => [p.publicKey === V.publicKey ? 'v' : 'm', [...p.allowedIps].sort()]),
    );
    assert.deepEqual(allowed, { v: ['198.18.64.64/26'], m: ['198.18.64.128/26'] });
    let ok = false;
    for (let i = 0; i < 40 && !ok; i++) ok = await pingOk(H.ctr, V.ctrIp);
    assert.ok(ok, 'cH -> cV through the tunnel to the true owner');
    assert.ok(await pingOk(V.ctr, H.ctrIp), 'cV -> cH');
    assert.ok(await pingOk(H.ns, H.ctrIp), 'h -> its own container');
  });
});
