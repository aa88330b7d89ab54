import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ProxyNdpObject } from '../../core/cluster/proxy-ndp.ts';
import { type Exec, KernelError } from './exec.ts';
import {
  checkProxyNdpObject,
  checkProxyNdpSet,
  ensureProxyNdp,
  PROXY_NDP_ALL_KEY,
  parseProxyEntries,
  planProxyNdp,
  removeProxyNdp,
} from './proxy-ndp.ts';

// `ip -j -6 neigh show proxy` (real output, iproute2 6.1)
const LISTING =
  '[{"dst":"fd00:5::42","dev":"trb1","proxy":null},{"dst":"fd00:5::43","dev":"ulA","proxy":null},{"dst":"fd00:0005::0044","dev":"trb1","proxy":null},{"dst":"fd00:9::1","dev":"trb1","proxy":null}]';

const obj = (addresses: string[]): ProxyNdpObject => ({
  name: 'trb1',
  networkId: 'n'.repeat(64),
  subnets: ['fd00:5::/64'],
  addresses,
});

describe('proxy NDP: parsing and plans', () => {
  it('parses the listing, canonical, skipping what is not an IPv6 entry with a device', () => {
    assert.deepEqual(parseProxyEntries(`${LISTING.slice(0, -1)},{"dst":"198.18.0.5","dev":"x"},{"dst":"fd00::1"}]`), [
      { ip: 'fd00:5::42', dev: 'trb1' },
      { ip: 'fd00:5::43', dev: 'ulA' },
      { ip: 'fd00:5::44', dev: 'trb1' },
      { ip: 'fd00:9::1', dev: 'trb1' },
    ]);
    assert.deepEqual(parseProxyEntries(''), []);
  });

  it('adds what is missing, deletes truss entries not wanted; never entries of other devices or prefixes', () => {
    const cur = parseProxyEntries(LISTING);
    assert.deepEqual(planProxyNdp(cur, obj(['fd00:5::42', 'fd00:5::45'])), [
      'neigh del proxy fd00:5::44 dev trb1',
      'neigh add proxy fd00:5::45 dev trb1',
    ]);
    assert.deepEqual(planProxyNdp(cur, obj(['fd00:5::42', 'fd00:5::44'])), []);
  });

  it('refuses addresses outside the network and names that could break a batch line', () => {
    assert.throws(() => checkProxyNdpObject(obj(['fd00:6::1'])), /not an IPv6 address of its network/);
    assert.throws(() => checkProxyNdpObject(obj(['fd00:5::1 dev lo'])), /not an IPv6 address/);
    assert.throws(() => checkProxyNdpObject({ ...obj([]), name: 'trb1 up' }), /invalid interface name/);
    assert.deepEqual(checkProxyNdpObject(obj(['fd00:0005::0001'])).addresses, ['fd00:5::1']);
  });
});

/** An Exec over sysctls and proxy entries held in memory, applying `ip -6 -batch` lines as the kernel would. */
function fakeKernel(sysctls: Record<string, string>, entries = parseProxyEntries(LISTING)) {
  const batches: string[] = [];
  const exec: Exec = {
    which: (b) => b,
    async run(bin, args, opts) {
      if (bin === 'sysctl' && args[0] === '-n') {
        const v = sysctls[args[1] as string];
        if (v === undefined)
          throw new KernelError('ENOENT', [bin, ...args], 255, 'cannot stat: No such file or directory');
        return { stdout: `${v}\n`, stderr: '' };
      }
      if (bin === 'sysctl') {
        const [k, v] = (args.at(-1) as string).split('=') as [string, string];
        sysctls[k] = v;
        return { stdout: '', stderr: '' };
      }
      if (args.includes('-batch')) {
        assert.deepEqual(args.slice(0, 1), ['-6']);
        batches.push(opts?.stdin ?? '');
        const lines = (opts?.stdin ?? '').trim().split('\n');
        for (const [i, l] of lines.entries()) {
          const [, verb, , ip, , dev] = l.split(' ') as string[];
          const at = entries.findIndex((e) => e.ip === ip && e.dev === dev);
          if (verb === 'add' && at < 0) entries.push({ ip: ip as string, dev: dev as string });
          if (verb === 'del' && at < 0)
            throw new KernelError(
              'ENOENT',
              ['ip', ...args],
              2,
              `RTNETLINK answers: No such file or directory\nCommand failed -:${i + 1}`,
            );
          if (verb === 'del') entries.splice(at, 1);
        }
        return { stdout: '', stderr: '' };
      }
      return { stdout: JSON.stringify(entries.map((e) => ({ dst: e.ip, dev: e.dev, proxy: null }))), stderr: '' };
    },
  };
  return { exec, batches, entries, sysctls };
}

const SWITCHES = {
  'net/ipv6/conf/trb1/proxy_ndp': '0',
  'net/ipv6/neigh/trb1/proxy_delay': '80',
  [PROXY_NDP_ALL_KEY]: '0',
};

describe('proxy NDP: ensure, check, remove', () => {
  it('ensure sets the switches, raises the host-wide one, writes only differences; again writes nothing', async () => {
    const k = fakeKernel({ ...SWITCHES });
    const want = obj(['fd00:5::42', 'fd00:5::45']);
    const r = await ensureProxyNdp(k.exec, want);
    assert.equal(r.raisedAll, true);
    assert.deepEqual(k.sysctls, {
      'net/ipv6/conf/trb1/proxy_ndp': '1',
      'net/ipv6/neigh/trb1/proxy_delay': '0',
      [PROXY_NDP_ALL_KEY]: '1',
    });
    assert.deepEqual(k.batches, ['neigh del proxy fd00:5::44 dev trb1\nneigh add proxy fd00:5::45 dev trb1\n']);
    assert.deepEqual((await checkProxyNdpSet(k.exec, [want])).problems, []);
    const again = await ensureProxyNdp(k.exec, want);
    assert.deepEqual(again, { changes: [], raisedAll: false });
    assert.equal(k.batches.length, 1);
  });

  it('check names the drift: a switch off, entries missing or extra', async () => {
    const k = fakeKernel({ ...SWITCHES, [PROXY_NDP_ALL_KEY]: '1' });
    const c = await checkProxyNdpSet(k.exec, [obj(['fd00:5::42', 'fd00:5::45'])]);
    assert.deepEqual(c.drifted, ['trb1']);
    assert.deepEqual(c.extra, []);
    assert.match(
      c.problems[0] ?? '',
      /proxy_ndp is 0, not 1.*proxy_delay is 80, not 0.*1 proxy entr\(ies\) missing, 1 extra/,
    );
  });

  it('a missing bridge fails the ensure, naming it', async () => {
    const k = fakeKernel({ [PROXY_NDP_ALL_KEY]: '0' });
    await assert.rejects(ensureProxyNdp(k.exec, obj([])), /proxy NDP on trb1: .* does not exist \(bridge missing/);
  });

  it('remove deletes only truss entries of that bridge; an entry gone meanwhile is no error', async () => {
    const k = fakeKernel({ ...SWITCHES });
    await removeProxyNdp(k.exec, 'trb1', ['fd00:5::/64']);
    assert.deepEqual(k.entries, [
      { ip: 'fd00:5::43', dev: 'ulA' },
      { ip: 'fd00:9::1', dev: 'trb1' },
    ]);
    const stale = fakeKernel({ ...SWITCHES });
    const cur = parseProxyEntries(LISTING);
    stale.entries.splice(0, 1); // fd00:5::42 went after the listing: the batch's first line fails
    let listed = false;
    const run = stale.exec.run.bind(stale.exec);
    const exec: Exec = {
      ...stale.exec,
      run: async (bin, args, o) => {
        if (args.includes('show') && !listed) {
          listed = true;
          return { stdout: JSON.stringify(cur.map((e) => ({ dst: e.ip, dev: e.dev }))), stderr: '' };
        }
        return run(bin, args, o);
      },
    };
    await removeProxyNdp(exec, 'trb1', ['fd00:5::/64']);
    assert.deepEqual(stale.batches, [
      'neigh del proxy fd00:5::42 dev trb1\nneigh del proxy fd00:5::44 dev trb1\n',
      'neigh del proxy fd00:5::44 dev trb1\n',
    ]);
    assert.ok(!stale.entries.some((e) => e.ip === 'fd00:5::44'));
  });
});
