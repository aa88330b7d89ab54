import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  capabilitiesFrom,
  evaluateHost,
  featureRefused,
  type HostFacts,
  isFailedRequirement,
  startError,
  unavailable,
} from './preflight.ts';

/** A host with everything (this machine's shape: wireguard-go, no kernel module). */
export const goodHost = (over: Partial<HostFacts> = {}): HostFacts => ({
  programs: {
    ip: '/usr/sbin/ip',
    bridge: '/usr/sbin/bridge',
    tc: '/usr/sbin/tc',
    nft: '/usr/sbin/nft',
    conntrack: '/usr/sbin/conntrack',
    wg: '/usr/bin/wg',
    'wireguard-go': '/usr/bin/wireguard-go',
    setsid: '/usr/bin/setsid',
    env: '/usr/bin/env',
  },
  nftables: { ok: true },
  iptables: {
    configured: 'iptables',
    path: '/usr/sbin/iptables',
    backend: 'nf_tables',
    restore: '/usr/sbin/iptables-nft-restore',
    dockerRules: { nf_tables: true, legacy: false },
  },
  wireguard: { kernel: false, tun: true },
  brNetfilter: true,
  ipv6Forwarding: '0',
  procSys: { path: '/proc/sys', writable: true },
  dirs: [
    { flag: '--socket', path: '/run/docker/plugins', writable: true },
    { flag: '--state-dir', path: '/var/lib/truss', writable: true },
  ],
  ...over,
});

const without = (name: string): HostFacts => {
  const h = goodHost();
  return { ...h, programs: { ...h.programs, [name]: null } };
};

const byId = (f: HostFacts, id: string) => evaluateHost(f).find((c) => c.id === id);

describe('evaluateHost', () => {
  it('a complete host: every check ok, no start error, no capability missing', () => {
    const checks = evaluateHost(goodHost());
    assert.deepEqual(
      checks.filter((c) => c.status !== 'ok').map((c) => c.id),
      [],
    );
    assert.equal(startError(checks), undefined);
    const caps = capabilitiesFrom(checks);
    for (const f of ['port-policy', 'encrypted-cluster', 'ipv6'] as const) assert.equal(caps.missing(f), undefined);
  });

  it('a missing nft stops the start, naming the package', () => {
    const checks = evaluateHost(without('nft'));
    assert.equal(startError(checks), "cannot start: the program 'nft' was not found: apt-get install nftables");
  });

  it('several missing must-haves are all named', () => {
    const h = without('tc');
    const checks = evaluateHost({ ...h, programs: { ...h.programs, ip: null }, nftables: { ok: false, error: 'x' } });
    assert.equal(
      startError(checks),
      "cannot start: the program 'ip' was not found: apt-get install iproute2; " +
        "the program 'tc' was not found: apt-get install iproute2; " +
        'nf_tables is not usable: x: modprobe nf_tables (kernel 5.2 or later; needs CAP_NET_ADMIN)',
    );
  });

  it("dockerd's rules in the other backend is an error naming --iptables", () => {
    const h = goodHost();
    const f = { ...h, iptables: { ...h.iptables, dockerRules: { nf_tables: false, legacy: true } } };
    const c = byId(f, 'iptables-backend');
    assert.equal(c?.status, 'missing');
    assert.equal(
      startError(evaluateHost(f)),
      "cannot start: dockerd's rules are in legacy, but iptables uses nf_tables: start truss with --iptables iptables-legacy",
    );
  });

  it("legacy iptables without the host's xtables lock (the managed plugin's placeholder) refuses to start (M6)", () => {
    const h = goodHost();
    const legacy = { ...h.iptables, backend: 'legacy' as const, dockerRules: { legacy: true } };
    assert.equal(startError(evaluateHost({ ...h, iptables: legacy })), undefined);
    const f = { ...h, iptables: { ...legacy, lockPlaceholder: true } };
    assert.equal(byId(f, 'iptables-backend')?.status, 'missing');
    assert.equal(
      startError(evaluateHost(f)),
      "cannot start: iptables-legacy must share dockerd's lock /run/xtables.lock, but the plugin's is a placeholder (/dev/null): " +
        'touch /run/xtables.lock; docker plugin set truss xtables-lock.source=/run/xtables.lock',
    );
    // nf_tables takes no xtables lock: the placeholder does not matter
    const nft = { ...h, iptables: { ...h.iptables, lockPlaceholder: true } };
    assert.equal(startError(evaluateHost(nft)), undefined);
  });

  it('no dockerd rules yet is info, not a failure', () => {
    const h = goodHost();
    const f = { ...h, iptables: { ...h.iptables, dockerRules: { nf_tables: false } } };
    const c = byId(f, 'iptables-backend');
    assert.equal(c?.status, 'info');
    assert.equal(
      c?.detail,
      'dockerd has no iptables rules yet (not running, or --iptables=false): truss uses nf_tables',
    );
    assert.equal(startError(evaluateHost(f)), undefined);
  });

  it('iptables and its restore tool are must-haves', () => {
    const h = goodHost();
    assert.equal(
      startError(
        evaluateHost({ ...h, iptables: { configured: 'iptables', path: null, restore: null, dockerRules: {} } }),
      ),
      "cannot start: the program 'iptables' was not found: apt-get install iptables",
    );
    assert.match(
      startError(evaluateHost({ ...h, iptables: { ...h.iptables, restore: null } })) ?? '',
      /iptables-restore' was not found beside \/usr\/sbin\/iptables: apt-get install iptables$/,
    );
  });

  it('unwritable directories and /proc/sys name the flag', () => {
    const h = goodHost();
    const f: HostFacts = {
      ...h,
      procSys: { path: '/proc/sys', writable: false, error: 'EROFS' },
      dirs: [{ flag: '--state-dir', path: '/var/lib/truss', writable: false, error: '/var/lib: EACCES' }],
    };
    assert.equal(
      startError(evaluateHost(f)),
      'cannot start: /proc/sys/net cannot be written: EROFS: mount /proc/sys read-write, or pass --proc-sys DIR ' +
        "(a writable mount of the host's /proc/sys); /var/lib/truss cannot be written: /var/lib: EACCES: " +
        'run truss as root, or choose another --state-dir',
    );
  });

  it('a missing conntrack is a warning that disables port policy', () => {
    const checks = evaluateHost(without('conntrack'));
    assert.equal(startError(checks), undefined);
    assert.equal(checks.filter(isFailedRequirement).length, 0);
    const [w] = unavailable(checks);
    assert.equal(w?.id, 'program:conntrack');
    assert.equal(w?.status, 'warn');
    assert.equal(w?.fix, 'apt-get install conntrack');
    assert.deepEqual(w?.features, ['port-policy']);
  });

  it('WireGuard: wg missing, then neither kernel nor wireguard-go, then no TUN', () => {
    assert.equal(byId(without('wg'), 'wireguard')?.fix, 'apt-get install wireguard-tools');
    assert.equal(byId(without('wireguard-go'), 'wireguard')?.fix, 'apt-get install wireguard-go');
    const kernel = { ...without('wireguard-go'), wireguard: { kernel: true, tun: false } };
    assert.equal(byId(kernel, 'wireguard')?.status, 'ok');
    const noTun = { ...goodHost(), wireguard: { kernel: false, tun: false } };
    assert.equal(byId(noTun, 'wireguard')?.status, 'warn');
    assert.match(byId(noTun, 'wireguard')?.detail ?? '', /\/dev\/net\/tun cannot be opened/);
  });
  it('WireGuard: names the wireguard-go that runs, its version, and whether it is an old one', () => {
    const own = '/usr/local/lib/truss/wireguard-go/usr/bin/wireguard-go';
    const go = [
      { path: '/usr/bin/wireguard-go', source: 'path' as const, version: '0.0.20220316' },
      { path: own, source: 'truss' as const, version: '0.0.20250522' },
    ];
    const newest = byId({ ...goodHost(), wireguard: { kernel: false, tun: true, go } }, 'wireguard');
    assert.equal(newest?.status, 'ok');
    assert.match(newest?.detail ?? '', new RegExp(`^wireguard-go 0\\.0\\.20250522 \\(${own}, truss's own\\); `));
    const old = byId({ ...goodHost(), wireguard: { kernel: false, tun: true, go: go.slice(0, 1) } }, 'wireguard');
    assert.match(old?.detail ?? '', /^wireguard-go 0\.0\.20220316 .*older than 0\.0\.20231211 \(no GSO\/GRO/);
    const kernel = byId({ ...goodHost(), wireguard: { kernel: true, tun: true, go } }, 'wireguard');
    assert.match(kernel?.detail ?? '', /^kernel module/);
    // only a version with the mixed-family IPv6 bug: named, with the way out; an unaffected one beside it: silent
    assert.doesNotMatch(newest?.detail ?? '', /wireguard-go#135/);
    const only = byId({ ...goodHost(), wireguard: { kernel: false, tun: true, go: go.slice(1) } }, 'wireguard');
    assert.equal(only?.status, 'ok');
    assert.match(only?.detail ?? '', /loses IPv6 packets .*wireguard-go#135.*apt-get install wireguard-go/);
  });

  it('etcd unreachable is a warning; reachable is ok', () => {
    const down = { ...goodHost(), etcd: { endpoints: ['198.18.0.9:2379'], reachable: [] } };
    assert.equal(byId(down, 'etcd')?.status, 'warn');
    assert.equal(startError(evaluateHost(down)), undefined);
    const up = { ...goodHost(), etcd: { endpoints: ['198.18.0.9:2379'], reachable: ['198.18.0.9:2379'] } };
    assert.equal(byId(up, 'etcd')?.status, 'ok');
  });
});

describe('capabilities and refusals', () => {
  it('conntrack missing: the exact refusal of truss.ingress', () => {
    const m = capabilitiesFrom(evaluateHost(without('conntrack'))).missing('port-policy');
    assert.ok(m);
    const e = featureRefused('truss.ingress', m);
    assert.equal(e.code, 'TRUSS_ERR_FEATURE_UNSUPPORTED');
    assert.equal(
      e.message,
      "truss.ingress needs the program 'conntrack', which is not installed: apt-get install conntrack (then restart truss)",
    );
  });

  it('wg missing: encrypted cluster networks refused, nothing else', () => {
    const caps = capabilitiesFrom(evaluateHost(without('wg')));
    assert.equal(caps.missing('port-policy'), undefined);
    const m = caps.missing('encrypted-cluster');
    assert.ok(m);
    assert.equal(
      featureRefused('truss.cluster=blue with truss.encrypt=true (the default)', m).message,
      "truss.cluster=blue with truss.encrypt=true (the default) needs the program 'wg', which is not installed: " +
        'apt-get install wireguard-tools (then restart truss)',
    );
  });

  it('br_netfilter is asked live: loaded later (by dockerd) lifts the refusal, no restart named', () => {
    let loaded = false;
    const caps = capabilitiesFrom(evaluateHost({ ...goodHost(), brNetfilter: false }), {
      br_netfilter: () => loaded,
    });
    const m = caps.missing('port-policy');
    assert.ok(m);
    assert.equal(
      featureRefused('truss.ingress', m).message,
      'truss.ingress needs the kernel module br_netfilter, which is not loaded: modprobe br_netfilter',
    );
    loaded = true;
    assert.equal(caps.missing('port-policy'), undefined);
  });

  it('IPv6 off: IPv6 networks refused', () => {
    const m = capabilitiesFrom(evaluateHost({ ...goodHost(), ipv6Forwarding: null })).missing('ipv6');
    assert.ok(m);
    assert.equal(
      featureRefused('the IPv6 pool fd00:1::/64', m).message,
      'the IPv6 pool fd00:1::/64 needs IPv6 on the host, which is off: boot without ipv6.disable=1',
    );
  });
});
