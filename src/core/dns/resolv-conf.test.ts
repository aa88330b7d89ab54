import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseResolvConf, computeUpstreams, dnsWarning, parseResolvConf } from './resolv-conf.ts';

const V20 = { dockerMajor: 20, ipv6: false };
const V26 = { dockerMajor: 26, ipv6: false };
const V28 = { dockerMajor: 28, ipv6: false };

describe('parseResolvConf', () => {
  it('reads nameservers in order, the last search line, all options; skips comments and junk', () => {
    const rc = parseResolvConf(
      [
        '# generated',
        'nameserver 10.0.0.2',
        '  nameserver   fd00::53  # trailing comment',
        'nameserver not-an-ip',
        'nameserver fe80::1%eth0',
        '; another comment',
        'nameserver',
        'search a.example b.example',
        'domain c.example',
        'options ndots:2',
        'options edns0 timeout:1',
        'sortlist 10.0.0.0/8',
      ].join('\n'),
    );
    assert.deepEqual(rc, {
      nameservers: ['10.0.0.2', 'fd00::53'],
      search: ['c.example'],
      options: ['ndots:2', 'edns0', 'timeout:1'],
    });
    assert.deepEqual(parseResolvConf(''), { nameservers: [], search: [], options: [] });
  });
});

describe('chooseResolvConf (the default bridge rule)', () => {
  it('takes the systemd file when /etc names 127.0.0.53 alone', () => {
    const etc = 'nameserver 127.0.0.53\noptions edns0 trust-ad\n';
    const systemd = 'nameserver 10.0.0.2\n';
    assert.deepEqual(chooseResolvConf({ etc, systemd }), { path: '/run/systemd/resolve/resolv.conf', text: systemd });
  });
  it('keeps /etc otherwise, or when the systemd file is missing', () => {
    const both = 'nameserver 127.0.0.53\nnameserver 10.0.0.2\n';
    assert.equal(chooseResolvConf({ etc: both, systemd: 'x' }).path, '/etc/resolv.conf');
    assert.equal(chooseResolvConf({ etc: 'nameserver 127.0.0.53\n' }).path, '/etc/resolv.conf');
    assert.deepEqual(chooseResolvConf({}), { path: '/etc/resolv.conf', text: '' });
  });
});

describe('computeUpstreams on 20.10', () => {
  it('takes the first three IPv4 servers; loopback ones are dialled from the host', () => {
    const r = computeUpstreams(
      'nameserver 10.0.0.2\nnameserver 127.0.0.53\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n',
      V20,
    );
    assert.deepEqual(r, { upstreams: ['10.0.0.2', '10.0.0.3'], hostLoopback: ['127.0.0.53'], usedDefaults: false });
  });
  it('adds IPv6 servers, which the container queries itself; never ::1', () => {
    const r = computeUpstreams('nameserver fd00::53\nnameserver ::1\nnameserver 10.0.0.2\n', V20);
    assert.deepEqual(r, { upstreams: ['10.0.0.2', 'fd00::53'], hostLoopback: [], usedDefaults: false });
  });
  it('systemd-resolved alone: the stub is dialled from the host; the container file gets the v6 defaults', () => {
    const r = computeUpstreams('nameserver 127.0.0.53\noptions edns0\n', V20);
    assert.deepEqual(r, {
      upstreams: ['2001:4860:4860::8888', '2001:4860:4860::8844'],
      hostLoopback: ['127.0.0.53'],
      usedDefaults: true,
    });
  });
  it('no nameserver at all: 8.8.8.8 and 8.8.4.4 from the container, plus the v6 defaults', () => {
    for (const text of ['', 'nameserver ::1\n']) {
      assert.deepEqual(computeUpstreams(text, V20), {
        upstreams: ['8.8.8.8', '8.8.4.4', '2001:4860:4860::8888', '2001:4860:4860::8844'],
        hostLoopback: [],
        usedDefaults: true,
      });
    }
  });
  it('IPv6 servers only: no external server for the embedded DNS, the v6 ones directly', () => {
    assert.deepEqual(computeUpstreams('nameserver fd00::53\n', V20), {
      upstreams: ['fd00::53'],
      hostLoopback: [],
      usedDefaults: false,
    });
  });
  it('--dns replaces the file: IPv4 (three) and IPv6 from the container, loopback ones stay inside it', () => {
    const dns = ['127.0.0.1', '10.9.0.1', '10.9.0.2', '10.9.0.3', 'fd00::1'];
    assert.deepEqual(computeUpstreams('nameserver 10.0.0.2\n', { ...V20, dns }), {
      upstreams: ['10.9.0.1', '10.9.0.2', 'fd00::1'],
      hostLoopback: [],
      usedDefaults: false,
    });
  });
});

describe('computeUpstreams on 26.x–27.x', () => {
  it('uses v4 and v6 alike (three); loopback and IPv6 without IPv6 are dialled from the host', () => {
    const text = 'nameserver fd00::53\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n';
    assert.deepEqual(computeUpstreams(text, V26), {
      upstreams: ['10.0.0.2'],
      hostLoopback: ['fd00::53', '127.0.0.53'],
      usedDefaults: false,
    });
    assert.deepEqual(computeUpstreams(text, { dockerMajor: 27, ipv6: true }).upstreams, ['fd00::53', '10.0.0.2']);
  });
  it('falls back to the defaults (v6 ones with IPv6) when the file has none', () => {
    assert.deepEqual(computeUpstreams('', V26).upstreams, ['8.8.8.8', '8.8.4.4']);
    assert.equal(computeUpstreams('', { dockerMajor: 26, ipv6: true }).upstreams.length, 4);
  });
});

describe('computeUpstreams on 28.x and later', () => {
  it('dials every server of the host file from the host: nothing crosses the bridge', () => {
    assert.deepEqual(computeUpstreams('nameserver 10.0.0.2\nnameserver 127.0.0.53\n', V28), {
      upstreams: [],
      hostLoopback: ['10.0.0.2', '127.0.0.53'],
      usedDefaults: false,
    });
    assert.deepEqual(computeUpstreams('', { dockerMajor: 29, ipv6: true }), {
      upstreams: [],
      hostLoopback: [],
      usedDefaults: false,
    });
  });
  it('--dns servers go from the container', () => {
    assert.deepEqual(computeUpstreams('nameserver 10.0.0.2\n', { ...V28, dns: ['10.9.0.1', '::1', 'bogus'] }), {
      upstreams: ['10.9.0.1'],
      hostLoopback: [],
      usedDefaults: false,
    });
  });
});

describe('dnsWarning', () => {
  it('says what to set in daemon.json when dockerd queries the host servers from the host', () => {
    const w = dnsWarning('nameserver 198.18.255.254\n', 28, false);
    assert.match(w ?? '', /dockerd 28 queries the host's resolv.conf servers from the host's namespace/);
    assert.match(w ?? '', /set "dns": \["198.18.255.254"\] in \/etc\/docker\/daemon.json/);
    assert.match(dnsWarning('nameserver 127.0.0.1\n', 20, false) ?? '', /loopback resolvers \(127.0.0.1\)/);
  });
  it('is quiet when the queries cross the bridge, or truss saw some already, or the version is unknown', () => {
    assert.equal(dnsWarning('nameserver 198.18.255.254\n', 20, false), undefined);
    assert.equal(dnsWarning('nameserver 198.18.255.254\n', 28, true), undefined);
    assert.equal(dnsWarning('nameserver 198.18.255.254\n', undefined, false), undefined);
  });
});
