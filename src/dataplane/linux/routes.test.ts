import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { type Exec, KernelError } from './exec.ts';
import { parseRoutedRoutes } from './routed-routes.ts';
import {
  checkRoute,
  ensureRoutes,
  listRoutes,
  parseRoutesJson,
  planRoutes,
  removeRoute,
  TRUSS_ROUTE_PROTO,
} from './routes.ts';

// `ip -j route show table main proto 116` and its -6 twin (real output, iproute2 6.1); the fake exec
// answers the one listing of every table (route-dump.ts) with both.
const V4 =
  '[{"dst":"198.18.211.0/24","dev":"trwg0","scope":"link","flags":[],"metrics":[{"mtu":1440}]},{"dst":"198.18.213.7","dev":"trwg0","scope":"link","flags":[]},{"dst":"198.18.214.0/24","dev":"trwg0","scope":"link","prefsrc":"198.18.210.1","flags":[]}]\n';
const V6 = '[{"dst":"fd00:211::/64","dev":"trwg0","metric":1024,"flags":[],"pref":"medium"}]\n';

describe('route protocol', () => {
  it('is in 20-252 and not named by iproute2 (rt_protos) nor the kernel', () => {
    assert.ok(TRUSS_ROUTE_PROTO >= 20 && TRUSS_ROUTE_PROTO <= 252);
    const kernel = [0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 42, 99, 186, 187, 188, 189, 192];
    assert.ok(!kernel.includes(TRUSS_ROUTE_PROTO));
    let text = '';
    try {
      text = readFileSync('/etc/iproute2/rt_protos', 'utf8');
    } catch {}
    const named = text.split('\n').map((l) => Number.parseInt(l.trim(), 10));
    assert.ok(!named.includes(TRUSS_ROUTE_PROTO));
  });
});

describe('parseRoutesJson', () => {
  it('reads our routes: host routes get /32, mtu from metrics, prefsrc as src', () => {
    assert.deepEqual(parseRoutesJson(V4, 4), [
      { dst: '198.18.211.0/24', dev: 'trwg0', mtu: 1440 },
      { dst: '198.18.213.7/32', dev: 'trwg0' },
      { dst: '198.18.214.0/24', dev: 'trwg0', src: '198.18.210.1' },
    ]);
    assert.deepEqual(parseRoutesJson(V6, 6), [{ dst: 'fd00:211::/64', dev: 'trwg0' }]);
    assert.deepEqual(parseRoutesJson('', 4), []);
    assert.deepEqual(parseRoutesJson('[{"dst":"default","nexthops":[{"dev":"a"}]}]', 4), []);
  });
  it('reads both families of the main table from one dump of every table (real output, iproute2 6.1)', () => {
    // `ip -j route show table all proto 116`: tables other than main are named; IPv6 routes carry pref
    const ALL =
      '[{"dst":"198.18.213.0/24","dev":"d0","table":"100","scope":"link","flags":[]},' +
      '{"dst":"default","dev":"d0","scope":"link","flags":[]},' +
      '{"dst":"198.18.211.0/24","dev":"d0","scope":"link","flags":[],"metrics":[{"mtu":1420}]},' +
      '{"dst":"198.18.212.0/24","via":{"family":"inet6","host":"fe80::1"},"dev":"d0","flags":["onlink"]},' +
      '{"dst":"fd00:212::/64","dev":"d0","table":"100","metric":1024,"flags":[],"pref":"medium"},' +
      '{"dst":"fd00:211::/64","dev":"d0","metric":1024,"flags":[],"pref":"medium"},' +
      '{"dst":"fd00::7","dev":"d0","metric":1024,"flags":[],"pref":"medium"},' +
      '{"dst":"default","dev":"d0","metric":1024,"flags":[],"pref":"medium"}]';
    assert.deepEqual(parseRoutesJson(ALL), [
      { dst: '0.0.0.0/0', dev: 'd0' },
      { dst: '198.18.211.0/24', dev: 'd0', mtu: 1420 },
      { dst: '198.18.212.0/24', dev: 'd0', via: 'fe80::1' },
      { dst: 'fd00:211::/64', dev: 'd0' },
      { dst: 'fd00::7/128', dev: 'd0' },
      { dst: '::/0', dev: 'd0' },
    ]);
    // a kernel before 4.1 gives no pref: an IPv6 gateway or source still tells a default route's family
    assert.deepEqual(parseRoutesJson('[{"dst":"default","gateway":"fd00::1","dev":"d0","flags":[]}]'), [
      { dst: '::/0', dev: 'd0', via: 'fd00::1' },
    ]);
  });
  it("the routed networks' routes come out of the same listing (unreachable subnets, host routes on host ends)", () => {
    const ALL =
      '[{"type":"unreachable","dst":"198.18.61.0/24","flags":[]},' +
      '{"type":"unreachable","dst":"fd00:61::/64","dev":"lo","metric":1024,"flags":[],"pref":"medium"},' +
      '{"type":"unreachable","dst":"198.18.62.0/24","table":"100","flags":[]},' +
      '{"dst":"198.18.61.2","dev":"trv0123456789ab","scope":"link","flags":[]},' +
      '{"dst":"198.18.211.0/24","dev":"trwg0","scope":"link","flags":[]}]';
    assert.deepEqual(parseRoutedRoutes(ALL), [
      { dst: '198.18.61.0/24' },
      { dst: 'fd00:61::/64' },
      { dst: '198.18.61.2/32', dev: 'trv0123456789ab' },
    ]);
    assert.deepEqual(parseRoutesJson(ALL), [{ dst: '198.18.211.0/24', dev: 'trwg0' }]);
  });
});

describe('on-link routes via a next hop (VXLAN)', () => {
  // `ip -j route show table main proto 116` with a VXLAN route (real output, iproute2 6.1)
  const VX =
    '[{"type":"unicast","dst":"198.18.64.64/26","gateway":"198.18.255.2","dev":"trvx0","scope":"global","flags":["onlink"]}]';
  it('reads the next hop', () => {
    assert.deepEqual(parseRoutesJson(VX, 4), [{ dst: '198.18.64.64/26', dev: 'trvx0', via: '198.18.255.2' }]);
  });
  it('adds with via … onlink, replaces when the next hop or device changes, leaves a match alone', () => {
    const cur = parseRoutesJson(VX, 4);
    assert.deepEqual(planRoutes(cur, [{ dst: '198.18.64.64/26', dev: 'trvx0', via: '198.18.255.2' }]), []);
    assert.deepEqual(
      planRoutes(cur, [
        { dst: '198.18.64.64/26', dev: 'trvx0', via: '198.18.255.3' },
        { dst: '198.18.64.128/26', dev: 'trvx0', via: '198.18.255.4' },
      ]),
      [
        'route replace 198.18.64.64/26 via 198.18.255.3 dev trvx0 onlink proto 116',
        'route add 198.18.64.128/26 via 198.18.255.4 dev trvx0 onlink proto 116',
      ],
    );
    assert.deepEqual(planRoutes(cur, [{ dst: '198.18.64.64/26', dev: 'trwg0' }]), [
      'route replace 198.18.64.64/26 dev trwg0 proto 116',
    ]);
  });
  it('an IPv4 route via an IPv6 link-local next hop (RFC 5549): via inet6', () => {
    const json =
      '[{"dst":"198.18.65.64/26","via":{"family":"inet6","host":"fe80::aa:bbff:fecc:ddee"},"dev":"trvx0","flags":["onlink"]}]';
    const cur = parseRoutesJson(json, 4);
    assert.deepEqual(cur, [{ dst: '198.18.65.64/26', dev: 'trvx0', via: 'fe80::aa:bbff:fecc:ddee' }]);
    assert.deepEqual(planRoutes(cur, cur), []);
    assert.deepEqual(planRoutes([], cur), [
      'route add 198.18.65.64/26 via inet6 fe80::aa:bbff:fecc:ddee dev trvx0 onlink proto 116',
    ]);
  });
  it('refuses a next hop of another family or that is no address', () => {
    assert.throws(() => checkRoute({ dst: '198.18.64.0/26', dev: 'trvx0', via: 'fd00::2' }), /next hop/);
    assert.throws(() => checkRoute({ dst: 'fd00:64::/64', dev: 'trvx0', via: '198.18.255.2' }), /next hop/);
    assert.throws(() => checkRoute({ dst: '198.18.64.0/26', dev: 'trvx0', via: '1.2.3.4 dev lo' }), /next hop/);
  });
});

describe('planRoutes', () => {
  const cur = [...parseRoutesJson(V4, 4), ...parseRoutesJson(V6, 6)];
  it('adds new, replaces changed, leaves matching routes alone', () => {
    const lines = planRoutes(cur, [
      { dst: '198.18.211.0/24', dev: 'trwg0', mtu: 1440 },
      { dst: '198.18.213.7/32', dev: 'trwg0', mtu: 1400 },
      { dst: 'fd00:0211:0::/64', dev: 'trwg0' },
      { dst: '198.18.215.0/24', dev: 'trwg0', src: '198.18.210.1' },
      { dst: 'fd00:215::/64', dev: 'trwg1' },
    ]);
    assert.deepEqual(lines, [
      'route replace 198.18.213.7/32 dev trwg0 proto 116 mtu 1400',
      'route add 198.18.215.0/24 dev trwg0 proto 116 src 198.18.210.1',
      'route add fd00:215::/64 dev trwg1 proto 116',
    ]);
  });
  it('replaces to clear an MTU or move to another device', () => {
    assert.deepEqual(
      planRoutes(cur, [
        { dst: '198.18.211.0/24', dev: 'trwg0' },
        { dst: '198.18.214.0/24', dev: 'trwg1', src: '198.18.210.1' },
      ]),
      [
        'route replace 198.18.211.0/24 dev trwg0 proto 116',
        'route replace 198.18.214.0/24 dev trwg1 proto 116 src 198.18.210.1',
      ],
    );
  });
  it('refuses host bits, bad names, bad MTUs, mixed-family sources and duplicates', () => {
    assert.throws(() => checkRoute({ dst: '198.18.211.7/24', dev: 'trwg0' }), { code: 'TRUSS_ERR_ADDRESS_INVALID' });
    assert.throws(() => checkRoute({ dst: '198.18.211.0/24', dev: 'trwg0\nroute flush' }), {
      code: 'TRUSS_ERR_OPTION_INVALID',
    });
    assert.throws(() => checkRoute({ dst: '198.18.211.0/24', dev: 'trwg0', mtu: 10 }), /MTU/);
    assert.throws(() => checkRoute({ dst: '198.18.211.0/24', dev: 'trwg0', src: 'fd00::1' }), /source/);
    const r = { dst: '198.18.220.0/24', dev: 'trwg0' };
    assert.throws(() => planRoutes([], [r, r]), /wanted twice/);
  });
});

function fakeIp(failLine?: number) {
  const calls: { args: string[]; stdin?: string }[] = [];
  const exec: Exec = {
    which: (b) => `/usr/sbin/${b}`,
    async run(bin, args, ro = {}) {
      calls.push({ args: [...args], ...(ro.stdin !== undefined ? { stdin: ro.stdin } : {}) });
      if (args.includes('show')) return { stdout: JSON.stringify([...JSON.parse(V4), ...JSON.parse(V6)]), stderr: '' };
      if (args[0] === '-batch' && failLine !== undefined && calls.filter((c) => c.stdin).length === 1)
        throw new KernelError(
          'EEXIST',
          [bin, ...args],
          2,
          `RTNETLINK answers: File exists\nCommand failed -:${failLine}\n`,
        );
      if (args[1] === 'del') throw new KernelError('ESRCH', [bin, ...args], 2, 'RTNETLINK answers: No such process\n');
      return { stdout: '', stderr: '' };
    },
  };
  return { exec, calls };
}

describe('ensureRoutes / listRoutes / removeRoute (fake exec)', () => {
  it('lists both families of the main table in one process, filtered on our protocol', async () => {
    const f = fakeIp();
    assert.equal((await listRoutes(f.exec)).length, 4);
    assert.deepEqual(
      f.calls.map((c) => c.args),
      [['-j', 'route', 'show', 'table', 'all', 'proto', '116']],
    );
  });
  it('writes nothing when everything matches', async () => {
    const f = fakeIp();
    assert.deepEqual(await ensureRoutes(f.exec, parseRoutesJson(V4, 4)), []);
    assert.equal(f.calls.length, 1);
  });
  it('programs the rest around a foreign route, then names it', async () => {
    const f = fakeIp(1);
    const want = [
      { dst: '198.18.230.0/24', dev: 'trwg0' },
      { dst: '198.18.231.0/24', dev: 'trwg0' },
    ];
    await assert.rejects(ensureRoutes(f.exec, want), {
      code: 'TRUSS_ERR_KERNEL_OBJECT_FOREIGN',
      message: /198\.18\.230\.0\/24 already exists and is not truss's/,
    });
    const batches = f.calls.filter((c) => c.stdin !== undefined).map((c) => c.stdin);
    assert.deepEqual(batches, [
      'route add 198.18.230.0/24 dev trwg0 proto 116\nroute add 198.18.231.0/24 dev trwg0 proto 116\n',
      'route add 198.18.231.0/24 dev trwg0 proto 116\n',
    ]);
  });
  it('deletes with our protocol only; gone is success', async () => {
    const f = fakeIp();
    await removeRoute(f.exec, 'fd00:0211::/64');
    assert.deepEqual(f.calls[0]?.args, ['route', 'del', 'fd00:211::/64', 'table', 'main', 'proto', '116']);
  });
});
