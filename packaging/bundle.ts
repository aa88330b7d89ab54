/**
 * The daemon as ES modules (`npm run build`): esbuild bundles src/ (and zod, prom-client, etcd3 with its
 * gRPC stack) into APP/lib/truss.mjs and its chunks APP/lib/chunk-<hash>.mjs, and copies etcd3's .proto
 * files, which it reads at run time from `${__dirname}/../proto`, to APP/proto. Why chunks (issue 18):
 * the CLI loads only what its command imports (`truss status` does not parse the daemon, etcd3 or
 * prom-client: 3 MB less to compile at each start); every `import()` of src/ is a split point.
 * The managed plugin ships this bundle
 * (packaging/plugin/build.ts), and scripts/run.sh runs it: it is what truss runs as in
 * production in both modes. Running from source (bin/truss) type-strips every module at start-up
 * instead, which costs ~38 MiB of resident memory for the type stripper alone.
 *
 * Usage: node packaging/bundle.ts [--out DIR] (default dist/app). Skips the build when the
 * bundle is newer than every source file, the lockfile and this script, and was built from the
 * checkout's commit (baked in for `truss version`; `--force` rebuilds).
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { checkoutCommit } from '../src/obs/version.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_APP_DIR = join(REPO_ROOT, 'dist', 'app');
/**
 * Node flags the daemon runs with (scripts/run.sh and packaging/plugin/config.json say the same;
 * packaging/bundle.test.ts checks): a control-plane daemon allocates little, and V8's default
 * young generation is resident memory for nothing (capping it saved 25-30 MiB at 1,000 endpoints).
 * The old generation may grow to 1.5× what the last full collection left, not V8's up-to-4×: at
 * 5,000 endpoints 38 MiB were live in a 300 MiB process, 180 MiB of it old-generation pages of
 * garbage; with the cap 170 MiB, and no more CPU per attach (docs/benchmarks.md).
 */
export const DAEMON_NODE_FLAGS = ['--max-semi-space-size=4', '--heap-growing-percent=50'] as const;
export const NODE_BIN = join(REPO_ROOT, 'node_modules', 'node', 'bin', 'node');
/** where the bundle goes inside an app dir */
export const BUNDLE_PATH = join('lib', 'truss.mjs');
/** beside it: the commit it was built from (a new commit rebuilds it: `truss version` shows it) */
const COMMIT_PATH = 'commit';

export const packageVersion = (): string =>
  (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** chunks no build references any more are removed once this old (a daemon started before loads its lazily) */
const STALE_CHUNK_MS = 24 * 3600_000;
const CHUNK = /^chunk-[A-Z0-9]+\.mjs$/;

/**
 * zod's `locales` namespace (its messages in 60 languages, 370 KB: half the chunk every CLI command
 * loads) as an empty module: truss uses zod's default English, which zod imports on its own.
 */
const noZodLocales = {
  name: 'no-zod-locales',
  setup(b: import('esbuild').PluginBuild): void {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (a) =>
      /[\\/]node_modules[\\/]zod[\\/]/.test(a.importer) ? { path: 'zod-locales', namespace: 'truss-empty' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'truss-empty' }, () => ({ contents: 'export {};', loader: 'js' }));
  },
};

/** Builds APP/lib/truss.mjs (the `truss` command, daemon and CLI) with its chunks, and APP/proto/. */
export async function bundleDaemon(appDir: string, version: string): Promise<string> {
  const esbuild = await import('esbuild');
  const lib = dirname(join(appDir, BUNDLE_PATH));
  const out = join(appDir, BUNDLE_PATH);
  // why: several run.sh may build at once (hosts started together): each builds in its own
  // directory and renames the files over, chunks first (content-hashed names: the same name is
  // the same content), the entry last, so a truss starting meanwhile never loads a half-written one
  const tmp = join(appDir, `lib.${process.pid}.tmp`);
  rmSync(tmp, { recursive: true, force: true });
  const commit = checkoutCommit(REPO_ROOT) ?? '';
  const result = await esbuild.build({
    entryPoints: { truss: join(REPO_ROOT, 'src', 'cli', 'main.ts') },
    outdir: tmp,
    splitting: true,
    chunkNames: 'chunk-[hash]',
    outExtension: { '.js': '.mjs' },
    metafile: true,
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'esm',
    // why: etcd3 and grpc are CommonJS and use require/__dirname; an ESM bundle must provide them
    banner: {
      js: [
        "import { createRequire as __trussCreateRequire } from 'node:module';",
        "import { dirname as __trussDirname } from 'node:path';",
        "import { fileURLToPath as __trussFileURLToPath } from 'node:url';",
        'const require = __trussCreateRequire(import.meta.url);',
        'const __filename = __trussFileURLToPath(import.meta.url);',
        'const __dirname = __trussDirname(__filename);',
        // why: V8's compiled code of the chunks kept in APP/cache (beside lib/: root's in an install)
        // spares each `truss` command ~25 ms of compiling; later chunks find it enabled
        "import { enableCompileCache as __trussCompileCache } from 'node:module';",
        "__trussCompileCache?.(__trussDirname(__dirname) + '/cache');",
      ].join('\n'),
    },
    define: { __TRUSS_VERSION__: JSON.stringify(version), __TRUSS_COMMIT__: JSON.stringify(commit) },
    plugins: [noZodLocales],
    legalComments: 'eof',
    logLevel: 'warning',
  });
  mkdirSync(lib, { recursive: true });
  const made = Object.keys(result.metafile.outputs).map((f) => basename(f));
  for (const f of made.filter((n) => CHUNK.test(n))) renameSync(join(tmp, f), join(lib, f));
  renameSync(join(tmp, basename(BUNDLE_PATH)), out);
  rmSync(tmp, { recursive: true, force: true });
  const keep = new Set(made);
  for (const f of readdirSync(lib)) {
    if (CHUNK.test(f) && !keep.has(f) && Date.now() - statSync(join(lib, f)).mtimeMs > STALE_CHUNK_MS) {
      rmSync(join(lib, f), { force: true });
    }
  }
  const protoDir = join(REPO_ROOT, 'node_modules', 'etcd3', 'proto');
  mkdirSync(join(appDir, 'proto'), { recursive: true });
  for (const f of readdirSync(protoDir).sort()) {
    if (!f.endsWith('.proto')) continue;
    const part = join(appDir, 'proto', `${f}.${process.pid}.tmp`);
    copyFileSync(join(protoDir, f), part);
    renameSync(part, join(appDir, 'proto', f));
  }
  return out;
}

/** The newest mtime among the inputs of the bundle. */
function newestInput(): number {
  const files = readdirSync(join(REPO_ROOT, 'src'), { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(REPO_ROOT, 'src', f));
  files.push(join(REPO_ROOT, 'package.json'), join(REPO_ROOT, 'package-lock.json'), fileURLToPath(import.meta.url));
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}

const building = new Map<string, Promise<{ path: string; built: boolean }>>();

/**
 * The bundle in `appDir`, built first unless it is newer than every input; returns its path.
 * Callers in one process share a build in progress. why: bundleDaemon's temp directory is per
 * process, so two builds of one process at once (bench/converge starting its hosts together
 * after a source change) removed each other's files: ENOENT on the rename.
 */
export function ensureBundle(appDir = DEFAULT_APP_DIR, force = false): Promise<{ path: string; built: boolean }> {
  const key = `${appDir}\0${force}`;
  let p = building.get(key);
  if (p === undefined) {
    p = buildIfStale(appDir, force).finally(() => building.delete(key));
    building.set(key, p);
  }
  return p;
}

async function buildIfStale(appDir: string, force: boolean): Promise<{ path: string; built: boolean }> {
  const out = join(appDir, BUNDLE_PATH);
  const commitFile = join(appDir, COMMIT_PATH);
  const commit = checkoutCommit(REPO_ROOT) ?? '';
  const builtFrom = existsSync(commitFile) ? readFileSync(commitFile, 'utf8').trim() : '';
  const fresh = existsSync(out) && statSync(out).mtimeMs >= newestInput() && builtFrom === commit;
  if (!force && fresh) return { path: out, built: false };
  const path = await bundleDaemon(appDir, packageVersion());
  writeFileSync(commitFile, `${commit}\n`);
  return { path, built: true };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, force: { type: 'boolean' } }, strict: true });
  ensureBundle(resolve(values.out ?? DEFAULT_APP_DIR), values.force === true)
    .then((r) => process.stdout.write(`build: ${r.path}${r.built ? '' : ' is up to date'}\n`))
    .catch((e: unknown) => {
      process.stderr.write(`build: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    });
}
