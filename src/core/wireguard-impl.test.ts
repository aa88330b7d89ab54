import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  chooseWireguard,
  chooseWireguardGo,
  compareVersions,
  describeWireguard,
  mixedFamilyBug,
  mixesFamilies,
  parseWireguardGoVersion,
  type WireguardGoCandidate,
} from './wireguard-impl.ts';

const OWN = '/usr/local/lib/truss/wireguard-go/usr/bin/wireguard-go';
const own = (version?: string): WireguardGoCandidate => ({
  path: OWN,
  source: 'truss',
  ...(version ? { version } : {}),
});
const sys = (version?: string): WireguardGoCandidate => ({
  path: '/usr/bin/wireguard-go',
  source: 'path',
  ...(version ? { version } : {}),
});

describe('parseWireguardGoVersion', () => {
  it("reads the version line of `wireguard-go --version` (Debian 12's and unstable's)", () => {
    const text =
      'wireguard-go v0.0.20220316\n\nUserspace WireGuard daemon for linux-amd64.\nInformation available at …\n';
    assert.equal(parseWireguardGoVersion(text), '0.0.20220316');
    assert.equal(parseWireguardGoVersion('wireguard-go v0.0.20250522\n'), '0.0.20250522');
    assert.equal(parseWireguardGoVersion('wireguard-go 0.0.20250522'), '0.0.20250522');
  });
  it('says nothing for anything else', () => {
    assert.equal(parseWireguardGoVersion(''), undefined);
    assert.equal(parseWireguardGoVersion('Usage: wireguard-go [-f/--foreground] INTERFACE-NAME'), undefined);
  });
});

describe('compareVersions', () => {
  it('compares part by part as numbers', () => {
    assert.equal(compareVersions('0.0.20250522', '0.0.20220316'), 1);
    assert.equal(compareVersions('0.0.20220316', '0.0.20250522'), -1);
    assert.equal(compareVersions('0.0.9', '0.0.10'), -1);
    assert.equal(compareVersions('1.0', '1.0.0'), 0);
  });
});

describe('chooseWireguardGo', () => {
  it('the newest wins, wherever it was found', () => {
    assert.equal(chooseWireguardGo([own('0.0.20250522'), sys('0.0.20220316')])?.source, 'truss');
    assert.equal(chooseWireguardGo([own('0.0.20230223'), sys('0.0.20250522')])?.source, 'path');
  });
  it("truss's own at equal versions; a versioned one over one that did not say", () => {
    assert.equal(chooseWireguardGo([sys('0.0.20250522'), own('0.0.20250522')])?.source, 'truss');
    assert.equal(chooseWireguardGo([own(), sys('0.0.20220316')])?.source, 'path');
    assert.equal(chooseWireguardGo([sys(), own()])?.source, 'truss');
  });
  it("the admin's explicit choice wins, even older or unversioned", () => {
    const flag: WireguardGoCandidate = { path: '/opt/wg', source: 'flag' };
    assert.equal(chooseWireguardGo([own('0.0.20250522'), flag])?.path, '/opt/wg');
  });
  it('nothing found: none', () => {
    assert.equal(chooseWireguardGo([]), undefined);
  });
  it('peers of both families: the newest without mixedFamilyBug, else the newest all the same', () => {
    const both = [own('0.0.20250522'), sys('0.0.20220316')];
    assert.equal(chooseWireguardGo(both, { mixedFamilies: true })?.source, 'path');
    assert.equal(chooseWireguardGo(both, { mixedFamilies: false })?.source, 'truss');
    assert.equal(chooseWireguardGo([own('0.0.20250522')], { mixedFamilies: true })?.source, 'truss');
    assert.equal(
      chooseWireguardGo([own('0.0.20260101'), sys('0.0.20220316')], { mixedFamilies: true })?.source,
      'truss',
    );
    const flag: WireguardGoCandidate = { path: '/opt/wg', source: 'flag', version: '0.0.20250522' };
    assert.equal(chooseWireguardGo([flag, sys('0.0.20220316')], { mixedFamilies: true })?.path, '/opt/wg');
  });
});

describe('mixedFamilyBug, mixesFamilies', () => {
  it('the releases with StdNetBind on Linux up to the newest known, not before, not unknown', () => {
    assert.equal(mixedFamilyBug('0.0.20220316'), false);
    assert.equal(mixedFamilyBug('0.0.20230223'), false);
    assert.equal(mixedFamilyBug('0.0.20231211'), true);
    assert.equal(mixedFamilyBug('0.0.20250522'), true);
    assert.equal(mixedFamilyBug('0.0.20260101'), false);
    assert.equal(mixedFamilyBug(undefined), false);
  });
  it('an IPv4 and an IPv6 endpoint mix; one family, or no endpoint, does not', () => {
    assert.equal(mixesFamilies(['198.18.200.2:51820', '[fd00:200::2]:51820']), true);
    assert.equal(mixesFamilies(['[fd00:200::2]:51820', '[fd00:200::6]:51820', undefined]), false);
    assert.equal(mixesFamilies(['198.18.200.2:51820', undefined]), false);
    assert.equal(mixesFamilies([]), false);
  });
});

describe('chooseWireguard', () => {
  it('the kernel whenever it has WireGuard, over any wireguard-go', () => {
    assert.deepEqual(chooseWireguard({ kernel: true, tun: true, wireguardGo: [own('0.0.20250522')] }), {
      kind: 'kernel',
    });
  });
  it('else the chosen wireguard-go, which needs a TUN device', () => {
    const go = chooseWireguard({ kernel: false, tun: true, wireguardGo: [sys('0.0.20220316'), own('0.0.20250522')] });
    assert.deepEqual(go, { kind: 'wireguard-go', ...own('0.0.20250522') });
    assert.deepEqual(chooseWireguard({ kernel: false, tun: false, wireguardGo: [own('0.0.20250522')] }), {
      kind: 'none',
    });
    assert.deepEqual(chooseWireguard({ kernel: false, tun: true, wireguardGo: [] }), { kind: 'none' });
  });
  it('is described in one line for doctor, status and the log', () => {
    assert.equal(describeWireguard({ kind: 'kernel' }), 'kernel WireGuard');
    assert.equal(
      describeWireguard({ kind: 'wireguard-go', ...own('0.0.20250522') }),
      `wireguard-go 0.0.20250522 (${OWN}, truss's own)`,
    );
    assert.equal(
      describeWireguard({ kind: 'wireguard-go', path: '/opt/wg', source: 'flag' }),
      'wireguard-go (version unknown) (/opt/wg, --wireguard-go)',
    );
  });
});
