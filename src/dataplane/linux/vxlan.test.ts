import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkVxlanDevice,
  parseVxlanEntries,
  parseVxlanLink,
  planVxlanCreate,
  planVxlanEntries,
  planVxlanLink,
  type VxlanDevice,
  vxlanRecreateReason,
} from './vxlan.ts';

// `ip -j -d link show dev trvx0` (real output, iproute2 6.1, kernel 6.x), trimmed
const LINK =
  '[{"ifindex":4,"ifname":"trvx0","ifalias":"truss:vx:trvx0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1450,"address":"02:11:22:33:44:55","linkinfo":{"info_kind":"vxlan","info_data":{"id":7631477,"local":"198.18.255.1","link":"ul0","port_range":{"low":0,"high":0},"port":4789,"learning":false,"ttl":0}}}]';
// `bridge -j fdb show dev trvx0` and `ip -j neigh show dev trvx0` (real output)
const FDB = '[{"mac":"02:aa:bb:cc:dd:ee","dst":"198.18.255.2","flags":["self"],"state":"permanent"}]';
const NEIGH =
  '[{"dst":"198.18.255.2","lladdr":"02:aa:bb:cc:dd:ee","state":["PERMANENT"]},{"dst":"198.18.255.9","state":["FAILED"]}]';

const spec: VxlanDevice = {
  name: 'trvx0',
  vni: 0x747275,
  port: 4789,
  local: '198.18.255.1',
  dev: 'ul0',
  mac: '02:11:22:33:44:55',
  mtu: 1450,
  peers: [
    { address: '198.18.255.2', mac: '02:aa:bb:cc:dd:ee' },
    { address: '198.18.255.3', mac: '02:aa:bb:cc:dd:ff' },
  ],
};

describe('checkVxlanDevice', () => {
  it('canonicalises addresses and MACs', () => {
    const c = checkVxlanDevice({ ...spec, local: '198.18.255.1', mac: '02:11:22:33:44:AA' });
    assert.equal(c.mac, '02:11:22:33:44:aa');
  });
  it('refuses what could not be, or could break out of a batch line', () => {
    const bad: Partial<VxlanDevice>[] = [
      { name: 'trvx0 up' },
      { vni: 0 },
      { vni: 0x1000000 },
      { port: 70000 },
      { mtu: 100 },
      { local: '198.18.255.1 dev lo' },
      { dev: 'a b' },
      { mac: 'zz:11:22:33:44:55' },
      { peers: [{ address: 'fd00::2', mac: '02:00:00:00:00:01' }] },
      { peers: [{ address: '198.18.255.1', mac: '02:00:00:00:00:01' }] },
      {
        peers: [
          { address: '198.18.255.2', mac: '02:00:00:00:00:01' },
          { address: '198.18.255.3', mac: '02:00:00:00:00:01' },
        ],
      },
    ];
    for (const b of bad) assert.throws(() => checkVxlanDevice({ ...spec, ...b }), JSON.stringify(b));
  });
});

describe('parsing', () => {
  it('reads the device and its VXLAN attributes', () => {
    const l = parseVxlanLink(LINK);
    assert.equal(l?.link.alias, 'truss:vx:trvx0');
    assert.deepEqual(
      { vni: l?.vni, port: l?.port, local: l?.local, dev: l?.dev, learning: l?.learning },
      { vni: 0x747275, port: 4789, local: '198.18.255.1', dev: 'ul0', learning: false },
    );
    assert.equal(parseVxlanLink('[]'), undefined);
  });
  it('reads FDB remotes and neighbours of any state', () => {
    assert.deepEqual(parseVxlanEntries(FDB, NEIGH), {
      fdb: [{ mac: '02:aa:bb:cc:dd:ee', dst: '198.18.255.2' }],
      neigh: [
        { ip: '198.18.255.2', mac: '02:aa:bb:cc:dd:ee', permanent: true },
        { ip: '198.18.255.9', permanent: false },
      ],
    });
    assert.deepEqual(parseVxlanEntries('', ''), { fdb: [], neigh: [] });
  });
});

describe('plans', () => {
  it('creates with nolearning, the mark, no link-local address, up', () => {
    assert.deepEqual(planVxlanCreate(spec), [
      'link add trvx0 address 02:11:22:33:44:55 mtu 1450 type vxlan id 7631477 local 198.18.255.1 dev ul0 dstport 4789 nolearning',
      'link set trvx0 alias truss:vx:trvx0',
      'link set trvx0 addrgenmode none',
      'link set trvx0 up',
    ]);
  });
  it('writes only the missing entries and deletes the unwanted ones', () => {
    assert.deepEqual(planVxlanEntries(parseVxlanEntries(FDB, NEIGH), spec), {
      fdb: ['fdb replace 02:aa:bb:cc:dd:ff dev trvx0 dst 198.18.255.3 self permanent'],
      neigh: [
        'neigh del 198.18.255.9 dev trvx0',
        'neigh replace 198.18.255.3 lladdr 02:aa:bb:cc:dd:ff dev trvx0 nud permanent',
      ],
    });
    // a peer with IPv6 blocks on this IPv4 underlay: its VTEP link-local (their next hop) too, only then
    const dual = { ...spec, peers: spec.peers.map((p, i) => (i === 1 ? { ...p, viaLinkLocal: true } : p)) };
    assert.deepEqual(planVxlanEntries(parseVxlanEntries(FDB, NEIGH), checkVxlanDevice(dual)).neigh, [
      'neigh del 198.18.255.9 dev trvx0',
      'neigh replace 198.18.255.3 lladdr 02:aa:bb:cc:dd:ff dev trvx0 nud permanent',
      'neigh replace fe80::aa:bbff:fecc:ddff lladdr 02:aa:bb:cc:dd:ff dev trvx0 nud permanent',
    ]);
    const moved = parseVxlanEntries(
      '[{"mac":"02:aa:bb:cc:dd:ee","dst":"198.18.255.7"},{"mac":"02:de:ad:be:ef:00","dst":"198.18.255.8"}]',
      '[]',
    );
    assert.deepEqual(planVxlanEntries(moved, { ...spec, peers: spec.peers.slice(0, 1) }).fdb, [
      'fdb del 02:aa:bb:cc:dd:ee dev trvx0 self',
      'fdb del 02:de:ad:be:ef:00 dev trvx0 self',
      'fdb replace 02:aa:bb:cc:dd:ee dev trvx0 dst 198.18.255.2 self permanent',
    ]);
    const done = parseVxlanEntries(
      '[{"mac":"02:aa:bb:cc:dd:ee","dst":"198.18.255.2"}]',
      '[{"dst":"198.18.255.2","lladdr":"02:aa:bb:cc:dd:ee","state":["PERMANENT"]}]',
    );
    assert.deepEqual(planVxlanEntries(done, { ...spec, peers: spec.peers.slice(0, 1) }), { fdb: [], neigh: [] });
  });
  it('on an IPv6 underlay too, each peer gets its VTEP link-local neighbour (next hop of IPv4 blocks)', () => {
    const v6: VxlanDevice = {
      ...spec,
      local: 'fd00:255::1',
      peers: [{ address: 'fd00:255::2', mac: '02:aa:bb:cc:dd:ee' }],
    };
    assert.deepEqual(planVxlanEntries({ fdb: [], neigh: [] }, v6), {
      fdb: ['fdb replace 02:aa:bb:cc:dd:ee dev trvx0 dst fd00:255::2 self permanent'],
      neigh: [
        'neigh replace fd00:255::2 lladdr 02:aa:bb:cc:dd:ee dev trvx0 nud permanent',
        'neigh replace fe80::aa:bbff:fecc:ddee lladdr 02:aa:bb:cc:dd:ee dev trvx0 nud permanent',
      ],
    });
  });
  it('recreates only for attributes fixed at creation; MTU and state converge in place', () => {
    const l = parseVxlanLink(LINK);
    assert.ok(l);
    assert.equal(vxlanRecreateReason(l, spec), undefined);
    assert.match(vxlanRecreateReason(l, { ...spec, vni: 42 }) ?? '', /VNI 7631477 → 42/);
    assert.match(vxlanRecreateReason(l, { ...spec, local: '198.18.255.5' }) ?? '', /local/);
    assert.match(vxlanRecreateReason(l, { ...spec, mac: '02:00:00:00:00:09' }) ?? '', /MAC/);
    assert.deepEqual(planVxlanLink({ ...l.link, mtu: 1400, up: false }, spec), [
      'link set trvx0 mtu 1450',
      'link set trvx0 up',
    ]);
  });
});
