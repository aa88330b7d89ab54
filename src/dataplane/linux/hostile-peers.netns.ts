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
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ClusterView, computeClusterDesired } from '../../core/cluster/desired.ts';
import { createExec, type Exec } from './exec.ts';
import { createTestNs, pingOk, type TestNs } from './netns-testutil.ts';
import { selectWireguardPeers } from './peer-select.ts';
import { ensureRoutes } from './routes.ts';
import { ensureWireguard, readWireguard, UAPI_DIR } from './wireguard.ts';
import { ensurePrivateKey } from './wireguard-keys.ts';

const RUN = randomBytes(2).toString('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const pubKey = (): string =>
  Buffer.from(generateKeyPairSync('x25519').publicKey.export({ format: 'jwk' }).x as string, 'base64url').toString(
    'base64',
  );

function wgGoPids(name: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (basename(argv[0] ?? '') === 'wireguard-go' && argv[1] === name) pids.push(Number(d));
    } catch {} // gone meanwhile
  }
  return pids;
}

interface Host {
  readonly id: string;
  readonly ns: TestNs;
  readonly ctr: TestNs;
  readonly exec: Exec;
  readonly dev: string;
  readonly underlay: string;
  readonly ctrIp: string;
  readonly block: string;
  publicKey: string;
  keyFile: string;
}

describe('hostile cluster records affect only themselves (kernel, wireguard-go)', { timeout: 120_000 }, () => {
  const spaces: TestNs[] = [];
  const devs: string[] = [];
  let work = '';
  let H: Host;
  let V: Host;

  async function host(id: string, underlay: string, ctrIp: string, block: string): Promise<Host> {
    const ns = await createTestNs(`h${id}`);
    const ctr = await createTestNs(`c${id}`);
    spaces.push(ns, ctr);
    const dev = `trwg${RUN}${id}`;
    devs.push(dev);
    const key = await ensurePrivateKey(join(work, id));
    const gw = block.replace(/\.\d+\/26$/, (m) => `.${Number(m.slice(1, m.indexOf('/'))) + 1}/26`);
    await ns.must(
      ['ip', '-batch', '-'],
      `link add br${id} type veth peer name eth0 netns ${ctr.name}\naddr add ${gw} dev br${id}\nlink set br${id} up\n`,
    );
    await ns.must(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    await ctr.must(
      ['ip', '-batch', '-'],
      `addr add ${ctrIp}/26 dev eth0\nlink set eth0 up\nroute add default via ${gw.split('/')[0]}\n`,
    );
    const exec = createExec({ netns: ns.path });
    return { id, ns, ctr, exec, dev, underlay, ctrIp, block, publicKey: key.publicKey, keyFile: key.file };
  }

  before(async () => {
    work = await fs.mkdtemp(join(tmpdir(), 'truss-hostile-'));
    H = await host('h', '198.18.202.1', '198.18.64.2', '198.18.64.0/26');
    V = await host('v', '198.18.202.2', '198.18.64.66', '198.18.64.64/26');
    await H.ns.must(
      ['ip', '-batch', '-'],
      `link add ulh type veth peer name ulv netns ${V.ns.name}\naddr add 198.18.202.1/30 dev ulh\nlink set ulh up\n`,
    );
    await V.ns.must(['ip', '-batch', '-'], 'addr add 198.18.202.2/30 dev ulv\nlink set ulv up\n');
  });

  after(async () => {
    for (const d of devs) for (const pid of wgGoPids(d)) process.kill(pid, 'SIGKILL');
    await sleep(200);
    for (const d of devs) await fs.rm(join(UAPI_DIR, `${d}.sock`), { force: true });
    for (const s of spaces) await s.remove();
    if (work) await fs.rm(work, { recursive: true, force: true });
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
