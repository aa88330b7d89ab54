import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
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
const HEX = /^[0-9a-f]{7,64}$/;

/**
 * The git commit of the checkout at `root`: `git rev-parse HEAD` when it is a git checkout,
 * else its COMMIT stamp file; undefined when neither answers.
 */
export function checkoutCommit(root: string): string | undefined {
  if (existsSync(join(root, '.git'))) {
    try {
      const out = execFileSync('git', ['-C', root, 'rev-parse', 'HEAD'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
        timeout: 5000,
      }).trim();
      if (HEX.test(out)) return out;
    } catch {
      // no git, or not a repository it accepts (ownership): try the stamp
    }
  }
  try {
    const stamp = readFileSync(join(root, COMMIT_STAMP), 'utf8').trim();
    return HEX.test(stamp) ? stamp : undefined;
  } catch {
    return undefined;
  }
}

/** The commit this truss was built from: baked into the bundle, else the checkout's; 'unknown' otherwise. */
export function readCommit(): string {
  if (typeof __TRUSS_COMMIT__ === 'string') return __TRUSS_COMMIT__ || 'unknown';
  return checkoutCommit(fileURLToPath(new URL('../../', import.meta.url))) ?? 'unknown';
}
