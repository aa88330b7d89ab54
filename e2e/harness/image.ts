/**
 * The test image: a rootfs of busybox-static (applet symlinks, /tmp, minimal /etc) packed
 * into a tar once per machine+busybox build (cached under WORK_DIR) and `docker import`ed
 * into each simulated host's dockerd. No image registry is needed.
 */
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { type RunResult, runOk } from './exec.ts';
import { WORK_DIR } from './paths.ts';

export const IMAGE = 'truss-e2e-busybox:1';
const BUSYBOX = process.env.TRUSS_E2E_BUSYBOX ?? '/bin/busybox';

const APPLETS = (
  'sh ash nc httpd ping ping6 ip sleep cat echo wget ls ps kill date seq printf grep wc head tail true false id ' +
  'hostname ifconfig route netstat timeout touch mkdir rm sed awk env test [ tr cut sort uniq usleep'
).split(' ');

/** TCP sink used by traffic.ts: stores the client's first line in /tmp/seen and answers "ack <line>". */
const TSINK = `#!/bin/sh
read -r line
echo "$line" >> /tmp/seen
echo "ack $line"
`;

function buildRootfs(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root']) mkdirSync(join(dir, d), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o1777);
  copyFileSync(BUSYBOX, join(dir, 'bin', 'busybox'));
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  for (const a of APPLETS) symlinkSync('busybox', join(dir, 'bin', a));
  writeFileSync(join(dir, 'bin', 'tsink'), TSINK, { mode: 0o755 });
  writeFileSync(
    join(dir, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
  );
  writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
}

/** Path of the rootfs tar, built on first use; the name carries the busybox build so a new one rebuilds. */
export async function ensureImageTar(): Promise<string> {
  const st = statSync(BUSYBOX);
  const dir = join(WORK_DIR, 'image');
  const tar = join(dir, `rootfs-${st.size}-${Math.trunc(st.mtimeMs)}.tar`);
  if (existsSync(tar)) return tar;
  mkdirSync(dir, { recursive: true });
  const root = join(dir, `rootfs.${process.pid}`);
  buildRootfs(root);
  const tmp = `${tar}.${process.pid}`;
  await runOk(['tar', '-C', root, '--numeric-owner', '--owner=0', '--group=0', '-cf', tmp, '.']);
  renameSync(tmp, tar);
  rmSync(root, { recursive: true, force: true });
  return tar;
}

type Docker = (args: readonly string[], timeoutMs?: number) => Promise<RunResult>;

/** Imports the test image into a host's dockerd unless it is already there. */
export async function importImage(docker: Docker): Promise<string> {
  if ((await docker(['image', 'inspect', IMAGE])).code === 0) return IMAGE;
  const tar = await ensureImageTar();
  const r = await docker(['import', '--change', 'CMD ["/bin/sh"]', tar, IMAGE], 120_000);
  if (r.code !== 0) throw new Error(`docker import failed: ${r.stderr}`);
  return IMAGE;
}
