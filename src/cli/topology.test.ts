import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StatusBody } from '../core/admin-api.ts';
import { CLUSTER, healthy, NOW } from '../core/status-testutil.ts';
import { findAll, hasClass, parseXml, textOf } from '../core/topology/xml-testutil.ts';
import { topologyCommand } from './topology.ts';
import { UsageError } from './usage.ts';

const NET = 'c'.repeat(64);
const EP = 'd'.repeat(64);
const STATUS: StatusBody = healthy({
  networks: [
    {
      id: NET,
      bridge: `trb${NET.slice(0, 12)}`,
      bridgeNamed: false,
      mtu: 1420,
      internal: false,
      nat: true,
      ipv4: [{ pool: '198.18.64.0/20', auxAddresses: {} }],
      ipv6: [],
      options: {},
      cluster: { name: 'blue', encrypt: true },
      ingress: [{ proto: 'tcp', ports: { from: 80, to: 80 } }],
    },
  ],
  endpoints: [
    {
      networkId: NET,
      id: EP,
      hostVeth: `trv${EP.slice(0, 12)}`,
      peerVeth: `trp${EP.slice(0, 12)}`,
      mac: '02:42:00:00:00:02',
      ipv4: '198.18.64.2',
      options: {},
      sandboxKey: '/var/run/docker/netns/1',
    },
  ],
  cluster: {
    ...CLUSTER,
    peers: [{ node: 'n2', name: 'h2', endpoint: '198.19.0.2:51820', allowedIps: [], latestHandshake: 0 }],
    names: { n1: 'h1', n2: 'h2' },
  },
});
const NAMES = { networks: new Map([[NET, 'web']]), endpoints: new Map([[EP, 'nginx']]) };

describe('truss topology (over a fake admin socket)', () => {
  let dir = '';
  let server: http.Server;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'truss-topology-'));
    server = http.createServer((_req, res) => res.end(JSON.stringify({ schemaVersion: 1, ...STATUS })));
    await new Promise<void>((r) => server.listen(join(dir, 'admin.sock'), r));
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  async function run(args: string[], names: typeof NAMES | 'none' = NAMES) {
    let out = '';
    const code = await topologyCommand([...args, '--state-dir', dir], {
      env: {},
      stdout: (t) => {
        out += t;
      },
      stderr: () => {},
      names: async () => (names === 'none' ? undefined : names),
      now: () => NOW,
    });
    return { code, out };
  }

  it('prints the tree by default, with Docker names', async () => {
    const { code, out } = await run([]);
    assert.equal(code, 0);
    assert.match(out, /^truss topology \(truss 0\.1\.0\): 2 host\(s\), 1 tunnel\(s\), 1 in error\n/);
    assert.match(
      out,
      /host h1 {2}\(this host, node id n1\)\n {2}network web {2}cluster blue \(wireguard\) {2}198\.18\.64\.0\/20\n {4}ingress: tcp\/80\n {4}container nginx {2}198\.18\.64\.2\n/,
    );
    assert.match(
      out,
      /host h2 .*\n {2}tunnel from this host: wireguard to 198\.19\.0\.2:51820, no handshake {2}\[ERROR\]/,
    );
  });

  it('without Docker: short ids', async () => {
    const { out } = await run([], 'none');
    assert.match(out, new RegExp(`network ${NET.slice(0, 12)} `));
    assert.match(out, new RegExp(`container ${EP.slice(0, 12)} `));
  });

  it('--format svg --output FILE writes the SVG there, nothing on stdout', async () => {
    const file = join(dir, 'topology.svg');
    const { code, out } = await run(['--format', 'svg', '--output', file]);
    assert.equal(code, 0);
    assert.equal(out, '');
    const svg = parseXml(readFileSync(file, 'utf8'));
    assert.deepEqual(
      findAll(svg, hasClass('host')).map((h) => h.attrs['data-host']),
      ['h1', 'h2'],
    );
    const [tunnel] = findAll(svg, hasClass('tunnel'));
    assert.ok(tunnel && hasClass('error')(tunnel));
    assert.match(textOf(svg), /nginx {2}198\.18\.64\.2/);
  });

  it('an unknown format is a usage error', async () => {
    await assert.rejects(run(['--format', 'png']), UsageError);
  });
});
