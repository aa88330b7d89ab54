/** `truss doctor SRC DST [PORT/PROTO]`: arguments, Docker resolution and output, against fake Docker and daemon sockets. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { PathBody } from '../core/admin-api.ts';
import { doctorPathCommand, formatPath, parseFlowSpec } from './doctor-path.ts';

const NID = 'a'.repeat(64);
const EID = 'e'.repeat(64);

const BLOCKED: PathBody = {
  verdict: 'blocked',
  summary: "srv's port policy, network pa's truss.ingress option (docker network create): tcp/80, admits no tcp/8080",
  flow: 'tcp/8080',
  from: { ref: 'cli', ip: '198.18.20.3', where: 'this-host', network: 'pa', networkId: NID },
  to: { ref: '198.18.20.2', ip: '198.18.20.2', where: 'this-host', network: 'pa', networkId: NID },
  steps: [
    { id: 'network', status: 'ok', detail: 'both on network pa' },
    { id: 'policy', status: 'blocked', detail: 'admits no tcp/8080' },
  ],
};

describe('parseFlowSpec', () => {
  it('reads PORT/PROTO, a bare port as tcp, and icmp as the default', () => {
    assert.deepEqual(parseFlowSpec('80/tcp'), { proto: 'tcp', port: 80 });
    assert.deepEqual(parseFlowSpec('53/udp'), { proto: 'udp', port: 53 });
    assert.deepEqual(parseFlowSpec('8080'), { proto: 'tcp', port: 8080 });
    assert.deepEqual(parseFlowSpec(undefined), { proto: 'icmp' });
    assert.deepEqual(parseFlowSpec('icmp'), { proto: 'icmp' });
    for (const bad of ['0/tcp', '70000/tcp', 'tcp/80', '80/sctp', 'x']) {
      assert.throws(() => parseFlowSpec(bad), { name: 'UsageError' });
    }
  });
});

describe('formatPath', () => {
  it('prints both ends, each step and the verdict last', () => {
    const text = formatPath(BLOCKED, { from: 'cli', to: '198.18.20.2' });
    assert.equal(
      text,
      [
        'cli -> 198.18.20.2  tcp/8080',
        '  from  cli          198.18.20.3      network pa, this host',
        '  to    198.18.20.2  198.18.20.2      network pa, this host',
        '',
        '  OK       network        both on network pa',
        '  BLOCKED  policy         admits no tcp/8080',
        '',
        `BLOCKED: ${BLOCKED.summary}`,
        '',
      ].join('\n'),
    );
  });
});

describe('truss doctor SRC DST', () => {
  let dir: string;
  let docker: http.Server;
  let daemon: http.Server;
  let sent: unknown;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'truss-doctor-path-'));
    docker = http.createServer((req, res) => {
      if (req.url === '/containers/cli/json') {
        const Networks = { pa: { NetworkID: NID, EndpointID: EID, IPAddress: '198.18.20.3', GlobalIPv6Address: '' } };
        res.end(JSON.stringify({ Name: '/cli', NetworkSettings: { Networks } }));
      } else {
        res.writeHead(404).end(JSON.stringify({ message: 'No such container' }));
      }
    });
    daemon = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        sent = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        res.end(JSON.stringify({ schemaVersion: 1, ...BLOCKED }));
      });
    });
    await new Promise<void>((r) => docker.listen(join(dir, 'docker.sock'), r));
    await new Promise<void>((r) => daemon.listen(join(dir, 'admin.sock'), r));
  });
  after(() => {
    docker.close();
    daemon.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const env = () => ({ DOCKER_HOST: `unix://${join(dir, 'docker.sock')}`, TRUSS_STATE_DIR: dir });

  it('resolves a container through Docker, an IP as it is, and exits 1 when blocked', async () => {
    let out = '';
    const code = await doctorPathCommand(['cli', '198.18.20.2', '8080/tcp'], { env: env(), stdout: (t) => (out += t) });
    assert.equal(code, 1);
    assert.deepEqual(sent, {
      from: {
        ref: 'cli',
        container: 'cli',
        addresses: [{ ip: '198.18.20.3', networkId: NID, endpointId: EID, network: 'pa' }],
      },
      to: { ref: '198.18.20.2', addresses: [{ ip: '198.18.20.2' }] },
      proto: 'tcp',
      port: 8080,
    });
    assert.match(out, /\nBLOCKED: srv's port policy/);
    let json = '';
    await doctorPathCommand(['--json', 'cli', '198.18.20.2', '8080/tcp'], { env: env(), stdout: (t) => (json += t) });
    assert.equal(JSON.parse(json).verdict, 'blocked');
  });

  it('a container Docker does not know fails with its name', async () => {
    await assert.rejects(
      doctorPathCommand(['nope', '198.18.20.2'], { env: env(), stdout: () => {} }),
      /Docker has no container "nope"/,
    );
  });

  it('usage errors exit 2 through truss doctor, with the usage on stderr', () => {
    const main = fileURLToPath(new URL('./main.ts', import.meta.url));
    for (const args of [['cli'], ['a', 'b', '80/sctp'], ['a', 'b', '80/tcp', 'x']]) {
      const r = spawnSync(process.execPath, [main, 'doctor', ...args], { env: { ...process.env, ...env() } });
      assert.equal(r.status, 2, args.join(' '));
      assert.match(r.stderr.toString(), /^truss: .*\n\nusage: truss doctor/);
    }
  });
});
