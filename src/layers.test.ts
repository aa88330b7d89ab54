/**
 * The import table, enforced (issue 14 item 5). Every production file under src/ (not tests,
 * kernel tests, test helpers: *.test.ts, *.netns.ts, testing.ts, *testutil.ts, *.contract.ts,
 * fuzz.ts) may import only what its layer may. A file's layer is its first folder under src/;
 * files at the top of src/ are the composition roots (main.ts: `truss serve`; doctor.ts and
 * cluster-rbac.ts: the commands that run without a daemon) and their config: they may import
 * anything, because wiring is their one job.
 *
 *   core      -> core             pure: the model and every decision, no I/O, so it is tested
 *                                 without a kernel, a store or a clock; no node: module but
 *                                 node:net's isIP/isIPv4/isIPv6 (string checks)
 *   obs       -> core             logging, metrics, sockets, the instance lock: used by all
 *   protocol  -> core, obs        Docker's wire format; it reaches the services through ports
 *   dataplane -> core, obs        the kernel, through ip/nft/tc; knows no store or service
 *   store     -> core, obs        bytes at keys; knows no service
 *   reconcile -> core, obs        drives the Dataplane port from the desired state it is given
 *   cluster   -> core, obs, store the multi-host agent over the cluster store
 *   service   -> core, obs, store, cluster, and the reconciler's public face (reconciler.ts,
 *                plan.ts), never its internals
 *   admin     -> core, obs        the admin socket's server; handlers are given to it
 *   docker    -> core, obs        the Docker Engine API client and the event follower: the CLI
 *                                 asks it directly; the daemon only off the request path and
 *                                 never waiting on it at start-up (boot deadlock: moby#32815)
 *   dns       -> core, obs        the DNS responder's sockets; it is given its lookup and listeners
 *   cli       -> cli, core, obs, admin, docker, config.ts: the CLI never touches the kernel or the store
 *                (it talks to the daemon); it hands a command that runs without a daemon to its
 *                composition root by a dynamic import() (loaded only for that command)
 *
 * Packages and builtins with I/O stay in their layer: node:child_process in dataplane only
 * (kernel changes through exec's argument arrays), node:sqlite and etcd3 in store only.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { describe, it } from 'node:test';

type Layer = string;

const MAY_IMPORT: Readonly<Record<Layer, readonly Layer[]>> = {
  core: ['core'],
  obs: ['core', 'obs'],
  protocol: ['core', 'obs', 'protocol'],
  dataplane: ['core', 'obs', 'dataplane'],
  store: ['core', 'obs', 'store'],
  reconcile: ['core', 'obs', 'reconcile'],
  cluster: ['core', 'obs', 'store', 'cluster'],
  service: ['core', 'obs', 'store', 'cluster', 'reconcile', 'service'],
  admin: ['core', 'obs', 'admin'],
  docker: ['core', 'obs', 'docker'],
  cli: ['cli', 'core', 'obs', 'admin', 'docker'],
  dns: ['core', 'obs', 'dns'],
};

const WHY: Readonly<Record<Layer, string>> = {
  core: 'core does no I/O and depends on nothing',
  obs: 'obs serves every layer, so it may use only core',
  protocol: 'protocol is the wire format: it reaches services through ports',
  dataplane: 'dataplane programs the kernel and knows no store, service or reconciler',
  store: 'store keeps bytes at keys and knows no service',
  reconcile: 'the reconciler is given its intent and its dataplane',
  cluster: 'cluster runs over the cluster store',
  service: 'services use the reconciler only through its public face',
  admin: 'the admin server is given its handlers',
  docker: 'the Docker API client knows no store, kernel or service: its callers are given what it learns',
  dns: 'the DNS responder is given its lookup and its listeners: it knows no store, catalog or kernel',
  cli: 'the CLI never touches the kernel or the store: it talks to the daemon, or hands over to a composition root',
};

/** the reconciler's public face, the one part of reconcile/ services may import */
const RECONCILE_PUBLIC = new Set(['reconcile/reconciler.ts', 'reconcile/plan.ts']);
/** top-level files the CLI may import statically (the settings it shares with serve) */
const CLI_TOP_STATIC = new Set(['config.ts']);
/** the composition roots the CLI hands a command to, by dynamic import() only */
const CLI_ROOTS = new Set(['main.ts', 'doctor.ts', 'cluster-rbac.ts']);
/** non-relative imports held to one layer */
const ONLY_IN: Readonly<Record<string, Layer>> = {
  'node:child_process': 'dataplane',
  'node:sqlite': 'store',
  etcd3: 'store',
};
/** the node: names core may use (pure string checks) */
const CORE_BUILTINS: Readonly<Record<string, ReadonlySet<string>>> = {
  'node:net': new Set(['isIP', 'isIPv4', 'isIPv6']),
};

export interface Import {
  readonly spec: string;
  readonly dynamic: boolean;
  /** the imported names of `import { a, type b as c }` (a, b), when it has that form */
  readonly names?: readonly string[];
}

/** The imports of a TypeScript source: static, re-exports and import('literal'). Comments are dropped first. */
export function parseImports(source: string): Import[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: Import[] = [];
  const statics = /^\s*(?:import|export)\s+(?:type\s+)?([^'";]*?)\s*from\s*['"]([^'"]+)['"]/gm;
  for (const m of code.matchAll(statics)) {
    const clause = m[1] ?? '';
    const braces = /^\{([^}]*)\}$/.exec(clause.trim());
    const names = braces?.[1]
      ?.split(',')
      .map((n) =>
        n
          .trim()
          .replace(/^type\s+/, '')
          .split(/\s+as\s+/)[0]
          ?.trim(),
      )
      .filter((n): n is string => !!n);
    out.push({ spec: m[2] as string, dynamic: false, ...(names ? { names } : {}) });
  }
  for (const m of code.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)) out.push({ spec: m[1] as string, dynamic: false });
  for (const m of code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    out.push({ spec: m[1] as string, dynamic: true });
  }
  return out;
}

const layerOf = (file: string): Layer => (file.includes('/') ? (file.split('/')[0] as string) : 'top');

/** Why `file` (relative to src/, posix) may not have `imp`, or undefined when it may. */
export function ruleBroken(file: string, imp: Import): string | undefined {
  const from = layerOf(file);
  if (!imp.spec.startsWith('.')) {
    const only = ONLY_IN[imp.spec];
    if (only !== undefined && from !== only && from !== 'top') return `${imp.spec} is used in ${only}/ only`;
    if (from === 'core' && (imp.spec.startsWith('node:') || only !== undefined)) {
      const allowed = CORE_BUILTINS[imp.spec];
      const bad = imp.names === undefined ? ['*'] : imp.names.filter((n) => !allowed?.has(n));
      if (!allowed || bad.length > 0) return `${WHY.core} (${imp.spec}: ${bad.join(', ')})`;
    }
    return undefined;
  }
  const target = posix.normalize(posix.join(posix.dirname(file), imp.spec));
  if (target.startsWith('../')) return 'imports from outside src/';
  if (from === 'top') return undefined;
  const to = layerOf(target);
  const allowed = MAY_IMPORT[from];
  if (allowed === undefined) return `${from}/ is not in the layer table (src/layers.test.ts): add it`;
  if (to === 'top') {
    if (from === 'cli' && CLI_TOP_STATIC.has(target)) return undefined;
    if (from === 'cli' && CLI_ROOTS.has(target)) {
      return imp.dynamic ? undefined : `${WHY.cli}; a composition root is loaded with import() when its command runs`;
    }
    return `${from} may not import the composition roots (${WHY[from]})`;
  }
  if (!allowed.includes(to)) return `${from} may import ${allowed.join(', ')} only: ${WHY[from]}`;
  if (from === 'service' && to === 'reconcile' && !RECONCILE_PUBLIC.has(target)) {
    return `${WHY.service} (${[...RECONCILE_PUBLIC].join(', ')})`;
  }
  return undefined;
}

const TEST_ONLY = /(\.test\.ts|\.netns\.ts|\/testing\.ts|testutil\.ts|\.contract\.ts|\/fuzz\.ts)$/;

function productionFiles(root: string): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !TEST_ONLY.test(`/${relative(root, p)}`)) files.push(p);
    }
  };
  walk(root);
  return files.sort();
}

describe('layers (the import table)', () => {
  const src = dirname(new URL(import.meta.url).pathname);

  it('no production file imports across the table', () => {
    const files = productionFiles(src);
    assert.ok(files.length > 100, `found ${files.length} production files under ${src}`);
    const broken: string[] = [];
    for (const f of files) {
      const file = relative(src, f).split('\\').join('/');
      for (const imp of parseImports(readFileSync(f, 'utf8'))) {
        const why = ruleBroken(file, imp);
        if (why) broken.push(`src/${file} -> ${imp.spec}${imp.dynamic ? ' (import())' : ''}: ${why}`);
      }
    }
    assert.deepEqual(broken, [], `imports that cross the layer table:\n${broken.join('\n')}`);
  });

  it('reads static, type-only, re-exported, multi-line and dynamic imports', () => {
    const imports = parseImports(
      [
        '/** import { x } from "../dataplane/no.ts" (a comment) */',
        "import type { A } from '../core/a.ts';",
        "import {\n  b,\n  type C as D,\n} from '../store/b.ts';",
        "export { e } from './e.ts';",
        "import './side-effect.ts';",
        "const m = await import('../main.ts');",
        "import { isIPv4, connect } from 'node:net';",
      ].join('\n'),
    );
    assert.deepEqual(
      imports.map((i) => [i.spec, i.dynamic, i.names]),
      [
        ['../core/a.ts', false, ['A']],
        ['../store/b.ts', false, ['b', 'C']],
        ['./e.ts', false, ['e']],
        ['node:net', false, ['isIPv4', 'connect']],
        ['./side-effect.ts', false, undefined],
        ['../main.ts', true, undefined],
      ],
    );
  });

  it('names the rule a crossing import breaks', () => {
    const stat = (spec: string, names?: string[]): Import => ({ spec, dynamic: false, ...(names ? { names } : {}) });
    assert.match(ruleBroken('cli/x.ts', stat('../dataplane/linux/exec.ts')) ?? '', /CLI never touches the kernel/);
    assert.match(ruleBroken('cli/x.ts', stat('../store/sqlite.ts')) ?? '', /cli may import/);
    assert.match(ruleBroken('cli/x.ts', stat('../doctor.ts')) ?? '', /import\(\)/);
    assert.equal(ruleBroken('cli/x.ts', { spec: '../doctor.ts', dynamic: true }), undefined);
    assert.equal(ruleBroken('cli/x.ts', stat('../config.ts')), undefined);
    assert.match(ruleBroken('core/x.ts', stat('../obs/logger.ts')) ?? '', /core does no I\/O/);
    assert.match(ruleBroken('core/x.ts', stat('node:fs', ['readFileSync'])) ?? '', /core does no I\/O/);
    assert.match(ruleBroken('core/x.ts', stat('node:net', ['connect'])) ?? '', /node:net: connect/);
    assert.equal(ruleBroken('core/x.ts', stat('node:net', ['isIPv4'])), undefined);
    assert.match(ruleBroken('service/x.ts', stat('../reconcile/applied.ts')) ?? '', /public face/);
    assert.equal(ruleBroken('service/x.ts', stat('../reconcile/reconciler.ts')), undefined);
    assert.match(ruleBroken('cluster/x.ts', stat('../dataplane/linux/vxlan.ts')) ?? '', /cluster may import/);
    assert.match(ruleBroken('cluster/x.ts', stat('../main.ts')) ?? '', /composition roots/);
    assert.equal(ruleBroken('cli/x.ts', stat('../docker/api.ts')), undefined);
    assert.match(ruleBroken('docker/x.ts', stat('../store/sqlite.ts')) ?? '', /docker may import/);
    assert.match(ruleBroken('service/x.ts', stat('../docker/watch.ts')) ?? '', /service may import/);
    assert.match(ruleBroken('service/x.ts', stat('node:child_process')) ?? '', /dataplane\/ only/);
    assert.match(ruleBroken('cli/x.ts', stat('etcd3')) ?? '', /store\/ only/);
    assert.equal(ruleBroken('main.ts', stat('./dataplane/linux/linux-dataplane.ts')), undefined);
  });
});
