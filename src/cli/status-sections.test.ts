import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StatusBody } from '../core/admin-api.ts';
import { CLUSTER, healthy, NOW, T0 } from '../core/status-testutil.ts';
import { endpointSpec, ipamData, networkSpec } from '../core/testing.ts';
import { formatStatus } from './format.ts';

const NID = `0123456789ab${'1'.repeat(52)}`;
const NID2 = `fedcba987654${'2'.repeat(52)}`;
const EID = `e1e1e1e1e1e1${'5'.repeat(52)}`;
const ago = (s: number): string => new Date(NOW - s * 1000).toISOString();
const lines = (text: string, from: string, n: number): string[] => {
  const all = text.split('\n');
  const at = all.findIndex((l) => l.startsWith(from));
  assert.ok(at >= 0, `no line starting with ${from}:\n${text}`);
  return all.slice(at, at + n);
};

const IN_ERROR: Partial<StatusBody> = {
  reconciler: {
    reconciledRevision: 7,
    lastPass: {
      full: true,
      revision: 7,
      changes: 0,
      failures: 1,
      durationMs: 12,
      at: ago(20),
      failed: ['shaper:trve1e1e1e1e1e1'],
    },
    objects: {
      'shaper:trve1e1e1e1e1e1': {
        state: 'error',
        lastError: 'link trie1e1e1e1e1e1 is not ours',
        code: 'TRUSS_ERR_KERNEL_OBJECT_FOREIGN',
        updatedAt: ago(20),
        since: ago(600),
      },
    },
  },
};

describe('formatStatus: the truth about failures', () => {
  it('says how old the kernel listing is when the verdict rests on an earlier one', () => {
    const text = formatStatus(healthy({ kernel: { inSync: true, problems: [], lookedAt: ago(12) } }), { now: NOW });
    assert.deepEqual(lines(text, 'KERNEL:', 1), ['KERNEL: in sync (listed 12 s ago, no kernel change since)']);
    assert.deepEqual(lines(formatStatus(healthy({}), { now: NOW }), 'KERNEL:', 1), ['KERNEL: in sync']);
  });

  it('never says "KERNEL: in sync" while an object is in error; lists it with its error and since when', () => {
    const text = formatStatus(healthy(IN_ERROR), { now: NOW });
    assert.doesNotMatch(text, /in sync/);
    assert.match(text, /^HEALTH: 1 problem\(s\) \(listed by truss status --check; details below\)$/m);
    assert.deepEqual(lines(text, 'KERNEL:', 5), [
      'KERNEL: 1 object(s) in error',
      '',
      'OBJECTS IN ERROR (1)',
      'OBJECT                  CODE                             SINCE       LAST TRY  LAST ERROR',
      'shaper:trve1e1e1e1e1e1  TRUSS_ERR_KERNEL_OBJECT_FOREIGN  10 min ago  20 s ago  link trie1e1e1e1e1e1 is not ours',
    ]);
    assert.deepEqual(lines(text, 'LAST PASS:', 2), [
      'LAST PASS: full 20 s ago, revision 7, 0 change(s), 1 failure(s), 12 ms',
      '  - shaper:trve1e1e1e1e1e1: link trie1e1e1e1e1e1 is not ours',
    ]);
  });

  it('says "in sync" and HEALTH ok when all is well; a pass that could not run is shown', () => {
    const ok = formatStatus(healthy(), { now: NOW });
    assert.match(ok, /^HEALTH: ok$/m);
    assert.match(ok, /^KERNEL: in sync$/m);
    const stuck = formatStatus(
      healthy({ reconciler: { reconciledRevision: 7, objects: {}, passError: { error: 'disk full', at: ago(3) } } }),
      { now: NOW },
    );
    assert.match(stuck, /^LAST PASS could not run 3 s ago: disk full$/m);
  });

  it('orphans waiting for the GC, with their deadline', () => {
    const deadline = ago(-90);
    const text = formatStatus(
      healthy({
        orphans: [{ networkId: NID, endpointId: EID, reason: 'no container joined it', since: T0, deadline }],
      }),
      { now: NOW },
    );
    assert.deepEqual(lines(text, 'ORPHANS', 3), [
      'ORPHANS (1) waiting for the GC grace period',
      'ENDPOINT      NETWORK       SINCE                     RECLAIMED AFTER           WHY',
      `e1e1e1e1e1e1  0123456789ab  ${T0}  ${deadline}  no container joined it`,
    ]);
  });
});

describe('formatStatus: NETWORKS shows what is in force', () => {
  it('no nat on an internal network; policy (run-time first), anti-spoofing; cluster, egress, bandwidth when set', () => {
    const plain = networkSpec({
      id: NID,
      internal: true,
      nat: true,
      ingress: [{ proto: 'tcp', ports: { from: 80, to: 80 } }],
    });
    const text = formatStatus(
      healthy({
        networks: [
          plain,
          networkSpec({
            id: NID2,
            ipv4: [ipamData('198.18.64.0/20')],
            options: { 'truss.antispoof': 'false' },
            cluster: { name: 'blue', encrypt: true },
            egressVia: ['198.18.0.254'],
            bandwidth: { egress: 50e6 },
          }),
        ],
        policies: [{ networkId: NID2, ingress: [] }],
      }),
      { now: NOW },
    );
    assert.deepEqual(lines(text, 'ID ', 3), [
      'ID            BRIDGE           SUBNETS         MTU   FLAGS     CLUSTER          EGRESS        POLICY  ANTISPOOF  BANDWIDTH(OUT/IN)  ENDPOINTS',
      '0123456789ab  trb0123456789ab  198.18.0.0/24   1500  internal  -                -             tcp/80  on         -                  0',
      'fedcba987654  trbfedcba987654  198.18.64.0/20  1500  nat       blue(wireguard)  198.18.0.254  none    off        50mbit/-           0',
    ]);
  });
});

describe('formatStatus: names, IPAM usage, cluster connection and peers', () => {
  const s = healthy({
    networks: [networkSpec({ id: NID })],
    endpoints: [endpointSpec({ networkId: NID, id: EID, ipv4: '198.18.0.2/24' })],
    pools: [
      { id: 'TrussLocal/198.18.0.0/24', addressSpace: 'TrussLocal', family: 4, pool: '198.18.0.0/24', dynamic: false },
      { id: 'TrussLocal/fd00:1::/64', addressSpace: 'TrussLocal', family: 6, pool: 'fd00:1::/64', dynamic: false },
    ],
    addresses: [
      { poolId: 'TrussLocal/198.18.0.0/24', address: '198.18.0.1', kind: 'gateway' },
      { poolId: 'TrussLocal/198.18.0.0/24', address: '198.18.0.2', kind: 'endpoint', owner: EID },
    ],
  });

  it('container and network names next to the ids when Docker answered; ids only when not', () => {
    const names = { networks: new Map([[NID, 'web']]), endpoints: new Map([[EID, 'api-1']]) };
    const text = formatStatus(s, { now: NOW, names });
    assert.match(lines(text, 'ID ', 2)[1] ?? '', /^0123456789ab {2}web {3}trb0123456789ab/);
    assert.deepEqual(lines(text, 'ID            CONTAINER', 2), [
      'ID            CONTAINER  NETWORK       VETH             ADDRESSES      JOINED  DENIED',
      'e1e1e1e1e1e1  api-1      0123456789ab  trve1e1e1e1e1e1  198.18.0.2/24  no      -',
    ]);
    assert.doesNotMatch(formatStatus(s, { now: NOW }), /CONTAINER|NAME/);
  });

  it('IPAM: used, total and free per pool; --verbose lists the addresses', () => {
    const text = formatStatus(s, { now: NOW });
    assert.deepEqual(lines(text, 'IPAM POOLS', 5), [
      'IPAM POOLS (2)  ADDRESSES (2)',
      'POOL                      RANGE          USED  TOTAL  FREE',
      'TrussLocal/198.18.0.0/24  198.18.0.0/24  2     254    252',
      'TrussLocal/fd00:1::/64    fd00:1::/64    0     ~2^64  ~2^64',
      '  (truss status --verbose lists the addresses)',
    ]);
    assert.doesNotMatch(text, /198\.18\.0\.2 +endpoint/);
    const verbose = formatStatus(s, { now: NOW, verbose: true });
    assert.deepEqual(lines(verbose, '  TrussLocal/198.18.0.0/24:', 5), [
      '  TrussLocal/198.18.0.0/24:',
      '    198.18.0.1  gateway',
      `    198.18.0.2  endpoint ${EID}`,
      '  TrussLocal/fd00:1::/64:',
      '    -',
    ]);
  });

  it('the etcd connection and each peer: endpoint, allowed blocks, handshake age, transfer', () => {
    const cluster = {
      ...CLUSTER,
      etcd: { ...CLUSTER.etcd, reachable: false, error: 'no answer within 2000 ms', lease: 'lost' as const },
      peers: [
        {
          node: 'n2',
          name: 'h2',
          endpoint: '198.18.255.2:51820',
          allowedIps: ['198.18.64.64/26'],
          latestHandshake: NOW / 1000 - 42,
          rxBytes: 2048,
          txBytes: 3 * 1024 * 1024,
        },
        { node: 'n3', endpoint: '198.18.255.3:51820', allowedIps: [], latestHandshake: 0 },
        { node: 'n4', name: 'h4', path: 'relayed' as const, via: 'n2', allowedIps: [], latestHandshake: 0 },
      ],
      names: { n2: 'h2', n4: 'h4' },
      reach: { address: '198.18.241.2', relay: false, nat: 'independent' as const, seenAs: ['198.18.255.201:51820'] },
    };
    const text = formatStatus(healthy({ cluster }), { now: NOW });
    assert.match(text, /^HEALTH: 3 problem\(s\)/m);
    assert.deepEqual(lines(text, 'etcd', 5), [
      'etcd: TLS, auth certificate',
      'etcd connection: UNREACHABLE (no answer within 2000 ms), lease LOST, watch connected',
      'PEERS (3)',
      'NAME  NODE ID  ENDPOINT            PATH          ALLOWED          HANDSHAKE  TRANSFER(RX/TX)',
      'h2    n2       198.18.255.2:51820  direct        198.18.64.64/26  42 s ago   2.0 KiB/3.0 MiB',
    ]);
    assert.match(text, /^n3 {4}n3 {7}198\.18\.255\.3:51820 {2}direct {8}- {16}never {6}-$/m);
    // a relayed peer: its relay named, and no missing handshake reported (it is only a hole-punch try)
    assert.match(text, /^h4 {4}n4 {7}- {19}relay via h2 {2}- {16}never {6}-$/m);
    assert.doesNotMatch(text, /cluster peer h4/);
    assert.match(
      text,
      /^reachability: address 198\.18\.241\.2, behind a NAT \(endpoint-independent mapping\), seen as 198\.18\.255\.201:51820$/m,
    );
  });
});
