import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import type { FirewallNetwork, FirewallObject } from '../../core/desired.ts';
import type { Exec } from './exec.ts';
import { ensureIpv6Forwarding, needsIpv6Forwarding } from './ipv6-forwarding.ts';

const net = (over: Partial<FirewallNetwork>): FirewallNetwork => ({
  networkId: 'a'.repeat(64),
  bridge: 'trbaaaaaaaaaaaa',
  subnets4: ['198.18.1.0/24'],
  subnets6: ['fd00:1::/64'],
  nat: true,
  internal: false,
  ...over,
});
const fw = (...networks: FirewallNetwork[]): FirewallObject => ({ networks });

let roots: string[] = [];
afterEach(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
  roots = [];
});

/** A fake /proc/sys: forwarding and per-link accept_ra as files. */
function procSys(
  forwarding: string | undefined,
  acceptRa: Record<string, string>,
): { exec: Exec; read(k: string): string } {
  const root = mkdtempSync(join(tmpdir(), 'truss-v6fwd-'));
  roots.push(root);
  if (forwarding !== undefined) {
    mkdirSync(join(root, 'net/ipv6/conf/all'), { recursive: true });
    writeFileSync(join(root, 'net/ipv6/conf/all/forwarding'), `${forwarding}\n`);
  }
  for (const [link, v] of Object.entries(acceptRa)) {
    mkdirSync(join(root, `net/ipv6/conf/${link}`), { recursive: true });
    writeFileSync(join(root, `net/ipv6/conf/${link}/accept_ra`), `${v}\n`);
  }
  const exec: Exec = { run: () => Promise.reject(new Error('no tool may run')), which: () => undefined, procSys: root };
  return { exec, read: (k) => readFileSync(join(root, k), 'utf8').trim() };
}

describe('needsIpv6Forwarding', () => {
  it('only a non-internal network with a v6 pool needs it', () => {
    assert.equal(needsIpv6Forwarding(fw(net({}))), true);
    assert.equal(needsIpv6Forwarding(fw(net({ subnets4: [] }))), true, 'IPv6-only network');
    assert.equal(needsIpv6Forwarding(fw(net({ subnets6: [] }))), false, 'v4-only network');
    assert.equal(needsIpv6Forwarding(fw(net({ internal: true }))), false, 'internal network');
    assert.equal(needsIpv6Forwarding(fw()), false);
  });
});

describe('ensureIpv6Forwarding', () => {
  it('moves uplinks with accept_ra=1 to 2, then raises forwarding; leaves 0 and 2 alone', async () => {
    const p = procSys('0', { eth0: '1', eth1: '0', wlan0: '2', docker0: '1' });
    const r = await ensureIpv6Forwarding(p.exec, fw(net({})), async () => ['eth1', 'eth0', 'wlan0', 'eth0']);
    assert.deepEqual(r, { raised: true, acceptRa2: ['eth0'] });
    assert.equal(p.read('net/ipv6/conf/all/forwarding'), '1');
    assert.equal(p.read('net/ipv6/conf/eth0/accept_ra'), '2');
    assert.equal(p.read('net/ipv6/conf/eth1/accept_ra'), '0');
    assert.equal(p.read('net/ipv6/conf/wlan0/accept_ra'), '2');
    assert.equal(p.read('net/ipv6/conf/docker0/accept_ra'), '1', 'not an uplink: untouched');
  });

  it('does nothing when forwarding is already on (never touches accept_ra then)', async () => {
    const p = procSys('1', { eth0: '1' });
    assert.deepEqual(await ensureIpv6Forwarding(p.exec, fw(net({})), async () => ['eth0']), {
      raised: false,
      acceptRa2: [],
    });
    assert.equal(p.read('net/ipv6/conf/eth0/accept_ra'), '1');
  });

  it('does nothing for v4-only or internal networks, nor when IPv6 is off on the host', async () => {
    const p = procSys('0', { eth0: '1' });
    assert.equal((await ensureIpv6Forwarding(p.exec, fw(net({ subnets6: [] })), async () => ['eth0'])).raised, false);
    assert.equal((await ensureIpv6Forwarding(p.exec, fw(net({ internal: true })), async () => ['eth0'])).raised, false);
    assert.equal(p.read('net/ipv6/conf/all/forwarding'), '0');
    const off = procSys(undefined, {});
    assert.equal((await ensureIpv6Forwarding(off.exec, fw(net({})), async () => ['eth0'])).raised, false);
  });
});
