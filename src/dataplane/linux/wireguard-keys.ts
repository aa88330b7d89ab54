/**
 * This host's WireGuard private key: one base64 key in <dir>/wireguard.key, mode 0600 in a 0700
 * directory we own, created exclusively (a temp file, fsync, link) so that a crash never
 * leaves a half key and two starters never both win; rotated by writing a new one the same way
 * and renaming it over. Only the public key ever leaves this module, with one exception: the key
 * as hex for wireguard-go's UAPI socket (privateKeyHex), which takes nothing else.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { basename, join } from 'node:path';
import { TrussError } from '../../core/errors.ts';

export const KEY_FILE = 'wireguard.key';

const keyError = (message: string, cause?: unknown): TrussError =>
  new TrussError('TRUSS_ERR_WIREGUARD_KEY_INVALID', 'invalid', message, cause === undefined ? undefined : { cause });

export const isWireguardKey = (s: string): boolean =>
  /^[A-Za-z0-9+/]{43}=$/.test(s) && Buffer.from(s, 'base64').toString('base64') === s;

/** The WireGuard public key of a raw private key (X25519 scalar mult with the base point). */
export function publicKeyOf(priv: Buffer): string {
  const der = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), priv]); // PKCS#8 X25519
  const jwk = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({ format: 'jwk' });
  return Buffer.from(jwk.x as string, 'base64url').toString('base64');
}

function generateKey(): { text: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519'); // OpenSSL clamps, like `wg genkey`
  const d = Buffer.from(privateKey.export({ format: 'jwk' }).d as string, 'base64url');
  const text = `${d.toString('base64')}\n`;
  d.fill(0);
  return {
    text,
    publicKey: Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url').toString('base64'),
  };
}

const euid = (): number => process.geteuid?.() ?? 0;

/** Creates `dir` 0700 if missing; refuses a symlink, a foreign owner or group/other access. */
async function ensureKeyDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await fs.lstat(dir);
  if (!st.isDirectory()) throw keyError('the WireGuard key directory is not a directory (a symlink?): use a real one');
  if (st.uid !== euid() || (st.mode & 0o077) !== 0)
    throw keyError(`the WireGuard key directory has mode ${(st.mode & 0o777).toString(8)}: it must be 0700, ours`);
}

/** The checked key file's public key, or (as 'hex') its private key as hex. */
async function readKey(file: string, as: 'public' | 'hex' = 'public'): Promise<string> {
  const fh = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.uid !== euid() || (st.mode & 0o077) !== 0)
      throw keyError(
        `the WireGuard key file ${basename(file)} has mode ${(st.mode & 0o777).toString(8)}: make it 0600`,
      );
    const text = (await fh.readFile('utf8')).trim();
    if (!isWireguardKey(text)) throw keyError(`the WireGuard key file ${basename(file)} does not hold one base64 key`);
    const raw = Buffer.from(text, 'base64');
    const out = as === 'hex' ? raw.toString('hex') : publicKeyOf(raw);
    raw.fill(0);
    return out;
  } finally {
    await fh.close();
  }
}

/**
 * Reads and checks a key file (regular, ours, no group/other bits, one base64 key); returns its
 * public key. Errors name the file's base name only (messages reach Docker's CLI).
 */
export async function readPrivateKeyFile(file: string): Promise<string> {
  return checkedRead(file, 'public');
}

/**
 * The key file's private key as hex, checked as readPrivateKeyFile checks it: only for
 * wireguard-go's UAPI `set` (wireguard-uapi.ts), written to its socket and dropped.
 */
export function privateKeyHex(file: string): Promise<string> {
  return checkedRead(file, 'hex');
}

async function checkedRead(file: string, as: 'public' | 'hex'): Promise<string> {
  try {
    return await readKey(file, as);
  } catch (e) {
    if (e instanceof TrussError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw keyError(`the WireGuard key file ${basename(file)} cannot be read (${code}): see the daemon log`, e);
  }
}

/** Writes a fresh key to a new temp file (O_CREAT|O_EXCL|O_NOFOLLOW, 0600 at open), fsynced. */
async function writeTempKey(dir: string): Promise<{ tmp: string; publicKey: string }> {
  const tmp = join(dir, `.${KEY_FILE}.${randomBytes(6).toString('hex')}.tmp`);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  const key = generateKey();
  const fh = await fs.open(tmp, flags, 0o600);
  try {
    await fh.writeFile(key.text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { tmp, publicKey: key.publicKey };
}

async function syncDir(dir: string): Promise<void> {
  const d = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  await d.sync().finally(() => d.close());
}

/**
 * The host's key: `<dir>/wireguard.key`, made on first use, reused (and checked) after. The
 * new file is published with link(2), which fails if the name exists: two racing callers end
 * with one key, and nobody ever reads a half-written file.
 */
export async function ensurePrivateKey(dir: string): Promise<{ file: string; publicKey: string }> {
  await ensureKeyDir(dir);
  const file = join(dir, KEY_FILE);
  const existing = await readKey(file).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (existing !== undefined) return { file, publicKey: existing };
  const { tmp, publicKey } = await writeTempKey(dir);
  try {
    await fs.link(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return { file, publicKey: await readPrivateKeyFile(file) }; // lost the race: theirs stands
  } finally {
    await fs.unlink(tmp).catch(() => {});
  }
  await syncDir(dir);
  return { file, publicKey };
}

/** Replaces the host's key atomically (temp file 0600 + rename); returns the new one. */
export async function rotatePrivateKey(dir: string): Promise<{ file: string; publicKey: string }> {
  await ensureKeyDir(dir);
  const file = join(dir, KEY_FILE);
  const { tmp, publicKey } = await writeTempKey(dir);
  try {
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.unlink(tmp).catch(() => {});
    throw e;
  }
  await syncDir(dir);
  return { file, publicKey };
}
