/**
 * Kernel tests (root): the nft table, the iptables FORWARD shim and sysctls in a
 * throwaway namespace. Run: node --test --test-concurrency=1 'src/**\/*.netns.ts'.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { FirewallObject } from '../../core/desired.ts';
import { bridgeName } from '../../core/naming.ts';
import { createLinuxDataplane, type LinuxDataplane } from './linux-dataplane.ts';
import { createScratch, listTestNamespaces, randomId, type TestNs } from './netns-testutil.ts';
import { normaliseNft } from './nft-read.ts';

const JUMP = '-A FORWARD -j TRUSS-FORWARD';

describe('firewall (kernel)', () => {
  let ns: TestNs;
  let dp: LinuxDataplane;
  const [n1, n2] = [randomId(), randomId()];
  const f: FirewallObject = {
    networks: [
      {
        networkId: n1,
        bridge: bridgeName(n1),
        subnets4: ['198.18.30.0/24'],
        subnets6: ['fd00:30::/64'],
        nat: true,
        internal: false,
      },
      { networkId: n2, bridge: bridgeName(n2), subnets4: ['198.18.31.0/24'], subnets6: [], nat: false, internal: true },
    ].sort((a, b) => (a.bridge < b.bridge ? -1 : 1)),
  };
  const nftList = async (): Promise<string> => ns.must(['nft', 'list', 'table', 'inet', 'truss']);
  const iptS = async (tool: 'iptables' | 'ip6tables'): Promise<string[]> =>
    (await ns.must([tool, '-w', '-S'])).split('\n').filter((l) => l !== '');

  const scratch = createScratch();
  before(async () => {
    ns = await scratch.ns('fw');
    dp = createLinuxDataplane({ netns: ns.path });
  });

  it('reports everything missing before the first apply', async () => {
    const problems = await dp.checkFirewall(f);
    assert.ok(problems.includes('nft table inet truss is missing'));
    assert.ok(problems.includes('iptables chain TRUSS-FORWARD is missing'));
  });

  it('applies twice: identical nft listing matching the rendering, one jump, checkFirewall empty', async (t) => {
    assert.equal(await dp.iptablesBackend(), 'nf_tables');
    const t0 = performance.now();
    await dp.ensureFirewall(f);
    t.diagnostic(`ensureFirewall (2 networks, nft + iptables + ip6tables) ${(performance.now() - t0).toFixed(1)} ms`);
    const first = await nftList();
    assert.deepEqual(normaliseNft(first), normaliseNft(await dp.renderFirewall(f)));
    await dp.ensureFirewall(f);
    assert.equal(await nftList(), first);
    for (const tool of ['iptables', 'ip6tables'] as const) {
      const rules = await iptS(tool);
      assert.equal(rules.filter((l) => l === JUMP).length, 1, `${tool}: exactly one jump`);
      assert.deepEqual(
        rules.filter((l) => l.startsWith('-A TRUSS-FORWARD')),
        [
          '-A TRUSS-FORWARD -i tr+ -m comment --comment "truss interfaces" -j ACCEPT',
          '-A TRUSS-FORWARD -o tr+ -m comment --comment "truss interfaces" -j ACCEPT',
        ],
        `${tool}: two rules on the tr prefix, not two per bridge`,
      );
    }
    const t1 = performance.now();
    assert.deepEqual(await dp.checkFirewall(f), []);
    t.diagnostic(`checkFirewall ${(performance.now() - t1).toFixed(1)} ms`);
  });

  it('puts the jump first in FORWARD and leaves other rules and the policy alone', async () => {
    await ns.must(['iptables', '-w', '-D', 'FORWARD', '-j', 'TRUSS-FORWARD']);
    await ns.must(['iptables', '-w', '-P', 'FORWARD', 'DROP']);
    await ns.must(['iptables', '-w', '-A', 'FORWARD', '-i', 'docker0', '-j', 'ACCEPT']);
    await dp.ensureFirewall(f);
    const fwd = (await iptS('iptables')).filter((l) => l.startsWith('-A FORWARD') || l.startsWith('-P FORWARD'));
    assert.deepEqual(fwd, ['-P FORWARD DROP', JUMP, '-A FORWARD -i docker0 -j ACCEPT']);
  });

  it('moves the jump back on top when rules were inserted above it (what dockerd does per network)', async () => {
    await ns.must(['iptables', '-w', '-I', 'FORWARD', '1', '-o', 'docker0', '-j', 'ACCEPT']);
    assert.deepEqual(await dp.checkFirewall(f), [
      "iptables jump '-A FORWARD -j TRUSS-FORWARD' is not on top of FORWARD (first, or right after -j DOCKER-USER)",
    ]);
    await dp.ensureFirewall(f);
    const fwd = (await iptS('iptables')).filter((l) => l.startsWith('-A FORWARD'));
    assert.deepEqual(fwd, [JUMP, '-A FORWARD -o docker0 -j ACCEPT', '-A FORWARD -i docker0 -j ACCEPT']);
    assert.deepEqual(await dp.checkFirewall(f), []);
  });

  it("leaves the jump right after Docker's DOCKER-USER jump, and goes back there (not above it)", async () => {
    await ns.must(['iptables', '-w', '-N', 'DOCKER-USER']);
    await ns.must(['iptables', '-w', '-I', 'FORWARD', '1', '-j', 'DOCKER-USER']);
    assert.deepEqual(await dp.checkFirewall(f), [], 'what libnetwork does on every network create is not drift');
    await ns.must(['iptables', '-w', '-I', 'FORWARD', '2', '-o', 'docker0', '-j', 'ACCEPT']);
    assert.equal((await dp.checkFirewall(f)).length, 1);
    await dp.ensureFirewall(f);
    const fwd = (await iptS('iptables')).filter((l) => l.startsWith('-A FORWARD'));
    assert.deepEqual(fwd.slice(0, 3), ['-A FORWARD -j DOCKER-USER', JUMP, '-A FORWARD -o docker0 -j ACCEPT']);
    assert.deepEqual(await dp.checkFirewall(f), []);
    await ns.must(['iptables', '-w', '-D', 'FORWARD', '-j', 'DOCKER-USER']);
    await ns.must(['iptables', '-w', '-D', 'FORWARD', '-o', 'docker0', '-j', 'ACCEPT']);
    await ns.must(['iptables', '-w', '-X', 'DOCKER-USER']);
  });

  it('notices drift behind its back and apply repairs it', async () => {
    await ns.must(['nft', 'delete', 'table', 'inet', 'truss']);
    assert.deepEqual(await dp.checkFirewall(f), ['nft table inet truss is missing']);
    await dp.ensureFirewall(f);
    assert.deepEqual(await dp.checkFirewall(f), []);

    await ns.must(['nft', 'flush', 'chain', 'inet', 'truss', 'postrouting']);
    await ns.must(['iptables', '-w', '-I', 'FORWARD', '1', '-j', 'TRUSS-FORWARD']);
    await ns.must(['ip6tables', '-w', '-F', 'TRUSS-FORWARD']);
    const problems = await dp.checkFirewall(f);
    assert.equal(problems.length, 3, problems.join('\n'));
    assert.match(problems[0] ?? '', /nft table inet truss differs/);
    assert.match(problems[1] ?? '', /iptables jump .* present 2 times/);
    assert.match(problems[2] ?? '', /ip6tables chain TRUSS-FORWARD differs/);
    await dp.ensureFirewall(f);
    assert.deepEqual(await dp.checkFirewall(f), []);
  });

  it('reports a firewall for other intent as different (in nft: the shim is the same for any networks)', async () => {
    const problems = await dp.checkFirewall({ networks: f.networks.slice(0, 1) });
    assert.ok(problems.length >= 1);
    assert.ok(!problems.some((p) => /TRUSS-FORWARD/.test(p)), problems.join('\n'));
  });

  it("replaces an older truss's per-network TRUSS-FORWARD rules in place, the jump where it is", async () => {
    await ns.must(['iptables', '-w', '-A', 'FORWARD', '-i', 'docker0', '-j', 'ACCEPT']);
    const old = (br: string, id: string) =>
      ['-i', '-o'].map(
        (d) => `-A TRUSS-FORWARD ${d} ${br} -m comment --comment "truss net ${id.slice(0, 12)}" -j ACCEPT`,
      );
    for (const tool of ['iptables', 'ip6tables'] as const) {
      const rules = f.networks.flatMap((n) => old(n.bridge, n.networkId));
      await ns.must(
        [`${tool}-restore`, '-w', '--noflush'],
        ['*filter', ':TRUSS-FORWARD - [0:0]', ...rules, 'COMMIT', ''].join('\n'),
      );
      assert.equal((await iptS(tool)).filter((l) => l.startsWith('-A TRUSS-FORWARD')).length, 4);
    }
    const problems = await dp.checkFirewall(f);
    assert.deepEqual(problems, [
      'iptables chain TRUSS-FORWARD differs: expected 2 rules, found 4',
      'ip6tables chain TRUSS-FORWARD differs: expected 2 rules, found 4',
    ]);
    await dp.ensureFirewall(f);
    assert.deepEqual(await dp.checkFirewall(f), []);
    for (const tool of ['iptables', 'ip6tables'] as const) {
      const rules = await iptS(tool);
      assert.equal(rules.filter((l) => l.startsWith('-A TRUSS-FORWARD')).length, 2, tool);
      assert.equal(rules.filter((l) => l === JUMP).length, 1, tool);
    }
    const fwd = (await iptS('iptables')).filter((l) => l.startsWith('-A FORWARD'));
    assert.equal(fwd[0], JUMP, 'still on top');
    assert.ok(fwd.includes('-A FORWARD -i docker0 -j ACCEPT'), 'foreign rules stay');
    await ns.must(['iptables', '-w', '-D', 'FORWARD', '-i', 'docker0', '-j', 'ACCEPT']);
  });

  it('raises ip_forward only when a network is not internal, and never lowers it', async () => {
    const fwd = async (): Promise<string> => (await ns.must(['sysctl', '-n', 'net.ipv4.ip_forward'])).trim();
    // why: a new namespace copies the host's IPv4 settings (net.core.devconf_inherit_init_net=0, the
    // default), so it starts with ip_forward=1 on any Docker host: start from 0 explicitly
    await ns.must(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']);
    assert.equal(await fwd(), '0');
    const internalOnly = { networks: f.networks.filter((n) => n.internal) };
    await dp.ensureSysctls(internalOnly);
    assert.equal(await fwd(), '0');
    await dp.ensureSysctls(f);
    assert.equal(await fwd(), '1');
    await dp.ensureSysctls(internalOnly);
    assert.equal(await fwd(), '1');
  });

  it('sets FORWARD policy DROP (v4 and v6) only when it raised forwarding itself (M5)', async () => {
    const policy = async (tool: 'iptables' | 'ip6tables'): Promise<string | undefined> =>
      (await iptS(tool)).find((l) => l.startsWith('-P FORWARD '));
    const set = async (v4: string, v6: string, pol: string): Promise<void> => {
      await ns.must(['sysctl', '-q', '-w', `net.ipv4.ip_forward=${v4}`, `net.ipv6.conf.all.forwarding=${v6}`]);
      for (const tool of ['iptables', 'ip6tables'] as const) await ns.must([tool, '-w', '-P', 'FORWARD', pol]);
    };
    // forwarding already on (the admin routes on purpose): truss leaves the policy alone
    await set('1', '1', 'ACCEPT');
    await dp.ensureSysctls(f);
    assert.equal(await policy('iptables'), '-P FORWARD ACCEPT');
    assert.equal(await policy('ip6tables'), '-P FORWARD ACCEPT');
    // forwarding off: truss turns it on and closes FORWARD as dockerd does
    await set('0', '0', 'ACCEPT');
    await dp.ensureSysctls(f);
    assert.equal((await ns.must(['sysctl', '-n', 'net.ipv4.ip_forward'])).trim(), '1');
    assert.equal(await policy('iptables'), '-P FORWARD DROP');
    assert.equal(await policy('ip6tables'), '-P FORWARD DROP');
    // truss's own bridges stay forwarded through TRUSS-FORWARD
    assert.ok((await iptS('iptables')).includes(JUMP));
    // after the last network the policy stays DROP: the host is not left an open router
    await dp.removeFirewall();
    assert.equal(await policy('iptables'), '-P FORWARD DROP');
    await dp.ensureFirewall(f);
  });

  it('removeFirewall deletes table, chains and jumps; again succeeds', async () => {
    await dp.removeFirewall();
    await dp.removeFirewall();
    assert.notEqual((await ns.run(['nft', 'list', 'table', 'inet', 'truss'])).code, 0);
    for (const tool of ['iptables', 'ip6tables'] as const) {
      assert.equal((await iptS(tool)).filter((l) => l.includes('TRUSS-FORWARD')).length, 0, tool);
    }
    assert.ok((await iptS('iptables')).includes('-A FORWARD -i docker0 -j ACCEPT'), 'foreign rules stay');
  });
});

describe('firewall (kernel) cleanup', () => {
  it('leaves no truss-t-* namespace behind', async () => assert.deepEqual(await listTestNamespaces(), []));
});
