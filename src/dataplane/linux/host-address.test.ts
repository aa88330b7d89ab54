import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Exec, KernelError } from './exec.ts';
import { ensureHostAddresses, hostCidr, ownedAddresses, planHostAddresses } from './host-address.ts';
import { planRoutes } from './routes.ts';

describe('host addresses: plan', () => {
  it('a /32 or /128 per address, IPv6 without DAD or a prefix route; new ones before removals', () => {
    assert.equal(hostCidr('198.18.64.2'), '198.18.64.2/32');
    assert.equal(hostCidr('FD00:64:0::2'), 'fd00:64::2/128');
    assert.throws(() => hostCidr('198.18.64.2/26'), /bare IP/);
    assert.deepEqual(planHostAddresses('trwg0', ['198.18.64.9/32', '198.18.64.0/26'], ['198.18.64.2', 'fd00:64::2']), [
      'address add 198.18.64.2/32 dev trwg0',
      'address add fd00:64::2/128 dev trwg0 nodad noprefixroute',
      'address del 198.18.64.9/32 dev trwg0',
      'address del 198.18.64.0/26 dev trwg0',
    ]);
    assert.deepEqual(planHostAddresses('trvx0', ['198.18.96.2/32'], ['198.18.96.2']), [], 'nothing when it matches');
  });

  it('owns every global address of the device, canonical', () => {
    assert.deepEqual(ownedAddresses({ addresses: ['198.18.64.2/32', 'FD00::2/128'] }), [
      '198.18.64.2/32',
      'fd00::2/128',
    ]);
  });

  it('a route to a peer block names the host address as its source', () => {
    assert.deepEqual(planRoutes([], [{ dst: '198.18.64.64/26', dev: 'trwg0', src: '198.18.64.2' }]), [
      'route add 198.18.64.64/26 dev trwg0 proto 116 src 198.18.64.2',
    ]);
    assert.deepEqual(
      planRoutes(
        [{ dst: '198.18.96.64/26', dev: 'trvx0', via: '198.18.255.2' }],
        [{ dst: '198.18.96.64/26', dev: 'trvx0', via: '198.18.255.2', src: '198.18.96.2' }],
      ),
      ['route replace 198.18.96.64/26 via 198.18.255.2 dev trvx0 onlink proto 116 src 198.18.96.2'],
      'a route of ours without the source is replaced',
    );
  });
});

/** An Exec with the given links (ip -j -d addr show dev X), recording batches. */
function fakeExec(links: Record<string, { alias?: string; addresses: string[] }>): Exec & { batches: string[] } {
  const batches: string[] = [];
  return {
    batches,
    which: (b) => b,
    async run(_bin, args, opts) {
      if (args.includes('-batch')) {
        batches.push(opts?.stdin ?? '');
        return { stdout: '', stderr: '' };
      }
      const name = args[args.length - 1] as string;
      const l = links[name];
      if (!l) throw new KernelError('ENODEV', ['ip', ...args], 1, `Device "${name}" does not exist.`);
      const addr_info = l.addresses.map((a) => ({
        family: a.includes(':') ? 'inet6' : 'inet',
        local: a.split('/')[0],
        prefixlen: Number(a.split('/')[1]),
        scope: 'global',
      }));
      const link = { ifindex: 7, ifname: name, ...(l.alias ? { ifalias: l.alias } : {}), mtu: 1440, addr_info };
      return { stdout: JSON.stringify([link]), stderr: '' };
    },
  };
}

describe('host addresses: ensure', () => {
  it('adds what is missing on each device and removes the rest; a missing device holds nothing to remove', async () => {
    const exec = fakeExec({ trwg0: { alias: 'truss:wg:trwg0', addresses: ['198.18.64.9/32'] } });
    await ensureHostAddresses(exec, [{ cluster: 'blue', dev: 'trwg0', address: '198.18.64.2' }]);
    assert.deepEqual(exec.batches, ['address add 198.18.64.2/32 dev trwg0\naddress del 198.18.64.9/32 dev trwg0\n']);
  });

  it('a wanted address on a missing device fails; a foreign device with our name is never touched', async () => {
    await assert.rejects(
      ensureHostAddresses(fakeExec({}), [{ cluster: 'green', dev: 'trvx0', address: '198.18.96.2' }]),
      /trvx0 is missing/,
    );
    const foreign = fakeExec({ trvx0: { alias: 'someone', addresses: ['198.18.96.7/32'] } });
    await ensureHostAddresses(foreign, []);
    assert.deepEqual(foreign.batches, [], 'nothing wanted: left alone');
    await assert.rejects(ensureHostAddresses(foreign, [{ cluster: 'green', dev: 'trvx0', address: '198.18.96.2' }]), {
      code: 'TRUSS_ERR_KERNEL_OBJECT_FOREIGN',
    });
  });
});
