/** POST /v1/doctor/path through the admin server and the daemon's handler, over a fixture status. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildAdminServer } from '../admin/server.ts';
import { adminRequest } from '../cli/admin-client.ts';
import { healthy } from '../core/status-testutil.ts';
import { silentLogger } from '../obs/logger.ts';
import { doctorPath } from './path-doctor.ts';

const NID = 'a'.repeat(64);
const EID = 'e'.repeat(64);
const STATUS = healthy({
  networks: [
    {
      id: NID,
      bridge: 'trbaaaaaaaaaaaa',
      bridgeNamed: false,
      mtu: 1500,
      internal: false,
      nat: true,
      ipv4: [{ pool: '198.18.20.0/24', auxAddresses: {} }],
      ipv6: [],
      options: {},
      ingress: [{ proto: 'tcp', ports: { from: 80, to: 80 } }],
    },
  ],
  endpoints: [
    {
      networkId: NID,
      id: EID,
      hostVeth: 'trveeeeeeeeeeee',
      peerVeth: 'trceeeeeeeeeeee',
      mac: '02:42:c6:12:14:02',
      ipv4: '198.18.20.2/24',
      options: {},
      sandboxKey: '/var/run/docker/netns/x',
    },
  ],
});

describe('admin API: POST /v1/doctor/path', () => {
  it('walks the daemon status: a versioned verdict; a request outside the contract is a 400', async () => {
    const nope = async (): Promise<never> => {
      throw new Error('not in this test');
    };
    const server = buildAdminServer(
      {
        status: nope,
        reconcile: nope,
        metrics: nope,
        resetMetrics: nope,
        showPolicy: nope,
        setPolicy: nope,
        rotateKey: nope,
        forgetNode: nope,
        doctorPath: (req) => doctorPath({ status: async () => STATUS }, req),
      },
      silentLogger,
    );
    const dir = mkdtempSync(join(tmpdir(), 'truss-doctor-path-'));
    const socket = join(dir, 'admin.sock');
    await new Promise<void>((r) => server.listen(socket, r));
    try {
      const end = (ip: string) => ({ ref: ip, addresses: [{ ip }] });
      const ask = (port: number) =>
        adminRequest(socket, 'POST', '/v1/doctor/path', {
          from: end('198.18.20.9'),
          to: end('198.18.20.2'),
          proto: 'tcp',
          port,
        }) as Promise<{ schemaVersion: number; verdict: string; summary: string }>;
      const open = await ask(80);
      assert.equal(open.schemaVersion, 1);
      // 198.18.20.9 is no endpoint here: an end truss does not know is unknown
      assert.equal(open.verdict, 'unknown');
      assert.match(open.summary, /^198.18.20.9 is on no truss network/);
      await assert.rejects(ask(0), { status: 400 });
      await assert.rejects(adminRequest(socket, 'POST', '/v1/doctor/path', { from: 'x' }), { status: 400 });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
