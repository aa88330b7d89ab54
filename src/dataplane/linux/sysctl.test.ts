import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type Exec, isKernelError } from './exec.ts';
import { ensureSysctl, readSysctl, writeSysctl } from './sysctl.ts';

describe('sysctls through a /proc/sys mounted elsewhere (Exec.procSys, managed plugin)', () => {
  const root = mkdtempSync(join(tmpdir(), 'truss-procsys-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'net/ipv4'), { recursive: true });
  writeFileSync(join(root, 'net/ipv4/ip_forward'), '0\n');
  const exec: Exec = {
    run: () => Promise.reject(new Error('no tool may run: sysctls go to files')),
    which: () => undefined,
    procSys: root,
  };

  it('reads, writes and converges keys as files under the root', async () => {
    assert.equal(await readSysctl(exec, 'net/ipv4/ip_forward'), '0');
    assert.equal(await ensureSysctl(exec, 'net/ipv4/ip_forward', '1'), true);
    assert.equal(readFileSync(join(root, 'net/ipv4/ip_forward'), 'utf8'), '1\n');
    assert.equal(await ensureSysctl(exec, 'net/ipv4/ip_forward', '1'), false);
  });

  it('a missing key reads as undefined; writing one is a KernelError ENOENT', async () => {
    assert.equal(await readSysctl(exec, 'net/ipv6/conf/trb1/accept_ra'), undefined);
    await assert.rejects(writeSysctl(exec, 'net/ipv6/conf/trb1/accept_ra', '0'), (e) => isKernelError(e, 'ENOENT'));
  });

  it('refuses keys that would leave the root', async () => {
    await assert.rejects(writeSysctl(exec, 'net/../../etc/passwd', 'x'), /bad sysctl key/);
  });
});
