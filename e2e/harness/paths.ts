/** Where the e2e suite finds the repository and keeps its scratch files. */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, resolved from this file (e2e/harness/paths.ts), never hard-coded. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The truss CLI under test. */
export const TRUSS_BIN = join(REPO_ROOT, 'bin', 'truss');

/** Scratch root: hosts, image tar, logs. Short, because unix socket paths must stay under 108 bytes. */
export const WORK_DIR = process.env.TRUSS_E2E_WORKDIR ?? '/tmp/truss-e2e';

/**
 * Every network namespace the suite creates starts with this; the leak check looks for it.
 * TRUSS_E2E_PREFIX lets two checkouts run their suites side by side (give each its own
 * TRUSS_E2E_WORKDIR too).
 */
export const NETNS_PREFIX = process.env.TRUSS_E2E_PREFIX ?? 'truss-e2e-';

/** The docker client: the one on PATH unless TRUSS_E2E_DOCKER says otherwise. */
export const DOCKER_CLI = process.env.TRUSS_E2E_DOCKER ?? 'docker';

/**
 * The dockerd every simulated host runs: TRUSS_E2E_DOCKERD (an absolute path, e.g. the unpacked
 * Debian unstable build scripts/setup.sh keeps in /var/cache/truss-test/docker-sid/usr/sbin/dockerd)
 * or the one on PATH (Debian 12's docker.io).
 */
export const DOCKERD = process.env.TRUSS_E2E_DOCKERD ? resolve(process.env.TRUSS_E2E_DOCKERD) : 'dockerd';

/** PATH for children: the node running this test first, so `#!/usr/bin/env node` finds the same Node. */
export const CHILD_PATH = [
  dirname(process.execPath),
  join(REPO_ROOT, 'node_modules', '.bin'),
  process.env.PATH ?? '',
  '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
].join(':');

/**
 * PATH for that dockerd only: with TRUSS_E2E_DOCKERD, its own directory and the sibling `bin`
 * (usr/sbin and usr/bin of an unpacked tree) come first, so it starts the containerd, runc,
 * docker-proxy and docker-init unpacked beside it, and the system's for whatever is not there.
 */
export const DOCKERD_PATH =
  DOCKERD === 'dockerd' ? CHILD_PATH : [dirname(DOCKERD), join(dirname(DOCKERD), '..', 'bin'), CHILD_PATH].join(':');
