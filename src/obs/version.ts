import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Set by the bundle (packaging/bundle.ts, esbuild `define`); undefined when run from source. */
declare const __TRUSS_VERSION__: string | undefined;
declare const __TRUSS_COMMIT__: string | undefined;

/** truss's version, from package.json (the one source of truth), or baked into the bundle at build time. */
export const VERSION: string =
  typeof __TRUSS_VERSION__ === 'string'
    ? __TRUSS_VERSION__
    : (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** The stamp file a copy of a checkout without .git may carry: the commit it was made from. */
export const COMMIT_STAMP = 'COMMIT';
const HEX = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;

const readText = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
};

/**
 * HEAD's commit in the git directory of `root`, as `git rev-parse HEAD` finds it (read from the
 * files: node:child_process is the dataplane's only): .git as a directory or a worktree's
 * `gitdir:` file, HEAD detached or a ref, the ref loose or in packed-refs.
 */
function gitHead(root: string): string | undefined {
  const dotGit = join(root, '.git');
  const pointer = readText(dotGit);
  const gitDir = pointer?.startsWith('gitdir: ') ? resolve(root, pointer.slice(8)) : dotGit;
  const head = readText(join(gitDir, 'HEAD'));
  if (head === undefined || HEX.test(head)) return head;
  const ref = /^ref: (refs\/[^\s]+)$/.exec(head)?.[1];
  if (ref === undefined || ref.includes('..')) return undefined;
  const common = readText(join(gitDir, 'commondir'));
  const commonDir = common === undefined ? gitDir : resolve(gitDir, common);
  const loose = readText(join(gitDir, ref)) ?? readText(join(commonDir, ref));
  if (loose !== undefined) return HEX.test(loose) ? loose : undefined;
  const packed = (readText(join(commonDir, 'packed-refs')) ?? '').split('\n').find((l) => l.endsWith(` ${ref}`));
  const sha = packed?.split(' ')[0];
  return sha !== undefined && HEX.test(sha) ? sha : undefined;
}

/**
 * The git commit of the checkout at `root`: its HEAD when it is a git checkout, else its COMMIT
 * stamp file; undefined when neither answers.
 */
export function checkoutCommit(root: string): string | undefined {
  if (existsSync(join(root, '.git'))) {
    const head = gitHead(root);
    if (head !== undefined) return head;
  }
  const stamp = readText(join(root, COMMIT_STAMP));
  return stamp !== undefined && HEX.test(stamp) ? stamp : undefined;
}

/** The commit this truss was built from: baked into the bundle, else the checkout's; 'unknown' otherwise. */
export function readCommit(): string {
  if (typeof __TRUSS_COMMIT__ === 'string') return __TRUSS_COMMIT__ || 'unknown';
  return checkoutCommit(fileURLToPath(new URL('../../', import.meta.url))) ?? 'unknown';
}
