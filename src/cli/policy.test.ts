/**
 * `truss policy` against a fake admin server and a fake Docker API, each on a temp unix
 * socket: argument handling, fail-fast validation, name and id-prefix resolution, the
 * requests sent, and what is printed. No root, no dockerd.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { PolicyView } from './format.ts';
import { decodePolicyView, isTrussDriver, policyCommand } from './policy.ts';

const WEB = `0123456789ab${'1'.repeat(52)}`;
const DB = `fedcba987654${'2'.repeat(52)}`;
const TWIN_A = `aaaaaaaaaaaa${'3'.repeat(52)}`;
const TWIN_B = `aaaaaaaaaaaa${'4'.repeat(52)}`;
const EP1 = `e1e1e1e1e1e1${'5'.repeat(52)}`;
const EP2 = `e2e2e2e2e2e2${'6'.repeat(52)}`;

interface Req {
  method: string;
  url: string;
  body: string;
}

/** The daemon's policy state, as the fake admin server keeps it. */
let policies: Map<string, string | null>;

function view(id: string): PolicyView {
  const ingress = policies.get(id) ?? null;
  return {
    networkId: id,
    ingress,
    source: policies.has(id) ? (ingress === null ? 'open' : 'runtime') : 'open',
    endpoints: [
      {
        endpointId: EP1,
        addresses: ['198.18.10.2', 'fd00:7::2'],
        ingress,
        override: false,
        joined: true,
        denied: { packets: 0, bytes: 0 },
      },
      {
        endpointId: EP2,
        addresses: ['198.18.10.3'],
        ingress: 'tcp/22',
        override: true,
        joined: true,
        denied: { packets: 17, bytes: 1020 },
      },
    ],
  };
}

function fakeAdmin(seen: Req[]): http.Server {
  return http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Req = { method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks).toString() };
      seen.push(r);
      const send = (status: number, body: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (r.method === 'GET' && r.url === '/v1/status') {
        send(200, { networks: [WEB, DB, TWIN_A, TWIN_B].map((id) => ({ id })), endpoints: [] });
        return;
      }
      const m = /^\/v1\/networks\/([0-9a-f]{64})\/policy$/.exec(r.url);
      const id = m?.[1];
      if (id === undefined || ![WEB, DB, TWIN_A, TWIN_B].includes(id)) {
        send(404, {
          error: `network ${r.url.split('/')[3]?.slice(0, 12)} is not a truss network`,
          code: 'TRUSS_ERR_NETWORK_NOT_FOUND',
        });
        return;
      }
      if (r.method === 'GET') send(200, view(id));
      else if (r.method === 'PUT') {
        const { ingress } = JSON.parse(r.body) as { ingress: string | null };
        if (ingress === 'tcp/7') {
          send(400, { error: 'option truss.ingress: the daemon refuses tcp/7', code: 'TRUSS_ERR_OPTION_INVALID' });
          return;
        }
        policies.set(id, ingress);
        send(200, view(id));
      } else send(404, { error: 'no such admin route' });
    });
  });
}

const DOCKER_NETWORKS: Record<string, { Id: string; Name: string; Driver: string }> = {
  web: { Id: WEB, Name: 'web', Driver: 'truss' },
  [WEB]: { Id: WEB, Name: 'web', Driver: 'truss' },
  aaaaaaaaaaaa: { Id: TWIN_B, Name: 'twin-b', Driver: 'truss' },
  db: { Id: DB, Name: 'db', Driver: 'ghcr.io/acme/truss:0.1' },
  br: { Id: 'b'.repeat(64), Name: 'br', Driver: 'bridge' },
  ghost: { Id: 'c'.repeat(64), Name: 'ghost', Driver: 'truss' },
};

function fakeDocker(seen: Req[]): http.Server {
  return http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', body: '' });
    const name = decodeURIComponent((req.url ?? '').replace(/^\/networks\//, ''));
    const n = DOCKER_NETWORKS[name];
    res.writeHead(n ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(n ?? { message: `network ${name} not found` }));
  });
}

const listen = (s: http.Server, path: string): Promise<void> => new Promise((resolve) => s.listen(path, resolve));
const close = (s: http.Server): Promise<void> =>
  new Promise((resolve) => {
    s.closeAllConnections();
    s.close(() => resolve());
  });

const dir = mkdtempSync(join(tmpdir(), 'truss-policy-'));
const noDaemonDir = mkdtempSync(join(tmpdir(), 'truss-policy-none-'));
const adminSeen: Req[] = [];
const dockerSeen: Req[] = [];
const admin = fakeAdmin(adminSeen);
const docker = fakeDocker(dockerSeen);
const ENV = { TRUSS_STATE_DIR: dir, DOCKER_HOST: `unix://${join(dir, 'docker.sock')}` };

async function truss(
  args: string[],
  env: Record<string, string> = ENV,
): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await policyCommand(args, {
    env,
    stdout: (t) => {
      out += t;
    },
    stderr: (t) => {
      err += t;
    },
  });
  return { code, out, err };
}

before(async () => {
  await listen(admin, join(dir, 'admin.sock'));
  await listen(docker, join(dir, 'docker.sock'));
});
after(async () => {
  await close(admin);
  await close(docker);
  rmSync(dir, { recursive: true, force: true });
  rmSync(noDaemonDir, { recursive: true, force: true });
});
beforeEach(() => {
  policies = new Map();
  adminSeen.length = 0;
  dockerSeen.length = 0;
});

describe('truss policy: command line', { timeout: 10_000 }, () => {
  it('refuses a missing or unknown subcommand, NETWORK or --ingress with exit 2 and the usage', async () => {
    for (const [args, msg] of [
      [[], 'truss: missing subcommand'],
      [['add', 'web'], 'truss: unknown subcommand "add"'],
      [['show'], 'truss: policy show: missing NETWORK'],
      [['set', '--ingress', 'tcp/80'], 'truss: policy set: missing NETWORK'],
      [['set', 'web'], 'truss: policy set: missing --ingress SPEC'],
      [['show', 'web', 'db'], 'truss: policy show: unexpected argument "db"'],
      [['clear', 'web', '--ingress', 'tcp/80'], 'truss: policy clear: --ingress is only for set'],
      [['show', 'web', '--verbose'], "truss: Unknown option '--verbose'"],
      [['show', 'we b'], 'truss: "we b" is not a network name or id'],
    ] as const) {
      const r = await truss([...args]);
      assert.equal(r.code, 2, args.join(' '));
      assert.ok(r.err.startsWith(msg), `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, /usage:\n {2}truss policy show/);
      assert.equal(r.out, '');
    }
    assert.equal(adminSeen.length + dockerSeen.length, 0);
  });

  it('--help prints the usage and exits 0', async () => {
    const r = await truss(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.out, /truss policy set {3}NETWORK --ingress SPEC/);
  });

  it('checks SPEC locally, before asking Docker or the daemon (exit 2, the bad token named)', async () => {
    for (const [spec, msg] of [
      ['tcp/0', 'truss: option --ingress: "tcp/0" is not a valid rule: port must be 1-65535\n'],
      ['tcp/80;rm -rf /', /"tcp\/80;rm -rf \/" is not a valid rule: character ";" is not allowed/],
      ['tcp/80,', /"" is not a valid rule: empty entry/],
      ['', /empty value; use "none" for nothing inbound/],
      ['TCP/80', /"TCP\/80" is not a valid rule: must be lower case/],
    ] as const) {
      const r = await truss(['set', 'web', '--ingress', spec]);
      assert.equal(r.code, 2, spec);
      if (typeof msg === 'string') assert.equal(r.err, msg);
      else assert.match(r.err, msg);
    }
    assert.equal(adminSeen.length + dockerSeen.length, 0);
  });

  it('says clearly when no daemon is listening (exit 1)', async () => {
    const r = await truss(['show', WEB.slice(0, 12)], { ...ENV, TRUSS_STATE_DIR: noDaemonDir });
    assert.equal(r.code, 1);
    assert.equal(
      r.err,
      `truss: no truss daemon is listening on ${noDaemonDir}/admin.sock (is it running? wrong --state-dir?)\n`,
    );
    const flag = await truss(['show', WEB, '--state-dir', noDaemonDir]);
    assert.match(flag.err, /no truss daemon is listening on .*truss-policy-none-.*admin\.sock/);
  });

  it('says clearly when Docker is unreachable (exit 1)', async () => {
    const r = await truss(['show', 'web'], { ...ENV, DOCKER_HOST: `unix://${noDaemonDir}/docker.sock` });
    assert.equal(r.code, 1);
    assert.match(
      r.err,
      /^truss: cannot reach the Docker daemon at unix:\/\/.*docker\.sock \(ENOENT\): is dockerd running\?/,
    );
  });
});

describe('truss policy: resolving NETWORK', { timeout: 10_000 }, () => {
  it('an id prefix of exactly one truss network needs no Docker', async () => {
    for (const ref of [WEB.slice(0, 12), WEB.slice(0, 20), WEB]) {
      adminSeen.length = 0;
      const r = await truss(['show', ref]);
      assert.equal(r.code, 0, r.err);
      assert.deepStrictEqual(
        adminSeen.map((q) => `${q.method} ${q.url}`),
        ['GET /v1/status', `GET /v1/networks/${WEB}/policy`],
      );
    }
    assert.equal(dockerSeen.length, 0);
  });

  it('a name, a short hex string or an ambiguous prefix goes to Docker', async () => {
    assert.equal((await truss(['show', 'web'])).code, 0);
    assert.equal((await truss(['show', 'aaaaaaaaaaaa'])).code, 0); // TWIN_A and TWIN_B share it
    assert.equal((await truss(['show', '0123456789a'])).code, 1); // 11 hex: a name, Docker has none
    assert.deepStrictEqual(
      dockerSeen.map((q) => q.url),
      ['/networks/web', '/networks/aaaaaaaaaaaa', '/networks/0123456789a'],
    );
    assert.deepStrictEqual(
      adminSeen.map((q) => `${q.method} ${q.url}`),
      ['GET /v1/networks/'.concat(WEB, '/policy'), 'GET /v1/status', `GET /v1/networks/${TWIN_B}/policy`],
    );
  });

  it('accepts truss and managed-plugin drivers, refuses others', async () => {
    assert.equal((await truss(['show', 'db'])).code, 0);
    const r = await truss(['set', 'br', '--ingress', 'tcp/80']);
    assert.equal(r.code, 1);
    assert.equal(
      r.err,
      'truss: network "br" (bbbbbbbbbbbb) uses driver "bridge", not truss: port policy applies only to truss networks\n',
    );
    assert.ok(!adminSeen.some((q) => q.method === 'PUT'));
    for (const d of ['truss', 'truss:latest', 'acme/truss:0.1', 'registry.local:5000/acme/truss:v1.2-rc']) {
      assert.ok(isTrussDriver(d), d);
    }
    for (const d of ['bridge', 'overlay', 'trussx', 'mytruss:latest', 'acme/truss', 'truss:', 'acme/truss:1/x']) {
      assert.ok(!isTrussDriver(d), d);
    }
  });

  it('reports an unknown network from Docker or the daemon (exit 1)', async () => {
    const r = await truss(['show', 'nope']);
    assert.equal(r.code, 1);
    assert.equal(r.err, 'truss: Docker has no network "nope" (see docker network ls)\n');
    const g = await truss(['show', 'ghost']);
    assert.equal(g.code, 1);
    assert.equal(g.err, 'truss: network cccccccccccc is not a truss network\n');
  });
});

describe('truss policy: set, clear, show', { timeout: 10_000 }, () => {
  it('set sends the spec, then prints the programmed view', async () => {
    const r = await truss(['set', 'web', '--ingress', 'tcp/80,tcp/8080@198.18.7.0/24']);
    assert.equal(r.code, 0, r.err);
    const put = adminSeen.at(-1);
    assert.equal(put?.method, 'PUT');
    assert.equal(put?.url, `/v1/networks/${WEB}/policy`);
    assert.deepStrictEqual(JSON.parse(put?.body ?? ''), { ingress: 'tcp/80,tcp/8080@198.18.7.0/24' });
    assert.equal(
      r.out,
      [
        'network 0123456789ab  ingress: tcp/80,tcp/8080@198.18.7.0/24 (set at run time: truss policy set)',
        '',
        'ENDPOINT      ADDRESSES              POLICY     DENIED',
        'e1e1e1e1e1e1  198.18.10.2,fd00:7::2  (network)  0',
        'e2e2e2e2e2e2  198.18.10.3            tcp/22     17',
        '',
      ].join('\n'),
    );
  });

  it('set none, clear, show', async () => {
    assert.match((await truss(['set', 'web', '--ingress', 'none'])).out, /ingress: none \(nothing inbound\)/);
    const c = await truss(['clear', 'web']);
    assert.equal(c.code, 0, c.err);
    assert.deepStrictEqual(JSON.parse(adminSeen.at(-1)?.body ?? ''), { ingress: null });
    assert.match(c.out, /^network 0123456789ab {2}ingress: open \(no policy: all inbound traffic admitted\)\n/);
    const s = await truss(['show', 'web']);
    assert.equal(adminSeen.at(-1)?.method, 'GET');
    assert.equal(s.out, c.out);
  });

  it('--json prints the PolicyView', async () => {
    const r = await truss(['set', 'web', '--ingress', 'udp/53', '--json']);
    assert.equal(r.code, 0, r.err);
    policies.set(WEB, 'udp/53');
    assert.deepStrictEqual(JSON.parse(r.out), { schemaVersion: 1, ...view(WEB) });
    const s = await truss(['show', WEB.slice(0, 12), '--json']);
    assert.deepStrictEqual(JSON.parse(s.out), { schemaVersion: 1, ...view(WEB) });
  });

  it("a spec the daemon refuses is exit 2 with the daemon's message", async () => {
    const r = await truss(['set', 'web', '--ingress', 'tcp/7']);
    assert.equal(r.code, 2);
    assert.equal(r.err, 'truss: option truss.ingress: the daemon refuses tcp/7\n');
  });

  it('refuses a malformed daemon reply with a clear message', () => {
    assert.throws(
      () => decodePolicyView({ networkId: WEB, ingress: 5, source: 'open', endpoints: [] }),
      /unexpected policy reply \(ingress\)/,
    );
    assert.throws(
      () => decodePolicyView({ ...view(WEB), endpoints: [{ endpointId: EP1, addresses: [], ingress: null }] }),
      /unexpected policy reply \(endpoints\[\]\)/,
    );
    assert.deepStrictEqual(decodePolicyView({ ...view(WEB), extra: 1 } as never), view(WEB));
  });
});

describe('truss policy: through bin main', { timeout: 10_000 }, () => {
  const main = fileURLToPath(new URL('./main.ts', import.meta.url));
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', env: { ...process.env, ...ENV } });

  it('is wired into the truss command and its usage', () => {
    const bad = run('policy', 'set', 'web', '--ingress', 'tcp/080');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^truss: option --ingress: "tcp\/080" is not a valid rule: port "080"/);
    const help = run('--help');
    assert.match(help.stdout, /policy set {3}NETWORK --ingress SPEC/);
  });
});
