/**
 * The test image: a rootfs of busybox-static (applet symlinks, /tmp, minimal /etc) plus the
 * machine's iperf3 and sockperf and the shared libraries `ldd` names for them (for bench/), packed into a
 * tar once per set of inputs (cached under WORK_DIR, named by a hash of every input file's
 * identity and the scripts' text) and `docker import`ed into each simulated host's dockerd.
 * The tar is deterministic for given inputs (sorted names, fixed mtime, numeric root owner).
 * No image registry is needed.
 */
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { type RunResult, runOk } from './exec.ts';
import { WORK_DIR } from './paths.ts';

export const IMAGE = 'truss-e2e-busybox:1';
/** The machine's busybox-static: the image's userland, and the harness's own nc inside namespaces. */
export const BUSYBOX = process.env.TRUSS_E2E_BUSYBOX ?? '/bin/busybox';
/** Copied in with their libraries when present (the benchmarks need them; the tests do not). */
const IPERF3 = process.env.TRUSS_E2E_IPERF3 ?? '/usr/bin/iperf3';
const SOCKPERF = process.env.TRUSS_E2E_SOCKPERF ?? '/usr/bin/sockperf';

const APPLETS = (
  'sh ash nc httpd ping ping6 ip sleep cat echo wget ls ps kill date seq printf grep wc head tail true false id ' +
  'hostname ifconfig route netstat timeout touch mkdir rm sed awk env test [ tr cut sort uniq usleep nslookup'
).split(' ');

/**
 * TCP sink used by traffic.ts: stores the client's first line in /tmp/seen and answers "ack <line>".
 * A first line `flow-NAME` (flows.ts) instead appends the rest of the stream to /tmp/flow-NAME.
 */
const TSINK = `#!/bin/sh
read -r line
case "$line" in
flow-*/* | flow-*..*) ;;
flow-?*) exec cat >> "/tmp/$line" ;;
esac
echo "$line" >> /tmp/seen
echo "ack $line"
`;

/** The tools present on the machine and the absolute paths of their libraries and loader as `ldd` lists them. */
async function toolFiles(): Promise<string[]> {
  const tools = [IPERF3, SOCKPERF].filter((t) => existsSync(t));
  const libs: string[] = [];
  for (const t of tools) {
    const out = (await runOk(['ldd', t])).stdout;
    libs.push(...[...out.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/g)].map((m) => m[1] as string));
  }
  return [...tools, ...[...new Set(libs)].sort()];
}

function buildRootfs(dir: string, extra: readonly string[]): void {
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
  // Same absolute paths as on the machine (the loader's default dirs include /lib/<triplet>).
  for (const f of extra) {
    const to = join(dir, f);
    mkdirSync(dirname(to), { recursive: true });
    copyFileSync(realpathSync(f), to);
    chmodSync(to, 0o755);
  }
}

/** Identity of every input: a new busybox, iperf3, library or script text gives a new tar. */
function inputsKey(extra: readonly string[]): string {
  const h = createHash('sha256').update(TSINK).update(APPLETS.join(' '));
  for (const f of [BUSYBOX, ...extra]) {
    const st = statSync(f);
    h.update(`${f} ${st.size} ${Math.trunc(st.mtimeMs)}\n`);
  }
  return h.digest('hex').slice(0, 16);
}

let building: Promise<string> | undefined;

/**
 * Path of the rootfs tar, built on first use; its name is a hash of the inputs, so a change
 * rebuilds. Hosts started at once share one build (its scratch dir is named by our pid).
 */
export function ensureImageTar(): Promise<string> {
  building ??= buildImageTar().finally(() => {
    building = undefined;
  });
  return building;
}

async function buildImageTar(): Promise<string> {
  const extra = await toolFiles();
  const dir = join(WORK_DIR, 'image');
  const tar = join(dir, `rootfs-${inputsKey(extra)}.tar`);
  if (existsSync(tar)) return tar;
  mkdirSync(dir, { recursive: true });
  const root = join(dir, `rootfs.${process.pid}`);
  buildRootfs(root, extra);
  const tmp = `${tar}.${process.pid}`;
  const fixed = ['--sort=name', '--mtime=@0', '--numeric-owner', '--owner=0', '--group=0'];
  await runOk(['tar', '-C', root, ...fixed, '-cf', tmp, '.']);
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
