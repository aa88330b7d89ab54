/**
 * The HTTP edge: bodies (empty, invalid, too large), routing, error replies, the handler
 * deadline, logging, and that nothing a client sends can take the server down.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import type { CreateEndpointInput, RequestContext } from '../core/contracts.ts';
import { errors } from '../core/errors.ts';
import type { RpcObservation } from './server.ts';
import { recordingServices, startServer, type TestServer } from './testing.ts';

const NID = 'a'.repeat(64);
const EID = 'b'.repeat(64);
const DOCKER_HEADERS = { Host: 'plugin.moby.localhost', Accept: 'application/vnd.docker.plugins.v1.2+json' };
const MiB = 1024 * 1024;

const createNetworkBody = (over: Record<string, unknown> = {}): string =>
  `${JSON.stringify({
    NetworkID: NID,
    Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': {} },
    IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '198.18.0.0/24', Gateway: '198.18.0.1/24' }],
    IPv6Data: [],
    ...over,
  })}\n`;

let srv: TestServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

async function start(...args: Parameters<typeof startServer>): Promise<TestServer> {
  srv = await startServer(...args);
  return srv;
}

/** POST `body` and expect an error reply; returns the message (Err and Error must agree). */
async function expectError(s: TestServer, path: string, body: string, status = 500): Promise<string> {
  const r = await s.request(path, body, { headers: DOCKER_HEADERS });
  assert.equal(r.status, status, r.text);
  const reply = r.json as { Err: string; Error: string };
  assert.equal(typeof reply.Err, 'string');
  assert.equal(reply.Error, reply.Err);
  return reply.Err;
}

describe('protocol server', { timeout: 30_000 }, () => {
  it('tells the daemon when dockerd activates the plugin (a restarted dockerd)', async () => {
    let activations = 0;
    const s = await start(recordingServices(), { onActivate: () => activations++ });
    await s.request('/NetworkDriver.GetCapabilities', '', { headers: DOCKER_HEADERS });
    assert.equal(activations, 0);
    const r = await s.request('/Plugin.Activate', '', { headers: DOCKER_HEADERS });
    assert.equal(r.status, 200);
    assert.equal(activations, 1);
  });

  it('answers the argument-less calls with an empty body', async () => {
    const s = await start();
    const expected: Record<string, unknown> = {
      '/Plugin.Activate': { Implements: ['NetworkDriver', 'IpamDriver'] },
      '/NetworkDriver.GetCapabilities': { Scope: 'local', ConnectivityScope: 'global' },
      '/IpamDriver.GetCapabilities': { RequiresMACAddress: false, RequiresRequestReplay: true },
      '/IpamDriver.GetDefaultAddressSpaces': {
        LocalDefaultAddressSpace: 'TrussLocal',
        GlobalDefaultAddressSpace: 'TrussGlobal',
      },
    };
    for (const [path, reply] of Object.entries(expected)) {
      const r = await s.request(path, '', { headers: DOCKER_HEADERS });
      assert.equal(r.status, 200, path);
      assert.deepEqual(r.json, reply, path); // exact: no GwAllocChecker
    }
  });

  it('refuses an empty or non-JSON body on CreateNetwork without calling the service', async () => {
    const s = await start();
    const empty = await expectError(s, '/NetworkDriver.CreateNetwork', '');
    assert.match(empty, /empty request body: NetworkDriver\.CreateNetwork needs a JSON object/);
    const garbage = await expectError(s, '/NetworkDriver.CreateNetwork', '{"NetworkID":');
    assert.match(garbage, /request body of NetworkDriver\.CreateNetwork is not valid JSON/);
    assert.equal(
      await expectError(s, '/NetworkDriver.CreateNetwork', 'null\n'),
      'request body must be a JSON object, got null',
    );
    assert.deepEqual(s.stubs.calls, []);
  });

  it('names the offending field and value', async () => {
    const s = await start();
    const cases: [string, string, string][] = [
      [
        '/NetworkDriver.CreateNetwork',
        createNetworkBody({ NetworkID: 'xyz' }),
        'NetworkID must be a 64-character hex id, got "xyz"',
      ],
      ['/NetworkDriver.DeleteNetwork', '{}', 'NetworkID is required'],
      [
        '/NetworkDriver.Leave',
        JSON.stringify({ NetworkID: NID, EndpointID: EID.toUpperCase() }),
        `EndpointID must be a 64-character hex id, got "${EID.toUpperCase()}"`,
      ],
      [
        '/NetworkDriver.CreateNetwork',
        createNetworkBody({ IPv4Data: [{ Pool: '198.18.0.0/24', Gateway: '198.18.0.1' }] }),
        'IPv4Data[0].Gateway must be an IPv4 CIDR such as "198.18.0.1/24" or "", got "198.18.0.1"',
      ],
      [
        '/NetworkDriver.CreateNetwork',
        createNetworkBody({ Options: { 'com.docker.network.generic': { mtu: 1400 } } }),
        'Options["com.docker.network.generic"].mtu must be a string, got 1400',
      ],
      [
        '/NetworkDriver.Join',
        JSON.stringify({ NetworkID: NID, EndpointID: EID, SandboxKey: '/var/run/docker/netns/../../etc' }),
        'SandboxKey must be an absolute path with no ".." segment, got "/var/run/docker/netns/../../etc"',
      ],
      [
        '/NetworkDriver.Join',
        JSON.stringify({ NetworkID: NID, EndpointID: EID, SandboxKey: 'netns/x' }),
        'SandboxKey must be an absolute path with no ".." segment, got "netns/x"',
      ],
      [
        '/NetworkDriver.CreateEndpoint',
        JSON.stringify({ NetworkID: NID, EndpointID: EID, Interface: { MacAddress: 'AkLGEskK' } }),
        'Interface.MacAddress must be a colon-hex MAC address such as "02:42:c6:12:c9:0a" or "", got "AkLGEskK"',
      ],
      [
        '/IpamDriver.RequestAddress',
        JSON.stringify({ PoolID: 'p', Address: '198.18.0.5/24', Options: null }),
        'Address must be a bare IP address such as "198.18.0.5" or "", got "198.18.0.5/24"',
      ],
      [
        '/IpamDriver.RequestPool',
        JSON.stringify({ AddressSpace: 'x', Pool: 'big', V6: 'no' }),
        'Pool must be a CIDR such as "198.18.0.1/24" or "", got "big"; V6 must be a boolean, got "no"',
      ],
    ];
    for (const [path, body, message] of cases) assert.equal(await expectError(s, path, body), message, path);
    assert.deepEqual(s.stubs.calls, []);
  });

  it('refuses bodies over 1 MiB with 413, and accepts exactly 1 MiB', async () => {
    const s = await start();
    const base = createNetworkBody();
    const exact = `${base.slice(0, -2)},"pad":"${'x'.repeat(MiB - base.length - 9)}"}\n`;
    assert.equal(Buffer.byteLength(exact), MiB);
    const ok = await s.request('/NetworkDriver.CreateNetwork', exact, { headers: DOCKER_HEADERS });
    assert.equal(ok.status, 200, ok.text);

    const streamed = await s.request('/NetworkDriver.CreateNetwork', `${exact} `, { chunked: true });
    assert.equal(streamed.status, 413);
    assert.match((streamed.json as { Err: string }).Err, /larger than 1048576 bytes/);
    assert.equal(streamed.headers.connection, 'close');
    assert.equal(s.stubs.argsOf('createNetwork').length, 1);
  });

  it('refuses a declared Content-Length over 1 MiB before the body is sent', async () => {
    const s = await start();
    const reply = await rawExchange(
      s.socketPath,
      `POST /NetworkDriver.CreateNetwork HTTP/1.1\r\nHost: \r\nContent-Length: ${MiB + 1}\r\n\r\n`,
    );
    assert.match(reply, /^HTTP\/1\.1 413 /);
    assert.match(reply, /"Err":"request body is larger than 1048576 bytes/);
  });

  it('answers 404 for unknown paths and 405 for other methods', async () => {
    const s = await start();
    for (const path of ['/NetworkDriver.GwAllocCheck', '/VolumeDriver.Create', '/constructor', '/__proto__', '/']) {
      const r = await s.request(path, '{}');
      assert.equal(r.status, 404, path);
      assert.match((r.json as { Err: string }).Err, /truss has no plugin endpoint/);
    }
    const get = await s.request('/Plugin.Activate', '', { method: 'GET' });
    assert.equal(get.status, 405);
    assert.equal(get.headers.allow, 'POST');
    assert.match((get.json as { Err: string }).Err, /plugin calls are POST/);
  });

  it('tells its observer of every answered request: the route (or unknown), outcome and duration', async () => {
    const seen: RpcObservation[] = [];
    const stubs = recordingServices({
      network: {
        createNetwork: async () => {
          throw errors.networkConflict('network 0123 already exists with different options');
        },
      },
    });
    const s = await start(stubs, { onRpc: (r) => seen.push(r) });
    await s.request('/NetworkDriver.GetCapabilities', '', { headers: DOCKER_HEADERS });
    await s.request('/NetworkDriver.CreateNetwork', createNetworkBody(), { headers: DOCKER_HEADERS });
    await s.request('/NetworkDriver.CreateNetwork', '', { headers: DOCKER_HEADERS });
    await s.request(`/Made.Up.${'x'.repeat(50)}`, '{}');
    await s.request('/Plugin.Activate', '', { method: 'GET' });
    assert.deepEqual(
      seen.map((r) => [r.method, r.outcome]),
      [
        ['NetworkDriver.GetCapabilities', 'ok'],
        ['NetworkDriver.CreateNetwork', 'error'],
        ['NetworkDriver.CreateNetwork', 'error'],
        ['unknown', 'error'],
        ['unknown', 'error'],
      ],
    );
    for (const r of seen) assert.ok(r.seconds >= 0 && r.seconds < 5, `${r.seconds}`);
  });

  it('replies 500 with Err and Error set to a TrussError message, logged once at warn', async () => {
    const stubs = recordingServices({
      network: {
        createNetwork: async () => {
          throw errors.networkConflict('network 0123 already exists with different options');
        },
      },
    });
    const s = await start(stubs);
    const msg = await expectError(s, '/NetworkDriver.CreateNetwork', createNetworkBody());
    assert.equal(msg, 'network 0123 already exists with different options');
    const failures = s.lines.filter((l) => l.msg === 'rpc failed');
    assert.equal(failures.length, 1);
    assert.equal(failures[0]?.level, 'warn');
    assert.equal(failures[0]?.code, 'TRUSS_ERR_NETWORK_CONFLICT');
    assert.equal(failures[0]?.nid, NID.slice(0, 12));
  });

  it('hides a non-TrussError behind a generic message and logs the cause at error', async () => {
    const stubs = recordingServices({
      ipam: {
        releasePool: async () => {
          throw new Error('sqlite: database is locked');
        },
      },
    });
    const s = await start(stubs);
    const msg = await expectError(s, '/IpamDriver.ReleasePool', '{"PoolID":"p1"}\n');
    assert.match(msg, /^internal error \(see truss logs, reqId \w+\)$/);
    const [failure] = s.lines.filter((l) => l.msg === 'rpc failed');
    assert.equal(failure?.level, 'error');
    assert.equal(failure?.code, 'TRUSS_ERR_INTERNAL');
    assert.match(JSON.stringify(failure?.err), /database is locked/);
  });

  it('answers an unserialisable service result with an internal error', async () => {
    const stubs = recordingServices({ network: { endpointOperInfo: async () => ({ rx: 1n }) } });
    const s = await start(stubs);
    const msg = await expectError(
      s,
      '/NetworkDriver.EndpointOperInfo',
      JSON.stringify({ NetworkID: NID, EndpointID: EID }),
    );
    assert.match(msg, /^internal error/);
  });

  it('answers a hanging service with a timeout error, and keeps serving', async () => {
    let finish: () => void = () => {};
    const stubs = recordingServices({
      network: { join: () => new Promise((resolve) => (finish = () => resolve(hangingJoinResult))) },
    });
    const s = await start(stubs, { handlerTimeoutMs: 50 });
    const body = JSON.stringify({
      NetworkID: NID,
      EndpointID: EID,
      SandboxKey: '/var/run/docker/netns/1',
      Options: null,
    });
    const msg = await expectError(s, '/NetworkDriver.Join', body);
    assert.match(msg, /^NetworkDriver\.Join timed out after 50ms/);
    finish();
    await new Promise((r) => setImmediate(r));
    assert.ok(s.lines.some((l) => l.msg === 'rpc completed after its deadline'));
    const next = await s.request('/NetworkDriver.GetCapabilities', '');
    assert.equal(next.status, 200);
  });

  it("tells the service whether its success reply was handed to dockerd's connection", async () => {
    const seen: Promise<boolean>[] = [];
    let fail = false;
    let hang: Promise<void> | undefined;
    const stubs = recordingServices({
      ipam: {
        releasePool: async (_id: string, ctx?: RequestContext) => {
          if (ctx) seen.push(ctx.replied);
          if (hang) await hang;
          if (fail) throw errors.poolNotFound('no such pool');
        },
      },
    });
    const s = await start(stubs, { handlerTimeoutMs: 50 });
    const body = JSON.stringify({ PoolID: 'TrussLocal/198.18.0.0/24' });
    assert.equal((await s.request('/IpamDriver.ReleasePool', body)).status, 200);
    assert.equal(await seen[0], true, 'a success reply that finished');
    fail = true;
    await expectError(s, '/IpamDriver.ReleasePool', body);
    assert.equal(await seen[1], false, 'an error reply');
    fail = false;
    const gate = Promise.withResolvers<void>();
    hang = gate.promise;
    await expectError(s, '/IpamDriver.ReleasePool', body);
    gate.resolve();
    assert.equal(await seen[2], false, 'the reply dockerd got was the timeout, not the late success');
  });

  it('encodes CreateEndpoint and Join replies with exactly the fields Docker reads', async () => {
    const stubs = recordingServices({
      network: {
        createEndpoint: async (input: CreateEndpointInput) =>
          input.macAddress ? {} : { macAddress: '02:54:00:aa:bb:cc' },
        join: async () => ({
          srcName: 'trcbbbbbbbbbbbb',
          dstPrefix: 'eth',
          gatewayIpv6: 'fd00::1',
          staticRoutes: [
            { destination: '198.19.9.0/24', routeType: 0, nextHop: '198.18.0.254' },
            { destination: '169.254.1.1/32', routeType: 1 },
          ],
          disableGatewayService: true,
        }),
      },
    });
    const s = await start(stubs);
    const ep = (mac: string) =>
      JSON.stringify({
        NetworkID: NID,
        EndpointID: EID,
        Interface: { Address: '198.18.0.2/24', AddressIPv6: '', MacAddress: mac },
        Options: null,
      });
    assert.equal(
      (await s.request('/NetworkDriver.CreateEndpoint', ep(''))).text,
      '{"Interface":{"MacAddress":"02:54:00:aa:bb:cc"}}',
    );
    assert.equal((await s.request('/NetworkDriver.CreateEndpoint', ep('02:42:C6:12:C9:0A'))).text, '{}');
    assert.deepEqual(s.stubs.argsOf('createEndpoint')[1], {
      networkId: NID,
      endpointId: EID,
      address: '198.18.0.2/24',
      macAddress: '02:42:c6:12:c9:0a',
      options: {},
    });
    const join = await s.request(
      '/NetworkDriver.Join',
      JSON.stringify({ NetworkID: NID, EndpointID: EID, SandboxKey: '/run/netns/x' }),
    );
    assert.deepEqual(join.json, {
      InterfaceName: { SrcName: 'trcbbbbbbbbbbbb', DstPrefix: 'eth' },
      GatewayIPv6: 'fd00::1',
      StaticRoutes: [
        { Destination: '198.19.9.0/24', RouteType: 0, NextHop: '198.18.0.254' },
        { Destination: '169.254.1.1/32', RouteType: 1 },
      ],
      DisableGatewayService: true,
    });
  });

  it('echoes AllocateNetwork options and accepts a swarm network id', async () => {
    const s = await start();
    const body = JSON.stringify({
      NetworkID: 'p2dm8vd2fkj1zo1uzpyjtwq9z',
      Options: { 'truss.mtu': '1380' },
      IPv4Data: [],
      IPv6Data: null,
    });
    const r = await s.request('/NetworkDriver.AllocateNetwork', body);
    assert.deepEqual(r.json, { Options: { 'truss.mtu': '1380' } });
    assert.equal(
      (await s.request('/NetworkDriver.FreeNetwork', '{"NetworkID":"p2dm8vd2fkj1zo1uzpyjtwq9z"}')).status,
      200,
    );
  });

  it('answers DiscoverNew/DiscoverDelete with {} whatever they carry', async () => {
    const s = await start();
    const event = '{"DiscoveryType":1,"DiscoveryData":{"Address":"198.18.0.5","BindAddress":"","Self":false}}\n';
    for (const [path, body] of [
      ['/NetworkDriver.DiscoverNew', event],
      ['/NetworkDriver.DiscoverDelete', event],
      ['/NetworkDriver.DiscoverNew', ''],
      ['/NetworkDriver.DiscoverDelete', 'not json'],
    ] as const) {
      const r = await s.request(path, body);
      assert.equal(r.status, 200);
      assert.equal(r.text, '{}');
    }
    assert.ok(s.lines.some((l) => l.msg === 'discovery event ignored' && l.level === 'debug'));
  });

  it('logs each request and response at debug with rpc, reqId, ids and duration', async () => {
    const s = await start();
    await s.request('/NetworkDriver.DeleteNetwork', JSON.stringify({ NetworkID: NID }));
    const req = s.lines.find((l) => l.msg === 'rpc request');
    const res = s.lines.find((l) => l.msg === 'rpc response');
    assert.equal(req?.rpc, 'NetworkDriver.DeleteNetwork');
    assert.deepEqual(req?.body, { NetworkID: NID });
    assert.equal(req?.nid, NID.slice(0, 12));
    assert.equal(res?.reqId, req?.reqId);
    assert.equal(res?.status, 200);
    assert.deepEqual(res?.body, {});
    assert.equal(typeof res?.durationMs, 'number');
  });

  it('survives aborted bodies and malformed HTTP', async () => {
    const s = await start();
    const aborted = net.connect(s.socketPath);
    await new Promise<void>((resolve) => aborted.once('connect', resolve));
    aborted.write('POST /NetworkDriver.CreateNetwork HTTP/1.1\r\nHost: \r\nContent-Length: 100\r\n\r\n{"Netw');
    await new Promise((r) => setTimeout(r, 10));
    aborted.destroy();
    const garbage = await rawExchange(s.socketPath, 'HELLO\r\n\r\n');
    assert.match(garbage, /^HTTP\/1\.1 400 /);
    const r = await s.request('/NetworkDriver.GetCapabilities', '');
    assert.equal(r.status, 200);
    assert.deepEqual(s.stubs.argsOf('createNetwork'), []);
  });

  it('uses keep-alive and request timeouts that suit dockerd', async () => {
    const s = await start();
    assert.equal(s.server.keepAliveTimeout, 65_000);
    assert.equal(s.server.headersTimeout, 10_000);
    assert.equal(s.server.requestTimeout, 30_000);
    assert.ok(s.server.maxConnections > 6 && s.server.maxConnections <= 1024);
  });
});

const hangingJoinResult = {
  srcName: 'trcbbbbbbbbbbbb',
  dstPrefix: 'eth',
  staticRoutes: [],
  disableGatewayService: false,
} as const;

/** Send raw bytes on a fresh connection; resolve with everything the server sends until it closes. */
function rawExchange(socketPath: string, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    sock.write(data);
  });
}
