import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  describePort,
  EPHEMERAL_FIRST,
  NO_PROXY_6TO4_OPTION,
  PORTMAP_OPTION,
  type PortRequest,
  type PublishedPort,
  parsePortmap,
  portsClash,
  publishFamilies,
  resolvePorts,
} from './portmap.ts';

// the shape dockerd 20.10 and 28.5 send (test/fixtures/dockerd-*.jsonl, ProgramExternalConnectivity)
const FIXTURE_OPTIONS = {
  'com.docker.network.endpoint.exposedports': [
    { Proto: 6, Port: 81 },
    { Proto: 6, Port: 80 },
  ],
  [PORTMAP_OPTION]: [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 18081, HostPortEnd: 18081 }],
};

const entry = (over: Record<string, unknown>) => ({
  [PORTMAP_OPTION]: [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080, ...over }],
});

const both = new Set<4 | 6>([4, 6]);
const v4 = new Set<4 | 6>([4]);

describe('parsePortmap', () => {
  it('reads the fixture portmap; exposed ports alone publish nothing', () => {
    assert.deepEqual(parsePortmap(FIXTURE_OPTIONS), [
      { proto: 'tcp', port: 80, hostIp: '', hostPortFirst: 18081, hostPortLast: 18081 },
    ]);
    assert.deepEqual(parsePortmap({ 'com.docker.network.endpoint.exposedports': [{ Proto: 6, Port: 80 }] }), []);
    assert.deepEqual(parsePortmap({ [PORTMAP_OPTION]: [] }), []);
    assert.deepEqual(parsePortmap({ [PORTMAP_OPTION]: null }), []);
    assert.deepEqual(parsePortmap({}), []);
  });

  it('maps protocol numbers 6/17/132 and canonicalises the host address', () => {
    const r = parsePortmap({
      [PORTMAP_OPTION]: [
        { Proto: 17, Port: 53, HostIP: '198.18.9.1', HostPort: 5353, HostPortEnd: 5353 },
        { Proto: 132, Port: 9, HostIP: 'fd00:0::9', HostPort: 9999 },
      ],
    });
    assert.deepEqual(
      r.map((x) => [x.proto, x.hostIp]),
      [
        ['udp', '198.18.9.1'],
        ['sctp', 'fd00::9'],
      ],
    );
  });

  it('HostPort 0 is the ephemeral range; HostPort..HostPortEnd a range; HostPortEnd 0 a single port', () => {
    const [eph] = parsePortmap(entry({ HostPort: 0, HostPortEnd: 0 }));
    assert.deepEqual([eph?.hostPortFirst, eph?.hostPortLast], [32768, 60999]);
    const [range] = parsePortmap(entry({ HostPort: 8000, HostPortEnd: 8010 }));
    assert.deepEqual([range?.hostPortFirst, range?.hostPortLast], [8000, 8010]);
    const [single] = parsePortmap(entry({ HostPort: 8080, HostPortEnd: 0 }));
    assert.deepEqual([single?.hostPortFirst, single?.hostPortLast], [8080, 8080]);
  });

  it('refuses malformed entries with the entry named', () => {
    for (const [over, msg] of [
      [{ Proto: 1 }, /portmap\[0\]: protocol 1 is not tcp/],
      [{ Port: 0 }, /container port 0/],
      [{ Port: 70000 }, /container port 70000/],
      [{ HostPort: -1 }, /host port -1/],
      [{ HostPort: 9000, HostPortEnd: 8000 }, /reversed/],
      [{ HostIP: 'localhost' }, /HostIP "localhost" is not an IP/],
      [{ HostIP: 7 }, /HostIP must be a string/],
    ] as const) {
      assert.throws(() => parsePortmap(entry(over)), { code: 'TRUSS_ERR_OPTION_INVALID', message: msg });
    }
    assert.throws(() => parsePortmap({ [PORTMAP_OPTION]: 'tcp/80' }), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /must be a list/,
    });
    assert.throws(() => parsePortmap({ [PORTMAP_OPTION]: [null] }), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /must be an object/,
    });
  });
});

const req = (over: Partial<PortRequest> = {}): PortRequest => ({
  proto: 'tcp',
  port: 80,
  hostIp: '',
  hostPortFirst: 8080,
  hostPortLast: 8080,
  ...over,
});

describe('resolvePorts', () => {
  it('HostIP "" publishes on each family the container has', () => {
    assert.deepEqual(resolvePorts([req()], both, []), [
      { family: 4, proto: 'tcp', hostPort: 8080, port: 80 },
      { family: 6, proto: 'tcp', hostPort: 8080, port: 80 },
    ]);
    assert.deepEqual(resolvePorts([req()], v4, []), [{ family: 4, proto: 'tcp', hostPort: 8080, port: 80 }]);
  });

  it('a given HostIP publishes only there; 0.0.0.0 / :: are every address of their family', () => {
    assert.deepEqual(resolvePorts([req({ hostIp: '198.18.9.1' })], both, []), [
      { family: 4, proto: 'tcp', hostIp: '198.18.9.1', hostPort: 8080, port: 80 },
    ]);
    assert.deepEqual(resolvePorts([req({ hostIp: '0.0.0.0' })], both, []), [
      { family: 4, proto: 'tcp', hostPort: 8080, port: 80 },
    ]);
    assert.deepEqual(resolvePorts([req({ hostIp: '::' })], both, []), [
      { family: 6, proto: 'tcp', hostPort: 8080, port: 80 },
    ]);
    assert.throws(() => resolvePorts([req({ hostIp: 'fd00::9' })], v4, []), {
      code: 'TRUSS_ERR_OPTION_INVALID',
      message: /no IPv6 address/,
    });
  });

  it('a host port another container publishes is a clear conflict (wildcard vs one address too)', () => {
    const held: PublishedPort[] = [{ family: 4, proto: 'tcp', hostPort: 8080, port: 80 }];
    assert.throws(() => resolvePorts([req()], v4, held), {
      code: 'TRUSS_ERR_PORT_IN_USE',
      message: /host port 0\.0\.0\.0:8080\/tcp is already published/,
    });
    assert.throws(() => resolvePorts([req({ hostIp: '198.18.9.1' })], v4, held), {
      code: 'TRUSS_ERR_PORT_IN_USE',
      message: /already published/,
    });
    // other protocol, other family, or two distinct addresses: no clash
    assert.equal(resolvePorts([req({ proto: 'udp' })], v4, held).length, 1);
    assert.equal(resolvePorts([req({ hostIp: '::' })], both, held).length, 1);
    const one: PublishedPort[] = [{ family: 4, proto: 'tcp', hostIp: '198.18.9.1', hostPort: 8080, port: 80 }];
    assert.equal(resolvePorts([req({ hostIp: '198.18.9.2' })], v4, one).length, 1);
    // the same binding twice in one request
    assert.throws(() => resolvePorts([req(), req({ port: 81 })], v4, []), {
      code: 'TRUSS_ERR_PORT_IN_USE',
      message: /already published/,
    });
  });

  it('ranges and ephemeral requests take the lowest port free in every family', () => {
    const held: PublishedPort[] = [
      { family: 6, proto: 'tcp', hostPort: 8000, port: 1 },
      { family: 4, proto: 'tcp', hostPort: 8001, port: 1 },
    ];
    const r = resolvePorts([req({ hostPortFirst: 8000, hostPortLast: 8010 })], both, held);
    assert.deepEqual(
      r.map((p) => p.hostPort),
      [8002, 8002],
    );
    const eph = req({ hostPortFirst: EPHEMERAL_FIRST, hostPortLast: 60999 });
    assert.deepEqual(
      resolvePorts([eph, eph], v4, []).map((p) => p.hostPort),
      [32768, 32769],
    );
    assert.throws(() => resolvePorts([req({ hostPortFirst: 8000, hostPortLast: 8001 })], both, held), {
      code: 'TRUSS_ERR_PORT_IN_USE',
      message: /no free host port in 8000-8001\/tcp/,
    });
  });

  it('publishes on the families the endpoint has; IPv4 only under Docker 29 no_proxy_6to4', () => {
    const dual = { ipv4: true, ipv6: true };
    assert.deepEqual([...publishFamilies(dual, {})], [4, 6]);
    assert.deepEqual([...publishFamilies(dual, { [NO_PROXY_6TO4_OPTION]: true })], [4]);
    assert.deepEqual([...publishFamilies({ ipv4: false, ipv6: true }, {})], [6]);
  });

  it('describes and compares bindings', () => {
    assert.equal(describePort({ family: 6, proto: 'udp', hostPort: 53, port: 53 }), '[::]:53/udp');
    assert.equal(
      describePort({ family: 6, proto: 'udp', hostIp: 'fd00::9', hostPort: 53, port: 53 }),
      '[fd00::9]:53/udp',
    );
    const a: PublishedPort = { family: 4, proto: 'tcp', hostIp: '198.18.9.1', hostPort: 1, port: 1 };
    assert.equal(portsClash(a, { ...a, hostIp: '198.18.9.2' }), false);
    assert.equal(portsClash(a, { family: 4, proto: 'tcp', hostPort: 1, port: 2 }), true);
  });
});
