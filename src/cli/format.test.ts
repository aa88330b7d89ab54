import assert from 'node:assert/strict';
import { describe, it, test } from 'node:test';
import { endpointSpec, networkSpec } from '../core/testing.ts';
import {
  formatForeign,
  formatNames,
  formatPolicyView,
  formatStatus,
  type PolicyView,
  type StatusText,
  summarizeIngress,
} from './format.ts';
import { assessHealth } from './health.ts';

const NID = `0123456789ab${'1'.repeat(52)}`;
const EP1 = `e1e1e1e1e1e1${'5'.repeat(52)}`;
const EP2 = `e2e2e2e2e2e2${'6'.repeat(52)}`;

const NET = networkSpec({ id: NID, ipv4: [] });
const E1 = endpointSpec({
  networkId: NID,
  id: EP1,
  peerVeth: 'trpe1e1e1e1e1e1',
  mac: '02:42:c6:12:0a:02',
  ipv4: '198.18.10.2/24',
  sandboxKey: '/var/run/docker/netns/x',
});
const E2 = endpointSpec({
  networkId: NID,
  id: EP2,
  peerVeth: 'trpe2e2e2e2e2e2',
  mac: '02:42:c6:12:0a:03',
  ipv4: '198.18.10.3/24',
});

const status = (extra: Partial<StatusText> = {}): StatusText => ({
  version: '0.1.0',
  revision: 7,
  networks: [NET],
  endpoints: [E1, E2],
  pools: [],
  addresses: [],
  kernel: { inSync: true, problems: [] },
  ...extra,
});

describe('formatStatus', () => {
  it('has no DENIED column without policy counters', () => {
    const text = formatStatus(status());
    assert.match(text, /^ID {12}NETWORK {7}VETH {13}ADDRESSES {7}JOINED$/m);
    assert.doesNotMatch(text, /DENIED/);
  });

  it('shows denied packets per endpoint when the daemon reports them', () => {
    const text = formatStatus(status({ policyCounters: { [EP1]: { packets: 42, bytes: 2520 } } }));
    const lines = text.split('\n');
    const head = lines.findIndex((l) => l.startsWith('ID  ') && l.includes('VETH'));
    assert.deepStrictEqual(lines.slice(head, head + 3), [
      'ID            NETWORK       VETH             ADDRESSES       JOINED  DENIED',
      'e1e1e1e1e1e1  0123456789ab  trve1e1e1e1e1e1  198.18.10.2/24  yes     42',
      'e2e2e2e2e2e2  0123456789ab  trve2e2e2e2e2e2  198.18.10.3/24  no      -',
    ]);
  });
});

describe('formatStatus: published ports', () => {
  it('adds a PORTS column only when an endpoint publishes', () => {
    const s = status();
    const published = {
      request: [],
      ports: [
        { family: 4, proto: 'tcp', hostPort: 8080, port: 80 },
        { family: 6, proto: 'udp', hostIp: 'fd00::9', hostPort: 53, port: 5353 },
      ] as const,
    };
    const text = formatStatus({ ...s, endpoints: [{ ...E1, published }, E2] });
    const lines = text.split('\n');
    const head = lines.findIndex((l) => l.startsWith('ID  ') && l.includes('VETH'));
    assert.deepStrictEqual(lines.slice(head, head + 3), [
      'ID            NETWORK       VETH             ADDRESSES       JOINED  PORTS',
      'e1e1e1e1e1e1  0123456789ab  trve1e1e1e1e1e1  198.18.10.2/24  yes     0.0.0.0:8080/tcp->80,[fd00::9]:53/udp->5353',
      'e2e2e2e2e2e2  0123456789ab  trve2e2e2e2e2e2  198.18.10.3/24  no      -',
    ]);
  });
});

describe('formatStatus: bandwidth limits', () => {
  it("adds a BANDWIDTH column only when a limit is in force: the endpoint's own, else its network's", () => {
    const s = status();
    assert.ok(!formatStatus(s).includes('BANDWIDTH'));
    const text = formatStatus({
      ...s,
      networks: [{ ...NET, bandwidth: { ingress: 30e6 } }],
      endpoints: [{ ...E1, bandwidth: { egress: 1.5e9 } }, E2],
    });
    const lines = text.split('\n');
    const head = lines.findIndex((l) => l.startsWith('ID  ') && l.includes('VETH'));
    assert.deepStrictEqual(lines.slice(head, head + 3), [
      'ID            NETWORK       VETH             ADDRESSES       JOINED  BANDWIDTH(OUT/IN)',
      'e1e1e1e1e1e1  0123456789ab  trve1e1e1e1e1e1  198.18.10.2/24  yes     1500mbit/30mbit',
      'e2e2e2e2e2e2  0123456789ab  trve2e2e2e2e2e2  198.18.10.3/24  no      -/30mbit',
    ]);
  });
});

describe('formatStatus: anti-spoofing drops', () => {
  it('sums the drops and names each reason, only while some port is guarded', () => {
    assert.ok(!formatStatus(status()).includes('ANTI-SPOOFING'));
    assert.ok(!formatStatus({ ...status(), guardCounters: {} }).includes('ANTI-SPOOFING'));
    const c = (packets: number) => ({ packets, bytes: packets * 60 });
    const text = formatStatus({ ...status(), guardCounters: { mac: c(0), arp: c(2), ip4: c(10) } });
    assert.ok(text.includes('ANTI-SPOOFING: 12 frame(s) dropped (mac 0, arp 2, ip4 10)'), text);
  });
});

describe('formatPolicyView', () => {
  const base: PolicyView = { networkId: NID, ingress: null, source: 'open', endpoints: [] };

  it('says where the policy comes from', () => {
    const line = (v: Partial<PolicyView>): string => formatPolicyView({ ...base, ...v }).split('\n')[0] ?? '';
    assert.equal(line({}), 'network 0123456789ab  ingress: open (no policy: all inbound traffic admitted)');
    assert.equal(
      line({ source: 'runtime' }),
      'network 0123456789ab  ingress: open (cleared at run time: truss policy clear)',
    );
    assert.equal(
      line({ ingress: 'tcp/80', source: 'created' }),
      'network 0123456789ab  ingress: tcp/80 (from creation: -o truss.ingress)',
    );
    assert.equal(
      line({ ingress: 'none', source: 'runtime' }),
      'network 0123456789ab  ingress: none (nothing inbound) (set at run time: truss policy set)',
    );
    assert.match(formatPolicyView(base), /\n\(no endpoints on this network\)\n$/);
  });

  it('lists what each name=/label= rule matches now, after the endpoints', () => {
    const text = formatPolicyView({
      ...base,
      ingress: 'tcp/5432@name=api-*,tcp/80@label=tier',
      source: 'created',
      selectorRules: [
        {
          rule: 'tcp/5432@name=api-*',
          matches: [
            { name: 'api-1', node: 'n1', addresses: ['198.18.0.5', 'fd00::5'] },
            { name: 'api-2', node: 'n2', addresses: ['198.18.9.7'] },
          ],
        },
        { rule: 'tcp/80@label=tier', matches: [] },
      ],
    });
    assert.deepStrictEqual(text.split('\n').slice(3), [
      '',
      'RULE                 MATCHES',
      'tcp/5432@name=api-*  api-1 198.18.0.5,fd00::5 (node n1), api-2 198.18.9.7 (node n2)',
      'tcp/80@label=tier    (no container matches now)',
      '',
    ]);
  });

  it('shows overrides and cuts long policies at a rule boundary', () => {
    const long = Array.from({ length: 100 }, (_, i) => `tcp/${i + 1000}`).join(',');
    const text = formatPolicyView({
      ...base,
      ingress: long,
      source: 'runtime',
      endpoints: [
        {
          endpointId: EP1,
          addresses: [],
          ingress: long,
          override: false,
          joined: true,
          denied: { packets: 0, bytes: 0 },
        },
        {
          endpointId: EP2,
          addresses: ['fd00::3'],
          ingress: 'none',
          override: true,
          joined: true,
          denied: { packets: 3, bytes: 180 },
        },
      ],
    });
    const lines = text.split('\n');
    assert.ok((lines[0] ?? '').length < 300);
    assert.match(lines[0] ?? '', /tcp\/1000,tcp\/1001,.*,… \(100 rules\) \(set at run time/);
    assert.deepStrictEqual(lines.slice(2), [
      'ENDPOINT      ADDRESSES  POLICY     DENIED',
      'e1e1e1e1e1e1  -          (network)  0',
      'e2e2e2e2e2e2  fd00::3    none       3',
      '',
    ]);
    assert.equal(summarizeIngress('tcp/1,tcp/2,tcp/3', 12), 'tcp/1,tcp/2,… (3 rules)');
    assert.equal(summarizeIngress('tcp/1,tcp/2', 40), 'tcp/1,tcp/2');
    assert.equal(summarizeIngress(null, 40), 'open');
  });
});

test('status warns about the truss objects of another state, naming them and the fix', () => {
  const text = formatForeign({
    stateId: '1111111111111111',
    adoptUnstamped: false,
    foreign: {
      count: 2,
      links: [
        { name: 'trbcccccccccccc', kind: 'bridge', id: 'c'.repeat(64), state: '2222222222222222' },
        { name: 'trvdddddddddddd', kind: 'veth', id: 'd'.repeat(64) },
      ],
      fix: 'FIX',
    },
  }).join('\n');
  assert.match(text, /WARNING: 2 truss object\(s\) of another state \(this state: 1111111111111111\)/);
  assert.match(text, /bridge trbcccccccccccc \(state 2222222222222222\)/);
  assert.match(text, /veth trvdddddddddddd \(unstamped\)/);
  assert.match(text, /fix: FIX/);
  assert.deepEqual(formatForeign({ stateId: 'x', adoptUnstamped: false, foreign: { count: 0, links: [] } }), []);
});

describe('formatNames', () => {
  const names = {
    docker: { state: 'synced' as const, version: '28.5.2' },
    local: 2,
    remote: 3,
    clusterSynced: true,
    dns: {
      networks: 1,
      upstreams: [{ address: '198.18.255.254', port: 35300 }],
      answered: 4,
      forwarded: 1,
      failed: 0,
      warning: 'dockerd 28 queries the host resolvers from the host',
    },
  };
  it('says where names come from, how many, and what truss DNS does', () => {
    assert.deepEqual(formatNames(names), [
      'NAMES: Docker API synced (dockerd 28.5.2); 2 named here, 3 from other hosts',
      'DNS: 1 truss.dns network(s); upstreams redirected: 198.18.255.254->:35300; answered 4, relayed 1, failed 0',
      '  WARNING: dockerd 28 queries the host resolvers from the host',
    ]);
  });
  it('warns in the health line when Docker is unreachable', () => {
    const reason = 'cannot reach the Docker API at unix:///nope (connect ENOENT)';
    const h = assessHealth(
      { kernel: { inSync: true, problems: [] }, names: { ...names, docker: { state: 'unreachable', reason } } },
      0,
    );
    assert.ok(h.warnings.includes(`container names are off: ${reason}`), JSON.stringify(h.warnings));
    assert.equal(h.problems.length, 0);
  });
});
