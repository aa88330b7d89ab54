/** The WireGuard private key file: created 0600 in a 0700 directory, read back strictly, rotated in place. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensurePrivateKey, isWireguardKey, KEY_FILE, readPrivateKeyFile, rotatePrivateKey } from './wireguard-keys.ts';

describe('key files', () => {
  let root: string;
  before(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'truss-wgkey-'));
  });
  after(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });
  const mode = async (p: string): Promise<number> => (await fs.stat(p)).mode & 0o777;

  it('creates the key 0600 in a 0700 dir with the mode given at open (even with umask 0)', async () => {
    const dir = join(root, 'a', 'wireguard');
    const old = process.umask(0);
    try {
      const k = await ensurePrivateKey(dir);
      assert.equal(k.file, join(dir, KEY_FILE));
      assert.equal(await mode(dir), 0o700);
      assert.equal(await mode(k.file), 0o600);
      assert.ok(isWireguardKey(k.publicKey));
      const text = (await fs.readFile(k.file, 'utf8')).trim();
      assert.ok(isWireguardKey(text));
      assert.equal(execFileSync('wg', ['pubkey'], { input: text }).toString().trim(), k.publicKey, 'wg agrees');
      assert.deepEqual(await fs.readdir(dir), [KEY_FILE], 'no temp file left');
    } finally {
      process.umask(old);
    }
  });
  it('reuses an existing key and never overwrites it (exclusive create, concurrent callers agree)', async () => {
    const dir = join(root, 'b');
    const all = await Promise.all(Array.from({ length: 8 }, () => ensurePrivateKey(dir)));
    assert.equal(new Set(all.map((k) => k.publicKey)).size, 1);
    assert.equal((await ensurePrivateKey(dir)).publicKey, all[0]?.publicKey);
    assert.deepEqual(await fs.readdir(dir), [KEY_FILE]);
  });
  it('refuses a key readable by others, a symlink, garbage, or an open directory', async () => {
    const dir = join(root, 'c');
    const { file } = await ensurePrivateKey(dir);
    await fs.chmod(file, 0o644);
    await assert.rejects(ensurePrivateKey(dir), { code: 'TRUSS_ERR_WIREGUARD_KEY_INVALID', message: /mode 644/ });
    await fs.chmod(file, 0o600);
    await fs.writeFile(file, 'not a key\n');
    await assert.rejects(readPrivateKeyFile(file), /does not hold one base64 key/);
    await fs.rm(file);
    await fs.symlink('/etc/hostname', file);
    await assert.rejects(readPrivateKeyFile(file), (e: Error) => /ELOOP/.test(e.message) && !e.message.includes(dir));
    const open = join(root, 'd');
    await fs.mkdir(open, { mode: 0o755 });
    await fs.chmod(open, 0o755);
    await assert.rejects(ensurePrivateKey(open), /must be 0700/);
  });
  it('rotates atomically to a new 0600 key', async () => {
    const dir = join(root, 'e');
    const a = await ensurePrivateKey(dir);
    const b = await rotatePrivateKey(dir);
    assert.equal(b.file, a.file);
    assert.notEqual(b.publicKey, a.publicKey);
    assert.equal(await readPrivateKeyFile(b.file), b.publicKey);
    assert.equal(await mode(b.file), 0o600);
    assert.deepEqual(await fs.readdir(dir), [KEY_FILE]);
  });
});
