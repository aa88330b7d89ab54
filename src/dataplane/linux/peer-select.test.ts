import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { selectVxlanPeers, selectWireguardPeers } from './peer-select.ts';
import { checkVxlanDevice } from './vxlan.ts';
import { checkWireguardDevice } from './wireguard.ts';

const key = (c: string): string => `${c.repeat(42)}A=`;
const peer = (k: string, ep: string, ips: string[]) => ({
  publicKey: key(k),
  endpoint: ep,
  allowedIps: ips,
  keepaliveSeconds: 25,
});
const w = {
  name: 'trwg0',
  privateKeyFile: '/x/wireguard.key',
  listenPort: 51820,
  mtu: 1420,
  peers: [
    peer('V', '198.18.251.2:51820', ['198.18.64.64/26']),
    peer('M', '198.18.251.66:51820', ['198.18.64.128/26', '198.18.64.64/26']),
    peer('C', '198.18.251.3:51820', ['198.18.64.192/26']),
  ],
};

describe('selectWireguardPeers: one bad peer does not fail the device', () => {
  it('an allowed IP given to two peers is removed from both; the rest of the device stays (was: the whole device threw)', () => {
    assert.throws(() => checkWireguardDevice(w), /given to both/);
    const s = selectWireguardPeers(w, key('H'));
    assert.deepEqual(
      s.device.peers.map((p) => [p.publicKey[0], p.allowedIps]),
      [
        ['V', []],
        ['M', ['198.18.64.128/26']],
        ['C', ['198.18.64.192/26']],
      ],
    );
    assert.doesNotThrow(() => checkWireguardDevice(s.device));
    assert.match(s.dropped.join('\n'), /allowed IP 198\.18\.64\.64\/26 is given to more than one peer/);
  });

  it('a peer with a bad or zero key, a bad endpoint, this host key, or a duplicate key is left out alone', () => {
    const bad = [
      peer('C', '198.18.251.3:51820', ['198.18.64.192/26']),
      { ...peer('A', '198.18.251.4:51820', []), publicKey: `${'A'.repeat(43)}=` },
      peer('E', 'nowhere', ['198.18.65.0/26']),
      peer('H', '198.18.251.5:51820', ['198.18.65.64/26']),
      peer('D', '198.18.251.6:51820', ['198.18.65.128/26']),
      peer('D', '198.18.251.7:51820', ['198.18.65.192/26']),
    ];
    const s = selectWireguardPeers({ ...w, peers: bad }, key('H'));
    assert.deepEqual(
      s.device.peers.map((p) => p.publicKey[0]),
      ['C'],
    );
    assert.equal(s.dropped.length, 5);
  });
});

describe('selectVxlanPeers', () => {
  it('an address or MAC named twice drops both claimants, this host address drops that peer; the rest stays', () => {
    const v = {
      name: 'trvx0',
      vni: 4242,
      port: 4789,
      local: '198.18.251.1',
      mac: '02:00:00:00:00:01',
      mtu: 1450,
      peers: [
        { address: '198.18.251.2', mac: '02:00:00:00:00:02' },
        { address: '198.18.251.2', mac: '02:00:00:00:00:03' },
        { address: '198.18.251.1', mac: '02:00:00:00:00:04' },
        { address: '198.18.251.5', mac: '02:00:00:00:00:05' },
      ],
    };
    assert.throws(() => checkVxlanDevice(v));
    const s = selectVxlanPeers(v);
    assert.deepEqual(s.device.peers, [{ address: '198.18.251.5', mac: '02:00:00:00:00:05' }]);
    assert.equal(s.dropped.length, 3);
  });
});
