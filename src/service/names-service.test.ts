import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClusterNames } from '../core/contracts.ts';
import type { EndpointSpec, NetworkSpec } from '../core/model.ts';
import type { ContainerFacts } from '../core/names/catalog.ts';
import type { NamedEndpoint } from '../core/names/model.ts';
import { endpointSpec, networkSpec } from '../core/testing.ts';
import { createLogger } from '../obs/logger.ts';
import { type FollowerState, NamesService } from './names-service.ts';

const N1 = 'a'.repeat(64);
const E1 = '1'.repeat(64);
const C1 = 'c'.repeat(64);
const net: NetworkSpec = networkSpec({
  id: N1,
  bridge: 'trb1',
  ipv4: [{ pool: '198.18.1.0/24', gateway: '198.18.1.1/24', auxAddresses: {} }],
  options: { 'truss.dns': 'true' },
  cluster: { name: 'blue', encrypt: true },
});
const ep: EndpointSpec = endpointSpec({ id: E1, networkId: N1, ipv4: '198.18.1.5/24' });
const db: ContainerFacts = {
  id: C1,
  name: 'db',
  labels: {},
  dns: [],
  endpoints: [{ endpointId: E1, networkId: N1, networkName: 'blue', aliases: [] }],
};
const remoteApp: NamedEndpoint = {
  endpointId: '2'.repeat(64),
  node: 'other',
  networkName: 'blue',
  cluster: 'blue',
  containerId: 'd'.repeat(64),
  name: 'app',
  aliases: [],
  labels: {},
  addresses: ['198.18.1.70'],
};

function setup(state: FollowerState, synced = true, known = state !== 'unreachable', cluster = true) {
  const published: NamedEndpoint[][] = [];
  // unreachable from the start: Docker was never read, nothing is known of this host's containers
  const containers = new Map(known ? [[C1, db]] : []);
  const remote = [remoteApp];
  const svc = new NamesService({
    self: () => 'me',
    docker: { containers: () => containers, state: () => ({ state }) },
    ...(cluster ? { cluster: clusterNames() } : {}),
    upstreams: () => ['198.18.9.53'],
    log: createLogger('error', () => {}),
  });
  function clusterNames(): ClusterNames {
    return {
      publishNames: async (e) => {
        published.push([...e]);
      },
      names: () => remote,
      namesSynced: () => synced,
    };
  }
  return { svc, published };
}

const intent = { networks: [net], endpoints: [ep] };

describe('NamesService', () => {
  it('is pending until Docker was read and the other hosts names were read; publishes nothing before', () => {
    const a = setup('connecting');
    assert.equal(a.svc.view(intent).catalog, 'pending');
    assert.equal(a.published.length, 0);
    assert.equal(setup('synced', false).svc.view(intent).catalog, 'pending');
  });

  it('joins this host and the others, publishes this host part once per change, keeps an unchanged catalog', () => {
    const { svc, published } = setup('synced');
    const v = svc.view(intent);
    assert.ok(Array.isArray(v.catalog));
    assert.deepEqual(
      (v.catalog as NamedEndpoint[]).map((e) => e.name),
      ['db', 'app'],
    );
    assert.equal(published.length, 1);
    const again = svc.view(intent);
    assert.equal(again.catalog, v.catalog, 'the same array while nothing changed');
    assert.equal(published.length, 1, 'nothing new to publish');
    assert.deepEqual(v.dns.upstreams, [{ address: '198.18.9.53', port: 35300 }]);
  });

  it('answers a query from a container of a dns network with what its networks see', () => {
    const { svc } = setup('synced');
    svc.view(intent);
    const q = svc.queryView('198.18.1.5');
    assert.deepEqual(
      q?.endpoints.map((e) => e.name),
      ['db', 'app'],
    );
    assert.equal(svc.queryView('198.18.1.99'), undefined, 'not a known container');
  });

  it('answers a container Docker has not told of yet by its endpoint in the intent (its first query)', () => {
    const { svc } = setup('synced', true, false);
    svc.view(intent);
    const q = svc.queryView('198.18.1.5');
    assert.deepEqual(q?.networks, [{ networkId: N1, cluster: 'blue', networkName: 'blue' }]);
    assert.deepEqual(
      q?.endpoints.map((e) => e.name),
      ['app'],
    );
  });

  it('matters to Docker events only in cluster mode, with a dns network or a name/label rule', () => {
    const { svc } = setup('synced', true, true, false);
    const plain = { ...net, options: {} };
    const { cluster: _, ...local } = plain;
    svc.view({ networks: [local], endpoints: [ep] });
    assert.equal(svc.namesMatter(), false);
    svc.view({
      networks: [
        { ...local, ingress: [{ proto: 'tcp', ports: { from: 7000, to: 7000 }, peer: { by: 'name', glob: 'api-*' } }] },
      ],
      endpoints: [ep],
    });
    assert.equal(svc.namesMatter(), true, 'a name rule');
    svc.view({
      networks: [local],
      endpoints: [ep],
      policies: [{ networkId: N1, ingress: [{ proto: 'icmp', peer: { by: 'label', key: 'role' } }] }],
    });
    assert.equal(svc.namesMatter(), true, 'a run-time label rule');
    svc.view({ networks: [net], endpoints: [ep] });
    assert.equal(svc.namesMatter(), true, 'a dns network');
    const c = setup('synced');
    c.svc.view({ networks: [local], endpoints: [ep] });
    assert.equal(c.svc.namesMatter(), true, 'cluster mode publishes');
  });

  it('says why names are off when Docker is unreachable', () => {
    const { svc } = setup('unreachable');
    const v = svc.view(intent);
    assert.deepEqual(
      (v.catalog as NamedEndpoint[]).map((e) => e.name),
      ['app'],
      "the other hosts' names still count",
    );
    assert.equal(svc.status().dnsOff, 'the Docker API is unreachable');
  });
});
