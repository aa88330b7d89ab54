/**
 * truss as a Docker managed plugin in a simulated host: the build (packaging/plugin/build.ts,
 * made once per set of inputs and cached under WORK_DIR/plugin-build/<inputs key>), the
 * `docker plugin` commands, and the plugin's own log lines, which dockerd writes into the
 * host's dockerd.log (`msg="<JSON line>" plugin=<id>`). The plugin's state dir is a directory
 * of the host (state.source), so the harness's `truss` CLI reaches its admin socket there.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BuildResult, buildInputsKey, buildPlugin } from '../../packaging/plugin/build.ts';
import type { RunResult } from './exec.ts';
import type { Host } from './host.ts';
import { WORK_DIR } from './paths.ts';

const BUILD_ROOT = join(WORK_DIR, 'plugin-build');

export interface PluginBuild extends BuildResult {
  /** whether this run made it (false: reused from the cache) */
  readonly built: boolean;
}

/** Builds each version unless a build of the same inputs exists; removes cached builds of other inputs. */
export async function ensurePluginBuilds(versions: readonly string[]): Promise<PluginBuild[]> {
  const keys = versions.map((v) => `${v}-${buildInputsKey(v)}`);
  mkdirSync(BUILD_ROOT, { recursive: true });
  for (const d of readdirSync(BUILD_ROOT)) {
    if (!keys.includes(d)) rmSync(join(BUILD_ROOT, d), { recursive: true, force: true });
  }
  const out: PluginBuild[] = [];
  for (const [i, version] of versions.entries()) {
    const dir = join(BUILD_ROOT, keys[i] as string);
    const done = join(dir, 'build.json');
    if (existsSync(done)) {
      out.push({ ...(JSON.parse(readFileSync(done, 'utf8')) as BuildResult), built: false });
      continue;
    }
    rmSync(dir, { recursive: true, force: true });
    const r = await buildPlugin({ version, outDir: dir, log: () => {} });
    writeFileSync(done, JSON.stringify(r));
    out.push({ ...r, built: true });
  }
  return out;
}

/** docker plugin ... on the host; throws with dockerd's message unless it exits 0. */
export async function dockerPlugin(host: Host, args: readonly string[], timeoutMs = 180_000): Promise<RunResult> {
  const r = await host.docker(['plugin', ...args], timeoutMs);
  assert.equal(r.code, 0, `docker plugin ${args.join(' ')} in ${host.name}: ${r.stderr.trim()}`);
  return r;
}

/** name -> enabled, from `docker plugin ls`. */
export async function pluginList(host: Host): Promise<Map<string, boolean>> {
  const r = await dockerPlugin(host, ['ls', '--format', '{{.Name}} {{.Enabled}}']);
  const m = new Map<string, boolean>();
  for (const line of r.stdout.split('\n')) {
    const [name, enabled] = line.trim().split(' ');
    if (name) m.set(name, enabled === 'true');
  }
  return m;
}

export async function pluginId(host: Host, name: string): Promise<string> {
  return (await dockerPlugin(host, ['inspect', '-f', '{{.Id}}', name])).stdout.trim();
}

/** One JSON log line of a plugin, as dockerd recorded it. */
export type PluginLogLine = Record<string, unknown>;

/** The plugin's JSON log lines (stdout and stderr) from the host's dockerd.log, oldest first. */
export function pluginLog(host: Host, id: string): PluginLogLine[] {
  const file = join(host.dir, 'dockerd.log');
  if (!existsSync(file)) return [];
  const out: PluginLogLine[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /msg="((?:[^"\\]|\\.)*)" plugin=([0-9a-f]{64})\s*$/.exec(line);
    if (!m || m[2] !== id) continue;
    try {
      const text = JSON.parse(`"${m[1]}"`) as string; // logrus quotes like Go's %q: JSON reads it back
      out.push(JSON.parse(text) as PluginLogLine);
    } catch {
      // not one of our JSON lines (e.g. a Node warning on stderr)
    }
  }
  return out;
}

/** The plugin's 'listening' lines: one per start, with its version and startupMs. */
export const listeningLines = (host: Host, id: string): PluginLogLine[] =>
  pluginLog(host, id).filter((l) => l.msg === 'listening');

/** Makes a state directory for a plugin on the host (the bind source must exist before enable). */
export function pluginStateDir(host: Host, name = 'plugin-state'): string {
  const dir = join(host.dir, name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}
