import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Exec, type ExecResult, KernelError, type KernelErrorCode } from './exec.ts';
import {
  canonicalEndpoint,
  checkWireguardDevice,
  checkWireguardLink,
  detectWireguard,
  detectWireguardImpl,
  ensureWireguard,
  parseWgDump,
  planWireguard,
  readWireguard,
  removeWireguard,
  TRUSS_WIREGUARD_GO,
  type WireguardDevice,
  type WireguardState,
  wireguardMark,
} from './wireguard.ts';
import type { UapiTransport } from './wireguard-go.ts';
import { ensurePrivateKey, isWireguardKey, publicKeyOf, readPrivateKeyFile } from './wireguard-keys.ts';
import { planRestart, restartsCrossed } from './wireguard-plan.ts';

const K1 = 'zgW8kYn4mf9kJMKBIlT8eMgyq+9ec/p+caccdEb9AE4=';
const K2 = 'upko/JfMXcZP/QOcoNdU1Y3gnIwmgAJaZ0kEgq5HQ0o=';
const K3 = 'wFwVGbG+a2FWKkJfmmgJGlZ4EZ57s4VH/1OAzyqbS2s=';
const PRIV = 'YHWOk9AIj8rHUg0HsRJ3aIRpOxlsS6H1Jc3qqTfjR1E=';

// `wg show trwg0 dump` of a wireguard-go device (private key first: the parser must drop it).
const DUMP = [
  `${PRIV}\t${K3}\t51820\toff`,
  `${K1}\t(none)\t[fd00::2]:51820\t198.18.211.0/24,fd00:211::/64\t1764313425\t9212\t10044\t25`,
  `${K2}\t(none)\t(none)\t(none)\t0\t0\t0\toff`,
  '',
].join('\n');

describe('keys and endpoints', () => {
  it('accepts only canonical base64 of 32 bytes', () => {
    assert.ok(isWireguardKey(K1));
    assert.ok(!isWireguardKey(K1.slice(1)));
    assert.ok(!isWireguardKey(`${K1.slice(0, 42)}B=`)); // non-zero padding bits: not canonical
    assert.ok(!isWireguardKey(`${K1} `));
  });
  it('canonicalises endpoints the way wg prints them', () => {
    assert.equal(canonicalEndpoint('198.18.0.2:51820'), '198.18.0.2:51820');
    assert.equal(canonicalEndpoint('[fd00:0:0::0002]:51820'), '[fd00::2]:51820');
    for (const bad of ['fd00::2:51820', '[198.18.0.2]:1', '198.18.0.2', '198.18.0.2:0', '198.18.0.2:65536', 'h:1'])
      assert.equal(canonicalEndpoint(bad), undefined, bad);
  });
});

describe('parseWgDump', () => {
  const s = parseWgDump(DUMP);
  it('reads the interface and every peer', () => {
    assert.deepEqual(s, {
      publicKey: K3,
      listenPort: 51820,
      peers: [
        {
          publicKey: K1,
          endpoint: '[fd00::2]:51820',
          allowedIps: ['198.18.211.0/24', 'fd00:211::/64'],
          latestHandshake: 1764313425,
          rxBytes: 9212,
          txBytes: 10044,
          keepaliveSeconds: 25,
        },
        { publicKey: K2, allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 0, keepaliveSeconds: 0 },
      ],
    });
  });
  it('never keeps the private key, and errors never quote the text', () => {
    assert.ok(!JSON.stringify(s).includes(PRIV));
    assert.throws(
      () => parseWgDump(`${PRIV}\t${K3}\tnot-a-port\toff\n`),
      (e: Error) => !e.message.includes(PRIV) && /wg show dump/.test(e.message),
    );
    assert.throws(() => parseWgDump(`${PRIV}\t${K3}\t1\toff\n${K1}\tshort\n`), { code: 'TRUSS_ERR_INTERNAL' });
  });
  it('reads a device with no key yet', () => {
    assert.equal(parseWgDump('(none)\t(none)\t41829\toff\n').publicKey, undefined);
  });
});

const device = (over: Partial<WireguardDevice> = {}): WireguardDevice => ({
  name: 'trwg0',
  privateKeyFile: '/var/lib/truss/wireguard/wireguard.key',
  listenPort: 51820,
  mtu: 1440,
  peers: [
    {
      publicKey: K1,
      endpoint: '[fd00::2]:51820',
      allowedIps: ['198.18.211.0/24', 'fd00:211::/64'],
      keepaliveSeconds: 25,
    },
    { publicKey: K2, endpoint: '198.18.0.3:51820', allowedIps: ['198.18.212.0/24'] },
  ],
  ...over,
});
const state = (over: Partial<WireguardState> = {}): WireguardState => ({
  ...parseWgDump(DUMP),
  peers: [
    parseWgDump(DUMP).peers[0]!,
    {
      publicKey: K2,
      endpoint: '198.18.0.3:51820',
      allowedIps: ['198.18.212.0/24'],
      latestHandshake: 5,
      rxBytes: 1,
      txBytes: 1,
      keepaliveSeconds: 0,
    },
  ],
  ...over,
});

describe('planWireguard', () => {
  it('is empty when the device matches (allowed-ips order and endpoint spelling do not matter)', () => {
    const w = device();
    const reordered = {
      ...w.peers[0]!,
      endpoint: '[fd00:0::2]:51820',
      allowedIps: ['fd00:211::/64', '198.18.211.0/24'],
    };
    assert.deepEqual(planWireguard(state(), { ...w, peers: [reordered, w.peers[1]!] }, K3), {
      args: [],
      changes: [],
      nudged: [],
    });
  });
  it('configures a new device completely in one command', () => {
    const p = planWireguard({ listenPort: 41829, peers: [] }, device(), K3);
    assert.deepEqual(p.args, [
      'private-key',
      '/var/lib/truss/wireguard/wireguard.key',
      'listen-port',
      '51820',
      'peer',
      K1,
      'endpoint',
      '[fd00::2]:51820',
      'allowed-ips',
      '198.18.211.0/24,fd00:211::/64',
      'persistent-keepalive',
      '25',
      'peer',
      K2,
      'endpoint',
      '198.18.0.3:51820',
      'allowed-ips',
      '198.18.212.0/24',
    ]);
    assert.deepEqual(p.changes, [
      'private key set',
      'listen port 41829 → 51820',
      `peer ${K1.slice(0, 8)}… added`,
      `peer ${K2.slice(0, 8)}… added`,
    ]);
  });
  it('touches only the changed field of the changed peer', () => {
    const w = device();
    const p = planWireguard(
      state(),
      { ...w, peers: [w.peers[0]!, { ...w.peers[1]!, allowedIps: ['198.18.213.0/24'] }] },
      K3,
    );
    assert.deepEqual(p.args, ['peer', K2, 'allowed-ips', '198.18.213.0/24']);
  });
  it('removes peers that are no longer wanted and turns keepalive off explicitly', () => {
    const w = device();
    const p = planWireguard(state(), { ...w, peers: [{ ...w.peers[0]!, keepaliveSeconds: 0 }] }, K3);
    assert.deepEqual(p.args, ['peer', K2, 'remove', 'peer', K1, 'persistent-keepalive', 'off']);
  });
  it('sets the key again when the file holds another one (rotation) and re-points a roamed endpoint', () => {
    const roamed = state({ peers: [{ ...state().peers[0]!, endpoint: '[fd00::9]:40000' }, state().peers[1]!] });
    const p = planWireguard(roamed, device(), `${'A'.repeat(43)}=`);
    assert.deepEqual(p.args.slice(0, 2), ['private-key', '/var/lib/truss/wireguard/wireguard.key']);
    assert.deepEqual(p.args.slice(2, 6), ['peer', K1, 'endpoint', '[fd00::2]:51820']);
    assert.equal(p.changes[0], 'private key replaced');
  });
  it('leaves a roamed endpoint alone while the peer is live (a NAT moved it), re-points it when not', () => {
    const roamed = state({ peers: [state().peers[0]!, { ...state().peers[1]!, endpoint: '198.18.255.201:40000' }] });
    const w = device();
    const live = { ...w, peers: [w.peers[0]!, { ...w.peers[1]!, live: true }] };
    assert.deepEqual(planWireguard(roamed, live, K3).args, []);
    const hs = state().peers[1]!.latestHandshake;
    assert.deepEqual(planWireguard(roamed, w, K3, hs + 4).args, [], 'a handshake 4 s ago: just dialled from there');
    assert.deepEqual(planWireguard(roamed, w, K3).args, [
      ...['peer', K2, 'endpoint', '198.18.0.3:51820'],
      // a new place to try: a handshake now (the nudge), not at the next keepalive
      ...['peer', K2, 'persistent-keepalive', '25', 'peer', K2, 'persistent-keepalive', 'off'],
    ]);
  });
  it('a peer without an endpoint (behind a NAT, it dials this host) never gets one set', () => {
    const w = device();
    const learnt = { ...w.peers[1]!, endpoint: undefined };
    const { endpoint: _, ...noEndpoint } = learnt;
    assert.deepEqual(planWireguard(state(), { ...w, peers: [w.peers[0]!, noEndpoint] }, K3).args, []);
    const fresh = planWireguard({ listenPort: 51820, peers: [] }, { ...w, peers: [noEndpoint] }, K3).args;
    assert.deepEqual(fresh.slice(2), ['peer', K2, 'allowed-ips', '198.18.212.0/24']);
  });
  it('nudges every peer into a handshake when its own key is replaced (keepalive across 0 and back)', () => {
    const p = planWireguard(state(), device(), `${'A'.repeat(43)}=`);
    assert.deepEqual(p.args, [
      'private-key',
      '/var/lib/truss/wireguard/wireguard.key',
      ...['peer', K1, 'persistent-keepalive', 'off', 'peer', K1, 'persistent-keepalive', '25'],
      ...['peer', K2, 'persistent-keepalive', '25', 'peer', K2, 'persistent-keepalive', 'off'],
    ]);
    assert.deepEqual(p.changes, ['private key replaced'], 'a nudge is no change of configuration');
  });
  it("nudges a peer added to a running device (a peer's new key), after its endpoint is set", () => {
    const w = device();
    const K4 = Buffer.alloc(32, 4).toString('base64');
    const rotated = { ...w.peers[1]!, publicKey: K4 };
    const p = planWireguard(state(), { ...w, peers: [w.peers[0]!, rotated] }, K3);
    assert.deepEqual(p.args, [
      ...['peer', K2, 'remove'],
      ...['peer', K4, 'endpoint', '198.18.0.3:51820', 'allowed-ips', '198.18.212.0/24'],
      ...['peer', K4, 'persistent-keepalive', '25', 'peer', K4, 'persistent-keepalive', 'off'],
    ]);
    assert.deepEqual(p.changes, [`peer ${K2.slice(0, 8)}… removed`, `peer ${K4.slice(0, 8)}… added`]);
  });
  it('names the nudged peers; exactly one of two hosts restarts a crossed handshake', () => {
    assert.deepEqual(planWireguard(state(), device(), `${'A'.repeat(43)}=`).nudged, [K1, K2]);
    assert.deepEqual(planWireguard(state(), device(), K3).nudged, []);
    assert.equal(restartsCrossed(K1, K2), !restartsCrossed(K2, K1));
  });
  it('restarts a peer: removed, added back with every field, nudged', () => {
    const p = { publicKey: K2, endpoint: '198.18.0.3:51820', allowedIps: ['198.18.212.0/24', 'fd00:212::/64'] };
    assert.deepEqual(planRestart(p), [
      ...['peer', K2, 'remove'],
      ...['peer', K2, 'endpoint', '198.18.0.3:51820', 'allowed-ips', '198.18.212.0/24,fd00:212::/64'],
      ...['persistent-keepalive', 'off'],
      ...['peer', K2, 'persistent-keepalive', '25', 'peer', K2, 'persistent-keepalive', 'off'],
    ]);
    assert.deepEqual(planRestart({ ...p, keepaliveSeconds: 10 }).slice(-10), [
      ...['persistent-keepalive', '10'],
      ...['peer', K2, 'persistent-keepalive', 'off', 'peer', K2, 'persistent-keepalive', '10'],
    ]);
  });
  it('refuses what would never converge or would hijack traffic', () => {
    const w = device();
    const dupIp = { ...w, peers: [w.peers[0]!, { ...w.peers[1]!, allowedIps: ['198.18.211.0/24'] }] };
    assert.throws(() => planWireguard(state(), dupIp, K3), /given to both/);
    assert.throws(() => planWireguard(state(), { ...w, peers: [w.peers[0]!, w.peers[0]!] }, K3), /listed twice/);
    assert.throws(() => planWireguard(state(), w, K1), /own public key/);
    const hostBits = { ...w, peers: [{ ...w.peers[1]!, allowedIps: ['198.18.212.7/24'] }] };
    assert.throws(() => planWireguard(state(), hostBits, K3), /not a network CIDR/);
    assert.throws(() => checkWireguardDevice({ ...w, name: 'trwg0 up' }), { code: 'TRUSS_ERR_OPTION_INVALID' });
    assert.throws(() => checkWireguardDevice({ ...w, listenPort: 0 }), /listen port/);
    assert.throws(() => checkWireguardDevice({ ...w, privateKeyFile: 'wireguard.key' }), /absolute path/);
    const zero = `${'A'.repeat(43)}=`;
    assert.throws(() => checkWireguardDevice({ ...w, peers: [{ ...w.peers[1]!, publicKey: zero }] }), /all zeros/);
    assert.throws(() => checkWireguardDevice({ ...w, peers: [{ ...w.peers[1]!, endpoint: 'fd00::2:1' }] }), /\[IPv6\]/);
    assert.throws(() => checkWireguardDevice({ ...w, peers: [{ ...w.peers[1]!, publicKey: 'abc' }] }), /base64/);
  });
});

// ---------- a fake kernel + wg behind the Exec interface ----------

interface FakeLink {
  kind: string;
  mtu: number;
  up: boolean;
  alias?: string;
}
interface FakeWg {
  pub?: string;
  /** hex, as wireguard-go's socket holds it */
  priv?: string;
  port: number;
  peers: Map<string, { endpoint?: string; ips: string[]; ka: number; hs: number }>;
}

const fail = (code: KernelErrorCode, argv: readonly string[], stderr: string): never => {
  throw new KernelError(code, argv, 1, stderr);
};

function fakeExec(opts: { kernel: boolean; tools?: readonly string[]; versions?: Readonly<Record<string, string>> }) {
  const links = new Map<string, FakeLink>();
  const wg = new Map<string, FakeWg>();
  const calls: { argv: string[]; stdin?: string }[] = [];
  const tools = new Set(opts.tools ?? ['ip', 'wg', 'wireguard-go', 'setsid', 'env']);
  const newDev = (name: string, kind: string, mtu: number): void => {
    links.set(name, { kind, mtu, up: false });
    wg.set(name, { port: 40000, peers: new Map() });
  };
  const linkJson = (name: string, l: FakeLink): string =>
    JSON.stringify([
      {
        ifindex: 9,
        ifname: name,
        flags: l.up ? ['POINTOPOINT', 'UP'] : ['POINTOPOINT'],
        mtu: l.mtu,
        linkinfo: { info_kind: l.kind },
        ...(l.alias ? { ifalias: l.alias } : {}),
        addr_info: [],
      },
    ]);
  const ipLine = (argv: string[], words: string[]): void => {
    const [obj, verb, name = ''] = words;
    if (obj !== 'link') fail('OTHER', argv, 'unexpected');
    if (verb === 'add') {
      if (!opts.kernel) fail('OTHER', argv, 'Error: Unknown device type.');
      const mtu = words.indexOf('mtu');
      newDev(name, 'wireguard', mtu > 0 ? Number(words[mtu + 1]) : 1420);
      return;
    }
    const l = links.get(name) ?? fail('ENODEV', argv, `Cannot find device "${name}"`);
    if (words[3] === 'alias' && words[4] !== undefined) l.alias = words[4];
    if (words[3] === 'mtu') l.mtu = Number(words[4]);
    if (words[3] === 'up') l.up = true;
  };
  const wgSet = async (argv: string[], name: string, a: string[]): Promise<void> => {
    const d = wg.get(name) ?? fail('ENODEV', argv, 'Unable to access interface: No such device');
    let peer: string | undefined;
    for (let i = 0; i < a.length; i++) {
      const [k, v = ''] = [a[i], a[i + 1]];
      if (k === 'private-key') d.pub = await readPrivateKeyFile(v);
      else if (k === 'listen-port') d.port = Number(v);
      else if (k === 'peer') {
        peer = v;
        if (!d.peers.has(v)) d.peers.set(v, { ips: [], ka: 0, hs: 0 });
      } else if (k === 'remove' && peer) {
        d.peers.delete(peer);
        i--;
      } else if (k === 'endpoint' && peer) d.peers.get(peer)!.endpoint = v;
      else if (k === 'allowed-ips' && peer) d.peers.get(peer)!.ips = v === '' ? [] : v.split(',');
      else if (k === 'persistent-keepalive' && peer) d.peers.get(peer)!.ka = v === 'off' ? 0 : Number(v);
      i++;
    }
  };
  // wireguard-go's socket: `get` prints the state, `set` applies the lines as wireguard-go does
  const uapiGet = (d: FakeWg): string =>
    [
      ...(d.priv ? [`private_key=${d.priv}`] : []),
      `listen_port=${d.port}`,
      ...[...d.peers].flatMap(([k, p]) => [
        `public_key=${Buffer.from(k, 'base64').toString('hex')}`,
        ...(p.endpoint ? [`endpoint=${p.endpoint}`] : []),
        `last_handshake_time_sec=${p.hs}`,
        'last_handshake_time_nsec=0',
        'tx_bytes=0',
        'rx_bytes=0',
        `persistent_keepalive_interval=${p.ka}`,
        ...p.ips.map((c) => `allowed_ip=${c}`),
      ]),
      'errno=0',
      '',
      '',
    ].join('\n');
  const uapiSet = (d: FakeWg, request: string): void => {
    let peer: string | undefined;
    for (const line of request.split('\n').filter((l) => l !== '' && l !== 'set=1')) {
      const [k, v = ''] = line.split('=') as [string, string?];
      if (k === 'private_key') {
        d.priv = v;
        d.pub = publicKeyOf(Buffer.from(v, 'hex'));
      } else if (k === 'listen_port') d.port = Number(v);
      else if (k === 'public_key') {
        peer = Buffer.from(v, 'hex').toString('base64');
        if (!d.peers.has(peer)) d.peers.set(peer, { ips: [], ka: 0, hs: 0 });
      } else if (k === 'remove' && peer) d.peers.delete(peer);
      else if (k === 'endpoint' && peer) d.peers.get(peer)!.endpoint = v;
      else if (k === 'replace_allowed_ips' && peer) d.peers.get(peer)!.ips = [];
      else if (k === 'allowed_ip' && peer) d.peers.get(peer)!.ips.push(v);
      else if (k === 'persistent_keepalive_interval' && peer) d.peers.get(peer)!.ka = Number(v);
      else throw new Error(`fake wireguard-go: unexpected ${line}`);
    }
  };
  const device = (name: string): FakeWg => {
    if (links.get(name)?.kind !== 'tun') throw new Error(`fake wireguard-go: no socket for ${name}`);
    return wg.get(name) ?? fail('ENODEV', ['uapi', name], 'no device');
  };
  /** sockets that no longer answer (a killed wireguard-go's) */
  const deadSockets = new Set<string>();
  const socketIds = new WeakMap<FakeWg, string>();
  const uapi: UapiTransport = {
    async get(name) {
      calls.push({ argv: ['uapi', 'get', name] });
      if (deadSockets.has(name)) throw new Error(`connect ECONNREFUSED ${name}.sock`);
      return uapiGet(device(name));
    },
    async identity(name) {
      const d = links.get(name)?.kind === 'tun' ? wg.get(name) : undefined;
      if (d === undefined) return undefined;
      if (!socketIds.has(d)) socketIds.set(d, `socket ${name} #${Math.random()}`);
      return socketIds.get(d);
    },
    async set(name, request) {
      calls.push({ argv: ['uapi', 'set', name], stdin: request });
      uapiSet(device(name), request);
      return 'errno=0\n\n';
    },
  };
  const dump = (d: FakeWg): string =>
    [
      `${PRIV}\t${d.pub ?? '(none)'}\t${d.port}\toff`,
      ...[...d.peers].map(
        ([k, p]) =>
          `${k}\t(none)\t${p.endpoint ?? '(none)'}\t${p.ips.join(',') || '(none)'}\t${p.hs}\t0\t0\t${p.ka || 'off'}`,
      ),
      '',
    ].join('\n');
  const exec: Exec = {
    which: (bin) => (tools.has(bin) ? (bin.startsWith('/') ? bin : `/usr/bin/${bin}`) : undefined),
    async run(bin, args, ro = {}): Promise<ExecResult> {
      const argv = [bin, ...args];
      calls.push({ argv, ...(ro.stdin !== undefined ? { stdin: ro.stdin } : {}) });
      const ok = (stdout = ''): ExecResult => ({ stdout, stderr: '' });
      if (bin === 'ip' && args[0] === '-j') {
        const name = args.at(-1) ?? '';
        const l = links.get(name) ?? fail('ENODEV', argv, `Device "${name}" does not exist.`);
        return ok(linkJson(name, l));
      }
      if (bin === 'ip' && args[0] === '-batch') {
        for (const line of (ro.stdin ?? '').split('\n').filter(Boolean)) ipLine(argv, line.split(' '));
        return ok();
      }
      if (bin === 'ip' && args[1] === 'del') {
        if (!links.delete(args[3] ?? '')) fail('ENODEV', argv, 'Cannot find device');
        return ok();
      }
      if (bin === 'ip') {
        ipLine(argv, [...args]);
        return ok();
      }
      const version = args[0] === '--version' ? opts.versions?.[bin] : undefined;
      if (version !== undefined) return ok(`wireguard-go v${version}\n\nUserspace WireGuard daemon for linux-amd64.\n`);
      if (bin === 'setsid') {
        newDev(args.at(-1) ?? '', 'tun', 1420);
        deadSockets.delete(args.at(-1) ?? ''); // a new wireguard-go answers
        return ok();
      }
      if (bin === 'wg' && args[0] === 'show') {
        return ok(dump(wg.get(args[1] ?? '') ?? fail('OTHER', argv, 'Unable to access interface')));
      }
      if (bin === 'wg' && args[0] === 'set') {
        await wgSet(argv, args[1] ?? '', args.slice(2));
        return ok();
      }
      return fail('OTHER', argv, `unexpected command ${argv.join(' ')}`);
    },
  };
  const writes = (): string[][] =>
    calls
      .filter(
        (c) =>
          !(c.argv[0] === 'ip' && c.argv[1] === '-j') &&
          !['wg show', 'uapi get'].includes(c.argv.slice(0, 2).join(' ')),
      )
      .map((c) => (c.argv[0] === 'uapi' ? [...c.argv, ...(c.stdin ?? '').split('\n').filter(Boolean)] : c.argv));
  return { exec, links, wg, calls, writes, uapi, deadSockets };
}

const ALL = ['ip', 'wg', 'wireguard-go', 'setsid', 'env'];
const NEW_AND_OLD = { [TRUSS_WIREGUARD_GO]: '0.0.20250522', '/usr/bin/wireguard-go': '0.0.20220316' };

describe('detectWireguard (fake exec)', () => {
  let tun: string;
  before(async () => {
    tun = join(await fs.mkdtemp(join(tmpdir(), 'truss-tun-')), 'tun');
    await fs.writeFile(tun, '');
  });
  after(async () => {
    await fs.rm(join(tun, '..'), { recursive: true, force: true });
  });

  it('kernel: a probe link is made and deleted at once; the answer is cached', async () => {
    const f = fakeExec({ kernel: true });
    assert.equal(await detectWireguard(f.exec, { tunDevice: tun }), 'kernel');
    const [add, del] = f.calls.map((c) => c.argv);
    assert.deepEqual(add?.slice(0, 3), ['ip', 'link', 'add']);
    assert.deepEqual(add?.slice(4), ['type', 'wireguard']);
    assert.deepEqual(del, ['ip', 'link', 'del', 'dev', add?.[3]]);
    assert.equal(f.links.size, 0, 'nothing left behind');
    assert.equal(await detectWireguard(f.exec, { tunDevice: tun }), 'kernel');
    assert.equal(f.calls.length, 2, 'probed once');
  });
  it('userspace: no kernel module, but wireguard-go and a TUN device', async () => {
    const f = fakeExec({ kernel: false });
    assert.equal(await detectWireguard(f.exec, { tunDevice: tun }), 'userspace');
    assert.equal(f.links.size, 0);
  });
  it('kernel wins over any wireguard-go, even a newer one: no version is asked', async () => {
    const f = fakeExec({ kernel: true, tools: [...ALL, TRUSS_WIREGUARD_GO], versions: NEW_AND_OLD });
    assert.deepEqual(await detectWireguardImpl(f.exec, { tunDevice: tun }), { kind: 'kernel' });
    assert.ok(!f.calls.some((c) => c.argv[1] === '--version'), 'no wireguard-go asked');
  });
  it("userspace: the newest wireguard-go (truss's own over the PATH's older one) is the one started", async () => {
    const f = fakeExec({ kernel: false, tools: [...ALL, TRUSS_WIREGUARD_GO], versions: NEW_AND_OLD });
    const impl = await detectWireguardImpl(f.exec, { tunDevice: tun });
    assert.deepEqual(impl, {
      kind: 'wireguard-go',
      path: TRUSS_WIREGUARD_GO,
      source: 'truss',
      version: '0.0.20250522',
    });
    const key = await ensurePrivateKey(await fs.mkdtemp(join(tmpdir(), 'truss-wgimpl-')));
    const oneFamily = device({ name: 'trwg9', privateKeyFile: key.file }).peers.slice(0, 1); // IPv6 only
    await ensureWireguard(f.exec, device({ name: 'trwg9', privateKeyFile: key.file, peers: oneFamily }), {
      tunDevice: tun,
      uapi: f.uapi,
    });
    const setsid = f.calls.find((c) => c.argv[0] === 'setsid')?.argv;
    assert.equal(setsid?.at(-2), TRUSS_WIREGUARD_GO, `started: ${setsid?.join(' ')}`);
    await fs.rm(dirname(key.file), { recursive: true, force: true });
  });
  it('userspace, peers of both families: the older wireguard-go without the mixed-family bug is started', async () => {
    const f = fakeExec({ kernel: false, tools: [...ALL, TRUSS_WIREGUARD_GO], versions: NEW_AND_OLD });
    const key = await ensurePrivateKey(await fs.mkdtemp(join(tmpdir(), 'truss-wgimpl-')));
    await ensureWireguard(f.exec, device({ name: 'trwg9', privateKeyFile: key.file }), {
      tunDevice: tun,
      uapi: f.uapi,
    });
    const setsid = f.calls.find((c) => c.argv[0] === 'setsid')?.argv;
    assert.equal(setsid?.at(-2), '/usr/bin/wireguard-go', `started: ${setsid?.join(' ')}`);
    await fs.rm(dirname(key.file), { recursive: true, force: true });
  });
  it("the admin's --wireguard-go wins over a newer one, and only it is asked", async () => {
    const f = fakeExec({ kernel: false, tools: [...ALL, TRUSS_WIREGUARD_GO, '/opt/wg-go'], versions: NEW_AND_OLD });
    const impl = await detectWireguardImpl(f.exec, { tunDevice: tun, wireguardGo: '/opt/wg-go' });
    assert.deepEqual(impl, { kind: 'wireguard-go', path: '/opt/wg-go', source: 'flag' });
    assert.deepEqual(
      f.calls.filter((c) => c.argv[1] === '--version').map((c) => c.argv[0]),
      ['/opt/wg-go'],
    );
  });
  it('none: no TUN device, no wireguard-go, or no wg', async () => {
    assert.equal(await detectWireguard(fakeExec({ kernel: false }).exec, { tunDevice: `${tun}-missing` }), 'none');
    const noGo = fakeExec({ kernel: false, tools: ['ip', 'wg', 'setsid', 'env'] });
    assert.equal(await detectWireguard(noGo.exec, { tunDevice: tun }), 'none');
    const noWg = fakeExec({ kernel: true, tools: ['ip'] });
    assert.equal(await detectWireguard(noWg.exec, { tunDevice: tun }), 'none');
    assert.equal(noWg.calls.length, 0, 'without wg nothing is probed');
  });
});

describe('ensureWireguard / readWireguard / removeWireguard (fake exec)', () => {
  let keyDir: string;
  let key: { file: string; publicKey: string };
  before(async () => {
    keyDir = await fs.mkdtemp(join(tmpdir(), 'truss-wgfake-'));
    key = await ensurePrivateKey(join(keyDir, 'k'));
  });
  after(async () => {
    await fs.rm(keyDir, { recursive: true, force: true });
  });
  const dev = (name: string): WireguardDevice => ({ ...device({ name }), privateKeyFile: key.file });

  it('kernel path: ip link add … type wireguard + mark, wg set with the key as a file path, up', async () => {
    const f = fakeExec({ kernel: true });
    const r = await ensureWireguard(f.exec, dev('trwgk'));
    assert.equal(r.created, true);
    const all = f.calls.map((c) => `${c.argv.join(' ')} ${c.stdin ?? ''}`);
    assert.ok(all.some((c) => c.includes('link add trwgk mtu 1440 type wireguard')));
    assert.ok(!all.some((c) => c.includes('wireguard-go')), 'no wireguard-go on the kernel path');
    assert.deepEqual(f.links.get('trwgk'), { kind: 'wireguard', mtu: 1440, up: true, alias: wireguardMark('trwgk') });
    const set = f.calls.find((c) => c.argv[1] === 'set')?.argv ?? [];
    assert.deepEqual(set.slice(0, 5), ['wg', 'set', 'trwgk', 'private-key', key.file]);
    const secret = (await fs.readFile(key.file, 'utf8')).trim();
    assert.ok(!all.some((c) => c.includes(secret)), 'the private key is never on argv or stdin');
    const s = await readWireguard(f.exec, 'trwgk');
    assert.equal(s?.publicKey, key.publicKey);
    assert.equal(s?.peers.length, 2);
    assert.ok(!JSON.stringify(s).includes(PRIV));
  });
  it('userspace path: wireguard-go in its own session with an empty environment, then the same config over its socket', async () => {
    const f = fakeExec({ kernel: false });
    await ensureWireguard(f.exec, dev('trwgu'), { uapi: f.uapi });
    const start = f.calls.find((c) => c.argv[0] === 'setsid')?.argv;
    assert.deepEqual(start, ['setsid', '--wait', '/usr/bin/env', '-i', '-C', '/', '/usr/bin/wireguard-go', 'trwgu']);
    assert.deepEqual(f.links.get('trwgu'), { kind: 'tun', mtu: 1440, up: true, alias: wireguardMark('trwgu') });
    assert.ok(!f.calls.some((c) => c.argv[0] === 'wg'), 'no wg process for wireguard-go');
    const s = await readWireguard(f.exec, 'trwgu', f.uapi);
    assert.equal(s?.publicKey, key.publicKey);
    assert.deepEqual(
      s?.peers.map((p) => [p.publicKey, p.endpoint, p.allowedIps, p.keepaliveSeconds]),
      dev('trwgu').peers.map((p) => [p.publicKey, p.endpoint, p.allowedIps, p.keepaliveSeconds ?? 0]),
    );
    const secret = Buffer.from((await fs.readFile(key.file, 'utf8')).trim(), 'base64').toString('hex');
    assert.ok(!f.calls.some((c) => c.argv.join(' ').includes(secret)), 'the key reaches the socket only');
    assert.ok(f.calls.some((c) => c.argv[1] === 'set' && c.stdin?.includes(`private_key=${secret}`)));
  });
  it('a second ensure reads and writes nothing (a third: the socket alone); a changed peer is one set on the socket', async () => {
    const f = fakeExec({ kernel: false });
    await ensureWireguard(f.exec, dev('trwgi'), { uapi: f.uapi });
    f.calls.length = 0;
    assert.deepEqual(await ensureWireguard(f.exec, dev('trwgi'), { uapi: f.uapi }), { created: false, changes: [] });
    assert.deepEqual(
      f.calls.map((c) => c.argv[0]),
      ['ip', 'uapi'],
    );
    assert.deepEqual(f.writes(), []);
    f.calls.length = 0;
    await ensureWireguard(f.exec, dev('trwgi'), { uapi: f.uapi });
    assert.deepEqual(
      f.calls.map((c) => c.argv[0]),
      ['uapi'],
      'the link as read while the same wireguard-go serves it: no process',
    );
    const w = dev('trwgi');
    const r = await ensureWireguard(f.exec, { ...w, mtu: 1400, peers: [w.peers[0]!] }, { uapi: f.uapi });
    assert.deepEqual(r.changes, ['mtu 1400', `peer ${K2.slice(0, 8)}… removed`]);
    assert.deepEqual(f.writes(), [
      ['uapi', 'set', 'trwgi', 'set=1', `public_key=${Buffer.from(K2, 'base64').toString('hex')}`, 'remove=true'],
      ['ip', '-batch', '-'],
    ]);
  });
  it('reads a running wireguard-go over its socket alone after one look for its link; looks again when the socket changes or goes', async () => {
    const f = fakeExec({ kernel: false });
    await ensureWireguard(f.exec, dev('trwgo'), { uapi: f.uapi });
    const read = async (): Promise<string[]> => {
      f.calls.length = 0;
      assert.equal((await readWireguard(f.exec, 'trwgo', f.uapi))?.publicKey, key.publicKey);
      return f.calls.map((c) => c.argv[0] as string);
    };
    assert.deepEqual(await read(), ['ip', 'uapi'], 'the first look finds the TUN in this namespace');
    assert.deepEqual(await read(), ['uapi'], 'the same socket: the same wireguard-go, no process');
    assert.deepEqual(await read(), ['uapi']);
    f.wg.set('trwgo', { ...(f.wg.get('trwgo') as FakeWg) }); // another wireguard-go serves the name now
    assert.deepEqual(await read(), ['ip', 'uapi']);
    assert.deepEqual(await read(), ['uapi']);
    f.deadSockets.add('trwgo'); // killed: its socket file stays, nobody answers
    f.calls.length = 0;
    await assert.rejects(readWireguard(f.exec, 'trwgo', f.uapi));
    assert.deepEqual(
      f.calls.map((c) => c.argv[0]),
      ['uapi', 'ip', 'uapi'],
      'a socket that does not answer: the link is looked for again',
    );
    f.deadSockets.clear();
    f.links.delete('trwgo'); // the TUN went, and wireguard-go with its socket
    f.calls.length = 0;
    assert.equal(await readWireguard(f.exec, 'trwgo', f.uapi), undefined);
    assert.deepEqual(
      f.calls.map((c) => c.argv[0]),
      ['ip'],
    );
  });
  it("an MTU or state changed behind truss is found by the full pass's check, then repaired by ensure", async () => {
    const f = fakeExec({ kernel: false });
    for (let i = 0; i < 2; i++) await ensureWireguard(f.exec, dev('trwgd'), { uapi: f.uapi });
    f.links.set('trwgd', { ...(f.links.get('trwgd') as FakeLink), mtu: 1300, up: false }); // ip link set … (not truss)
    assert.deepEqual((await ensureWireguard(f.exec, dev('trwgd'), { uapi: f.uapi })).changes, [], 'not seen yet');
    assert.deepEqual(await checkWireguardLink(f.exec, dev('trwgd'), f.uapi), ['mtu 1440', 'up']);
    assert.deepEqual((await ensureWireguard(f.exec, dev('trwgd'), { uapi: f.uapi })).changes, ['mtu 1440', 'up']);
    assert.deepEqual(await checkWireguardLink(f.exec, dev('trwgd'), f.uapi), []);
  });
  it('a killed wireguard-go (its socket left, answering nothing): ensure looks again and starts another', async () => {
    const f = fakeExec({ kernel: false });
    for (let i = 0; i < 2; i++) await ensureWireguard(f.exec, dev('trwgk'), { uapi: f.uapi });
    const identity = f.uapi.identity?.bind(f.uapi);
    const left = await identity?.('trwgk');
    f.links.delete('trwgk'); // its TUN went with it
    f.deadSockets.add('trwgk');
    const uapi = { ...f.uapi, identity: async (n: string) => (f.links.has(n) ? identity?.(n) : left) };
    f.calls.length = 0;
    const r = await ensureWireguard(f.exec, dev('trwgk'), { uapi });
    assert.equal(r.created, true);
    assert.equal(f.links.get('trwgk')?.kind, 'tun', 'started again');
    assert.deepEqual(f.calls.map((c) => c.argv[0]).slice(0, 3), ['uapi', 'ip', 'setsid']);
  });
  it('refuses a same-named device that is not ours, and leaves it alone on remove', async () => {
    const f = fakeExec({ kernel: true });
    f.links.set('trwgf', { kind: 'tun', mtu: 1500, up: true, alias: 'openvpn' });
    await assert.rejects(ensureWireguard(f.exec, dev('trwgf')), { code: 'TRUSS_ERR_KERNEL_OBJECT_FOREIGN' });
    f.links.set('trwgn', { kind: 'wireguard', mtu: 1420, up: true });
    await assert.rejects(ensureWireguard(f.exec, dev('trwgn')), /no truss mark/);
    assert.deepEqual(f.writes(), []);
    await removeWireguard(f.exec, 'trwgf');
    assert.ok(f.links.has('trwgf'));
  });
  it('says what to install when there is no WireGuard at all', async () => {
    const f = fakeExec({ kernel: false, tools: ['ip', 'wg'] });
    await assert.rejects(ensureWireguard(f.exec, dev('trwgz')), { code: 'TRUSS_ERR_FEATURE_UNSUPPORTED' });
  });
  it('remove deletes our device; gone is success', async () => {
    const f = fakeExec({ kernel: true });
    await ensureWireguard(f.exec, dev('trwgr'));
    await removeWireguard(f.exec, 'trwgr');
    assert.equal(f.links.has('trwgr'), false);
    await removeWireguard(f.exec, 'trwgr');
    assert.equal(await readWireguard(f.exec, 'trwgr'), undefined);
  });
});
