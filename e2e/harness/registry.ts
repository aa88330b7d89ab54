/**
 * A private image registry for the managed-plugin tests: Debian's docker-registry (distribution
 * 2.8), started by the suite in the underlay namespace on 198.18.255.254:5000 (plain HTTP,
 * filesystem storage under the underlay's dir), where every host attached to the underlay
 * reaches it. Hosts' dockerd must run with --insecure-registry=REGISTRY_ADDRESS. The package
 * never runs as a service: scripts/setup.sh installs it with service starts blocked.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inNetns, run } from './exec.ts';
import { CHILD_PATH } from './paths.ts';
import { isAlive, waitExit } from './procs.ts';
import { UNDERLAY_ADDRESS, type Underlay } from './underlay.ts';
import { waitFor } from './wait.ts';

export const REGISTRY_PORT = 5000;
/** host:port, as image and plugin references and --insecure-registry want it */
export const REGISTRY_ADDRESS = `${UNDERLAY_ADDRESS}:${REGISTRY_PORT}`;
export const REGISTRY_BIN = process.env.TRUSS_E2E_REGISTRY ?? '/usr/bin/docker-registry';

export interface Registry {
  readonly address: string;
  readonly logFile: string;
  stop(): Promise<void>;
}

export async function startRegistry(u: Underlay): Promise<Registry> {
  if (!existsSync(REGISTRY_BIN)) throw new Error(`${REGISTRY_BIN} not found: run scripts/setup.sh (docker-registry)`);
  const dir = join(u.dir, 'registry');
  mkdirSync(join(dir, 'data'), { recursive: true });
  const config = join(dir, 'config.yml');
  writeFileSync(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${dir}/data`,
      'http:',
      `  addr: ${REGISTRY_ADDRESS}`,
      '',
    ].join('\n'),
  );
  const logFile = join(dir, 'registry.log');
  const out = openSync(logFile, 'a');
  const argv = inNetns(u.netnsPath, [REGISTRY_BIN, 'serve', config]);
  const child: ChildProcess = spawn(argv[0] as string, argv.slice(1), {
    env: { ...process.env, PATH: CHILD_PATH },
    stdio: ['ignore', out, out],
    detached: true,
  });
  child.unref();
  closeSync(out);
  const pid = child.pid ?? -1;
  const registry: Registry = {
    address: REGISTRY_ADDRESS,
    logFile,
    async stop() {
      if (!isAlive(pid)) return;
      process.kill(pid, 'SIGTERM');
      if (!(await waitExit(pid, 5000))) {
        process.kill(pid, 'SIGKILL');
        await waitExit(pid, 5000);
      }
    },
  };
  try {
    await waitFor(
      async () => {
        if (!isAlive(pid)) throw new Error(`docker-registry exited: ${readFileSync(logFile, 'utf8').slice(-2000)}`);
        const r = await u.exec([
          'curl',
          '-s',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          `http://${REGISTRY_ADDRESS}/v2/`,
        ]);
        return r.stdout.trim() === '200';
      },
      30_000,
      { what: `registry at ${REGISTRY_ADDRESS}`, intervalMs: 100 },
    );
  } catch (err) {
    await registry.stop();
    throw err;
  }
  return registry;
}

/** Tags the registry holds for a repository (GET /v2/NAME/tags/list), from inside the underlay. */
export async function registryTags(u: Underlay, repository: string): Promise<string[]> {
  const r = await run(inNetns(u.netnsPath, ['curl', '-s', `http://${REGISTRY_ADDRESS}/v2/${repository}/tags/list`]), {
    env: { ...process.env, PATH: CHILD_PATH },
  });
  try {
    return ((JSON.parse(r.stdout) as { tags?: string[] }).tags ?? []).sort();
  } catch {
    return [];
  }
}
