/**
 * B7 (reliability test plan §5.3): fast-check generators for every request schema of
 * protocol/wire.ts, sent to the protocol server over its socket with the real services over an
 * in-memory store and the fake dataplane. Properties: the process survives (no unhandled
 * rejection or exception), every reply is JSON, and a rejected request (non-200, or `Err` /
 * `Error` set) changes nothing: the store's content and the fake kernel are as before.
 * Used by fuzz.test.ts (CI counts) and bench/soak.ts (--fuzz-runs, the nightly counts).
 */
import fc from 'fast-check';
import { loadConfig } from '../config.ts';
import { endpointId, networkId } from '../core/ids.ts';
import { buildDaemon } from '../daemon.ts';
import { FakeDataplane } from '../dataplane/fake/fake-dataplane.ts';
import { silentLogger } from '../obs/logger.ts';
import { MemoryStore } from '../store/memory.ts';
import { startServer, type TestServer } from './testing.ts';

const hex = (c: string): string => c.repeat(64);
/** ids the seeded state knows, so that generated requests reach existing objects too */
export const KNOWN = { net: networkId(hex('a')), ep: endpointId(hex('b')), joined: endpointId(hex('c')) };
const SUBNET = '198.18.40.0/24';

const anyJson = fc.jsonValue({ maxDepth: 3 });
/** a value for a field: mostly well-formed, sometimes anything at all */
const field = <T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
  fc.oneof({ arbitrary: good, weight: 4 }, { arbitrary: anyJson, weight: 1 }, { arbitrary: fc.string(), weight: 1 });

const randomId = fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 });
const dockerId = fc.oneof(
  fc.constantFrom(KNOWN.net, KNOWN.ep, KNOWN.joined),
  fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 }),
  fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF-'), minLength: 60, maxLength: 68 }),
);
const octet = fc.integer({ min: 0, max: 300 });
const ip4 = fc.oneof(
  fc.tuple(fc.constantFrom(18, 19), octet, octet).map(([b, c, d]) => `198.${b}.${c}.${d}`),
  fc.constantFrom(
    '198.18.40.10',
    '198.18.40.1',
    '0.0.0.0',
    '127.0.0.1',
    '224.0.0.1',
    '255.255.255.255',
    '198.18.40.256',
  ),
  fc.ipV4(),
);
const ip6 = fc.oneof(fc.constantFrom('fd00::1', 'fd00:40::10', '::1', 'fe80::1%eth0', '::ffff:198.18.0.1'), fc.ipV6());
const prefixLen = fc.integer({ min: -1, max: 130 });
const cidr4 = fc.tuple(ip4, prefixLen).map(([a, l]) => `${a}/${l}`);
const cidr6 = fc.tuple(ip6, prefixLen).map(([a, l]) => `${a}/${l}`);
const cidr = fc.oneof(cidr4, cidr6, fc.constantFrom(SUBNET, '198.18.41.0/24', '0.0.0.0/0', '198.18.40.0/33'));
const poolId = fc.oneof(
  fc.constantFrom(`TrussLocal/${SUBNET}`, 'TrussLocal/198.18.41.0/24', 'TrussGlobal/198.18.40.0/24'),
  fc.tuple(fc.constantFrom('TrussLocal', 'TrussGlobal', 'x', ''), cidr).map(([s, c]) => `${s}/${c}`),
);
const stringMap = fc.dictionary(fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 }), { maxKeys: 4 });
const knownOptions = fc.record(
  {
    'com.docker.network.generic': field(
      fc.record(
        {
          'com.docker.network.bridge.name': field(fc.string({ maxLength: 20 })),
          'com.docker.network.driver.mtu': field(fc.integer({ min: -1, max: 70_000 }).map(String)),
          'truss.nat': field(fc.constantFrom('true', 'false', 'maybe')),
          'truss.ingress': field(fc.constantFrom('open', 'closed', 'tcp/80', 'udp/1-65535', '; flush ruleset')),
          'truss.bandwidth': field(fc.constantFrom('10mbit', '1gbit', '-1', 'x')),
        },
        { requiredKeys: [] },
      ),
    ),
    'com.docker.network.internal': field(fc.boolean()),
    'com.docker.network.enable_ipv6': field(fc.boolean()),
  },
  { requiredKeys: [] },
);
const ipamData = (c: fc.Arbitrary<string>) =>
  fc.array(
    fc.record(
      {
        AddressSpace: field(fc.constantFrom('TrussLocal', '')),
        Pool: field(c),
        Gateway: field(c),
        AuxAddresses: field(fc.dictionary(fc.string({ maxLength: 8 }), c, { maxKeys: 2 })),
      },
      { requiredKeys: [] },
    ),
    { maxLength: 2 },
  );
const portmap = fc.array(
  fc.record({
    Proto: field(fc.constantFrom(6, 17, 1, 132)),
    Port: field(fc.integer({ min: -1, max: 70_000 })),
    HostIP: field(ip4),
    HostPort: field(fc.integer({ min: -1, max: 70_000 })),
    HostPortEnd: field(fc.integer({ min: -1, max: 70_000 })),
  }),
  { maxLength: 3 },
);
const epOptions = fc.record(
  {
    'com.docker.network.endpoint.exposedports': field(fc.array(fc.record({ Proto: fc.nat(20), Port: fc.nat(70_000) }))),
    'com.docker.network.portmap': field(portmap),
    'truss.ingress': field(fc.constantFrom('open', 'closed', 'tcp/80')),
  },
  { requiredKeys: [] },
);
const sandboxKey = fc.oneof(
  fc.constantFrom('/var/run/docker/netns/abc123', '/var/run/docker/netns/../../etc/passwd', '/proc/1/ns/net', ''),
  fc.string({ maxLength: 80 }),
);

/** One generator per route: the request body (an object, or raw bytes that are not one). */
export const ROUTES: Readonly<Record<string, fc.Arbitrary<unknown>>> = {
  '/Plugin.Activate': fc.constant({}),
  '/NetworkDriver.GetCapabilities': fc.constant({}),
  '/NetworkDriver.CreateNetwork': fc.record(
    {
      NetworkID: field(dockerId),
      Options: field(knownOptions),
      IPv4Data: field(ipamData(cidr4)),
      IPv6Data: field(ipamData(cidr6)),
    },
    { requiredKeys: [] },
  ),
  // not the seeded network: later cases need it
  '/NetworkDriver.DeleteNetwork': fc.record({ NetworkID: field(randomId) }, { requiredKeys: [] }),
  '/NetworkDriver.AllocateNetwork': fc.record(
    { NetworkID: field(dockerId), Options: field(stringMap) },
    { requiredKeys: [] },
  ),
  '/NetworkDriver.FreeNetwork': fc.record({ NetworkID: field(dockerId) }, { requiredKeys: [] }),
  '/NetworkDriver.CreateEndpoint': fc.record(
    {
      NetworkID: field(dockerId),
      EndpointID: field(dockerId),
      Interface: field(
        fc.record(
          {
            Address: field(cidr4),
            AddressIPv6: field(cidr6),
            MacAddress: field(fc.constantFrom('02:42:c6:12:28:0a', 'zz', '')),
          },
          { requiredKeys: [] },
        ),
      ),
      Options: field(epOptions),
    },
    { requiredKeys: [] },
  ),
  '/NetworkDriver.DeleteEndpoint': fc.record(
    { NetworkID: field(dockerId), EndpointID: field(dockerId) },
    { requiredKeys: [] },
  ),
  '/NetworkDriver.EndpointOperInfo': fc.record(
    { NetworkID: field(dockerId), EndpointID: field(dockerId) },
    { requiredKeys: [] },
  ),
  '/NetworkDriver.Join': fc.record(
    {
      NetworkID: field(dockerId),
      EndpointID: field(dockerId),
      SandboxKey: field(sandboxKey),
      Options: field(epOptions),
    },
    { requiredKeys: [] },
  ),
  '/NetworkDriver.Leave': fc.record({ NetworkID: field(dockerId), EndpointID: field(dockerId) }, { requiredKeys: [] }),
  '/NetworkDriver.ProgramExternalConnectivity': fc.record(
    { NetworkID: field(dockerId), EndpointID: field(dockerId), Options: field(epOptions) },
    { requiredKeys: [] },
  ),
  '/NetworkDriver.RevokeExternalConnectivity': fc.record(
    { NetworkID: field(dockerId), EndpointID: field(dockerId) },
    { requiredKeys: [] },
  ),
  '/NetworkDriver.DiscoverNew': fc.record(
    { DiscoveryType: field(fc.nat(3)), DiscoveryData: anyJson },
    { requiredKeys: [] },
  ),
  '/NetworkDriver.DiscoverDelete': fc.record(
    { DiscoveryType: field(fc.nat(3)), DiscoveryData: anyJson },
    { requiredKeys: [] },
  ),
  '/IpamDriver.GetCapabilities': fc.constant({}),
  '/IpamDriver.GetDefaultAddressSpaces': fc.constant({}),
  '/IpamDriver.RequestPool': fc.record(
    {
      AddressSpace: field(fc.constantFrom('TrussLocal', 'TrussGlobal', '')),
      Pool: field(cidr),
      SubPool: field(cidr),
      Options: field(stringMap),
      V6: field(fc.boolean()),
    },
    { requiredKeys: [] },
  ),
  '/IpamDriver.ReleasePool': fc.record({ PoolID: field(poolId) }, { requiredKeys: [] }),
  '/IpamDriver.RequestAddress': fc.record(
    {
      PoolID: field(poolId),
      Address: field(fc.oneof(ip4, ip6, fc.constant(''))),
      Options: field(fc.oneof(stringMap, fc.constant({ RequestAddressType: 'com.docker.network.gateway' }))),
    },
    { requiredKeys: [] },
  ),
  '/IpamDriver.ReleaseAddress': fc.record(
    { PoolID: field(poolId), Address: field(fc.oneof(ip4, ip6)) },
    { requiredKeys: [] },
  ),
};

/** A body as bytes: mostly the JSON of a generated request, sometimes broken or not an object at all. */
const bodyOf = (req: fc.Arbitrary<unknown>): fc.Arbitrary<string> =>
  fc.oneof(
    { arbitrary: req.map((r) => `${JSON.stringify(r)}\n`), weight: 8 },
    { arbitrary: req.map((r) => JSON.stringify(r).slice(0, -1)), weight: 1 },
    { arbitrary: anyJson.map((v) => JSON.stringify(v)), weight: 1 },
    { arbitrary: fc.string({ maxLength: 60 }), weight: 1 },
  );

export interface FuzzBed {
  readonly server: TestServer;
  /** the store's content and the fake kernel, as one string (compare before/after a request) */
  state(): Promise<string>;
  close(): Promise<void>;
}

/** The protocol server with real services over a MemoryStore and a FakeDataplane, seeded with a network and endpoints. */
export async function fuzzBed(): Promise<FuzzBed> {
  const store = new MemoryStore();
  const dp = new FakeDataplane();
  // the daemon's own wiring (src/daemon.ts); full passes only on demand
  const config = loadConfig(['--resync-seconds', '3600'], {});
  const d = await buildDaemon(config, {
    store,
    dataplane: dp,
    log: silentLogger,
    stamps: false,
    programTimeoutMs: 2000,
  });
  d.start();
  const { network, ipam } = d;
  const server = await startServer({ network, ipam: d.releases, calls: [], argsOf: () => [] });
  const pool = await ipam.requestPool({
    addressSpace: 'TrussLocal',
    pool: SUBNET,
    subPool: '',
    options: {},
    v6: false,
  });
  await network.createNetwork({
    networkId: KNOWN.net,
    ipv4: [{ pool: SUBNET, gateway: '198.18.40.1/24', auxAddresses: {} }],
    ipv6: [],
    generic: {},
    internal: false,
    enableIpv6: false,
  });
  void pool;
  for (const [id, ip] of [
    [KNOWN.ep, '198.18.40.10/24'],
    [KNOWN.joined, '198.18.40.11/24'],
  ] as const) {
    await network.createEndpoint({ networkId: KNOWN.net, endpointId: id, address: ip, options: {} });
  }
  await network.join({
    networkId: KNOWN.net,
    endpointId: KNOWN.joined,
    sandboxKey: '/var/run/docker/netns/0123',
    options: {},
  });
  const state = async (): Promise<string> => {
    const kv = (await store.list('')).items.map((i) => [i.key, i.value]);
    const kernel = {
      links: [...dp.links.values()].map((l) => [l.name, l.kind]).sort(),
      fw: dp.firewall,
      policies: [...dp.policies.keys()].sort(),
      guards: [...dp.guards.keys()].sort(),
      shapers: [...dp.shapers.keys()].sort(),
      ports: dp.portsTable?.elements,
    };
    return JSON.stringify({ kv, kernel });
  };
  return {
    server,
    state,
    close: async () => {
      await d.stop();
      await server.close();
    },
  };
}

export interface FuzzOutcome {
  readonly route: string;
  readonly runs: number;
  readonly accepted: number;
  readonly rejected: number;
}

/**
 * `runs` generated requests to `route`; throws (with fast-check's shrunk counterexample) when a
 * reply is not JSON or a rejected request changed the state.
 */
export async function fuzzRoute(bed: FuzzBed, route: string, runs: number, seed?: number): Promise<FuzzOutcome> {
  const gen = ROUTES[route];
  if (!gen) throw new Error(`no generator for ${route}`);
  let accepted = 0;
  let rejected = 0;
  await fc.assert(
    fc.asyncProperty(bodyOf(gen), async (body) => {
      const before = await bed.state();
      const reply = await bed.server.request(route, body);
      if (reply.json === undefined)
        throw new Error(`${route}: reply ${reply.status} is not JSON: ${reply.text.slice(0, 200)}`);
      const j = reply.json as { Err?: unknown; Error?: unknown };
      const failed =
        reply.status !== 200 ||
        (typeof j.Err === 'string' && j.Err !== '') ||
        (typeof j.Error === 'string' && j.Error !== '');
      if (!failed) {
        accepted++;
        return;
      }
      rejected++;
      const after = await bed.state();
      if (after !== before)
        throw new Error(`${route}: rejected (${reply.status} ${reply.text.slice(0, 200)}) but the state changed`);
    }),
    { numRuns: runs, ...(seed !== undefined ? { seed } : {}) },
  );
  return { route, runs, accepted, rejected };
}
