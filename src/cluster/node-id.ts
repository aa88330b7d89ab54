/**
 * This host's node id on disk: <state-dir>/node-id (mode 0644, one line), made once like
 * Docker's engine id and published with link(2) from a fsynced temp file, so a crash never
 * leaves half an id and two racing starters end with one. Which id to make is
 * core/cluster/identity.ts decideNodeId: a host upgraded from truss before node ids (it has a
 * WireGuard key dir or a cluster network) keeps its old name as its id.
 *
 * <state-dir>/node-instance holds the instance nonce of the last process (rewritten at every
 * start): the next process recognises its predecessor's node record by it (not a conflict).
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { decideNodeId, type NodeIdOrigin } from '../core/cluster/identity.ts';

export const NODE_ID_FILE = 'node-id';
export const NODE_INSTANCE_FILE = 'node-instance';

export const nodeIdFile = (stateDir: string): string => join(stateDir, NODE_ID_FILE);

async function readTrimmed(file: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(file, { encoding: 'utf8', flag: constants.O_RDONLY | constants.O_NOFOLLOW })).trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Writes `text` to `file` atomically: a fsynced temp file, then link (exclusive) or rename (replace). */
async function writeAtomic(file: string, text: string, mode: number, exclusive: boolean): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const fh = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    if (exclusive) await fs.link(tmp, file);
    else await fs.rename(tmp, file);
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

export const randomNodeId = (): string => randomBytes(16).toString('hex');

/**
 * The node id of the host whose state dir is `stateDir`: read, or decided and written once.
 * `legacy`: the state dir was used by truss before node ids (see the header).
 */
export async function ensureNodeId(
  stateDir: string,
  name: string,
  legacy: () => Promise<boolean>,
  random: () => string = randomNodeId,
): Promise<{ readonly id: string; readonly origin: NodeIdOrigin; readonly file: string }> {
  const file = nodeIdFile(stateDir);
  const stored = await readTrimmed(file);
  const decided = decideNodeId({
    ...(stored !== undefined ? { stored } : {}),
    file,
    legacy: stored === undefined && (await legacy()),
    name,
    random,
  });
  if (decided.origin === 'stored') return { ...decided, file };
  try {
    await writeAtomic(file, `${decided.id}\n`, 0o644, true);
  } catch (e) {
    // another starter won the race: its id is the one
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return {
      id: decideNodeId({ stored: (await readTrimmed(file)) ?? '', file, legacy: false, name, random }).id,
      origin: 'stored',
      file,
    };
  }
  return { ...decided, file };
}

/** The previous process's instance nonce (if any), and this process's, written in its place. */
export async function takeInstance(
  stateDir: string,
): Promise<{ readonly previous?: string; readonly current: string }> {
  const file = join(stateDir, NODE_INSTANCE_FILE);
  const previous = await readTrimmed(file);
  const current = randomBytes(8).toString('hex');
  await writeAtomic(file, `${current}\n`, 0o644, false);
  return { ...(previous ? { previous } : {}), current };
}
