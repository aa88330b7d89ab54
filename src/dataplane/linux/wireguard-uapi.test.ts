import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planRestart, planWireguard, type WireguardDevice } from './wireguard-plan.ts';
import { checkUapiSetAnswer, parseUapiDump, parseUapiHandshakes, uapiSetRequest } from './wireguard-uapi.ts';

const K1 = 'zgW8kYn4mf9kJMKBIlT8eMgyq+9ec/p+caccdEb9AE4=';
const K2 = 'upko/JfMXcZP/QOcoNdU1Y3gnIwmgAJaZ0kEgq5HQ0o=';
const PRIV = 'YHWOk9AIj8rHUg0HsRJ3aIRpOxlsS6H1Jc3qqTfjR1E=';
const PUB = 'ekMgl2F57hV43SPZ2sVuk8U3NL5HezdA4fNjw3YQuTA='; // echo PRIV | wg pubkey
const hex = (k: string): string => Buffer.from(k, 'base64').toString('hex');

// what wireguard-go's UAPI answers `get=1` (device.IpcGetOperation), as `wg show dump` reads it
const GET = [
  `private_key=${hex(PRIV)}`,
  'listen_port=51820',
  `public_key=${hex(K1)}`,
  `preshared_key=${'0'.repeat(64)}`,
  'protocol_version=1',
  'endpoint=[fd00::2]:51820',
  'last_handshake_time_sec=1700000000',
  'last_handshake_time_nsec=250000000',
  'tx_bytes=10044',
  'rx_bytes=9212',
  'persistent_keepalive_interval=25',
  'allowed_ip=198.18.211.0/24',
  'allowed_ip=fd00:211::/64',
  `public_key=${hex(K2)}`,
  `preshared_key=${'0'.repeat(64)}`,
  'protocol_version=1',
  'last_handshake_time_sec=0',
  'last_handshake_time_nsec=0',
  'tx_bytes=0',
  'rx_bytes=0',
  'persistent_keepalive_interval=0',
  'errno=0',
  '',
  '',
].join('\n');

describe('wireguard-go UAPI get', () => {
  it('reads the device as wg show dump does, with the public key derived and the private key dropped', () => {
    const s = parseUapiDump(GET);
    assert.deepEqual(s, {
      publicKey: PUB,
      listenPort: 51820,
      peers: [
        {
          publicKey: K1,
          endpoint: '[fd00::2]:51820',
          allowedIps: ['198.18.211.0/24', 'fd00:211::/64'],
          latestHandshake: 1700000000,
          rxBytes: 9212,
          txBytes: 10044,
          keepaliveSeconds: 25,
        },
        { publicKey: K2, allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 0, keepaliveSeconds: 0 },
      ],
    });
    assert.ok(!JSON.stringify(s).includes(hex(PRIV)) && !JSON.stringify(s).includes(PRIV));
  });
  it('reads a new device: no key, no port, no peers', () => {
    assert.deepEqual(parseUapiDump('errno=0\n\n'), { listenPort: 0, peers: [] });
  });
  it("reads each peer's handshake in ms", () => {
    assert.deepEqual(
      [...parseUapiHandshakes(GET)],
      [
        [K1, 1_700_000_000_250],
        [K2, 0],
      ],
    );
  });
  it('fails on an errno or a cut answer, never quoting the text', () => {
    assert.throws(() => parseUapiHandshakes('errno=22\n\n'), /get failed \(errno 22\)/);
    const cut = GET.slice(0, GET.indexOf('errno'));
    assert.throws(
      () => parseUapiDump(cut),
      (e: Error) => /without errno/.test(e.message) && !e.message.includes(hex(PRIV)),
    );
    assert.throws(
      () => parseUapiDump(GET.replace('rx_bytes=9212', 'rx_bytes=x')),
      (e: Error) => /not a number/.test(e.message) && !e.message.includes(hex(PRIV)),
    );
  });
});

describe('wireguard-go UAPI set', () => {
  const device: WireguardDevice = {
    name: 'trwg0',
    privateKeyFile: '/var/lib/truss/wireguard/wireguard.key',
    listenPort: 51820,
    mtu: 1440,
    peers: [
      { publicKey: K1, endpoint: '[fd00::2]:51820', allowedIps: ['198.18.211.0/24', 'fd00:211::/64'] },
      { publicKey: K2, endpoint: '198.18.0.3:51820', allowedIps: ['198.18.212.0/24'], keepaliveSeconds: 25 },
    ],
  };
  it("sends what wg sends for a new device's plan: key as hex, port, each peer's fields", () => {
    const plan = planWireguard({ listenPort: 0, peers: [] }, device, PUB);
    assert.equal(
      uapiSetRequest(plan.args, hex(PRIV)),
      [
        'set=1',
        `private_key=${hex(PRIV)}`,
        'listen_port=51820',
        `public_key=${hex(K1)}`,
        'endpoint=[fd00::2]:51820',
        'replace_allowed_ips=true',
        'allowed_ip=198.18.211.0/24',
        'allowed_ip=fd00:211::/64',
        `public_key=${hex(K2)}`,
        'endpoint=198.18.0.3:51820',
        'replace_allowed_ips=true',
        'allowed_ip=198.18.212.0/24',
        'persistent_keepalive_interval=25',
        '',
        '',
      ].join('\n'),
    );
  });
  it('names a peer again for each nudge and restart, in order (a new section each time)', () => {
    const req = uapiSetRequest(planRestart(device.peers[0]!));
    assert.deepEqual(req.split('\n'), [
      'set=1',
      `public_key=${hex(K1)}`,
      'remove=true',
      `public_key=${hex(K1)}`,
      'endpoint=[fd00::2]:51820',
      'replace_allowed_ips=true',
      'allowed_ip=198.18.211.0/24',
      'allowed_ip=fd00:211::/64',
      'persistent_keepalive_interval=0',
      `public_key=${hex(K1)}`,
      'persistent_keepalive_interval=25',
      `public_key=${hex(K1)}`,
      'persistent_keepalive_interval=0',
      '',
      '',
    ]);
  });
  it('empties a peer list with an empty allowed-ips', () => {
    assert.equal(
      uapiSetRequest(['peer', K2, 'allowed-ips', '']),
      `set=1\npublic_key=${hex(K2)}\nreplace_allowed_ips=true\n\n`,
    );
  });
  it('refuses what it cannot translate, and a key file without its key', () => {
    assert.throws(() => uapiSetRequest(['private-key', '/k']), /private-key without its key/);
    assert.throws(() => uapiSetRequest(['peer', K1, 'preshared-key', '/p']), /unexpected "preshared-key"/);
    assert.throws(() => uapiSetRequest(['remove']), /unexpected "remove"/);
    assert.throws(() => uapiSetRequest(['peer', K1, 'endpoint']), /endpoint without a value/);
  });
  it("checks a set's errno", () => {
    checkUapiSetAnswer('errno=0\n\n');
    assert.throws(() => checkUapiSetAnswer('errno=-22\n\n'), /set failed \(errno -22\)/);
  });
});
