import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type PathRequest, parseView, type StatusBody, type StatusView, statusBody } from './admin-api.ts';
import type { NamedEndpoint } from './names/model.ts';
import { walkPath } from './path-walk.ts';

const NOW = Date.parse('2026-03-01T12:00:00.000Z');
const hex = (c: string): string => c.repeat(64);
const NA = hex('a');
const NB = hex('b');
const NC = hex('c');

const net = (id: string, pool: string, over: Partial<StatusBody['networks'][number]> = {}) => ({
  id,
  bridge: `trb${id.slice(0, 12)}`,
  bridgeNamed: false,
  mtu: 1500,
  internal: false,
  nat: true,
  ipv4: [{ pool, auxAddresses: {} }],
  ipv6: [],
  options: {},
  ...over,
});
const ep = (id: string, networkId: string, ipv4: string, over: Partial<StatusBody['endpoints'][number]> = {}) => ({
  networkId,
  id,
  hostVeth: `trv${id.slice(0, 12)}`,
  peerVeth: `trc${id.slice(0, 12)}`,
  mac: '02:42:c6:12:14:02',
  ipv4,
  options: {},
  sandboxKey: `/var/run/docker/netns/${id.slice(0, 12)}`,
  ...over,
});
const SRV = hex('1');
const CLI = hex('2');
const OTHER = hex('3');

function status(over: Partial<StatusBody> = {}): StatusView {
  const body: StatusBody = {
    version: '0.1.0',
    startedAt: '2026-03-01T11:00:00.000Z',
    revision: 7,
    networks: [
      net(NA, '198.18.20.0/24', { ingress: [{ proto: 'tcp', ports: { from: 80, to: 80 } }] }),
      net(NB, '198.18.21.0/24'),
    ],
    endpoints: [
      ep(SRV, NA, '198.18.20.2/24', {
        published: { request: [], ports: [{ family: 4, proto: 'tcp', hostPort: 8081, port: 80 }] },
      }),
      ep(CLI, NA, '198.18.20.3/24'),
      ep(OTHER, NB, '198.18.21.2/24'),
    ],
    policies: [],
    policyCounters: { [SRV]: { packets: 3, bytes: 180 } },
    guardCounters: {},
    pools: [],
    addresses: [],
    kernel: { inSync: true, problems: [] },
    reconciler: { reconciledRevision: 7, objects: {} },
    ...over,
  };
  const v = parseView(statusBody, body);
  assert.ok(v.success, v.success ? '' : v.error.message);
  return v.data;
}

/** A container end as the CLI resolves it through Docker. */
const ctr = (name: string, ip: string, networkId: string, endpointId: string, network: string) => ({
  ref: name,
  container: name,
  addresses: [{ ip, networkId, endpointId, network }],
});
const cli = ctr('cli', '198.18.20.3', NA, CLI, 'pa');
const srv = ctr('srv', '198.18.20.2', NA, SRV, 'pa');
const other = ctr('other', '198.18.21.2', NB, OTHER, 'po');
const tcp = (port: number) => ({ proto: 'tcp', port }) as const;
const req = (from: PathRequest['from'], to: PathRequest['to'], flow: Pick<PathRequest, 'proto' | 'port'>) => ({
  from,
  to,
  ...flow,
});
const step = (b: ReturnType<typeof walkPath>, id: string) => b.steps.find((s) => s.id === id);

describe('walkPath on one host', () => {
  it('allows what a rule of the network policy admits, naming the rule', () => {
    const b = walkPath(status(), req(cli, srv, tcp(80)), NOW);
    assert.equal(b.verdict, 'allowed');
    assert.equal(b.flow, 'tcp/80');
    assert.match(step(b, 'policy')?.detail ?? '', /rule tcp\/80 of network pa's truss.ingress option/);
    assert.deepEqual(
      [b.from.where, b.to.where, b.to.network, b.to.ip],
      ['this-host', 'this-host', 'pa', '198.18.20.2'],
    );
    assert.match(step(b, 'published')?.detail ?? '', /\*:8081->80\/tcp/);
    assert.equal(step(b, 'kernel')?.status, 'ok');
  });

  it('blocks a port no rule admits: names the policy, its source, the port, the counter and the fix', () => {
    const b = walkPath(status(), req(cli, srv, tcp(8080)), NOW);
    assert.equal(b.verdict, 'blocked');
    assert.equal(
      b.summary,
      "srv's port policy, network pa's truss.ingress option (docker network create): tcp/80, admits no tcp/8080 " +
        'from 198.18.20.3 (3 packet(s) denied so far). To allow it: truss policy set pa --ingress tcp/80,tcp/8080',
    );
  });

  it('names a run-time policy and a container override as the source', () => {
    const runtime = status({ policies: [{ networkId: NA, ingress: [{ proto: 'udp', ports: { from: 53, to: 53 } }] }] });
    const r = walkPath(runtime, req(cli, srv, tcp(80)), NOW);
    assert.equal(r.verdict, 'blocked');
    assert.match(r.summary, /the run-time policy of network pa \(truss policy set\): udp\/53, admits no tcp\/80/);
    const s = status();
    const own = status({
      endpoints: s.endpoints.map((e) => (e.id === SRV ? { ...e, ingress: [{ proto: 'icmp' as const }] } : e)),
    });
    const o = walkPath(own, req(cli, srv, tcp(80)), NOW);
    assert.match(o.summary, /srv's own truss.ingress option: icmp, admits no tcp\/80/);
    assert.match(o.summary, /docker network connect --driver-opt truss.ingress=icmp,tcp\/80 pa srv/);
    assert.equal(walkPath(own, req(cli, srv, { proto: 'icmp' }), NOW).verdict, 'allowed');
  });

  it('a policy cleared at run time admits everything', () => {
    const b = walkPath(status({ policies: [{ networkId: NA, ingress: null }] }), req(cli, srv, tcp(9)), NOW);
    assert.equal(b.verdict, 'allowed');
    assert.match(step(b, 'policy')?.detail ?? '', /no port policy on srv \(cleared at run time\)/);
  });

  it('blocks different networks, naming both and the docker network connect that fixes it', () => {
    const b = walkPath(status(), req(other, srv, tcp(80)), NOW);
    assert.equal(b.verdict, 'blocked');
    assert.equal(
      b.summary,
      'other is on network po and srv on network pa: they share no network, and truss keeps networks apart. ' +
        'Put both on one network, e.g. docker network connect pa other',
    );
  });

  it('finds endpoints by bare IP, and a container on no truss network is unknown', () => {
    const b = walkPath(status(), req({ ref: '198.18.20.3', addresses: [{ ip: '198.18.20.3' }] }, srv, tcp(80)), NOW);
    assert.equal(b.verdict, 'allowed');
    const lone = { ref: 'lone', container: 'lone', addresses: [{ ip: '172.17.0.2', networkId: NC, endpointId: NC }] };
    const u = walkPath(status(), req(srv, lone, tcp(80)), NOW);
    assert.equal(u.verdict, 'unknown');
    assert.match(u.summary, /^lone \(172.17.0.2\) is on no truss network/);
    const bridged = {
      ...lone,
      addresses: [{ ...(lone.addresses[0] as PathRequest['from']['addresses'][number]), network: 'bridge' }],
    };
    const d = walkPath(status(), req(bridged, srv, tcp(80)), NOW);
    assert.equal(d.verdict, 'blocked', 'truss drops new traffic from a Docker bridge into its networks');
    assert.match(d.summary, /^lone is on network bridge and srv on network pa: they share no network/);
  });

  it('a stopped destination (endpoint not joined) blocks', () => {
    const s = status();
    const stopped = status({
      endpoints: s.endpoints.map(({ sandboxKey, ...e }) => (e.id === SRV ? e : { ...e, sandboxKey })),
    });
    const b = walkPath(stopped, req(cli, srv, tcp(80)), NOW);
    assert.equal(b.verdict, 'blocked');
    assert.match(b.summary, /srv's endpoint on pa is not joined: its container is not running/);
  });

  it('an object in error or drift on the path makes it unknown; elsewhere it does not', () => {
    const objects = {
      [`policy:ep_${SRV.slice(0, 12)}`]: { state: 'error' as const, lastError: 'nft refused', updatedAt: 'x' },
    };
    const b = walkPath(status({ reconciler: { reconciledRevision: 7, objects } }), req(cli, srv, tcp(80)), NOW);
    assert.equal(b.verdict, 'unknown');
    assert.match(b.summary, /policy:ep_111111111111 in error: nft refused/);
    const wg = { wireguard: { state: 'error' as const, lastError: 'wg refused', updatedAt: 'x' } };
    const local = walkPath(status({ reconciler: { reconciledRevision: 7, objects: wg } }), req(cli, srv, tcp(80)), NOW);
    assert.equal(local.verdict, 'allowed', 'the WireGuard device is not on a path within one host');
    const far = status({ kernel: { inSync: false, problems: [`bridge trb${NB.slice(0, 12)} missing`] } });
    assert.equal(walkPath(far, req(cli, srv, tcp(80)), NOW).verdict, 'allowed');
  });
});

describe('walkPath across the cluster', () => {
  const BLUE_LOCAL = hex('d');
  const peer = (latestHandshake: number) => ({
    node: 'n3',
    name: 'c3',
    endpoint: '198.18.255.3:51820',
    allowedIps: ['198.18.66.0/24'],
    latestHandshake,
  });
  const cluster = (latestHandshake: number): StatusBody['cluster'] => ({
    node: 'c1',
    nodeId: 'n1',
    synced: true,
    mtu: 1440,
    vxlanMtu: 1450,
    wgPort: 51820,
    peers: [peer(latestHandshake)],
    vxlanPeers: [],
    names: {},
    rejected: [],
    alarms: [],
    malformed: [],
    etcd: { tls: false, auth: 'none' },
    allocations: {},
  });
  const clustered = (hs: number) =>
    status({
      networks: [net(BLUE_LOCAL, '198.18.64.0/20', { cluster: { name: 'blue', encrypt: true } })],
      endpoints: [ep(CLI, BLUE_LOCAL, '198.18.65.2/20')],
      cluster: cluster(hs),
    });
  const w = ctr('w', '198.18.65.2', BLUE_LOCAL, CLI, 'blue');
  const remote = { ref: '198.18.66.5', addresses: [{ ip: '198.18.66.5' }] };

  it('a peer that never completed a handshake blocks, named with its endpoint', () => {
    const b = walkPath(clustered(0), req(w, remote, tcp(7000)), NOW);
    assert.equal(b.verdict, 'blocked');
    assert.match(b.summary, /^cluster peer c3 \(198.18.255.3:51820\) has never completed a WireGuard handshake/);
    assert.deepEqual([b.to.where, b.to.node], ['cluster-peer', 'c3']);
  });

  it('a handshake older than 180 s blocks, with its age', () => {
    const b = walkPath(clustered(NOW / 1000 - 600), req(w, remote, tcp(7000)), NOW);
    assert.equal(b.verdict, 'blocked');
    assert.match(b.summary, /cluster peer c3 \(198.18.255.3:51820\): last WireGuard handshake 10 min ago/);
  });

  it('a live peer: unknown, since the port policy is on the other host', () => {
    const b = walkPath(clustered(NOW / 1000 - 20), req(w, remote, tcp(7000)), NOW);
    assert.equal(step(b, 'tunnel')?.status, 'ok');
    assert.equal(b.verdict, 'unknown');
    assert.match(b.summary, /port policy is enforced on c3/);
  });

  it('the WireGuard device in error is on a cross-host path', () => {
    const s = clustered(NOW / 1000 - 20);
    const objects = { wireguard: { state: 'error' as const, lastError: 'wg refused', updatedAt: 'x' } };
    const b = walkPath({ ...s, reconciler: { ...s.reconciler, objects } }, req(w, remote, tcp(7000)), NOW);
    assert.equal(step(b, 'kernel')?.status, 'unknown');
    assert.match(step(b, 'kernel')?.detail ?? '', /wireguard in error: wg refused/);
  });

  it('an address of the cluster network no peer carries blocks', () => {
    const b = walkPath(clustered(0), req(w, { ref: 'x', addresses: [{ ip: '198.18.70.9' }] }, tcp(80)), NOW);
    assert.equal(b.verdict, 'blocked');
    assert.match(b.summary, /no cluster peer of this host carries 198.18.70.9/);
  });
});

describe('walkPath with name and label rules (judged against the name catalog, as the kernel does)', () => {
  const T7000 = { proto: 'tcp', ports: { from: 7000, to: 7000 } } as const;
  const API = { ...T7000, peer: { by: 'name', glob: 'api-*' } } as const;
  const ROLE = { ...T7000, peer: { by: 'label', key: 'role', value: 'api' } } as const;
  const names = (state: 'synced' | 'connecting' | 'off' = 'synced', over = {}): StatusBody['names'] => ({
    docker: { state, ...(state === 'off' ? { reason: '--docker-host none' } : {}) },
    local: 1,
    remote: 0,
    dns: { networks: 0, upstreams: [], answered: 0, forwarded: 0, failed: 0 },
    ...over,
  });
  const policed = (rules: StatusBody['networks'][number]['ingress'], n = names()) =>
    status({ policies: [{ networkId: NA, ingress: rules ?? null }], names: n });
  const named = (name: string, addresses: string[], over: Partial<NamedEndpoint> = {}): NamedEndpoint => ({
    endpointId: CLI,
    node: 'local',
    networkName: 'pa',
    networkId: NA,
    containerId: hex('9'),
    name,
    aliases: [],
    labels: {},
    addresses,
    ...over,
  });

  it('allows a flow only a name rule admits, naming the rule and the container', () => {
    const b = walkPath(policed([API]), req(cli, srv, tcp(7000)), NOW, [named('api-1', ['198.18.20.3'])]);
    assert.equal(b.verdict, 'allowed', b.summary);
    assert.equal(
      step(b, 'policy')?.detail,
      'rule tcp/7000@name=api-* of the run-time policy of network pa (truss policy set) (tcp/7000@name=api-*) ' +
        'admits tcp/7000 from container api-1 (198.18.20.3)',
    );
  });

  it('refuses a container the name rules do not match, naming it; the fix stays last', () => {
    const b = walkPath(policed([API]), req(cli, srv, tcp(7000)), NOW, [named('web', ['198.18.20.3'])]);
    assert.equal(b.verdict, 'blocked');
    assert.match(
      b.summary,
      /198\.18\.20\.3 is container web, which the name\/label rules \(tcp\/7000@name=api-\*\) do not match\./,
    );
    assert.match(b.summary, /To allow it: truss policy set pa --ingress tcp\/7000@name=api-\*,tcp\/7000$/);
  });

  it('refuses an address no catalog entry has: not a known container', () => {
    const b = walkPath(policed([API]), req(cli, srv, tcp(7000)), NOW, [named('api-1', ['198.18.20.9'])]);
    assert.equal(b.verdict, 'blocked');
    assert.match(b.summary, /198\.18\.20\.3 is not a known container \(on this host or another\)/);
    const none = walkPath(policed([API]), req(cli, srv, tcp(7000)), NOW);
    assert.match(none.summary, /not a known container .*; this daemon knows no container names\./);
  });

  it('label rules: admitted by key and value; refused with the labels the container has', () => {
    const api = named('x', ['198.18.20.3'], { labels: { role: 'api' } });
    const ok = walkPath(policed([ROLE]), req(cli, srv, tcp(7000)), NOW, [api]);
    assert.equal(ok.verdict, 'allowed');
    assert.match(step(ok, 'policy')?.detail ?? '', /^rule tcp\/7000@label=role=api of .* from container x /);
    const web = named('x', ['198.18.20.3'], { labels: { role: 'web', tier: '' } });
    const no = walkPath(policed([ROLE]), req(cli, srv, tcp(7000)), NOW, [web]);
    assert.equal(no.verdict, 'blocked');
    assert.match(no.summary, /is container x \(labels role=web, tier\), which the name\/label rules/);
  });

  it('names only the rules for the flow; an earlier CIDR rule is the one named', () => {
    const cidr = { ...T7000, source: '198.18.20.0/24' };
    const b = walkPath(policed([cidr, API]), req(cli, srv, tcp(7000)), NOW, [named('api-1', ['198.18.20.3'])]);
    assert.match(step(b, 'policy')?.detail ?? '', /^rule tcp\/7000@198.18.20.0\/24 of /);
    const other = walkPath(policed([API]), req(cli, srv, tcp(80)), NOW, [named('web', ['198.18.20.3'])]);
    assert.equal(other.verdict, 'blocked');
    assert.doesNotMatch(other.summary, /name\/label rules/, 'tcp/7000@name=api-* is not about tcp/80');
  });

  it('a source on another host is matched by its catalog entry there', () => {
    const BLUE = hex('d');
    const s = status({
      networks: [net(BLUE, '198.18.64.0/20', { cluster: { name: 'blue', encrypt: false } })],
      endpoints: [ep(SRV, BLUE, '198.18.65.2/20')],
      policies: [{ networkId: BLUE, ingress: [API] }],
      names: names('synced', { remote: 1, clusterSynced: true }),
    });
    const db = ctr('db', '198.18.65.2', BLUE, SRV, 'blue');
    const far = { ref: 'api-7', container: 'api-7', addresses: [{ ip: '198.18.66.5', network: 'blue' }] };
    // another host's record: no network id (ids differ between hosts), the cluster's name instead
    const { networkId: _, ...entry } = named('api-7', ['198.18.66.5'], { node: 'n3', cluster: 'blue' });
    const b = walkPath(s, req(far, db, tcp(7000)), NOW, [entry]);
    assert.equal(step(b, 'policy')?.status, 'ok', step(b, 'policy')?.detail);
    assert.match(step(b, 'policy')?.detail ?? '', /admits tcp\/7000 from container api-7 \(198.18.66.5\)$/);
    const gone = walkPath(s, req(far, db, tcp(7000)), NOW, []);
    assert.equal(step(gone, 'policy')?.status, 'blocked');
  });

  it('before Docker was read, a verdict that hangs on names is unknown; with Docker off it says why', () => {
    const pending = walkPath(policed([API], names('connecting')), req(cli, srv, tcp(7000)), NOW, []);
    assert.equal(pending.verdict, 'unknown');
    assert.match(pending.summary, /truss has not read Docker's containers yet/);
    const off = walkPath(policed([API], names('off')), req(cli, srv, tcp(7000)), NOW, []);
    assert.equal(off.verdict, 'blocked');
    assert.match(off.summary, /the Docker API is off here \(--docker-host none\)/);
  });
});
